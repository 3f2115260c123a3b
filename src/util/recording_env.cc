#include "util/recording_env.h"

#include <sys/stat.h>

#include <vector>

namespace ckpt {
namespace {

using Kind = RecordedOp::Kind;

class RecordingWritableFile final : public WritableFile {
 public:
  RecordingWritableFile(RecordingEnv& env, std::string path, std::unique_ptr<WritableFile> base)
      : env_(env), path_(std::move(path)), base_(std::move(base)) {}
  void append(std::string_view data) override {
    uint64_t at = base_->offset();
    base_->append(data);
    env_.record({Kind::Write, path_, "", at, std::string(data)});
  }
  void copy_from(RandomAccessFile& src, uint64_t offset, uint64_t n) override {
    // Through append, so that the log holds the bytes.
    copy_through_buffer(src, offset, n, *this);
  }
  void reserve(uint64_t n) override { base_->reserve(n); }
  uint64_t offset() const override { return base_->offset(); }
  void sync() override {
    base_->sync();
    env_.record({Kind::Sync, path_, "", 0, ""});
  }
  void close() override { base_->close(); }

 private:
  RecordingEnv& env_;
  std::string path_;
  std::unique_ptr<WritableFile> base_;
};

class RecordingRWFile final : public RandomRWFile {
 public:
  RecordingRWFile(RecordingEnv& env, std::unique_ptr<RandomRWFile> base) : env_(env), base_(std::move(base)) {}
  void write_at(uint64_t offset, std::string_view data) override {
    base_->write_at(offset, data);
    env_.record({Kind::Write, base_->path(), "", offset, std::string(data)});
  }
  void sync() override {
    base_->sync();
    env_.record({Kind::Sync, base_->path(), "", 0, ""});
  }
  void close() override { base_->close(); }
  const std::string& path() const override { return base_->path(); }

 private:
  RecordingEnv& env_;
  std::unique_ptr<RandomRWFile> base_;
};

}  // namespace

const char* op_name(Kind kind) {
  switch (kind) {
    case Kind::Create: return "create";
    case Kind::Write: return "write";
    case Kind::Sync: return "fsync";
    case Kind::Rename: return "rename";
    case Kind::Exchange: return "exchange";
    case Kind::Link: return "link";
    case Kind::Unlink: return "unlink";
    case Kind::Mkdir: return "mkdir";
    case Kind::Rmdir: return "rmdir";
    case Kind::SyncDir: return "fsync-dir";
  }
  return "?";
}

std::unique_ptr<WritableFile> RecordingEnv::create(const std::string& path) {
  auto f = base_.create(path);
  record({Kind::Create, path, "", 0, ""});
  return std::make_unique<RecordingWritableFile>(*this, path, std::move(f));
}

void RecordingEnv::rename(const std::string& from, const std::string& to) {
  base_.rename(from, to);
  record({Kind::Rename, from, to, 0, ""});
}

void RecordingEnv::remove(const std::string& path) {
  bool was = base_.exists(path);
  base_.remove(path);
  if (was) record({Kind::Unlink, path, "", 0, ""});
}

void RecordingEnv::sync_dir(const std::string& dir) {
  base_.sync_dir(dir);
  record({Kind::SyncDir, dir, "", 0, ""});
}

std::unique_ptr<RandomRWFile> RecordingEnv::open_update(const std::string& path) {
  return std::make_unique<RecordingRWFile>(*this, base_.open_update(path));
}

void RecordingEnv::create_directory(const std::string& path) {
  base_.create_directory(path);
  record({Kind::Mkdir, path, "", 0, ""});
}

std::string RecordingEnv::create_temp_directory(const std::string& parent, const std::string& prefix, unsigned mode) {
  std::string dir = base_.create_temp_directory(parent, prefix, mode);
  record({Kind::Mkdir, dir, "", 0, ""});
  return dir;
}

void RecordingEnv::remove_directory(const std::string& path) {
  bool was = base_.exists(path);
  base_.remove_directory(path);
  if (was) record({Kind::Rmdir, path, "", 0, ""});
}

void RecordingEnv::exchange(const std::string& a, const std::string& b) {
  base_.exchange(a, b);
  record({Kind::Exchange, a, b, 0, ""});
}

void RecordingEnv::link(const std::string& from, const std::string& to) {
  base_.link(from, to);
  record({Kind::Link, from, to, 0, ""});
}

}  // namespace ckpt
