// Errors. ckpt reports every failure as one line; the CLI prints it as
// "ckpt: error: <what>" and exits 2. Exceptions rather than a Status return
// keep the deep, iterative pickle and YAML code readable; every layer throws
// ckpt::Error (or a subclass) with a message that says what and where.
#pragma once
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace ckpt {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// The input is not what it claims to be (damaged zip, hostile pickle, ...).
class FormatError : public Error {
 public:
  using Error::Error;
};

// An operating-system call failed (open, read, write, fsync, rename).
class IoError : public Error {
 public:
  IoError(const std::string& what, int err) : Error(what), errno_(err) {}
  int error_number() const { return errno_; }

 private:
  int errno_;
};

// The user asked for something that cannot be done (bad override, missing key).
class UsageError : public Error {
 public:
  using Error::Error;
};

// Options named in messages. The core names an option by its field, between
// backquotes, and each front end spells it its own way when it shows the
// message (spell_options): `allow_no_match` is the CLI's --allow-no-match and
// Python's allow_no_match; `force=true` (set it) is --force / force=True;
// `state=PATH` is --state PATH / state=PATH.
inline std::string option_name(std::string_view field) { return "`" + std::string(field) + "`"; }
inline std::string option_set(std::string_view field, std::string_view value = "true") {
  return "`" + std::string(field) + "=" + std::string(value) + "`";
}
// The message with each `field` or `field=value` replaced by
// spell(field, value, set); anything else between backquotes is left alone.
using OptionSpeller = std::function<std::string(const std::string& field, const std::string& value, bool set)>;
std::string spell_options(std::string_view message, const OptionSpeller& spell);

}  // namespace ckpt
