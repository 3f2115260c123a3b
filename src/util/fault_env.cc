#include "util/fault_env.h"

#include <cstring>

#include "util/error.h"

namespace ckpt {
namespace {

class FaultWritableFile final : public WritableFile {
 public:
  FaultWritableFile(FaultInjectingEnv& env, std::string path, std::unique_ptr<WritableFile> base)
      : env_(env), path_(std::move(path)), base_(std::move(base)) {}

  void append(std::string_view data) override {
    try {
      env_.step(path_, "write");
    } catch (const IoError&) {
      base_->append(data.substr(0, data.size() / 2));
      throw;
    }
    base_->append(data);
  }
  void copy_from(RandomAccessFile& src, uint64_t offset, uint64_t n) override {
    try {
      env_.step(path_, "copy_file_range");
    } catch (const IoError&) {
      base_->copy_from(src, offset, n / 2);
      throw;
    }
    base_->copy_from(src, offset, n);
  }
  uint32_t copy_from_with_crc(RandomAccessFile& src, uint64_t offset, uint64_t n) override {
    try {
      env_.step(path_, "copy_file_range");
    } catch (const IoError&) {
      base_->copy_from(src, offset, n / 2);
      throw;
    }
    return base_->copy_from_with_crc(src, offset, n);
  }
  void reserve(uint64_t n) override { base_->reserve(n); }
  uint64_t offset() const override { return base_->offset(); }
  void sync() override {
    env_.step(path_, "fsync");
    base_->sync();
  }
  void close() override {
    env_.step(path_, "close");
    base_->close();
  }

 private:
  FaultInjectingEnv& env_;
  std::string path_;
  std::unique_ptr<WritableFile> base_;
};

constexpr uint64_t kSector = 512;

class FaultRandomRWFile final : public RandomRWFile {
 public:
  FaultRandomRWFile(FaultInjectingEnv& env, std::unique_ptr<RandomRWFile> base)
      : env_(env), base_(std::move(base)) {}

  void write_at(uint64_t offset, std::string_view data) override {
    try {
      env_.step(base_->path(), "write");
    } catch (const IoError&) {
      if (!data.empty()) {
        uint64_t first = offset / kSector, last = (offset + data.size() - 1) / kSector;
        uint64_t kept_end = (first + (last - first + 1) / 2) * kSector;
        if (kept_end > offset) base_->write_at(offset, data.substr(0, kept_end - offset));
      }
      throw;
    }
    base_->write_at(offset, data);
  }
  void sync() override {
    env_.step(base_->path(), "fsync");
    base_->sync();
  }
  void close() override {
    env_.step(base_->path(), "close");
    base_->close();
  }
  const std::string& path() const override { return base_->path(); }

 private:
  FaultInjectingEnv& env_;
  std::unique_ptr<RandomRWFile> base_;
};

}  // namespace

void FaultInjectingEnv::step(const std::string& what, const char* op) {
  ++steps_;
  if (steps_ == fail_at_) {
    fired_ = true;
    throw IoError(what + ": " + op + ": " + std::strerror(fail_errno_) + " (injected)",
                  fail_errno_);
  }
}

std::unique_ptr<RandomAccessFile> FaultInjectingEnv::open_read(const std::string& path) {
  return base_.open_read(path);
}

std::unique_ptr<WritableFile> FaultInjectingEnv::create(const std::string& path) {
  step(path, "create");
  return std::make_unique<FaultWritableFile>(*this, path, base_.create(path));
}

void FaultInjectingEnv::rename(const std::string& from, const std::string& to) {
  step(to, "rename");
  base_.rename(from, to);
}

std::unique_ptr<RandomRWFile> FaultInjectingEnv::open_update(const std::string& path) {
  step(path, "open");
  return std::make_unique<FaultRandomRWFile>(*this, base_.open_update(path));
}

void FaultInjectingEnv::remove(const std::string& path) { base_.remove(path); }

bool FaultInjectingEnv::exists(const std::string& path) { return base_.exists(path); }

bool FaultInjectingEnv::is_directory(const std::string& path) { return base_.is_directory(path); }

void FaultInjectingEnv::create_directory(const std::string& path) {
  step(path, "mkdir");
  base_.create_directory(path);
}

std::string FaultInjectingEnv::create_temp_directory(const std::string& parent, const std::string& prefix, unsigned mode) {
  step(parent, "mkdtemp");
  return base_.create_temp_directory(parent, prefix, mode);
}

void FaultInjectingEnv::remove_directory(const std::string& path) { base_.remove_directory(path); }

void FaultInjectingEnv::sync_dir(const std::string& dir) {
  step(dir, "fsync");
  base_.sync_dir(dir);
}

void FaultInjectingEnv::copy_mode(const std::string& from, const std::string& to) {
  step(to, "chmod");
  base_.copy_mode(from, to);
}

void FaultInjectingEnv::exchange(const std::string& a, const std::string& b) {
  step(b, "rename (exchange)");
  base_.exchange(a, b);
}

void FaultInjectingEnv::link(const std::string& from, const std::string& to) {
  step(to, "link");
  base_.link(from, to);
}

}  // namespace ckpt
