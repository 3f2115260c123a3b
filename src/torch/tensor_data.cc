#include "torch/tensor_data.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "util/crc32.h"
#include "util/error.h"

namespace ckpt::torch {

namespace {

constexpr uint64_t kReadChunk = uint64_t{1} << 20;
// A strided view whose storage span is at most this is read in one piece;
// a larger one is gathered through a window of kWindowBytes.
constexpr uint64_t kWholeSpanBytes = uint64_t{64} << 20;
constexpr uint64_t kWindowBytes = uint64_t{4} << 20;

}  // namespace

StorageReader::StorageReader(const Checkpoint& ck, const Storage& s)
    : ck_(ck), s_(s), where_(locate_storage(ck, s)) {
  if (where_.file) where_.file->will_read(where_.offset, where_.size);  // remote read-ahead stops at its end
  ReadCrcCheck* check = ck.read_crc_check();
  if (check && where_.record && !check->checked.count(where_.record)) check_ = check;
}

void StorageReader::crc_over(uint64_t offset, const char* data, size_t n) {
  if (!check_ || offset > crc_pos_ || offset + n <= crc_pos_) return;
  const uint64_t skip = crc_pos_ - offset;
  crc_ = crc32_update(crc_, data + skip, static_cast<size_t>(n - skip));
  crc_pos_ = offset + n;
  if (crc_pos_ == size()) crc_done();
}

void StorageReader::crc_done() {
  ReadCrcCheck* check = check_;
  check_ = nullptr;
  check->checked.insert(where_.record);
  if (crc_ != where_.record->crc32 && check->on_mismatch) check->on_mismatch(*where_.record, crc_);
}

void StorageReader::finish_crc() {
  if (!check_) return;
  if (crc_pos_ == size()) {  // an empty record
    crc_done();
    return;
  }
  if (where_.compressed()) {  // inflated whole on first read
    if (!inflated_loaded_) {
      inflated_ = ck_.zip()->read(*where_.record, where_.size);
      inflated_loaded_ = true;
    }
    crc_over(crc_pos_, inflated_.data() + crc_pos_, static_cast<size_t>(size() - crc_pos_));
    return;
  }
  std::string buf(static_cast<size_t>(std::min(size() - crc_pos_, kReadChunk)), '\0');
  while (check_) {
    const uint64_t at = crc_pos_;
    const size_t n = static_cast<size_t>(std::min<uint64_t>(size() - at, buf.size()));
    where_.file->read(where_.offset + at, n, buf.data());
    crc_over(at, buf.data(), n);
  }
}

void StorageReader::read(uint64_t offset, size_t n, char* out) {
  if (offset > size() || n > size() - offset)
    throw FormatError(ck_.path() + ": storage '" + s_.key + "': read of " + std::to_string(n) + " bytes at " +
                      std::to_string(offset) + " is past its end (" + std::to_string(size()) + " bytes)");
  if (n == 0) return;
  if (!where_.compressed()) {
    where_.file->read(where_.offset + offset, n, out);
    crc_over(offset, out, n);
    return;
  }
  if (!inflated_loaded_) {
    inflated_ = ck_.zip()->read(*where_.record, where_.size);
    inflated_loaded_ = true;
  }
  std::memcpy(out, inflated_.data() + offset, n);
  crc_over(offset, out, n);
}

void stream_storage(const Checkpoint& ck, const Storage& s, const std::function<void(std::string_view)>& sink) {
  StorageReader reader(ck, s);  // checks presence and size
  if (reader.location().record) {
    ck.zip()->stream(*reader.location().record, sink);
    return;
  }
  std::string buf(static_cast<size_t>(std::min(reader.size(), kReadChunk)), '\0');
  for (uint64_t done = 0; done < reader.size();) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(reader.size() - done, buf.size()));
    reader.read(done, n, buf.data());
    sink(std::string_view(buf.data(), n));
    done += n;
  }
}

ElementReader::ElementReader(const Checkpoint& ck, const TensorInfo& t, const std::string& name)
    : t_(t), storage_((t.storage && t.dtype) ? StorageReader(ck, *t.storage)
                                             : throw FormatError(ck.path() + ": tensor '" + name + "' has no storage")) {
  const std::string where = ck.path() + ": tensor '" + name + "'";
  std::string problem = t.view_problem();
  if (!problem.empty()) throw FormatError(where + ": " + problem);
  numel_ = t.numel();
  es_ = t.dtype->element_size;
  if (numel_ == 0) return;
  // Last element's index; view_problem() checked it cannot overflow.
  uint64_t last = static_cast<uint64_t>(t.storage_offset);
  for (size_t d = 0; d < t.shape.size(); ++d)
    last += static_cast<uint64_t>(t.shape[d] - 1) * static_cast<uint64_t>(t.stride[d]);
  if (last + 1 > storage_.size() / es_)
    throw FormatError(where + " reaches byte " + std::to_string((last + 1) * es_) + " of a storage of " +
                      std::to_string(storage_.size()));
  contiguous_ = t.is_contiguous();
  span_begin_ = static_cast<uint64_t>(t.storage_offset) * es_;
  span_end_ = (last + 1) * es_;
  if (!contiguous_) {
    idx_.assign(t.shape.size(), 0);
    window_ = span_end_ - span_begin_ <= kWholeSpanBytes ? span_end_ - span_begin_ : kWindowBytes;
  }
}

size_t ElementReader::read(char* out, size_t max) {
  const uint64_t k = std::min<uint64_t>(max, remaining());
  if (k == 0) {
    if (max > 0) storage_.finish_crc();  // (a tensor of no elements)
    return 0;
  }
  if (contiguous_) {
    storage_.read(span_begin_ + done_ * es_, static_cast<size_t>(k * es_), out);
    done_ += k;
    if (remaining() == 0) storage_.finish_crc();
    return static_cast<size_t>(k);
  }
  // Strided: walk the index space row-major (idx_ is the next element),
  // copying each element out of the window (all of the span when small).
  const size_t nd = t_.shape.size();
  for (uint64_t i = 0; i < k; ++i) {
    uint64_t pos = static_cast<uint64_t>(t_.storage_offset);
    for (size_t d = 0; d < nd; ++d) pos += static_cast<uint64_t>(idx_[d]) * static_cast<uint64_t>(t_.stride[d]);
    pos *= es_;
    if (pos < wbeg_ || pos + es_ > wend_) {
      wbeg_ = window_ == span_end_ - span_begin_ ? span_begin_ : pos;
      wend_ = std::min(wbeg_ + window_, span_end_);
      win_.resize(static_cast<size_t>(wend_ - wbeg_));
      storage_.read(wbeg_, win_.size(), win_.data());
    }
    std::memcpy(out + i * es_, win_.data() + (pos - wbeg_), static_cast<size_t>(es_));
    for (size_t d = nd; d-- > 0;) {
      if (++idx_[d] < t_.shape[d]) break;
      idx_[d] = 0;
    }
  }
  done_ += k;
  if (remaining() == 0) storage_.finish_crc();
  return static_cast<size_t>(k);
}

void for_each_element_chunk(const Checkpoint& ck, const TensorInfo& t, const std::string& name,
                            const std::function<void(const char*, size_t)>& fn, size_t max_chunk_bytes) {
  ElementReader reader(ck, t, name);
  const size_t chunk = static_cast<size_t>(std::max<uint64_t>(1, max_chunk_bytes / reader.element_size()));
  std::string buf(static_cast<size_t>(std::min<uint64_t>(chunk, reader.remaining()) * reader.element_size()), '\0');
  while (size_t n = reader.read(buf.data(), chunk)) fn(buf.data(), n);
}

}  // namespace ckpt::torch
