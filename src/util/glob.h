// Shell-style name patterns as Python's fnmatch.fnmatchcase reads them, on
// code points (UTF-8 decoded): "*" and "?" cross "/" and leading dots,
// "[...]" / "[!...]" classes with ranges ("[z-a]" is empty, "^" and
// "[:alpha:]" are plain characters), an unclosed "[" is a literal "[", no
// backslash escapes, case-sensitive. Not libc's fnmatch, which differs on
// "[^...]", "[[:class:]]" and multibyte names.
#pragma once
#include <string>

namespace ckpt {

bool glob_match(const std::string& pattern, const std::string& text);

}  // namespace ckpt
