#include "util/spool.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "util/error.h"

namespace ckpt {
namespace {

[[noreturn]] void fail(const std::string& what, int err) { throw IoError(what + ": " + std::strerror(err), err); }

// An unnamed file: O_TMPFILE where the file system has it, else a named
// temporary unlinked at once.
int unnamed_temp_file() {
  const char* env = std::getenv("TMPDIR");
  std::string dir = env && *env ? env : "/tmp";
  int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return fd;
  std::string name = dir + "/.ckpt-stdin-XXXXXX";
  std::vector<char> buf(name.begin(), name.end());
  buf.push_back('\0');
  fd = ::mkstemp(buf.data());
  if (fd < 0) fail("cannot spool the input stream to " + dir, errno);
  ::unlink(buf.data());
  return fd;
}

}  // namespace

std::string spool_if_stream(const std::string& path) {
  int in = -1;
  bool own = false;
  if (path == "-") {
    if (::isatty(0)) throw UsageError("'-' reads a checkpoint from standard input, which is a terminal: pipe one in");
    in = 0;
  } else {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0 || S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) || S_ISBLK(st.st_mode))
      return path;
    in = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (in < 0) fail(path + ": open", errno);
    own = true;
  }
  int out = unnamed_temp_file();  // stays open until exit: it is the input
  std::vector<char> buf(size_t{1} << 20);
  const std::string label = path == "-" ? std::string("standard input") : path;
  for (;;) {
    ssize_t got = ::read(in, buf.data(), buf.size());
    if (got < 0) {
      if (errno == EINTR) continue;
      fail(label + ": read", errno);
    }
    if (got == 0) break;
    for (ssize_t done = 0; done < got;) {
      ssize_t put = ::write(out, buf.data() + done, static_cast<size_t>(got - done));
      if (put < 0) {
        if (errno == EINTR) continue;
        fail(label + ": spooling to a temporary file", errno);
      }
      done += put;
    }
  }
  if (own) ::close(in);
  return "/proc/self/fd/" + std::to_string(out);
}

}  // namespace ckpt
