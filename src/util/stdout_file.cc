#include "util/stdout_file.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "util/error.h"

namespace ckpt {
namespace {

class StdoutFile final : public WritableFile {
 public:
  void append(std::string_view data) override {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t put = ::write(1, data.data() + done, data.size() - done);
      if (put < 0) {
        if (errno == EINTR) continue;
        throw IoError(std::string("standard output: write: ") + std::strerror(errno), errno);
      }
      done += static_cast<size_t>(put);
    }
    offset_ += data.size();
  }
  void copy_from(RandomAccessFile& src, uint64_t offset, uint64_t n) override {
    std::vector<char> buf(static_cast<size_t>(std::min<uint64_t>(n, uint64_t{1} << 20)));
    for (uint64_t done = 0; done < n;) {
      size_t chunk = static_cast<size_t>(std::min<uint64_t>(n - done, buf.size()));
      src.read(offset + done, chunk, buf.data());
      append(std::string_view(buf.data(), chunk));
      done += chunk;
    }
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
