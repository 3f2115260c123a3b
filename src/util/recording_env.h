// An Env that records, in order, every step of a write that changes what a
// crash can leave on the disk (file creation, writes with their bytes,
// fsyncs, renames, exchanges, links, unlinks, mkdir/rmdir, directory
// fsyncs), while passing every call through to another Env. Tests replay a
// prefix, subset or torn version of the log onto a copy of the folder as it
// was before, to materialise the states a power loss can leave
// (tests/unit/crash_states.h), as CrashMonkey and ALICE do.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "util/env.h"

namespace ckpt {

struct RecordedOp {
  enum class Kind { Create, Write, Sync, Rename, Exchange, Link, Unlink, Mkdir, Rmdir, SyncDir };
  Kind kind;
  std::string path;   // the file, directory, or the source of a rename/link
  std::string path2;  // the destination of a rename, exchange or link
  uint64_t offset = 0;
  std::string data;  // a write's bytes
};

const char* op_name(RecordedOp::Kind kind);

class RecordingEnv final : public Env {
 public:
  explicit RecordingEnv(Env& base) : base_(base) {}
  const std::vector<RecordedOp>& ops() const { return ops_; }
  void clear() { ops_.clear(); }
  void record(RecordedOp op) { ops_.push_back(std::move(op)); }

  std::unique_ptr<RandomAccessFile> open_read(const std::string& path) override { return base_.open_read(path); }
  std::unique_ptr<WritableFile> create(const std::string& path) override;
  void rename(const std::string& from, const std::string& to) override;
  void remove(const std::string& path) override;
  bool exists(const std::string& path) override { return base_.exists(path); }
  void sync_dir(const std::string& dir) override;
  std::unique_ptr<RandomRWFile> open_update(const std::string& path) override;
  bool is_directory(const std::string& path) override { return base_.is_directory(path); }
  void create_directory(const std::string& path) override;
  std::string create_temp_directory(const std::string& parent, const std::string& prefix, unsigned mode = 0700) override;
  void remove_directory(const std::string& path) override;
  std::string resolve_links(const std::string& path) override { return base_.resolve_links(path); }
  void copy_mode(const std::string& from, const std::string& to) override { base_.copy_mode(from, to); }
  bool read_only(const std::string& path) override { return base_.read_only(path); }
  std::vector<std::string> list_directory(const std::string& dir) override { return base_.list_directory(dir); }
  void exchange(const std::string& a, const std::string& b) override;
  void link(const std::string& from, const std::string& to) override;

 private:
  Env& base_;
  std::vector<RecordedOp> ops_;
};

}  // namespace ckpt
