// An Env for tests that fails a chosen I/O step, to check that every error
// path leaves the inputs intact and no partial output behind.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "util/env.h"

namespace ckpt {

// Wraps another Env. Every fallible step (create, create_directory,
// create_temp_directory, rename, sync_dir, and on the
// files it creates: append, copy_from, sync, close) is counted; fail_at(n, err)
// makes the n-th step (1-based, counted from construction or the last reset())
// throw IoError with that errno instead of running. A failing append or
// copy_from first writes half its bytes, as a full disk would. Files opened
// with open_update count write_at and sync; a failing write_at is torn at
// sector (512-byte) granularity: it first stores the whole sectors of the
// first half of the request, so a write inside one sector stores nothing,
// as a disk with atomic sector writes behaves.
class FaultInjectingEnv : public Env {
 public:
  explicit FaultInjectingEnv(Env& base) : base_(base) {}

  void fail_at(uint64_t n, int err) {
    fail_at_ = n;
    fail_errno_ = err;
  }
  // Forgets the planned fault and restarts the step count.
  void reset() {
    fail_at_ = 0;
    steps_ = 0;
    fired_ = false;
  }
  // Steps attempted so far, the failed one included.
  uint64_t steps() const { return steps_; }
  // Whether the planned fault has fired.
  bool fired() const { return fired_; }

  std::unique_ptr<RandomAccessFile> open_read(const std::string& path) override;
  std::unique_ptr<WritableFile> create(const std::string& path) override;
  void rename(const std::string& from, const std::string& to) override;
  void remove(const std::string& path) override;
  bool exists(const std::string& path) override;
  void sync_dir(const std::string& dir) override;
  std::unique_ptr<RandomRWFile> open_update(const std::string& path) override;
  bool is_directory(const std::string& path) override;
  void create_directory(const std::string& path) override;  // a step
  std::string create_temp_directory(const std::string& parent, const std::string& prefix, unsigned mode = 0700) override;  // a step
  void remove_directory(const std::string& path) override;
  std::string resolve_links(const std::string& path) override { return base_.resolve_links(path); }
  void copy_mode(const std::string& from, const std::string& to) override;  // a step
  bool read_only(const std::string& path) override { return base_.read_only(path); }
  std::vector<std::string> list_directory(const std::string& dir) override { return base_.list_directory(dir); }
  void exchange(const std::string& a, const std::string& b) override;  // a step
  void link(const std::string& from, const std::string& to) override;  // a step

  // Counts one step; throws IoError("<what>: <op>: <strerror> (injected)")
  // when it is the planned one. Used by the wrapped files too.
  void step(const std::string& what, const char* op);

 private:
  Env& base_;
  uint64_t steps_ = 0, fail_at_ = 0;
  int fail_errno_ = 0;
  bool fired_ = false;
};

}  // namespace ckpt
