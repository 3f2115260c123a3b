// An Env that reads through to the real file system but writes nowhere: a
// file it creates only counts the bytes appended to it. `ckpt edit --dry-run`
// saves through it to report the size the output would have.
#pragma once
#include <cstdint>

#include "util/env.h"

namespace ckpt {

class DiscardEnv final : public Env {
 public:
  explicit DiscardEnv(Env& base) : base_(base) {}
  std::unique_ptr<RandomAccessFile> open_read(const std::string& path) override { return base_.open_read(path); }
  std::unique_ptr<WritableFile> create(const std::string& path) override;
  void rename(const std::string&, const std::string&) override {}
  void remove(const std::string&) override {}
  bool exists(const std::string& path) override { return base_.exists(path); }
  // Nothing is replaced: a dry run's caller checks what the real run would
  // refuse (api/edit.cc).
  bool read_only(const std::string&) override { return false; }
  void sync_dir(const std::string&) override {}
  bool is_directory(const std::string& path) override { return base_.is_directory(path); }
  void create_directory(const std::string&) override {}
  std::string create_temp_directory(const std::string& parent, const std::string& prefix, unsigned = 0700) override {
    return parent + "/" + prefix + "discarded";
  }
  void remove_directory(const std::string&) override {}
  // Bytes appended to the files created so far.
  uint64_t bytes_written() const { return bytes_; }

 private:
  Env& base_;
  uint64_t bytes_ = 0;
};

}  // namespace ckpt
