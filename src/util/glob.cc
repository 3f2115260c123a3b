#include "util/glob.h"

#include <fnmatch.h>

namespace ckpt {

bool glob_match(const std::string& pattern, const std::string& text) {
  // No FNM_PATHNAME / FNM_PERIOD: Python's "*" matches "/" and leading dots.
  return fnmatch(pattern.c_str(), text.c_str(), FNM_NOESCAPE) == 0;
}

}  // namespace ckpt
