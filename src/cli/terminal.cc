#include "cli/terminal.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

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

bool use_color(int fd) {
  if (std::getenv("NO_COLOR")) return false;  // no-color.org: set to anything
  const char* term = std::getenv("TERM");
  if (term && std::string(term) == "dumb") return false;
  return ::isatty(fd) == 1;
}

std::string colored(int fd, const char* sgr, const std::string& text) {
  if (!use_color(fd)) return text;
  return std::string("\033[") + sgr + "m" + text + "\033[0m";
}

}  // namespace ckpt::cli
