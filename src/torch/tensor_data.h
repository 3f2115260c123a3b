// Reading tensor bytes: a storage's bytes wherever they are (stored or
// deflated zip record, legacy file), and a tensor's elements in row-major
// order for any view (offset, strides), in bounded chunks.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "torch/checkpoint.h"

namespace ckpt::torch {

// Random access to one storage's bytes. A deflated record (rare: torch.save
// stores) is inflated once into memory, its size being the storage's.
class StorageReader {
 public:
  // Throws FormatError when the storage has no bytes or its record's size
  // is not numel * element_size.
  StorageReader(const Checkpoint& ck, const Storage& s);
  uint64_t size() const { return where_.size; }
  const StorageLocation& location() const { return where_; }
  // Bytes [offset, offset + n); throws FormatError past the end. Under the
  // checkpoint's ReadCrcCheck, bytes read in order from the record's start
  // go into its CRC-32, checked once the last byte is read.
  void read(uint64_t offset, size_t n, char* out);
  // Under a ReadCrcCheck: reads what the CRC-32 has not covered yet to the
  // record's end and checks it (nothing when done or unchecked).
  void finish_crc();

 private:
  void crc_over(uint64_t offset, const char* data, size_t n);
  void crc_done();
  const Checkpoint& ck_;
  const Storage& s_;
  StorageLocation where_;
  bool inflated_loaded_ = false;
  std::string inflated_;
  ReadCrcCheck* check_ = nullptr;  // while this record's CRC-32 is pending
  uint64_t crc_pos_ = 0;           // bytes [0, crc_pos_) are in crc_
  uint32_t crc_ = 0;
};

// Streams all of a storage's bytes in order, in chunks of any length.
void stream_storage(const Checkpoint& ck, const Storage& s, const std::function<void(std::string_view)>& sink);

// A tensor's elements (raw little-endian bytes of t.dtype) in row-major
// order, pulled in chunks, for any view; reads only the storage bytes the
// view covers. Throws FormatError naming `name` when the view does not fit
// its storage.
class ElementReader {
 public:
  ElementReader(const Checkpoint& ck, const TensorInfo& t, const std::string& name);
  uint64_t remaining() const { return numel_ - done_; }
  size_t element_size() const { return es_; }
  const StorageLocation& location() const { return storage_.location(); }
  // Copies up to max elements into out; returns how many (0 at the end).
  // Under the checkpoint's ReadCrcCheck, the storage record's CRC-32 is
  // checked with the last elements (its unread bytes read then).
  size_t read(char* out, size_t max);

 private:
  const TensorInfo& t_;
  StorageReader storage_;
  uint64_t numel_ = 0, done_ = 0, es_ = 0;
  bool contiguous_ = true;
  // Strided views: position in the index space and a window of the storage.
  std::vector<int64_t> idx_;
  uint64_t span_begin_ = 0, span_end_ = 0, window_ = 0, wbeg_ = 0, wend_ = 0;
  std::string win_;
};

// Calls fn(data, count) with a tensor's elements (raw little-endian bytes of
// t.dtype) in row-major order, at most `max_chunk_bytes` at a time, reading
// only the storage bytes the view covers. Throws FormatError naming `name`
// when the view does not fit its storage.
void for_each_element_chunk(const Checkpoint& ck, const TensorInfo& t, const std::string& name,
                            const std::function<void(const char* data, size_t count)>& fn,
                            size_t max_chunk_bytes = size_t{1} << 20);

}  // namespace ckpt::torch
