// Reads ZIP archives as torch.save writes them (and as other zip tools do):
// ZIP64, data descriptors, local-header padding, STORED and DEFLATE records.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "util/env.h"

namespace ckpt::container {

struct ZipRecord {
  std::string name;           // full name in the archive, e.g. "model/data.pkl"
  uint64_t header_offset = 0; // local header
  uint64_t data_offset = 0;   // first byte of (possibly compressed) data
  uint64_t compressed_size = 0;
  uint64_t size = 0;          // uncompressed
  uint32_t crc32 = 0;         // from the central directory
  uint16_t method = 0;        // 0 stored, 8 deflate
  uint16_t flags = 0;
};

struct ZipReadLimits {
  uint64_t max_inflated = uint64_t{1} << 32;  // cap on one DEFLATE record's output
};

class ZipReader {
 public:
  // Parses the end records and central directory and checks each local header
  // (name equal to the central one, data inside the file). Throws FormatError
  // naming the file and record on damage.
  explicit ZipReader(std::unique_ptr<RandomAccessFile> file, ZipReadLimits limits = {});

  // True when the file starts like a zip (local header or empty-archive EOCD).
  static bool looks_like_zip(RandomAccessFile& file);

  const std::vector<ZipRecord>& records() const { return records_; }
  // The folder every record sits under ("model" for model/data.pkl); taken
  // from the first central-directory entry, as torch does.
  const std::string& archive_name() const { return archive_name_; }
  // Finds a record by its name under the archive folder ("data.pkl",
  // "data/0") as torch's getRecord does (miniz's mz_zip_reader_locate_file
  // without flags): ASCII case ignored, and among records whose names are
  // equal but for case (or equal), the one miniz's binary search over its
  // heap-sorted directory lands on. nullptr if absent.
  const ZipRecord* find(std::string_view relative_name) const;
  // Finds a record by its full name, as find() does.
  const ZipRecord* find_full(std::string_view full_name) const;
  // True when two records' names are equal but for ASCII case (or equal):
  // which of them torch reads is decided by miniz's sort, as find() models.
  bool has_case_duplicates() const { return !case_duplicate_.empty(); }
  // The names of the first such pair found ("a/DATA/0' and 'a/data/0"), or empty.
  const std::string& case_duplicate() const { return case_duplicate_; }
  // True when torch.load hands the archive to torch.jit.load: some record,
  // named as torch's getAllRecords copies names (at most 511 bytes, up to
  // a NUL), is exactly "<archive>/constants.pkl" (serialization.py's
  // _is_torchscript_zip).
  bool torch_routes_to_jit() const;
  // Name relative to the archive folder.
  std::string relative_name(const ZipRecord& r) const;

  // The record's first data byte. For files that prefer few reads (remote
  // ones, RandomAccessFile::prefers_few_reads) the local headers are checked
  // when a record is first read rather than all on opening, so that reading
  // data.pkl does not fetch every tensor's header; the same checks apply.
  uint64_t data_offset(const ZipRecord& r) const { return resolve(r).data_offset; }
  const ZipRecord& resolve(const ZipRecord& r) const;
  bool is_resolved(const ZipRecord& r) const;

  // Whole record, inflated if needed; throws if larger than max_size.
  std::string read(const ZipRecord& r, uint64_t max_size) const;
  // Streams the record's uncompressed bytes in chunks.
  void stream(const ZipRecord& r, const std::function<void(std::string_view)>& sink) const;
  // Computes the CRC-32 of the record's uncompressed bytes.
  uint32_t compute_crc(const ZipRecord& r) const;

  RandomAccessFile& file() const { return *file_; }
  // Bytes the archive ends at (end of the EOCD).
  uint64_t end_offset() const { return end_offset_; }
  // Offset of the central directory.
  uint64_t central_directory_offset() const { return cd_offset_; }

 private:
  std::unique_ptr<RandomAccessFile> file_;
  ZipReadLimits limits_;
  mutable std::vector<ZipRecord> records_;  // data_offset filled in by resolve()
  mutable std::vector<uint8_t> resolved_;   // per record: local header checked
  std::vector<uint64_t> data_limit_;        // per record: where its data must end
  std::string archive_name_;
  // records_ positions in the order miniz sorts its central directory
  // (mz_zip_reader_sort_central_dir_offsets_by_filename: a heap sort on
  // the ASCII-lowercased names).
  std::vector<uint32_t> sorted_;
  std::string case_duplicate_;
  uint64_t end_offset_ = 0, cd_offset_ = 0;
};

}  // namespace ckpt::container
