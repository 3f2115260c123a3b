// Errors. ckpt reports every failure as one line; the CLI prints it as
// "ckpt: error: <what>" and exits 2. Exceptions rather than a Status return
// keep the deep, iterative pickle and YAML code readable; every layer throws
// ckpt::Error (or a subclass) with a message that says what and where.
#pragma once
#include <stdexcept>
#include <string>

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

}  // namespace ckpt
