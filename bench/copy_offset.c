// copy_offset: copies SRC from byte SHIFT to the start of DST and makes it
// durable, the way ckpt writes a record: in the kernel (copy_file_range,
// 64 MiB a call) or through a 1 MiB buffer (pread + write), with a thread
// asking for writeback (sync_file_range(SYNC_FILE_RANGE_WRITE)) every 64 MiB
// and an fsync at the end. It shows why ckpt copies in the kernel only where
// source and output share their offset within a page (docs/PERFORMANCE.md,
// session 10); bench/copy_offset.sh times it against cp + sync.
//
//   copy_offset kernel|buffer SHIFT SRC DST
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { kStep = 64 << 20, kBuffer = 1 << 20 };

static int out_fd;
static atomic_long written;   // bytes of DST written so far
static atomic_int finished;

static void* writeback(void* unused) {
  (void)unused;
  long asked = 0;
  for (;;) {
    long upto = atomic_load(&written);
    int done = atomic_load(&finished);
    if (upto - asked >= kStep || (done && upto > asked)) {
      sync_file_range(out_fd, asked, upto - asked, SYNC_FILE_RANGE_WRITE);
      asked = upto;
    } else if (done) {
      return NULL;
    } else {
      usleep(500);
    }
  }
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  if (argc != 5 || (strcmp(argv[1], "kernel") != 0 && strcmp(argv[1], "buffer") != 0)) {
    fprintf(stderr, "usage: copy_offset kernel|buffer SHIFT SRC DST\n");
    return 2;
  }
  const int in_kernel = strcmp(argv[1], "kernel") == 0;
  const long shift = atol(argv[2]);
  int in_fd = open(argv[3], O_RDONLY);
  out_fd = open(argv[4], O_WRONLY | O_CREAT | O_TRUNC, 0644);
  struct stat st;
  if (in_fd < 0 || out_fd < 0 || fstat(in_fd, &st) != 0 || shift < 0 || shift > st.st_size) {
    perror("copy_offset");
    return 2;
  }
  char* buffer = malloc(kBuffer);
  const double start = now();
  pthread_t thread;
  pthread_create(&thread, NULL, writeback, NULL);
  long pos = shift;
  while (pos < st.st_size) {
    long n = st.st_size - pos;
    ssize_t put;
    if (in_kernel) {
      loff_t in_off = pos;
      put = copy_file_range(in_fd, &in_off, out_fd, NULL, n < kStep ? n : kStep, 0);
    } else {
      ssize_t got = pread(in_fd, buffer, n < kBuffer ? n : kBuffer, pos);
      put = got > 0 ? write(out_fd, buffer, got) : got;
    }
    if (put <= 0) {
      perror("copy_offset: copy");
      return 1;
    }
    pos += put;
    atomic_store(&written, pos - shift);
  }
  const double copied = now();
  atomic_store(&finished, 1);
  pthread_join(thread, NULL);
  if (fsync(out_fd) != 0) {
    perror("copy_offset: fsync");
    return 1;
  }
  const double end = now();
  fprintf(stderr, "%s, shift %ld: copy %.2f s, then fsync %.2f s, total %.2f s\n", argv[1], shift,
          copied - start, end - copied, end - start);
  free(buffer);
  return 0;
}
