// POSIX implementation of the Env seam, and AtomicOutput.
#include "util/env.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <csetjmp>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "util/crc32.h"
#include "util/error.h"
#include "util/http_file.h"
#include "util/signal_cleanup.h"

namespace ckpt {
namespace {

constexpr size_t kCopyBufferSize = size_t{1} << 20;
// splice_through_pipe's pipe: 1 MiB, what any user may ask for
// (/proc/sys/fs/pipe-max-size's default).
constexpr size_t kPipeBytes = size_t{1} << 20;
// Largest single read/write/copy request; Linux caps one call near 2 GiB.
constexpr size_t kMaxIoChunk = size_t{1} << 30;
// Largest single copy_file_range request of copy_from: the step at which the
// writeback thread hears of new bytes.
constexpr uint64_t kKernelCopyStep = uint64_t{64} << 20;
// Bytes appended between two sync_file_range(SYNC_FILE_RANGE_WRITE) calls
// (made on the writeback thread, so a full disk queue blocks it, not the copy).
constexpr uint64_t kWritebackStep = uint64_t{64} << 20;
// copy_from_with_crc maps this much of the source at a time (peak RSS grows
// by at most this much) and takes the CRC of kCrcStep bytes before copying
// them in the kernel, so that the copy finds them in the CPU cache.
constexpr size_t kMapWindow = size_t{8} << 20;
constexpr size_t kCrcStep = size_t{1} << 20;

// CKPT_RESERVE=0 turns WritableFile::reserve off (for comparisons in
// bench/bench.py).
bool reserve_enabled() {
  const char* env = std::getenv("CKPT_RESERVE");
  return !(env && std::strcmp(env, "0") == 0);
}

// CKPT_WRITEBACK_STEP (bytes; 0 turns early writeback off, for comparisons
// in bench/bench.py) overrides kWritebackStep.
uint64_t writeback_step() {
  const char* env = std::getenv("CKPT_WRITEBACK_STEP");
  if (!env || !*env) return kWritebackStep;
  char* stop = nullptr;
  unsigned long long v = std::strtoull(env, &stop, 10);
  return stop && *stop == '\0' ? v : kWritebackStep;
}

[[noreturn]] void throw_errno(const std::string& path, const char* op, int err) {
  throw IoError(path + ": " + op + ": " + std::strerror(err), err);
}

// A CRC over a mapping of a file that another process may shrink meanwhile:
// touching a page past the new end raises SIGBUS, which guarded_crc turns
// into `false` (the caller reports the file as changed) instead of a crash.
// The handler is installed once; a SIGBUS outside guarded_crc puts the
// previous disposition back and returns, so the fault is taken again under it.
thread_local sigjmp_buf* t_bus_jump = nullptr;
struct sigaction g_previous_bus;

void on_sigbus(int, siginfo_t*, void*) {
  if (sigjmp_buf* jump = t_bus_jump) {
    t_bus_jump = nullptr;
    siglongjmp(*jump, 1);
  }
  ::sigaction(SIGBUS, &g_previous_bus, nullptr);
}

bool guarded_crc(const char* data, size_t n, uint32_t& crc) {
  static std::once_flag installed;
  std::call_once(installed, [] {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGBUS, &sa, &g_previous_bus);
  });
  sigjmp_buf jump;
  // No mask to save: SA_NODEFER leaves SIGBUS unblocked in the handler.
  if (sigsetjmp(jump, 0) != 0) return false;
  t_bus_jump = &jump;
  uint32_t c = crc32_update(crc, data, n);
  t_bus_jump = nullptr;
  crc = c;
  return true;
}

// Starts the kernel writing back an output's bytes as they are appended, on
// a thread of its own: sync_file_range(SYNC_FILE_RANGE_WRITE) blocks while
// the disk's queue is full, and there it holds up this thread instead of the
// copy. The fsync at commit then finds most bytes written: a durable output
// costs about the longer of copying and writing, not their sum. A hint only:
// errors are left to fsync, which reports them.
class WritebackThread {
 public:
  WritebackThread(int fd, uint64_t step) : fd_(fd), step_(step), thread_([this] { run(); }) {}
  ~WritebackThread() { stop(); }

  // Bytes [0, upto) of the file are written.
  void advance(uint64_t upto) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      written_ = upto;
    }
    cv_.notify_one();
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }

 private:
  void run() {
    uint64_t started = 0;
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stopping_ || written_ - started >= step_; });
      if (stopping_) return;
      const uint64_t upto = written_;
      lock.unlock();
      ::sync_file_range(fd_, static_cast<off_t>(started), static_cast<off_t>(upto - started),
                        SYNC_FILE_RANGE_WRITE);
      started = upto;
      lock.lock();
    }
  }

  const int fd_;
  const uint64_t step_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t written_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

// CKPT_KERNEL_COPY=any copies with copy_file_range whatever the page offsets
// (the choice before session 10, for comparisons in bench/bench.py).
bool kernel_copy_at_any_offset() {
  const char* env = std::getenv("CKPT_KERNEL_COPY");
  return env && std::strcmp(env, "any") == 0;
}

// CKPT_CRC_THREAD=0 takes copy_from_with_crc's CRC on the copying thread
// (for comparisons in bench/bench.py).
bool crc_thread_enabled() {
  const char* env = std::getenv("CKPT_CRC_THREAD");
  return !(env && std::strcmp(env, "0") == 0);
}

// Takes CRCs of mapped windows on a thread of its own, in the order they are
// given, while the caller copies the same bytes in the kernel: on two cores
// the copy costs about the longer of the two instead of their sum.
class CrcThread {
 public:
  CrcThread() : thread_([this] { run(); }) {}
  ~CrcThread() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  // Starts the CRC of [data, data + n) continuing from crc.
  void start(const char* data, size_t n, uint32_t crc) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      data_ = data;
      n_ = n;
      crc_ = crc;
      busy_ = true;
    }
    cv_.notify_all();
  }

  // Waits for it: false where the mapping shrank under the CRC (SIGBUS).
  bool finish(uint32_t& crc) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !busy_; });
    crc = crc_;
    return ok_;
  }

 private:
  void run() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stopping_ || busy_; });
      if (stopping_) return;
      const char* data = data_;
      const size_t n = n_;
      uint32_t crc = crc_;
      lock.unlock();
      const bool ok = guarded_crc(data, n, crc);
      lock.lock();
      crc_ = crc;
      ok_ = ok;
      busy_ = false;
      cv_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  const char* data_ = nullptr;
  size_t n_ = 0;
  uint32_t crc_ = 0;
  bool busy_ = false, ok_ = true, stopping_ = false;
  std::thread thread_;
};

class PosixRandomAccessFile final : public RandomAccessFile {
 public:
  PosixRandomAccessFile(std::string path, int fd, uint64_t size)
      : path_(std::move(path)), fd_(fd), size_(size) {}
  ~PosixRandomAccessFile() override { ::close(fd_); }

  void read(uint64_t offset, size_t n, char* buf) override {
    size_t done = 0;
    while (done < n) {
      size_t want = std::min(n - done, kMaxIoChunk);
      ssize_t got = ::pread(fd_, buf + done, want, static_cast<off_t>(offset + done));
      if (got < 0) {
        if (errno == EINTR) continue;
        throw_errno(path_, "read", errno);
      }
      if (got == 0) {
        throw FormatError(path_ + ": unexpected end of file at offset " +
                          std::to_string(offset + done));
      }
      done += static_cast<size_t>(got);
    }
  }
  uint64_t size() const override { return size_; }
  const std::string& path() const override { return path_; }
  int fd() const override { return fd_; }

 private:
  std::string path_;
  int fd_;
  uint64_t size_;
};

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixWritableFile() override {
    writeback_.reset();  // joins the thread before its descriptor closes
    if (fd_ >= 0) ::close(fd_);
  }

  void append(std::string_view data) override {
    check_open("write");
    durable_ = false;
    write_all(fd_, data, path_);
    offset_ += data.size();
    start_writeback();
  }

  void copy_from(RandomAccessFile& src, uint64_t offset, uint64_t n) override {
    check_open("write");
    durable_ = false;
    check_range(src, offset, n);
    uint64_t done = 0;
    if (src.fd() >= 0) done = copy_in_kernel(src, offset, n);
    // What the kernel would not copy goes through a buffer.
    if (done < n) copy_through_buffer(src, offset + done, n - done, *this);
  }

  uint32_t copy_from_with_crc(RandomAccessFile& src, uint64_t offset, uint64_t n) override {
    check_open("write");
    durable_ = false;
    check_range(src, offset, n);
    uint32_t crc = 0;
    uint64_t done = 0;
    if (src.fd() >= 0) done = copy_mapped_with_crc(src, offset, n, crc);
    if (done < n) copy_through_buffer(src, offset + done, n - done, *this, &crc);
    return crc;
  }

  void reserve(uint64_t n) override {
    static const bool enabled = reserve_enabled();
    if (fd_ < 0 || !enabled || n == 0 || offset_ + n <= reserved_end_) return;
    const uint64_t from = std::max(offset_, reserved_end_), end = offset_ + n;
    // A hint: where the file system cannot (EOPNOTSUPP) or the disk is full
    // (ENOSPC), the appends allocate as they would have, or report the error.
    if (::fallocate(fd_, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(from), static_cast<off_t>(end - from)) == 0) {
      reserved_end_ = end;
      durable_ = false;  // sync gives back what is left unused
    }
  }

  uint64_t offset() const override { return offset_; }

  void sync() override {
    check_open("fsync");
    // Nothing written since the last fsync: a second one would only make
    // the disk flush its cache again (a writer syncs, then its commit does).
    if (durable_) return;
    writeback_.reset();
    // Space reserved past the end (a caller's estimate too high) is given
    // back, so that the file holds no blocks past its size. A truncation to
    // the current size frees them on ext4 and XFS; a hint's leftovers
    // otherwise, so a failure is not an error.
    if (reserved_end_ > offset_) {
      if (::ftruncate(fd_, static_cast<off_t>(offset_)) == 0) reserved_end_ = offset_;
    }
    while (::fsync(fd_) != 0) {
      if (errno != EINTR) throw_errno(path_, "fsync", errno);
    }
    durable_ = true;
  }

  void close() override {
    if (fd_ < 0) return;
    writeback_.reset();
    pipe_.reset();
    int fd = fd_;
    fd_ = -1;  // close() releases the descriptor even when it reports an error
    if (::close(fd) != 0 && errno != EINTR) throw_errno(path_, "close", errno);
  }

 private:
  void check_open(const char* op) const {
    if (fd_ < 0) throw_errno(path_, op, EBADF);
  }

  static void check_range(RandomAccessFile& src, uint64_t offset, uint64_t n) {
    if (offset > src.size() || n > src.size() - offset) {
      throw FormatError(src.path() + ": unexpected end of file at offset " +
                        std::to_string(src.size()));
    }
  }

  // Whether src bytes at src_offset land at the same offset within a page
  // when appended here.
  bool same_page_offset(uint64_t src_offset) const {
    static const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    return src_offset % page == offset_ % page;
  }

  // Copies in the kernel: with copy_file_range (then sendfile) where source
  // and output share their offset within a page, else spliced through a pipe
  // of this file's (splice_through_pipe). Returns how many bytes were copied
  // before those calls stopped being usable (the caller copies the rest).
  uint64_t copy_in_kernel(RandomAccessFile& src, uint64_t offset, uint64_t n) {
    static const bool any_offset = kernel_copy_at_any_offset();
    uint64_t done = 0;
    if (!any_offset && !same_page_offset(offset)) done = splice_through_pipe(src, offset, n);
    while (done < n) {
      // Steps of kKernelCopyStep, so that writeback starts as the copy goes.
      size_t want = static_cast<size_t>(std::min<uint64_t>(n - done, kKernelCopyStep));
      loff_t in_off = static_cast<loff_t>(offset + done);
      ssize_t put;
      if (use_copy_file_range_) {
        put = ::copy_file_range(src.fd(), &in_off, fd_, nullptr, want, 0);
      } else if (use_sendfile_) {
        off_t send_off = static_cast<off_t>(offset + done);
        put = ::sendfile(fd_, src.fd(), &send_off, want);
      } else {
        return done;
      }
      if (put < 0) {
        int err = errno;
        if (err == EINTR) continue;
        bool unsupported = err == EXDEV || err == ENOSYS || err == EOPNOTSUPP ||
                           err == EINVAL || err == EBADF || err == ETXTBSY;
        if (unsupported && use_copy_file_range_) {
          use_copy_file_range_ = false;
          continue;
        }
        if (unsupported) {  // sendfile refused too: buffered copy
          use_sendfile_ = false;
          return done;
        }
        throw_errno(path_, use_copy_file_range_ ? "copy_file_range" : "sendfile", err);
      }
      if (put == 0) {
        // The source shrank under us.
        throw FormatError(src.path() + ": unexpected end of file at offset " +
                          std::to_string(offset + done));
      }
      done += static_cast<uint64_t>(put);
      offset_ += static_cast<uint64_t>(put);
      start_writeback();
    }
    return done;
  }

  // A pipe of kPipeBytes for splice_through_pipe; empty between calls.
  struct Pipe {
    int read_fd = -1, write_fd = -1;
    size_t bytes = 0;
    ~Pipe() {
      if (read_fd >= 0) ::close(read_fd);
      if (write_fd >= 0) ::close(write_fd);
    }
  };

  // Copies src bytes through a pipe with splice(2), kPipeBytes at a time:
  // the source's page-cache pages go into the pipe by reference and out into
  // this file's pages in one write of the whole pipe. copy_file_range on ext4
  // does the same through the kernel's pipe of 16 pages; where source and
  // output differ in their offset within a page, each of its writes ends
  // inside a page, and the copy and the writeback behind it slow down (most
  // likely smaller page-cache folios). docs/PERFORMANCE.md, session 10:
  // 1.68 GB at a 64-byte shift made durable in 2.6-2.8 s by copy_file_range,
  // 2.2 s through a 1 MiB pipe, as fast as an unshifted copy. Returns how
  // many bytes were copied (0 where pipes or splice are not usable: the
  // caller copies the rest otherwise).
  uint64_t splice_through_pipe(RandomAccessFile& src, uint64_t offset, uint64_t n) {
    if (!use_splice_) return 0;
    if (!pipe_) {
      auto p = std::make_unique<Pipe>();
      int fds[2];
      if (::pipe2(fds, O_CLOEXEC) != 0) {
        use_splice_ = false;
        return 0;
      }
      p->read_fd = fds[0];
      p->write_fd = fds[1];
      // A pipe that cannot grow (pipe-max-size, a user's pipe quota) would copy
      // as copy_file_range does: left to it then.
      const int got = ::fcntl(p->write_fd, F_SETPIPE_SZ, static_cast<int>(kPipeBytes));
      if (got < static_cast<int>(kPipeBytes)) {
        use_splice_ = false;
        return 0;
      }
      p->bytes = static_cast<size_t>(got);
      pipe_ = std::move(p);
    }
    uint64_t done = 0;
    while (done < n) {
      loff_t in_off = static_cast<loff_t>(offset + done);
      const size_t want = static_cast<size_t>(std::min<uint64_t>(n - done, pipe_->bytes));
      const ssize_t got = ::splice(src.fd(), &in_off, pipe_->write_fd, nullptr, want, SPLICE_F_MOVE);
      if (got < 0) {
        const int err = errno;
        if (err == EINTR) continue;
        if (err == EINVAL || err == ENOSYS || err == EOPNOTSUPP || err == EBADF) {
          use_splice_ = false;  // this source cannot be spliced: the caller copies the rest
          return done;
        }
        throw_errno(src.path(), "read", err);
      }
      if (got == 0) {
        throw FormatError(src.path() + ": unexpected end of file at offset " + std::to_string(offset + done));
      }
      drain_pipe(static_cast<size_t>(got));
      done += static_cast<uint64_t>(got);
      start_writeback();
      if (!pipe_) break;  // this file took no splice: the caller copies the rest
    }
    return done;
  }

  // Moves the n bytes in the pipe to the end of this file. Where this file
  // will not take a splice, they are read out of the pipe and written, and
  // splicing stops; on an error the pipe (with what it holds) is dropped.
  void drain_pipe(size_t n) {
    while (n > 0) {
      const ssize_t put = ::splice(pipe_->read_fd, nullptr, fd_, nullptr, n, SPLICE_F_MOVE);
      if (put > 0) {
        n -= static_cast<size_t>(put);
        offset_ += static_cast<uint64_t>(put);
        continue;
      }
      const int err = put < 0 ? errno : EIO;
      if (err == EINTR) continue;
      if (err == EINVAL || err == ENOSYS || err == EOPNOTSUPP) {
        use_splice_ = false;
        std::vector<char> buf(std::min(n, kCopyBufferSize));
        while (n > 0) {
          const ssize_t got = ::read(pipe_->read_fd, buf.data(), std::min(n, buf.size()));
          if (got < 0 && errno == EINTR) continue;
          if (got <= 0) {
            pipe_.reset();
            throw_errno(path_, "read of a pipe", got < 0 ? errno : EIO);
          }
          write_all(fd_, std::string_view(buf.data(), static_cast<size_t>(got)), path_);
          offset_ += static_cast<uint64_t>(got);
          n -= static_cast<size_t>(got);
        }
        pipe_.reset();
        return;
      }
      pipe_.reset();
      throw_errno(path_, "write", err);
    }
  }

  // copy_from_with_crc over a descriptor: maps the source kMapWindow at a
  // time, takes the CRC of each kCrcStep bytes from the mapping and copies
  // the same bytes in the kernel while they are in the CPU cache (or, where
  // the kernel will not copy, writes them from the mapping). The bytes are
  // read from memory once, instead of once for the CRC and once more for the
  // copy. Returns how many bytes were copied (0 where the source cannot be
  // mapped: the caller copies the rest through a buffer).
  uint64_t copy_mapped_with_crc(RandomAccessFile& src, uint64_t offset, uint64_t n, uint32_t& crc) {
    static const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    uint64_t done = 0;
    while (done < n) {
      const uint64_t pos = offset + done;
      const uint64_t map_start = pos - pos % page;
      const size_t skip = static_cast<size_t>(pos - map_start);
      const size_t len = static_cast<size_t>(std::min<uint64_t>(n - done, kMapWindow - skip));
      void* map = ::mmap(nullptr, skip + len, PROT_READ, MAP_SHARED, src.fd(),
                         static_cast<off_t>(map_start));
      if (map == MAP_FAILED) return done;
      const char* bytes = static_cast<const char*>(map) + skip;
      static const bool crc_thread = crc_thread_enabled();
      try {
        if (crc_thread && src_kernel_copy_ok()) {
          // The CRC of the window on the helper thread while the kernel copies it.
          if (!crc_thread_) crc_thread_ = std::make_unique<CrcThread>();
          crc_thread_->start(bytes, len, crc);
          uint64_t copied = 0;
          try {
            copied = copy_in_kernel(src, pos, len);
          } catch (const FormatError&) {
            // The source ended early for the kernel too: said as the CRC says it.
            uint32_t ignored;
            if (!crc_thread_->finish(ignored)) throw changed_while_copied(src, pos + len);
            throw;
          } catch (...) {
            uint32_t ignored;
            crc_thread_->finish(ignored);  // the thread stops reading the mapping before it goes
            throw;
          }
          if (!crc_thread_->finish(crc)) throw changed_while_copied(src, pos + len);
          if (copied < len) append(std::string_view(bytes + copied, len - copied));
        }
        for (size_t at = crc_thread && src_kernel_copy_ok() ? len : 0; at < len;) {
          const size_t step = std::min(len - at, kCrcStep);
          if (!guarded_crc(bytes + at, step, crc)) throw changed_while_copied(src, pos + at + step);
          const uint64_t copied = src_kernel_copy_ok() ? copy_in_kernel(src, pos + at, step) : 0;
          if (copied < step) append(std::string_view(bytes + at + copied, step - copied));
          at += step;
        }
      } catch (...) {
        ::munmap(map, skip + len);
        throw;
      }
      ::munmap(map, skip + len);
      done += len;
    }
    return done;
  }

  static FormatError changed_while_copied(RandomAccessFile& src, uint64_t end) {
    return FormatError(src.path() + ": changed while being copied (it no longer reaches offset " +
                       std::to_string(end) + "); copy it again when nothing writes it");
  }

  bool src_kernel_copy_ok() const { return use_copy_file_range_ || use_sendfile_; }

  // Tells the writeback thread (started once the output reaches a step) of
  // each further step of bytes; smaller outputs never start one.
  void start_writeback() {
    static const uint64_t step = writeback_step();
    if (step == 0 || offset_ < writeback_told_ + step) return;
    if (!writeback_) writeback_ = std::make_unique<WritebackThread>(fd_, step);
    writeback_->advance(offset_);
    writeback_told_ = offset_;
  }

  std::string path_;
  int fd_;
  uint64_t offset_ = 0;
  bool use_copy_file_range_ = true, use_sendfile_ = true, use_splice_ = true;
  uint64_t writeback_told_ = 0;
  uint64_t reserved_end_ = 0;  // reserve(): bytes [0, reserved_end_) have space
  bool durable_ = false;       // fsync'd, and nothing written since
  std::unique_ptr<WritebackThread> writeback_;
  std::unique_ptr<CrcThread> crc_thread_;  // copy_mapped_with_crc's, started on first use
  std::unique_ptr<Pipe> pipe_;             // splice_through_pipe's, made on first use
};

class PosixRandomRWFile final : public RandomRWFile {
 public:
  PosixRandomRWFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixRandomRWFile() override {
    if (fd_ >= 0) ::close(fd_);
  }

  void write_at(uint64_t offset, std::string_view data) override {
    if (fd_ < 0) throw_errno(path_, "write", EBADF);
    size_t done = 0;
    while (done < data.size()) {
      size_t want = std::min(data.size() - done, kMaxIoChunk);
      ssize_t put = ::pwrite(fd_, data.data() + done, want, static_cast<off_t>(offset + done));
      if (put < 0) {
        if (errno == EINTR) continue;
        throw_errno(path_, "write", errno);
      }
      done += static_cast<size_t>(put);
    }
  }

  void sync() override {
    if (fd_ < 0) throw_errno(path_, "fsync", EBADF);
    while (::fsync(fd_) != 0) {
      if (errno != EINTR) throw_errno(path_, "fsync", errno);
    }
  }

  void close() override {
    if (fd_ < 0) return;
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0 && errno != EINTR) throw_errno(path_, "close", errno);
  }

  const std::string& path() const override { return path_; }

 private:
  std::string path_;
  int fd_;
};

class PosixEnv final : public Env {
 public:
  std::unique_ptr<RandomAccessFile> open_read(const std::string& path) override {
    if (http::is_remote(path)) return http::open_remote(path);  // docs/REMOTE.md
    int fd;
    do {
      fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) throw_errno(path, "open", errno);
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      throw_errno(path, "stat", err);
    }
    if (S_ISDIR(st.st_mode)) {
      ::close(fd);
      throw_errno(path, "open", EISDIR);
    }
    return std::make_unique<PosixRandomAccessFile>(path, fd, static_cast<uint64_t>(st.st_size));
  }

  std::unique_ptr<WritableFile> create(const std::string& path) override {
    if (http::is_remote(path))
      throw UsageError(path + ": ckpt reads remote files but does not write them; name a local output");
    int fd;
    do {
      fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666);  // as open() in torch.save, cp, python
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) throw_errno(path, "create", errno);
    return std::make_unique<PosixWritableFile>(path, fd);
  }

  std::unique_ptr<RandomRWFile> open_update(const std::string& path) override {
    int fd;
    do {
      fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) throw_errno(path, "open", errno);
    return std::make_unique<PosixRandomRWFile>(path, fd);
  }

  void rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) throw_errno(to, "rename", errno);
  }

  void remove(const std::string& path) override {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw_errno(path, "remove", errno);
  }

  bool exists(const std::string& path) override {
    if (http::is_remote(path)) return true;  // opening it says what is wrong
    struct stat st;
    return ::lstat(path.c_str(), &st) == 0;
  }

  bool is_directory(const std::string& path) override {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  }

  void create_directory(const std::string& path) override {
    if (::mkdir(path.c_str(), 0755) != 0) throw_errno(path, "mkdir", errno);
  }

  // mkdtemp's loop with mkdir's mode: mkdtemp makes every folder 0700,
  // which an output folder must not keep.
  std::string create_temp_directory(const std::string& parent, const std::string& prefix, unsigned mode) override {
    static constexpr char kLetters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    std::random_device random;
    for (int attempt = 0; attempt < 100; ++attempt) {
      std::string path = parent + "/" + prefix;
      for (int i = 0; i < 6; ++i) path += kLetters[random() % (sizeof kLetters - 1)];
      if (::mkdir(path.c_str(), mode) == 0) return path;
      if (errno != EEXIST) throw_errno(parent, "mkdir", errno);
    }
    throw_errno(parent, "mkdir", EEXIST);
  }

  void remove_directory(const std::string& path) override {
    if (::rmdir(path.c_str()) != 0 && errno != ENOENT) throw_errno(path, "rmdir", errno);
  }

  std::string resolve_links(const std::string& path) override {
    std::string p = path;
    for (int hops = 0; hops < 40; ++hops) {
      struct stat st;
      if (::lstat(p.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return p;
      std::vector<char> buf(static_cast<size_t>(st.st_size > 0 ? st.st_size : PATH_MAX) + 1);
      ssize_t n = ::readlink(p.c_str(), buf.data(), buf.size());
      if (n < 0) throw_errno(p, "readlink", errno);
      if (static_cast<size_t>(n) >= buf.size()) throw_errno(p, "readlink", ENAMETOOLONG);
      std::string target(buf.data(), static_cast<size_t>(n));
      if (target.empty()) throw_errno(p, "readlink", ENOENT);
      p = target[0] == '/' || p.find('/') == std::string::npos ? target : dirname_of(p) + "/" + target;
    }
    throw_errno(path, "follow links", ELOOP);
  }

  void copy_mode(const std::string& from, const std::string& to) override {
    struct stat st;
    if (::stat(from.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return;
    if (::chmod(to.c_str(), st.st_mode & 07777) != 0) throw_errno(to, "chmod", errno);
    // The owner and group where this user may set them (root, or a group it
    // belongs to); otherwise the new file is this user's, as cp makes it.
    if (::chown(to.c_str(), st.st_uid, st.st_gid) != 0) (void)::chown(to.c_str(), static_cast<uid_t>(-1), st.st_gid);
    // chown may clear set-user/group-ID bits: set the bits again.
    (void)::chmod(to.c_str(), st.st_mode & 07777);
  }

  bool read_only(const std::string& path) override {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
    if ((st.st_mode & 0222) == 0) return true;
    return ::faccessat(AT_FDCWD, path.c_str(), W_OK, AT_EACCESS) != 0 && (errno == EACCES || errno == EPERM);
  }

  std::vector<std::string> list_directory(const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (!d) throw_errno(dir, "opendir", errno);
    std::vector<std::string> names;
    errno = 0;
    while (struct dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(std::move(n));
    }
    int err = errno;
    ::closedir(d);
    if (err) throw_errno(dir, "readdir", err);
    std::sort(names.begin(), names.end());
    return names;
  }

  void exchange(const std::string& a, const std::string& b) override {
    if (::syscall(SYS_renameat2, AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE) != 0)
      throw_errno(b, "rename (exchange)", errno);
  }

  void link(const std::string& from, const std::string& to) override {
    if (::linkat(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), 0) != 0) throw_errno(to, "link", errno);
  }

  void sync_dir(const std::string& dir) override {
    int fd;
    do {
      fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) throw_errno(dir, "open", errno);
    int rc;
    do {
      rc = ::fsync(fd);
    } while (rc != 0 && errno == EINTR);
    int err = errno;
    ::close(fd);
    // Some file systems cannot fsync a directory; the rename still happened.
    if (rc != 0 && err != EINVAL && err != ENOTSUP) throw_errno(dir, "fsync", err);
  }
};

std::string temp_path_for(const std::string& final_path, uint64_t counter) {
  size_t slash = final_path.rfind('/');
  std::string prefix = slash == std::string::npos ? "" : final_path.substr(0, slash + 1);
  return prefix + "." + basename_of(final_path) + ".ckpt-tmp-" + std::to_string(::getpid()) +
         "-" + std::to_string(counter);
}

}  // namespace

std::unique_ptr<RandomRWFile> Env::open_update(const std::string& path) {
  throw_errno(path, "open for update", ENOTSUP);
}

bool Env::is_directory(const std::string&) { return false; }

void Env::create_directory(const std::string& path) { throw_errno(path, "mkdir", ENOTSUP); }

std::string Env::create_temp_directory(const std::string& parent, const std::string&, unsigned) {
  throw_errno(parent, "mkdtemp", ENOTSUP);
}

void Env::remove_directory(const std::string& path) { throw_errno(path, "rmdir", ENOTSUP); }

std::string Env::resolve_links(const std::string& path) { return path; }

void Env::copy_mode(const std::string&, const std::string&) {}

bool Env::read_only(const std::string&) { return false; }

std::vector<std::string> Env::list_directory(const std::string& dir) { throw_errno(dir, "opendir", ENOTSUP); }

void Env::exchange(const std::string&, const std::string& b) { throw_errno(b, "rename (exchange)", ENOTSUP); }

void Env::link(const std::string&, const std::string& to) { throw_errno(to, "link", ENOTSUP); }

Env& Env::Default() {
  static PosixEnv env;
  return env;
}

void refuse_read_only(Env& env, const std::string& path) {
  if (!env.read_only(path)) return;
  throw UsageError(path + " is read-only: ckpt does not replace or change a file protected from writing; "
                   "make it writable first (chmod u+w " + path + ") or write the result to another file");
}

AtomicOutput::AtomicOutput(Env& env, std::string final_path, bool force)
    : env_(env), final_path_(std::move(final_path)) {
  if (http::is_remote(final_path_))
    throw UsageError(final_path_ + ": ckpt reads remote files but does not write them; name a local output");
  // Through a symbolic link (Hugging Face's cache is links into blobs/) the
  // output replaces the link's target and the link stays.
  if (force) final_path_ = env_.resolve_links(final_path_);
  struct stat st;
  if (::stat(final_path_.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    throw UsageError(final_path_ + " is a directory: name the output file (e.g. " +
                     (final_path_.back() == '/' ? final_path_ : final_path_ + "/") + "out.th)");
  if (!force && env_.exists(final_path_)) {
    throw UsageError(final_path_ + " exists (use " + option_set("force") + " to overwrite)");
  }
  if (force) refuse_read_only(env_, final_path_);
  static std::atomic<uint64_t> counter{0};
  // A stale temporary from a crashed run may hold our name: take the next one.
  for (int attempt = 0;; ++attempt) {
    temp_path_ = temp_path_for(final_path_, counter.fetch_add(1));
    try {
      // Registered before it exists, so that a signal can never find it
      // created but unregistered.
      signal_slot_ = register_temp(temp_path_);
      file_ = env_.create(temp_path_);
      break;
    } catch (const IoError& e) {
      unregister_temp(signal_slot_);
      signal_slot_ = -1;
      if (e.error_number() == EEXIST && attempt < 100) continue;
      // Name the output and its folder, not the hidden temporary.
      int err = e.error_number();
      if (err != EACCES && err != EROFS && err != ENOENT && err != ENOTDIR && err != EPERM) throw;
      std::string fix = err == ENOENT || err == ENOTDIR ? " (create it first: mkdir -p " + dirname_of(final_path_) + ")"
                                                        : " (write into another folder)";
      throw IoError("cannot write " + final_path_ + ": folder " + dirname_of(final_path_) + ": " +
                        std::strerror(err) + fix,
                    err);
    }
  }
  // A replaced file keeps its permission bits and owner (640 stays 640).
  if (force) {
    try {
      env_.copy_mode(final_path_, temp_path_);
    } catch (...) {
      file_.reset();
      env_.remove(temp_path_);
      unregister_temp(signal_slot_);
      throw;
    }
  }
}

AtomicOutput::~AtomicOutput() {
  if (committed_) return;
  try {
    file_.reset();
    env_.remove(temp_path_);
  } catch (...) {
    // Nothing more can be done from a destructor; the error that got us here
    // is the one the user sees.
  }
  unregister_temp(signal_slot_);
}

void AtomicOutput::commit() {
  file_->sync();
  file_->close();
  env_.rename(temp_path_, final_path_);
  committed_ = true;
  unregister_temp(signal_slot_);
  env_.sync_dir(dirname_of(final_path_));
}

void write_all(int fd, std::string_view data, const std::string& name) {
  size_t done = 0;
  while (done < data.size()) {
    size_t want = std::min(data.size() - done, kMaxIoChunk);
    ssize_t put = ::write(fd, data.data() + done, want);
    if (put < 0) {
      if (errno == EINTR) continue;
      throw_errno(name, "write", errno);
    }
    done += static_cast<size_t>(put);
  }
}

void copy_through_buffer(RandomAccessFile& src, uint64_t offset, uint64_t n, WritableFile& out, uint32_t* crc) {
  std::vector<char> buf(static_cast<size_t>(std::min<uint64_t>(n, kCopyBufferSize)));
  for (uint64_t done = 0; done < n;) {
    size_t chunk = static_cast<size_t>(std::min<uint64_t>(n - done, buf.size()));
    src.read(offset + done, chunk, buf.data());
    if (crc) *crc = crc32_update(*crc, buf.data(), chunk);
    out.append(std::string_view(buf.data(), chunk));
    done += chunk;
  }
}

uint32_t WritableFile::copy_from_with_crc(RandomAccessFile& src, uint64_t offset, uint64_t n) {
  uint32_t crc = 0;
  copy_through_buffer(src, offset, n, *this, &crc);
  return crc;
}

std::string dirname_of(const std::string& path) {
  size_t end = path.size();
  while (end > 1 && path[end - 1] == '/') --end;  // "a/b/" names b
  size_t slash = path.rfind('/', end - (end > 0 ? 1 : 0));
  if (end == 0 || slash == std::string::npos) return ".";
  while (slash > 0 && path[slash - 1] == '/') --slash;
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string basename_of(const std::string& path) {
  size_t end = path.size();
  while (end > 1 && path[end - 1] == '/') --end;
  size_t slash = path.rfind('/', end - (end > 0 ? 1 : 0));
  if (slash == std::string::npos) return path.substr(0, end);
  if (end == 1 && path[0] == '/') return "/";
  return path.substr(slash + 1, end - slash - 1);
}

std::string join_path(const std::string& dir, const std::string& name) {
  if (http::is_remote(dir)) return http::remote_join(dir, name);
  return dir.empty() || dir.back() == '/' ? dir + name : dir + "/" + name;
}

std::string sibling_path(const std::string& file, const std::string& name) {
  if (http::is_remote(file)) return http::remote_sibling(file, name);
  return join_path(dirname_of(file), name);
}

std::string last_name(const std::string& path) {
  return http::is_remote(path) ? http::remote_basename(path) : basename_of(path);
}

}  // namespace ckpt
