#include "util/stdout_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/error.h"

namespace ckpt {
namespace {

class StdoutFile final : public WritableFile {
 public:
  void append(std::string_view data) override {
    write_all(1, data, "standard output");
    offset_ += data.size();
  }
  void copy_from(RandomAccessFile& src, uint64_t offset, uint64_t n) override {
    copy_through_buffer(src, offset, n, *this);
  }
  uint64_t offset() const override { return offset_; }
  // A pipe cannot be fsync'd; a regular file behind the redirection can.
  void sync() override {
    if (::fsync(1) != 0 && errno != EINVAL && errno != EROFS && errno != ENOTSUP)
      throw IoError(std::string("standard output: fsync: ") + std::strerror(errno), errno);
  }
  void close() override {}

 private:
  uint64_t offset_ = 0;
};

}  // namespace

std::unique_ptr<WritableFile> open_stdout_output() {
  if (::isatty(1))
    throw UsageError("-o -: standard output is a terminal; redirect it to a file or a pipe");
  return std::make_unique<StdoutFile>();
}

}  // namespace ckpt
