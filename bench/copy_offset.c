// copy_offset: copies SRC from byte SHIFT to the start of DST and makes it
// durable, the ways ckpt could write a record: copy_file_range (64 MiB a
// call), splice through a 1 MiB pipe, or pread + write through a 1 MiB
// buffer; a thread asks for writeback (sync_file_range(SYNC_FILE_RANGE_WRITE))
// every 64 MiB, and an fsync ends it. It shows why ckpt uses copy_file_range
// only where source and output share their offset within a page, and the
// pipe otherwise (docs/PERFORMANCE.md, session 10); bench/copy_offset.sh
// times it against cp + sync.
//
//   copy_offset kernel|pipe|buffer SHIFT SRC DST
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
  if (argc != 5 || (strcmp(argv[1], "kernel") != 0 && strcmp(argv[1], "pipe") != 0 &&
                    strcmp(argv[1], "buffer") != 0)) {
    fprintf(stderr, "usage: copy_offset kernel|pipe|buffer SHIFT SRC DST\n");
    return 2;
  }
  const int in_kernel = strcmp(argv[1], "kernel") == 0, through_pipe = strcmp(argv[1], "pipe") == 0;
  const long shift = atol(argv[2]);
  int in_fd = open(argv[3], O_RDONLY);
  out_fd = open(argv[4], O_WRONLY | O_CREAT | O_TRUNC, 0644);
  struct stat st;
  if (in_fd < 0 || out_fd < 0 || fstat(in_fd, &st) != 0 || shift < 0 || shift > st.st_size) {
    perror("copy_offset");
    return 2;
  }
  char* buffer = malloc(kBuffer);
  int pipe_fds[2];
  if (through_pipe && (pipe(pipe_fds) != 0 || fcntl(pipe_fds[1], F_SETPIPE_SZ, kBuffer) != kBuffer)) {
    perror("copy_offset: pipe");
    return 2;
  }
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
    } else if (through_pipe) {
      loff_t in_off = pos;
      ssize_t got = splice(in_fd, &in_off, pipe_fds[1], NULL, n < kBuffer ? n : kBuffer, SPLICE_F_MOVE);
      for (put = 0; got > 0 && put < got;) {
        ssize_t out = splice(pipe_fds[0], NULL, out_fd, NULL, got - put, SPLICE_F_MOVE);
        if (out <= 0) break;
        put += out;
      }
      if (got <= 0 || put < got) put = -1;
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
