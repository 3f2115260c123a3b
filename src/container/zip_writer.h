// Writes ZIP archives byte for byte as PyTorch's writer (miniz via
// caffe2/serialize/inline_container.cc) does: STORED records, flags 0x0808,
// zero DOS time, 'FB' extra padding data to 64-byte (or the configured)
// alignment, data descriptors, ZIP64 extras when needed, ZIP64 end records
// always. It also computes torch 2.1+'s .data/serialization_id.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/env.h"

namespace ckpt::container {

class ZipWriter {
 public:
  // alignment: where record data starts (torch 2.7+'s .storage_alignment;
  // 64 before). 1 to kMaxAlignment.
  ZipWriter(WritableFile& out, std::string archive_name, uint64_t alignment = 64);
  static constexpr uint64_t kMaxAlignment = 32768;

  // Adds archive_name/name holding data.
  void add(std::string_view name, std::string_view data);
  // Adds archive_name/name holding n bytes of src at offset, copied without
  // entering user space where possible. crc is the CRC-32 of those bytes when
  // known and trusted (taken from the source's central directory); otherwise
  // it is computed as the bytes are copied (WritableFile::copy_from_with_crc:
  // read once). Returns the CRC-32 written, which a caller checking the
  // source compares with the one it expected.
  uint32_t add_copy(std::string_view name, RandomAccessFile& src, uint64_t offset, uint64_t n,
                    std::optional<uint32_t> crc);
  // Adds a record whose bytes are produced by a generator writing exactly n
  // bytes through the sink in chunks (used by dtype conversion, inflation).
  void add_stream(std::string_view name, uint64_t n,
                  const std::function<void(const std::function<void(std::string_view)>&)>& produce);

  // Lists in the central directory a record that is already in the output
  // at header_offset (written earlier by a torch-like writer: STORED, flags
  // as this writer sets them), without writing anything now. In-place
  // updates use it to keep existing records where they are.
  void list_existing(std::string_view name, uint64_t header_offset, uint64_t size, uint32_t crc);

  // torch's .data/serialization_id for the records written so far: 20
  // digits of a hash over the record names (c10::hash_combine of
  // std::hash<std::string>, in the iteration order of the
  // std::unordered_set torch keeps them in), then 20 digits of the
  // hash_combine of every data descriptor's CRC-32 in write order.
  std::string serialization_id() const;
  // Adds .data/serialization_id holding serialization_id(), as torch 2.1+
  // does last.
  void add_serialization_id();

  // Writes the central directory and end records. No record may follow.
  void finish();

  struct Entry {
    std::string name;
    uint64_t header_offset, size;
    uint32_t crc32;
  };
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  void write_local_header(const std::string& full_name, uint64_t size);
  void write_descriptor(const Entry& e);
  void note_data_head(std::string_view head);
  WritableFile& out_;
  std::string archive_name_;
  uint64_t alignment_;
  std::vector<std::string> names_written_;  // relative names, in write order
  uint64_t combined_crc_ = 0;
  std::vector<Entry> entries_;
  bool finished_ = false;
};

}  // namespace ckpt::container
