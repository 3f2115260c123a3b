#include "torch/integrity.h"

#include <algorithm>
#include <optional>
#include <set>
#include <string_view>

#include "util/error.h"
#include "util/python_number.h"

namespace ckpt::torch {

namespace {

using pickle::Kind;
using pickle::Node;

// Bits torch.save's writer (miniz) may set: 3 (sizes in a data descriptor)
// and 11 (UTF-8 names); 1-2 only qualify DEFLATE.
constexpr uint16_t kExpectedFlags = 0x0008 | 0x0800;
constexpr uint16_t kDeflateOptionFlags = 0x0006;

// Classes whose objects accept SETITEM(S) as a dict does.
bool is_dict_class(const Node* callable) {
  if (!callable || callable->kind != Kind::Global) return false;
  static const std::set<std::pair<std::string_view, std::string_view>> kDicts = {
      {"collections", "OrderedDict"}, {"collections", "defaultdict"}, {"collections", "Counter"},
      {"builtins", "dict"},           {"__builtin__", "dict"},
  };
  return kDicts.count({callable->text, callable->name}) > 0;
}

std::string describe_callable(const Node* callable) {
  if (callable && callable->kind == Kind::Global) return callable->text + "." + callable->name;
  return "an object";
}

bool starts_like_pickle(std::string_view head) {
  return head.size() >= 2 && static_cast<unsigned char>(head[0]) == 0x80 &&
         static_cast<unsigned char>(head[1]) >= 2 && static_cast<unsigned char>(head[1]) <= 5;
}

// A small record's bytes, or nullopt when it cannot be read (the CRC pass
// reports that).
std::optional<std::string> small_record(const container::ZipReader& zip, const container::ZipRecord& r) {
  if (r.size > 4096) return std::string(4097, ' ');
  try {
    return zip.read(r, 4096);
  } catch (const Error&) {
    return std::nullopt;
  }
}

// std::stoull as torch's PyTorchStreamReader::init applies it to the version
// record (caffe2/serialize/inline_container.cc): leading whitespace, a sign,
// decimal digits up to the first other byte; no digits throws; a '-' wraps.
std::optional<uint64_t> stoull_like(std::string_view t) {
  size_t i = 0;
  while (i < t.size() && (t[i] == ' ' || (t[i] >= '\t' && t[i] <= '\r'))) ++i;
  bool negative = false;
  if (i < t.size() && (t[i] == '+' || t[i] == '-')) negative = t[i++] == '-';
  if (i >= t.size() || t[i] < '0' || t[i] > '9') return std::nullopt;
  uint64_t v = 0;
  for (; i < t.size() && t[i] >= '0' && t[i] <= '9'; ++i) {
    if (v > (UINT64_MAX - 9) / 10) return std::nullopt;  // out_of_range: torch refuses too
    v = v * 10 + static_cast<uint64_t>(t[i] - '0');
  }
  return negative ? uint64_t{0} - v : v;
}

// The records torch reads before the pickle, checked as torch checks them:
// the version (".data/version" first, then "version"), byteorder (torch 2.x:
// "little" or "big", and "big" is byte-swapped on load, torch 1.13 ignores
// the record) and .storage_alignment (torch 2.x: int() of its bytes).
void check_torch_records(const container::ZipReader& zip, const std::string& file,
                         std::vector<std::string>& problems) {
  const container::ZipRecord* v = zip.find(".data/version");
  if (!v) v = zip.find("version");
  if (v) {
    std::optional<std::string> text = small_record(zip, *v);
    std::optional<uint64_t> n = text ? stoull_like(*text) : std::nullopt;
    // kMinSupportedFileFormatVersion 1 .. kMaxSupportedFileFormatVersion 10.
    if (text && (!n || *n < 1 || *n > 10))
      problems.push_back(file + ": record '" + v->name + "' holds no file format version torch accepts (" +
                         (n ? std::to_string(*n) : std::string("not an integer")) +
                         "; torch reads it with std::stoull and wants 1 to 10): torch.load refuses the archive");
  }
  if (const container::ZipRecord* b = zip.find("byteorder")) {
    std::optional<std::string> text = small_record(zip, *b);
    if (text && *text == "big")
      problems.push_back(file + ": record '" + b->name +
                         "' says 'big': torch 2.x byte-swaps every storage on load, torch 1.13 does not, and ckpt "
                         "reads storages as little-endian: the weights depend on who loads them");
    else if (text && *text != "little")
      problems.push_back(file + ": record '" + b->name +
                         "' is neither 'little' nor 'big': torch 2.x refuses the archive (Unknown endianness type)");
  }
  if (const container::ZipRecord* a = zip.find(".storage_alignment")) {
    std::optional<std::string> text = small_record(zip, *a);
    if (text && !python_int_accepts(*text))
      problems.push_back(file + ": record '" + a->name +
                         "' is not an integer: torch 2.x's int() of it fails and torch.load refuses the archive");
  }
  if (zip.has_case_duplicates())
    problems.push_back(file + ": records '" + zip.case_duplicate() +
                       "' have names equal but for case (or equal): torch reads the one miniz's sorted lookup "
                       "finds (ckpt reads the same), other zip readers may read another");
}

void check_zip(const Checkpoint& ck, std::vector<std::string>& problems) {
  const container::ZipReader& zip = *ck.zip();
  const std::string& file = ck.path();
  if (!zip.find("version") && !zip.find(".data/version"))
    problems.push_back(file + ": no 'version' record (" +
                       (ck.archive_name().empty() ? std::string("version") : ck.archive_name() + "/version") +
                       "): torch.load refuses the archive");
  check_torch_records(zip, file, problems);
  std::set<const container::ZipRecord*> storage_records;
  for (const auto& [key, s] : ck.storages())
    if (s.record) storage_records.insert(s.record);
  for (const container::ZipRecord& r : zip.records()) {
    uint16_t allowed = kExpectedFlags | (r.method == 8 ? kDeflateOptionFlags : 0);
    if (r.flags & ~allowed) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "general-purpose flags 0x%04x", static_cast<unsigned>(r.flags));
      problems.push_back(file + ": record '" + r.name + "' has " + buf +
                         " (bits torch.save never sets: zip readers disagree on such records)");
    }
    std::string rel = zip.relative_name(r);
    // *.pkl records are scanned (TorchScript's constants.pkl is unpickled by torch.jit.load,
    // its *.debug_pkl by the jit's own restricted unpickler).
    auto ends = [&](std::string_view suffix) {
      return rel.size() >= suffix.size() && rel.compare(rel.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    bool pkl = ends(".pkl") || ends(".debug_pkl");
    bool torch_reads = pkl || storage_records.count(&r) || rel == "version" || rel == ".data/version" ||
                       rel == "byteorder" || rel == ".format_version" || rel == ".storage_alignment" ||
                       rel == ".data/serialization_id";
    if (torch_reads || r.size < 2) continue;
    std::string head;
    try {
      if (r.method == 0)
        head = zip.file().read_string(zip.data_offset(r), 2);
      else if (r.size <= (uint64_t{64} << 20))
        head = zip.read(r, uint64_t{64} << 20).substr(0, 2);
    } catch (const Error&) {
      continue;  // unreadable records are reported by the CRC pass
    }
    if (starts_like_pickle(head))
      problems.push_back(file + ": record '" + r.name +
                         "' holds a pickle that torch.load never unpickles (a payload hidden from scanners "
                         "that read only data.pkl, or meant for another loader)");
  }
}

// A zip end-of-central-directory record in the tail of a non-zip file.
void check_polyglot(const Checkpoint& ck, std::vector<std::string>& problems) {
  RandomAccessFile& f = ck.file();
  uint64_t size = f.size();
  uint64_t tail = std::min<uint64_t>(size, 22 + 65535);
  std::string bytes = f.read_string(size - tail, static_cast<size_t>(tail));
  auto at = bytes.rfind(std::string_view("PK\x05\x06", 4));
  if (at != std::string::npos)
    problems.push_back(ck.path() + ": a " + to_string(ck.format()) + " file that also holds a zip end record at offset " +
                       std::to_string(size - tail + at) +
                       " (a polyglot: torch.load reads the " + to_string(ck.format()) +
                       " pickles, zip tools and some scanners read the zip)");
}

void check_setitem_targets(const Checkpoint& ck, std::vector<std::string>& problems) {
  pickle::walk_graph(ck.root(), pickle::kAllEdges, [&](const Node* n) {
    if (n->kind == Kind::Object && !n->entries.empty() && !is_dict_class(n->callable)) {
      std::string what = describe_callable(n->callable);
      problems.push_back(ck.path() + ": SETITEM(S) applied to " + what + " (not a dict): torch.load calls its " +
                         "__setitem__ with " + std::to_string(n->entries.size()) +
                         " item(s), changing it as it loads (CVE-2026-24747)");
    }
    return true;
  });
}

}  // namespace

std::vector<std::string> integrity_problems(const Checkpoint& ck) {
  std::vector<std::string> problems;
  if (ck.zip())
    check_zip(ck, problems);
  else
    check_polyglot(ck, problems);
  check_setitem_targets(ck, problems);
  return problems;
}

}  // namespace ckpt::torch
