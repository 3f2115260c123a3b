// ZIP reading: end records, central directory, local headers, STORED and
// DEFLATE data. Everything read from the file is checked against the file
// size before it is used, so a damaged archive gives one FormatError.
#include "container/zip_reader.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "container/zip_format.h"
#include "util/coding.h"
#include "util/crc32.h"
#include "util/error.h"

namespace ckpt::container {
namespace {

using namespace zipfmt;
constexpr size_t kChunk = size_t{1} << 20;
// DEFLATE cannot expand data by more than about 1032:1; used to bound the
// memory reserved up front for a record's declared size.
constexpr uint64_t kMaxDeflateRatio = 1032;

// True when [offset, offset + n) lies inside [0, limit).
bool fits(uint64_t offset, uint64_t n, uint64_t limit) {
  return offset <= limit && n <= limit - offset;
}

}  // namespace

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) { throw FormatError(path + ": " + what); }

// What the end records say about the central directory.
struct Directory {
  uint64_t offset = 0, size = 0, entries = 0;
  uint64_t limit = 0;       // where it must end: the first end record
  uint64_t end_offset = 0;  // just past the end record and its comment
};

// The ZIP64 end record its locator (just before the end record at
// eocd_offset) points at, when there is one: it overrides the 32-bit fields.
bool read_zip64_end(RandomAccessFile& file, uint64_t eocd_offset, Directory& d, uint16_t& disk, uint16_t& cd_disk,
                    uint64_t& entries_on_disk) {
  const std::string& path = file.path();
  if (eocd_offset < kZip64LocatorSize ||
      decode_fixed32(file.read_string(eocd_offset - kZip64LocatorSize, 4).data()) != kZip64LocatorSig)
    return false;
  std::string loc = file.read_string(eocd_offset - kZip64LocatorSize, kZip64LocatorSize);
  uint64_t end64_offset = decode_fixed64(loc.data() + 8);
  if (decode_fixed32(loc.data() + 4) != 0 || decode_fixed32(loc.data() + 16) > 1) fail(path, "multi-disk archives are not supported");
  if (!fits(end64_offset, kZip64EndSize, eocd_offset - kZip64LocatorSize))
    fail(path, "ZIP64 end record offset " + std::to_string(end64_offset) + " is past its locator");
  std::string end64 = file.read_string(end64_offset, kZip64EndSize);
  if (decode_fixed32(end64.data()) != kZip64EndSig)
    fail(path, "bad ZIP64 end record signature at offset " + std::to_string(end64_offset));
  disk = decode_fixed32(end64.data() + 16) != 0 ? 1 : 0;
  cd_disk = decode_fixed32(end64.data() + 20) != 0 ? 1 : 0;
  entries_on_disk = decode_fixed64(end64.data() + 24);
  d.entries = decode_fixed64(end64.data() + 32);
  d.size = decode_fixed64(end64.data() + 40);
  d.offset = decode_fixed64(end64.data() + 48);
  d.limit = end64_offset;
  return true;
}

// A file that starts as a zip but has no end record was cut short. The local
// headers whose sizes are known give a lower bound on the full size.
std::string truncated_zip(RandomAccessFile& file) {
  const uint64_t size = file.size();
  uint64_t pos = 0, at_least = 0;
  for (int i = 0; i < 100000 && pos + 30 <= size; ++i) {
    std::string h = file.read_string(pos, 30);
    if (decode_fixed32(h.data()) != kLocalHeaderSig) break;
    uint16_t flags = decode_fixed16(h.data() + 6);
    uint64_t csize = decode_fixed32(h.data() + 18);
    uint64_t next = pos + 30 + decode_fixed16(h.data() + 26) + decode_fixed16(h.data() + 28) + csize;
    if (csize == 0xFFFFFFFFu || (csize == 0 && (flags & 0x0008))) {  // size in ZIP64 extra or descriptor only
      at_least = std::max(at_least, pos + 30);
      break;
    }
    if (flags & 0x0008) next += 16;  // the data descriptor
    at_least = std::max(at_least, next);
    pos = next;
  }
  std::string m = "truncated: " + std::to_string(size) + " bytes and no end of central directory record";
  if (at_least > size) m += " (its records need at least " + std::to_string(at_least) + " bytes)";
  return m + ": a zip cut short (interrupted download or copy?); fetch or copy it again";
}

// The end of central directory record's offset, found as torch's zip reader
// (miniz's mz_zip_reader_locate_header_sig, called by mz_zip_reader_read_central_dir)
// finds it: windows of 4096 bytes read backwards from the end of the file, each
// searched from its last byte down; the first "PK\5\6" with at least 22 bytes
// after it wins, whatever its comment length says (so the LAST signature in the
// file, even one inside a comment or after a first end record). miniz gives up
// once a window starts 65557 bytes or more before the end.
uint64_t find_end_record(RandomAccessFile& file) {
  const uint64_t file_size = file.size();
  if (file_size < kEndSize) fail(file.path(), "not a zip archive (too short to hold an end record)");
  uint64_t cur = file_size > kMinizSearchWindow ? file_size - kMinizSearchWindow : 0;
  for (;;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kMinizSearchWindow, file_size - cur));
    const std::string buf = file.read_string(cur, n);
    for (size_t i = n >= 4 ? n - 4 + 1 : 0; i-- > 0;) {
      if (decode_fixed32(buf.data() + i) == kEndSig && file_size - (cur + i) >= kEndSize) return cur + i;
    }
    if (cur == 0 || file_size - cur >= kMinizSearchLimit) break;
    cur = cur > kMinizSearchWindow - 3 ? cur - (kMinizSearchWindow - 3) : 0;
  }
  if (file_size >= 4 && decode_fixed32(file.read_string(0, 4).data()) == kLocalHeaderSig) fail(file.path(), truncated_zip(file));
  fail(file.path(), "not a zip archive (no end of central directory record in its last 64 KiB)");
}

Directory read_directory_location(RandomAccessFile& file) {
  const std::string& path = file.path();
  const uint64_t eocd_offset = find_end_record(file);
  const std::string end_record = file.read_string(eocd_offset, kEndSize);
  const char* e = end_record.data();
  Directory d;
  d.end_offset = eocd_offset + kEndSize + decode_fixed16(e + 20);
  uint16_t disk = decode_fixed16(e + 4), cd_disk = decode_fixed16(e + 6);
  uint64_t entries_on_disk = decode_fixed16(e + 8);
  d.entries = decode_fixed16(e + 10);
  d.size = decode_fixed32(e + 12);
  d.offset = decode_fixed32(e + 16);
  d.limit = eocd_offset;
  if (!read_zip64_end(file, eocd_offset, d, disk, cd_disk, entries_on_disk) &&
      (d.size == 0xFFFFFFFF || d.offset == 0xFFFFFFFF))
    fail(path, "end record needs ZIP64 values but there is no ZIP64 locator");
  if (disk != 0 || cd_disk != 0 || entries_on_disk != d.entries) fail(path, "multi-disk archives are not supported");
  if (!fits(d.offset, d.size, d.limit))
    fail(path, "central directory (offset " + std::to_string(d.offset) + ", " + std::to_string(d.size) +
                   " bytes) runs past its end record at " + std::to_string(d.limit));
  if (d.entries > d.size / kCentralHeaderSize)
    fail(path, "end record declares " + std::to_string(d.entries) + " entries, more than a " +
                   std::to_string(d.size) + "-byte central directory can hold");
  return d;
}

// The ZIP64 extra holds, in this order, the fields saturated in the header.
// `rec` names the record for a message, built only when one is thrown.
template <class RecordText>
void apply_zip64_extra(const std::string& path, const char* x, const char* x_end, ZipRecord& r,
                       uint32_t& disk_start, RecordText&& rec) {
  while (x_end - x >= 4) {
    uint16_t id = decode_fixed16(x), len = decode_fixed16(x + 2);
    if (static_cast<size_t>(x_end - x - 4) < len) fail(path, "extra field runs past its entry" + rec());
    if (id == 0x0001) {
      const char* f = x + 4;
      const char* f_end = f + len;
      auto take = [&](uint64_t& field) {
        if (f_end - f < 8) fail(path, "ZIP64 extra field too short" + rec());
        field = decode_fixed64(f);
        f += 8;
      };
      if (r.size == 0xFFFFFFFF) take(r.size);
      if (r.compressed_size == 0xFFFFFFFF) take(r.compressed_size);
      if (r.header_offset == 0xFFFFFFFF) take(r.header_offset);
      if (disk_start == 0xFFFF) {
        if (f_end - f < 4) fail(path, "ZIP64 extra field too short" + rec());
        disk_start = decode_fixed32(f);
      }
    }
    x += 4 + len;
  }
}

// Central directory entry `i` at cd[pos]; advances pos past it.
ZipRecord parse_central_entry(const std::string& path, const std::string& cd, size_t& pos, uint64_t i) {
  // The messages' " (entry i ...)" and " (record 'name')" are built only
  // when one is thrown (two allocations per record otherwise).
  auto where = [i] { return " (entry " + std::to_string(i) + " of the central directory)"; };
  if (cd.size() - pos < kCentralHeaderSize) fail(path, "central directory truncated" + where());
  const char* h = cd.data() + pos;
  if (decode_fixed32(h) != kCentralHeaderSig) fail(path, "bad central directory signature" + where());
  size_t name_len = decode_fixed16(h + 28), extra_len = decode_fixed16(h + 30), comment_len = decode_fixed16(h + 32);
  if (cd.size() - pos - kCentralHeaderSize < name_len + extra_len + comment_len)
    fail(path, "central directory truncated" + where());
  ZipRecord r;
  r.flags = decode_fixed16(h + 8);
  r.method = decode_fixed16(h + 10);
  r.crc32 = decode_fixed32(h + 16);
  r.compressed_size = decode_fixed32(h + 20);
  r.size = decode_fixed32(h + 24);
  r.header_offset = decode_fixed32(h + 42);
  uint32_t disk_start = decode_fixed16(h + 34);
  r.name.assign(h + kCentralHeaderSize, name_len);
  auto rec = [&r] { return " (record '" + r.name + "')"; };
  const char* x = h + kCentralHeaderSize + name_len;
  apply_zip64_extra(path, x, x + extra_len, r, disk_start, rec);
  if (disk_start != 0) fail(path, "multi-disk archives are not supported" + rec());
  if (r.flags & 0x0001) fail(path, "encrypted records are not supported" + rec());
  if (r.method == 0 && r.compressed_size != r.size)
    fail(path, "stored record has compressed size " + std::to_string(r.compressed_size) + " but size " +
                   std::to_string(r.size) + rec());
  pos += kCentralHeaderSize + name_len + extra_len + comment_len;
  return r;
}

// The local header: same name, data inside the area before the central
// directory. Sets r.data_offset.
void check_local_header(RandomAccessFile& file, ZipRecord& r, uint64_t cd_offset) {
  const std::string& path = file.path();
  auto rec = [&r] { return " (record '" + r.name + "')"; };
  if (!fits(r.header_offset, kLocalHeaderSize, cd_offset))
    fail(path, "local header offset " + std::to_string(r.header_offset) + " is past the central directory" + rec());
  // The header and the name it must hold in one read (one system call per
  // record at open, one range request for a remote file): a local name of
  // another length differs from the central one whatever its bytes.
  const size_t want = static_cast<size_t>(
      std::min<uint64_t>(kLocalHeaderSize + r.name.size(), cd_offset - r.header_offset));
  char small[512];
  std::string large;
  char* local = small;
  if (want > sizeof small) {
    large.resize(want);
    local = large.data();
  }
  file.read(r.header_offset, want, local);
  if (decode_fixed32(local) != kLocalHeaderSig)
    fail(path, "bad local header signature at offset " + std::to_string(r.header_offset) + rec());
  uint64_t local_name_len = decode_fixed16(local + 26), local_extra_len = decode_fixed16(local + 28);
  if (!fits(r.header_offset + kLocalHeaderSize, local_name_len, cd_offset) || local_name_len != r.name.size() ||
      std::string_view(local + kLocalHeaderSize, r.name.size()) != r.name)
    fail(path, "local header name differs from the central directory's" + rec());
  r.data_offset = r.header_offset + kLocalHeaderSize + local_name_len + local_extra_len;
  if (!fits(r.data_offset, r.compressed_size, cd_offset))
    fail(path, "data (offset " + std::to_string(r.data_offset) + ", " + std::to_string(r.compressed_size) +
                   " bytes) runs past the central directory" + rec());
}

// No two records may share bytes (a crafted zip can point many entries at
// the same data to multiply its apparent size).
void check_no_overlap(const std::string& path, const std::vector<ZipRecord>& records) {
  std::vector<const ZipRecord*> by_offset;
  by_offset.reserve(records.size());
  for (const ZipRecord& r : records) by_offset.push_back(&r);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const ZipRecord* a, const ZipRecord* b) { return a->header_offset < b->header_offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const ZipRecord& prev = *by_offset[i - 1];
    if (prev.data_offset + prev.compressed_size > by_offset[i]->header_offset)
      fail(path, "records '" + prev.name + "' and '" + by_offset[i]->name + "' overlap");
  }
}

// miniz's name order (mz_zip_reader_filename_less / mz_zip_filename_compare):
// bytes compared after ASCII lowercasing (MZ_TOLOWER), a name that is a
// prefix of the other first. Negative, 0 or positive as a < b, ==, >.
int miniz_compare(std::string_view a, std::string_view b) {
  auto lower = [](unsigned char c) { return c >= 'A' && c <= 'Z' ? static_cast<unsigned char>(c - 'A' + 'a') : c; };
  const size_t n = std::min(a.size(), b.size());
  // Equal bytes are equal lowercased: skip the common prefix ("archive/data/")
  // at memcmp speed (the sort at open compares every name ~log n times).
  size_t same = 0;
  while (same + 8 <= n) {  // 8 bytes at a time, then byte by byte
    uint64_t x, y;
    std::memcpy(&x, a.data() + same, 8);
    std::memcpy(&y, b.data() + same, 8);
    if (x != y) break;
    same += 8;
  }
  while (same < n && a[same] == b[same]) ++same;
  for (size_t i = same; i < n; ++i) {
    unsigned char x = lower(static_cast<unsigned char>(a[i])), y = lower(static_cast<unsigned char>(b[i]));
    if (x != y) return x < y ? -1 : 1;
  }
  return a.size() < b.size() ? -1 : a.size() > b.size() ? 1 : 0;
}

// The record indices in the order mz_zip_reader_sort_central_dir_offsets_by_filename
// leaves them: build a max-heap (sift-down from (size - 2) / 2 to 0), then
// repeatedly swap the root with the last unsorted slot and sift it down. Not
// stable, so among equal names the winner of a lookup depends on this exact
// sequence of swaps, which is why it is followed step by step.
std::vector<uint32_t> miniz_sorted_order(const std::vector<ZipRecord>& records) {
  const size_t size = records.size();
  std::vector<uint32_t> idx(size);
  for (size_t i = 0; i < size; ++i) idx[i] = static_cast<uint32_t>(i);
  if (size <= 1) return idx;
  // Names without ASCII capitals (torch's are all lowercase) lowercase to
  // themselves: two of them compare as plain bytes, memcmp then length,
  // which is miniz_compare's order without its byte loop.
  std::vector<uint8_t> plain(size);
  for (size_t i = 0; i < size; ++i)
    plain[i] = std::none_of(records[i].name.begin(), records[i].name.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
  auto less = [&](uint32_t a, uint32_t b) {
    if (plain[a] && plain[b]) return records[a].name.compare(records[b].name) < 0;
    return miniz_compare(records[a].name, records[b].name) < 0;
  };
  auto sift = [&](size_t root, size_t end) {
    for (;;) {
      size_t child = root * 2 + 1;
      if (child >= end) break;
      if (child + 1 < end && less(idx[child], idx[child + 1])) ++child;
      if (!less(idx[root], idx[child])) break;
      std::swap(idx[root], idx[child]);
      root = child;
    }
  };
  for (size_t start = (size - 2) >> 1;; --start) {
    sift(start, size);
    if (start == 0) break;
  }
  for (size_t end = size - 1; end > 0; --end) {
    std::swap(idx[end], idx[0]);
    sift(0, end);
  }
  return idx;
}

}  // namespace

ZipReader::ZipReader(std::unique_ptr<RandomAccessFile> file, ZipReadLimits limits)
    : file_(std::move(file)), limits_(limits) {
  const std::string& path = file_->path();
  const bool lazy = file_->prefers_few_reads();
  const Directory d = read_directory_location(*file_);
  end_offset_ = d.end_offset;
  cd_offset_ = d.offset;
  const std::string cd = file_->read_string(cd_offset_, static_cast<size_t>(d.size));
  if (d.entries > 0xFFFFFFFFu) fail(path, "more than 2^32 - 1 records (miniz refuses them)");
  records_.reserve(static_cast<size_t>(d.entries));
  size_t pos = 0;
  for (uint64_t i = 0; i < d.entries; ++i) {
    ZipRecord r = parse_central_entry(path, cd, pos, i);
    if (lazy) {
      r.data_offset = r.header_offset + kLocalHeaderSize + r.name.size();  // at least; resolve() checks
      if (!fits(r.data_offset, r.compressed_size, cd_offset_))
        fail(path, "data (offset " + std::to_string(r.data_offset) + ", " + std::to_string(r.compressed_size) +
                       " bytes) runs past the central directory (record '" + r.name + "')");
    } else {
      check_local_header(*file_, r, cd_offset_);
    }
    records_.push_back(std::move(r));
  }
  resolved_.assign(records_.size(), lazy ? 0 : 1);
  if (lazy) {  // each record's data must end before the next header (or the directory)
    std::vector<size_t> order(records_.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return records_[a].header_offset < records_[b].header_offset; });
    data_limit_.assign(records_.size(), cd_offset_);
    for (size_t i = 0; i + 1 < order.size(); ++i) data_limit_[order[i]] = records_[order[i + 1]].header_offset;
  }
  if (pos != cd.size())
    fail(path, "central directory holds " + std::to_string(cd.size() - pos) + " bytes after the " +
                   std::to_string(d.entries) + " entries its end record declares");
  check_no_overlap(path, records_);
  sorted_ = miniz_sorted_order(records_);
  for (size_t i = 1; i < sorted_.size(); ++i)
    if (case_duplicate_.empty() && miniz_compare(records_[sorted_[i - 1]].name, records_[sorted_[i]].name) == 0)
      case_duplicate_ = records_[sorted_[i - 1]].name + "' and '" + records_[sorted_[i]].name;
  if (!records_.empty()) {
    const std::string& first = records_.front().name;
    size_t slash = first.find('/');
    archive_name_ = slash == std::string::npos ? std::string() : first.substr(0, slash);
  }
}

namespace {
// A record is named by a pointer into records (what find() returns) or, from
// a copy, by its name as miniz's lookup resolves it.
size_t record_index(const ZipReader& zip, const std::vector<ZipRecord>& records, const ZipRecord& r,
                    const std::string& path) {
  if (&r >= records.data() && &r < records.data() + records.size()) return static_cast<size_t>(&r - records.data());
  const ZipRecord* found = zip.find_full(r.name);
  if (found == nullptr) throw FormatError(path + ": no record '" + r.name + "'");
  return static_cast<size_t>(found - records.data());
}
}  // namespace

bool ZipReader::is_resolved(const ZipRecord& r) const {
  return resolved_[record_index(*this, records_, r, file_->path())] != 0;
}

const ZipRecord& ZipReader::resolve(const ZipRecord& r) const {
  size_t i = record_index(*this, records_, r, file_->path());
  if (resolved_[i]) return records_[i];
  ZipRecord& rec = records_[i];
  check_local_header(*file_, rec, cd_offset_);
  if (rec.data_offset + rec.compressed_size > data_limit_[i])
    fail(file_->path(), "record '" + rec.name + "' overlaps the record or directory after it");
  resolved_[i] = 1;
  return rec;
}

bool ZipReader::looks_like_zip(RandomAccessFile& file) {
  if (file.size() < 4) return false;
  uint32_t sig = decode_fixed32(file.read_string(0, 4).data());
  return sig == kLocalHeaderSig || (sig == kEndSig && file.size() >= kEndSize);
}

const ZipRecord* ZipReader::find(std::string_view relative_name) const {
  std::string full;
  if (!archive_name_.empty()) {
    full.reserve(archive_name_.size() + 1 + relative_name.size());
    full.append(archive_name_).append("/");
  }
  full.append(relative_name);
  return find_full(full);
}

// miniz's mz_zip_locate_file_binary_search over the heap-sorted order.
const ZipRecord* ZipReader::find_full(std::string_view full_name) const {
  int64_t lo = 0, hi = static_cast<int64_t>(sorted_.size()) - 1;
  while (lo <= hi) {
    const int64_t mid = lo + ((hi - lo) >> 1);
    const uint32_t index = sorted_[static_cast<size_t>(mid)];
    const int c = miniz_compare(records_[index].name, full_name);
    if (c == 0) return &records_[index];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid - 1;
  }
  return nullptr;
}

bool ZipReader::torch_routes_to_jit() const {
  const std::string prefix = archive_name_ + "/";
  for (const ZipRecord& r : records_) {
    std::string_view name(r.name);
    name = name.substr(0, std::min(name.size(), kMinizMaxNameBuffer - 1));
    name = name.substr(0, std::min(name.size(), name.find('\0')));
    if (name.size() > prefix.size() && name.compare(0, prefix.size(), prefix) == 0 &&
        name.substr(prefix.size()) == "constants.pkl")
      return true;
  }
  return false;
}

std::string ZipReader::relative_name(const ZipRecord& r) const {
  if (archive_name_.empty()) return r.name;
  if (r.name.size() > archive_name_.size() && r.name[archive_name_.size()] == '/' &&
      r.name.compare(0, archive_name_.size(), archive_name_) == 0) {
    return r.name.substr(archive_name_.size() + 1);
  }
  return r.name;
}

std::string ZipReader::read(const ZipRecord& rec, uint64_t max_size) const {
  const ZipRecord& r = resolve(rec);
  if (r.size > max_size) {
    throw FormatError(file_->path() + ": record '" + r.name + "' holds " +
                      std::to_string(r.size) + " bytes, more than the " +
                      std::to_string(max_size) + " allowed");
  }
  std::string out;
  if (r.method == 0) {
    return file_->read_string(r.data_offset, static_cast<size_t>(r.size));
  }
  out.reserve(static_cast<size_t>(
      std::min(r.size, r.compressed_size * kMaxDeflateRatio + kChunk)));
  stream(r, [&](std::string_view chunk) { out.append(chunk); });
  return out;
}

void ZipReader::stream(const ZipRecord& record,
                       const std::function<void(std::string_view)>& sink) const {
  const ZipRecord& r = resolve(record);
  const std::string& path = file_->path();
  const std::string rec = "record '" + r.name + "'";
  if (r.method == 0) {
    std::string buf(static_cast<size_t>(std::min<uint64_t>(r.size, kChunk)), '\0');
    for (uint64_t done = 0; done < r.size;) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(r.size - done, buf.size()));
      file_->read(r.data_offset + done, n, buf.data());
      sink(std::string_view(buf.data(), n));
      done += n;
    }
    return;
  }
  if (r.method != 8) {
    throw FormatError(path + ": " + rec + " uses unsupported compression method " +
                      std::to_string(r.method));
  }
  if (r.size > limits_.max_inflated) {
    throw FormatError(path + ": " + rec + " inflates past " +
                      std::to_string(limits_.max_inflated) + " bytes (declares " +
                      std::to_string(r.size) + ")");
  }

  z_stream z{};
  if (inflateInit2(&z, -15) != Z_OK) throw FormatError(path + ": " + rec + ": inflateInit failed");
  struct Guard {
    z_stream* z;
    ~Guard() { inflateEnd(z); }
  } guard{&z};

  std::string in(static_cast<size_t>(std::min<uint64_t>(r.compressed_size, kChunk)), '\0');
  std::string out(kChunk, '\0');
  uint64_t consumed = 0, produced = 0;
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    if (z.avail_in == 0) {
      if (consumed == r.compressed_size) {
        throw FormatError(path + ": " + rec + ": compressed data ends before the deflate stream");
      }
      size_t n = static_cast<size_t>(std::min<uint64_t>(r.compressed_size - consumed, in.size()));
      file_->read(r.data_offset + consumed, n, in.data());
      consumed += n;
      z.next_in = reinterpret_cast<Bytef*>(in.data());
      z.avail_in = static_cast<uInt>(n);
    }
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    rc = inflate(&z, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
      throw FormatError(path + ": " + rec + ": bad deflate data (" +
                        (z.msg ? z.msg : "zlib error " + std::to_string(rc)) + ")");
    }
    size_t n = out.size() - z.avail_out;
    produced += n;
    if (produced > r.size) {
      throw FormatError(path + ": " + rec + " inflates past " + std::to_string(r.size) +
                        " bytes, the size its entry declares");
    }
    if (n) sink(std::string_view(out.data(), n));
  }
  if (produced != r.size) {
    throw FormatError(path + ": " + rec + " inflates to " + std::to_string(produced) +
                      " bytes but its entry declares " + std::to_string(r.size));
  }
}

uint32_t ZipReader::compute_crc(const ZipRecord& r) const {
  uint32_t crc = 0;
  stream(r, [&](std::string_view chunk) { crc = crc32_update(crc, chunk.data(), chunk.size()); });
  return crc;
}

}  // namespace ckpt::container
