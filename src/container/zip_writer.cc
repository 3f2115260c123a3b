// ZIP writing, byte for byte as torch.save does it: PyTorch's
// caffe2/serialize/inline_container.cc drives miniz 2.x
// (mz_zip_writer_add_mem_ex_v2 with the archive opened in ZIP64 mode and an
// 'FB' padding field as local user extra data, then
// mz_zip_writer_finalize_archive). The rules below mirror that code path.
#include "container/zip_writer.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <string>
#include <unordered_set>

#include "container/zip_format.h"
#include "util/coding.h"
#include "util/crc32.h"
#include "util/error.h"

namespace ckpt::container {
namespace {

constexpr uint64_t kMax32 = 0xFFFFFFFF;  // miniz's MZ_UINT32_MAX

// miniz adds a ZIP64 extra field (in both headers) when the size or the
// local header offset reaches 0xFFFFFFFF; note ">=", not ">".
bool needs_zip64_extra(uint64_t size, uint64_t header_offset) {
  return size >= kMax32 || header_offset >= kMax32;
}

// The ZIP64 extended-information field as mz_zip_writer_create_zip64_extra_data
// writes it: sizes only when the size needs them, offset only when it does.
// In the local header miniz passes its compressed size before it is known,
// so that field is 0 there; the central copy has the real one.
void put_zip64_extra(std::string& s, uint64_t size, uint64_t compressed_size,
                     uint64_t header_offset) {
  uint64_t field_size = (size >= kMax32 ? 16 : 0) + (header_offset >= kMax32 ? 8 : 0);
  put_fixed16(s, 0x0001);
  put_fixed16(s, field_size);
  if (size >= kMax32) {
    put_fixed64(s, size);
    put_fixed64(s, compressed_size);
  }
  if (header_offset >= kMax32) put_fixed64(s, header_offset);
}

uint16_t flags_for(uint64_t size) {
  // Bit 11: UTF-8 names. Bit 3 (data descriptor follows) only for records
  // with data: miniz sets it when the buffer is non-empty.
  return size ? 0x0808 : 0x0800;
}

// c10::hash_combine (Boost's), as torch combines name hashes and CRCs.
uint64_t hash_combine(uint64_t seed, uint64_t value) {
  return seed ^ (value + 0x9e3779b9 + (seed << 6) + (seed >> 2));
}

constexpr char kDescriptorSignature[] = {'P', 'K', 0x07, 0x08};

}  // namespace

ZipWriter::ZipWriter(WritableFile& out, std::string archive_name, uint64_t alignment)
    : out_(out), archive_name_(std::move(archive_name)), alignment_(alignment) {
  if (alignment_ < 1 || alignment_ > kMaxAlignment)
    throw UsageError("zip alignment " + std::to_string(alignment_) + " is outside 1.." +
                     std::to_string(kMaxAlignment));
}

// torch folds a CRC into the serialization id whenever miniz hands its
// writer a buffer of 8+ bytes that starts with the descriptor signature.
// miniz writes a STORED record's data in one such call, so data that happens
// to start with "PK\x07\x08" counts too (bytes 4..7 as a CRC).
void ZipWriter::note_data_head(std::string_view head) {
  if (head.size() < 8 || head.compare(0, 4, std::string_view(kDescriptorSignature, 4)) != 0) return;
  auto u = reinterpret_cast<const unsigned char*>(head.data());
  uint32_t v = static_cast<uint32_t>(u[4]) | (static_cast<uint32_t>(u[5]) << 8) |
               (static_cast<uint32_t>(u[6]) << 16) | (static_cast<uint32_t>(u[7]) << 24);
  combined_crc_ = hash_combine(combined_crc_, v);
}

std::string ZipWriter::serialization_id() const {
  // torch iterates a std::unordered_set<std::string> filled in write order;
  // the same container in the same order (libstdc++, as torch's Linux
  // builds) gives the same iteration order.
  std::unordered_set<std::string> names;
  for (const auto& n : names_written_) names.insert(n);
  uint64_t combined_names = 0;
  for (const auto& n : names) combined_names = hash_combine(combined_names, std::hash<std::string>{}(n));
  char buf[48];
  std::snprintf(buf, sizeof buf, "%020llu%020llu", static_cast<unsigned long long>(combined_names),
                static_cast<unsigned long long>(combined_crc_));
  return buf;
}

void ZipWriter::add_serialization_id() { add(".data/serialization_id", serialization_id()); }

void ZipWriter::write_local_header(const std::string& full_name, uint64_t size) {
  if (finished_) throw Error("zip writer: record '" + full_name + "' added after finish()");
  if (full_name.size() > 0xFFFF) throw UsageError("record name too long: '" + full_name + "'");
  const uint64_t header_offset = out_.offset();
  const bool zip64 = needs_zip64_extra(size, header_offset);
  const uint64_t zip64_len = zip64 ? 4 + (size >= kMax32 ? 16 : 0) +
                                         (header_offset >= kMax32 ? 8 : 0)
                                   : 0;
  // torch's getPadding(): the 'FB' field that follows pads the data to a
  // 64-byte boundary (its 4-byte header is written even when no pad is needed).
  const uint64_t data_start_unpadded = header_offset + 30 + full_name.size() + zip64_len + 4;
  const uint64_t pad = (alignment_ - data_start_unpadded % alignment_) % alignment_;

  std::string h;
  h.reserve(30 + full_name.size() + zip64_len + 4 + pad);
  put_fixed32(h, zipfmt::kLocalHeaderSig);
  put_fixed16(h, 0);  // version needed: miniz writes 0 for STORED
  put_fixed16(h, flags_for(size));
  put_fixed16(h, 0);      // method: STORED
  put_fixed16(h, 0);      // DOS time
  put_fixed16(h, 0);      // DOS date
  put_fixed32(h, 0);      // CRC-32: in the descriptor
  put_fixed32(h, 0);      // compressed size: in the descriptor
  put_fixed32(h, 0);      // uncompressed size: in the descriptor
  put_fixed16(h, full_name.size());
  put_fixed16(h, zip64_len + 4 + pad);
  h += full_name;
  if (zip64) put_zip64_extra(h, size, 0, header_offset);
  h += "FB";
  put_fixed16(h, pad);
  h.append(pad, 'Z');
  out_.append(h);
  entries_.push_back(Entry{full_name, header_offset, size, 0});
  names_written_.push_back(full_name.substr(std::min(full_name.size(), archive_name_.size() + 1)));
}

void ZipWriter::write_descriptor(const Entry& e) {
  if (e.size == 0) return;  // miniz writes none for an empty record
  combined_crc_ = hash_combine(combined_crc_, e.crc32);
  std::string d;
  put_fixed32(d, zipfmt::kDescriptorSig);
  put_fixed32(d, e.crc32);
  if (needs_zip64_extra(e.size, e.header_offset)) {
    put_fixed64(d, e.size);  // compressed == uncompressed: STORED
    put_fixed64(d, e.size);
  } else {
    put_fixed32(d, e.size);
    put_fixed32(d, e.size);
  }
  out_.append(d);
}

void ZipWriter::add(std::string_view name, std::string_view data) {
  write_local_header(archive_name_ + "/" + std::string(name), data.size());
  out_.append(data);
  note_data_head(data.substr(0, 8));
  entries_.back().crc32 = crc32_update(0, data.data(), data.size());
  write_descriptor(entries_.back());
}

uint32_t ZipWriter::add_copy(std::string_view name, RandomAccessFile& src, uint64_t offset,
                             uint64_t n, std::optional<uint32_t> crc) {
  write_local_header(archive_name_ + "/" + std::string(name), n);
  if (crc)
    out_.copy_from(src, offset, n);
  else
    crc = out_.copy_from_with_crc(src, offset, n);
  if (n >= 8) note_data_head(src.read_string(offset, 8));
  entries_.back().crc32 = *crc;
  write_descriptor(entries_.back());
  return *crc;
}

void ZipWriter::add_stream(
    std::string_view name, uint64_t n,
    const std::function<void(const std::function<void(std::string_view)>&)>& produce) {
  const std::string full_name = archive_name_ + "/" + std::string(name);
  write_local_header(full_name, n);
  uint32_t crc = 0;
  uint64_t written = 0;
  std::string head;  // the first 8 bytes, whatever the chunking
  produce([&](std::string_view chunk) {
    if (head.size() < 8) head.append(chunk.substr(0, 8 - head.size()));
    if (chunk.size() > n - written) {
      throw Error("zip writer: record '" + full_name + "' produced more than the " +
                  std::to_string(n) + " bytes announced");
    }
    out_.append(chunk);
    crc = crc32_update(crc, chunk.data(), chunk.size());
    written += chunk.size();
  });
  if (written != n) {
    throw Error("zip writer: record '" + full_name + "' produced " + std::to_string(written) +
                " bytes, not the " + std::to_string(n) + " announced");
  }
  note_data_head(head);
  entries_.back().crc32 = crc;
  write_descriptor(entries_.back());
}

void ZipWriter::list_existing(std::string_view name, uint64_t header_offset, uint64_t size,
                              uint32_t crc) {
  if (finished_) throw Error("zip writer: record '" + std::string(name) + "' listed after finish()");
  entries_.push_back(Entry{archive_name_ + "/" + std::string(name), header_offset, size, crc});
}

void ZipWriter::finish() {
  if (finished_) throw Error("zip writer: finish() called twice");
  finished_ = true;

  const uint64_t cd_offset = out_.offset();
  std::string cd;
  for (const Entry& e : entries_) {
    const bool zip64 = needs_zip64_extra(e.size, e.header_offset);
    uint64_t extra_len = zip64 ? 4 + (e.size >= kMax32 ? 16 : 0) +
                                     (e.header_offset >= kMax32 ? 8 : 0)
                               : 0;
    put_fixed32(cd, zipfmt::kCentralHeaderSig);
    put_fixed16(cd, 0);  // version made by
    put_fixed16(cd, 0);  // version needed
    put_fixed16(cd, flags_for(e.size));
    put_fixed16(cd, 0);  // method
    put_fixed16(cd, 0);  // time
    put_fixed16(cd, 0);  // date
    put_fixed32(cd, e.crc32);
    put_fixed32(cd, std::min(e.size, kMax32));
    put_fixed32(cd, std::min(e.size, kMax32));
    put_fixed16(cd, e.name.size());
    put_fixed16(cd, extra_len);
    put_fixed16(cd, 0);  // comment length
    put_fixed16(cd, 0);  // disk number start
    put_fixed16(cd, 0);  // internal attributes
    put_fixed32(cd, 0);  // external attributes
    put_fixed32(cd, std::min(e.header_offset, kMax32));
    cd += e.name;
    if (zip64) put_zip64_extra(cd, e.size, e.size, e.header_offset);
  }
  const uint64_t cd_size = cd.size();
  const uint64_t end64_offset = cd_offset + cd_size;
  const uint64_t count = entries_.size();

  std::string end;
  // ZIP64 end of central directory record: miniz writes it for every archive
  // opened with MZ_ZIP_FLAG_WRITE_ZIP64, as torch does.
  put_fixed32(end, zipfmt::kZip64EndSig);
  put_fixed64(end, zipfmt::kZip64EndRestSize);  // size of the rest of this record
  put_fixed16(end, 0x031E);  // version made by: Unix, 3.0
  put_fixed16(end, 0x002D);  // version needed: 4.5 (ZIP64)
  put_fixed32(end, 0);       // this disk
  put_fixed32(end, 0);       // disk with the central directory
  put_fixed64(end, count);
  put_fixed64(end, count);
  put_fixed64(end, cd_size);
  put_fixed64(end, cd_offset);
  // ZIP64 end of central directory locator.
  put_fixed32(end, zipfmt::kZip64LocatorSig);
  put_fixed32(end, 0);
  put_fixed64(end, end64_offset);
  put_fixed32(end, 1);  // total disks
  // Classic end record, values clamped as miniz does.
  put_fixed32(end, zipfmt::kEndSig);
  put_fixed16(end, 0);
  put_fixed16(end, 0);
  put_fixed16(end, std::min<uint64_t>(count, 0xFFFF));
  put_fixed16(end, std::min<uint64_t>(count, 0xFFFF));
  put_fixed32(end, std::min(cd_size, kMax32));
  put_fixed32(end, std::min(cd_offset, kMax32));
  put_fixed16(end, 0);  // comment length
  cd += end;
  out_.append(cd);
}

}  // namespace ckpt::container
