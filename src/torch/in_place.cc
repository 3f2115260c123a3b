// In-place updates by appending a new tail and committing it with one
// sector-sized write.
//
// Let E be the end of the file (the end of the old archive) and T the new
// tail:
//
//   E  [gap of zeros, < 576 bytes]
//      [data.pkl local header (FB padding to 64, as torch) + new pickle + descriptor]
//      [new central directory: every kept record at its existing offset and
//       data.pkl at its new one, in the old directory's order; records of
//       storages nothing references any more are left out]
//   N  [ZIP64 end record + locator + end record: 98 bytes, inside one 512-byte sector]
//
// Readers find an archive from the end of the file. The update runs in three
// steps, each followed by fsync so a later step never reaches the disk
// before an earlier one:
//   (a) write a copy of the OLD end records at N. The file grows; its end
//       still describes the old archive (the copy holds absolute offsets of
//       the old ZIP64 end record and central directory, which stay valid),
//       and the bytes between E and N are zeros nobody references.
//   (b) write the new data.pkl record and central directory at E + gap.
//       They land in bytes the old archive does not reference.
//   (c) commit: overwrite the copy at N with the NEW end records, one write
//       of 98 bytes inside one sector (the gap is sized for that).
// A crash or I/O error before (c) completes leaves the old archive; after, the
// new one. Storage bytes are never touched; the old data.pkl, old central
// directories and dropped tensors stay in the file as unreferenced bytes
// until a compaction (a full rewrite) reclaims them. A torch 2.1+ file's
// .data/serialization_id record is kept as it was (torch only logs it);
// compaction computes it anew.
//
// Readers and the intermediate state (after (a) or (b), before (c)):
// torch (miniz) and ckpt follow the locator's offset to the old ZIP64 end
// record and read the old archive. Python's zipfile instead assumes the
// central directory sits right before the end records and shifts every
// offset by the distance ("concat" logic), so it rejects the file as "Bad
// magic number for central directory" until the commit. That window lasts
// milliseconds and is only visible after a crash inside it; a rerun of the
// edit or `ckpt compact` produces a file every reader accepts.
//
// Residual risk: power loss while the file grows in (a) on a file system
// that may persist the new size before the data, which would leave zeros at
// the end; the issue scopes power loss out, and step (a) is the only
// size-changing write.
#include "torch/in_place.h"

#include <cerrno>
#include <cstring>
#include <set>

#include "container/zip_format.h"
#include "container/zip_writer.h"
#include "pickle/pickler.h"
#include "util/coding.h"
#include "util/error.h"

namespace ckpt::torch {
namespace {

using pickle::Kind;
using pickle::Node;

constexpr uint64_t kEndBlockSize = container::zipfmt::kEndBlockSize;  // ZIP64 end + locator + end
constexpr uint64_t kSector = 512;

uint16_t le16(const std::string& s, size_t at) { return decode_fixed16(s.data() + at); }
uint32_t le32(const std::string& s, size_t at) { return decode_fixed32(s.data() + at); }
uint64_t le64(const std::string& s, size_t at) { return decode_fixed64(s.data() + at); }

// Collects what a WritableFile receives into memory, as if it started at
// `base` in the real file: the tail is built here, then written in steps.
class TailBuffer final : public WritableFile {
 public:
  explicit TailBuffer(uint64_t base) : base_(base) {}
  void append(std::string_view data) override { bytes_.append(data); }
  void copy_from(RandomAccessFile&, uint64_t, uint64_t) override {
    throw Error("in-place tail: copying records is not part of an in-place update");
  }
  uint64_t offset() const override { return base_ + bytes_.size(); }
  void sync() override {}
  void close() override {}
  const std::string& bytes() const { return bytes_; }

 private:
  uint64_t base_;
  std::string bytes_;
};

struct Plan {
  uint64_t tail_offset = 0;  // where the data.pkl record starts (E + gap)
  std::string tail;          // data.pkl record + central directory + end records
  uint64_t end_block_offset() const { return tail_offset + tail.size() - kEndBlockSize; }
};

// Empty when the archive ends as torch writes it: ZIP64 end record, a
// locator pointing at it, and a comment-less end record, up to the last byte.
std::string end_block_problem(const container::ZipReader& zip, const std::string& end) {
  uint64_t size = zip.file().size();
  if (zip.end_offset() != size) return "bytes follow the end of the archive";
  if (size < kEndBlockSize) return "the archive is too short";
  namespace z = container::zipfmt;
  constexpr size_t kLocator = z::kZip64EndSize, kEnd = z::kZip64EndSize + z::kZip64LocatorSize;
  if (le32(end, z::end64::kSig) != z::kZip64EndSig || le64(end, z::end64::kRestSize) != z::kZip64EndRestSize)
    return "the archive has no plain ZIP64 end record";
  if (le32(end, kLocator + z::locator::kSig) != z::kZip64LocatorSig ||
      le64(end, kLocator + z::locator::kEnd64Offset) != size - kEndBlockSize)
    return "the ZIP64 locator does not point at the end record before it";
  if (le32(end, kEnd + z::end::kSig) != z::kEndSig || le16(end, kEnd + z::end::kCommentLen) != 0)
    return "the end record carries a comment";
  return {};
}

// Builds the tail for the records to keep; empty `reason` on success.
Plan plan_tail(const container::ZipReader& zip, uint64_t alignment, const std::string& pickle_bytes,
               const std::set<std::string>& referenced_keys, std::string& reason) {
  struct Kept {
    std::string rel;
    const container::ZipRecord* record;  // nullptr: the new data.pkl
  };
  std::vector<Kept> kept;
  const std::string prefix = zip.archive_name() + "/";
  for (const auto& r : zip.records()) {
    std::string rel = zip.relative_name(r);
    if (r.name != prefix + rel) {
      reason = "record '" + r.name + "' is outside the archive folder";
      return {};
    }
    if (rel == "data.pkl") {
      kept.push_back({rel, nullptr});
      continue;
    }
    if (rel.rfind("data/", 0) == 0 && !referenced_keys.count(rel.substr(5))) continue;  // dropped
    uint16_t torch_flags = r.size ? 0x0808 : 0x0800;
    if (r.method != 0 || r.flags != torch_flags || r.compressed_size != r.size) {
      reason = "record '" + r.name + "' is not stored as torch stores records";
      return {};
    }
    kept.push_back({rel, &r});
  }

  const uint64_t end = zip.file().size();
  // The data.pkl header's offset decides its FB padding, so the tail length
  // moves in steps of 64 as the gap grows: within 576 bytes some gap puts
  // the end block inside one sector.
  for (uint64_t gap = 0; gap < kSector + 64; ++gap) {
    TailBuffer buf(end + gap);
    container::ZipWriter zw(buf, zip.archive_name(), alignment);
    for (const Kept& k : kept) {
      if (k.record)
        zw.list_existing(k.rel, k.record->header_offset, k.record->size, k.record->crc32);
      else
        zw.add("data.pkl", pickle_bytes);
    }
    zw.finish();
    Plan p{end + gap, buf.bytes()};
    uint64_t in_sector = p.end_block_offset() % kSector;
    if (in_sector + kEndBlockSize <= kSector) return p;
  }
  throw Error("in-place update: no gap puts the end records inside one sector");  // unreachable
}

}  // namespace

InPlaceResult update_in_place(Checkpoint& ck, const Node* root, Env& env, const InPlaceOptions& options) {
  // Both ways (appended or rewritten) refuse a read-only file alike, before any work.
  refuse_read_only(env, ck.path());
  auto rewrite = [&](std::string reason) {
    SaveOptions so = options.save;
    so.force = true;
    if (ck.format() == Format::Zip && so.archive_name.empty()) so.archive_name = ck.archive_name();
    save(ck, root, env, ck.path(), so);
    InPlaceResult r;
    r.reason = std::move(reason);
    r.bytes_written = env.exists(ck.path()) ? env.open_read(ck.path())->size() : 0;
    return r;
  };
  if (options.compact) return rewrite("compaction requested");
  if (ck.format() != Format::Zip) return rewrite("the input is in the legacy format");
  if (!options.save.transforms.empty()) return rewrite("storage bytes change");
  if (options.save.dialect && *options.save.dialect != ck.dialect()) return rewrite("the dialect changes");
  const container::ZipReader& zip = *ck.zip();
  const uint64_t file_end = zip.file().size();
  std::string old_end =
      file_end >= kEndBlockSize ? zip.file().read_string(file_end - kEndBlockSize, kEndBlockSize) : "";
  if (old_end.size() != kEndBlockSize) return rewrite("the archive is too short");
  if (std::string p = end_block_problem(zip, old_end); !p.empty()) return rewrite(p);

  // Pickle with the storage keys as they are: they keep naming the records
  // already in the file.
  std::set<std::string> referenced;
  std::string why_not;
  pickle::PickleOptions popts;
  popts.on_persistent_id = [&](Node* p) {
    const Node* t = p->pid;
    if (!t || t->kind != Kind::Tuple || t->items.size() < 5 || !t->items[0]->is_str("storage") ||
        t->items[2]->kind != Kind::Str) {
      if (why_not.empty()) why_not = "a persistent id is not a torch storage";
      return;
    }
    const std::string& key = t->items[2]->text;
    if (!referenced.insert(key).second) return;
    const Storage* s = ck.storage(key);
    if (!s || !s->record) {
      if (why_not.empty()) why_not = "storage '" + key + "' has no data record";
    } else if (s->record->size != s->nbytes()) {
      if (why_not.empty()) why_not = "record '" + s->record->name + "' does not match its storage's size";
    }
  };
  std::string data = pickle::pickle(root, popts);
  if (!why_not.empty()) return rewrite(why_not);

  std::string reason;
  if (ck.storage_alignment() == 0) return rewrite("the .storage_alignment record is unusable");
  Plan plan = plan_tail(zip, ck.storage_alignment(), data, referenced, reason);
  if (!reason.empty()) return rewrite(reason);

  const uint64_t end_at = plan.end_block_offset();
  const std::string_view tail(plan.tail);
  std::unique_ptr<RandomRWFile> file;
  try {
    file = env.open_update(ck.path());
  } catch (const IoError& e) {
    const int err = e.error_number();
    if (err != EACCES && err != EPERM && err != EROFS) throw;
    // Said "open: Permission denied": name the way out.
    throw IoError(ck.path() + ": cannot edit in place: " + std::strerror(err) +
                      (err == EROFS ? " (a read-only file system)" : " (the file is not writable by you)") +
                      ": write an edited copy with " + option_set("out", "OUT") + " instead of " +
                      option_name("in_place") + (err == EROFS ? "" : ", or make it writable (chmod u+w " + ck.path() + ")"),
                  err);
  }
  // (a) grow the file with a copy of the old end records: still the old archive.
  file->write_at(end_at, old_end);
  file->sync();
  // (b) the new data.pkl and central directory, in bytes nobody references yet.
  file->write_at(plan.tail_offset, tail.substr(0, tail.size() - kEndBlockSize));
  file->sync();
  // (c) commit: one write inside one sector switches readers to the new archive.
  file->write_at(end_at, tail.substr(tail.size() - kEndBlockSize));
  file->sync();
  file->close();

  InPlaceResult r;
  r.appended = true;
  r.bytes_written = end_at + kEndBlockSize - file_end;
  return r;
}

}  // namespace ckpt::torch
