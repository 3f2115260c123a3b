// Reads the legacy (torch < 1.6, _use_new_zipfile_serialization=False)
// format: pickles back to back, then raw storage bytes per key. Read only.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "util/env.h"

namespace ckpt::torch {

struct LegacyStorage {
  uint64_t numel = 0;       // as written in the file's int64 header
  uint64_t data_offset = 0; // raw bytes start here
};

class LegacyReader {
 public:
  // Throws FormatError if the file is not the legacy format.
  explicit LegacyReader(std::unique_ptr<RandomAccessFile> file);
  static bool looks_like_legacy(RandomAccessFile& file);

  // The pickle holding the object (third pickle in the file), as bytes.
  const std::string& object_pickle() const { return object_pickle_; }
  // Storage keys in file order with where their bytes are. The element size
  // of each storage comes from the object pickle (its persistent ids), so the
  // caller passes it to locate(): numel * element_size bytes follow the key's
  // 8-byte numel header.
  void locate(const std::map<std::string, uint64_t>& element_size_by_key);
  const std::map<std::string, LegacyStorage>& storages() const { return storages_; }
  RandomAccessFile& file() const { return *file_; }

 private:
  std::unique_ptr<RandomAccessFile> file_;
  std::string object_pickle_;
  std::vector<std::string> keys_;  // the sorted key list pickle
  uint64_t storages_offset_ = 0;   // where the first storage's header is
  std::map<std::string, LegacyStorage> storages_;
};

}  // namespace ckpt::torch
