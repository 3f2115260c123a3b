// Shell-style name patterns as Python's fnmatch.fnmatchcase reads them:
// "*" and "?" cross "/" and leading dots, "[...]" / "[!...]" classes, no
// backslash escapes, case-sensitive.
#pragma once
#include <string>

namespace ckpt {

bool glob_match(const std::string& pattern, const std::string& text);

}  // namespace ckpt
