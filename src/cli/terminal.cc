#include "cli/terminal.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdlib>

namespace ckpt::cli {

size_t output_columns() {
  if (const char* env = std::getenv("COLUMNS")) {
    char* stop = nullptr;
    long v = std::strtol(env, &stop, 10);
    if (stop != env && *stop == '\0' && v > 0) return static_cast<size_t>(v);
  }
  struct winsize ws;
  if (::isatty(1) && ::ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 0;
}

}  // namespace ckpt::cli
