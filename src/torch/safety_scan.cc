#include "torch/safety_scan.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "container/zip_reader.h"
#include "pickle/allowlist.h"
#include "torch/checkpoint.h"
#include "util/crc32.h"
#include "util/error.h"

namespace ckpt::torch {

const char* to_string(Verdict v) {
  switch (v) {
    case Verdict::Safe: return "safe";
    case Verdict::Unsafe: return "unsafe";
    case Verdict::Unreadable: return "unreadable";
  }
  return "?";
}

bool SafetyScan::all_allowed() const {
  return std::all_of(globals.begin(), globals.end(), [](const ScannedGlobal& g) { return g.allowed; });
}

Verdict SafetyScan::verdict() const {
  if (!readable()) return Verdict::Unreadable;
  return all_allowed() ? Verdict::Safe : Verdict::Unsafe;
}

namespace {

// The legacy format starts with the pickled magic number 0x1950a86a20f9469cfc6c.
constexpr unsigned char kLegacyMagic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                          0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
// magic, protocol version, sys_info, the object, the storage keys.
constexpr const char* kLegacyPickles[] = {"magic", "protocol", "sys_info", "object", "storage keys"};

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// What a file that is not a pickle at all most likely is.
std::string not_a_pickle(const std::string& path, std::string_view head, uint64_t size) {
  if (size == 0) return path + ": empty file, not a checkpoint or pickle";
  if (head.substr(0, 40) == "version https://git-lfs.github.com/spec/")
    return path + ": a Git LFS pointer, not the checkpoint: run git lfs pull";
  std::string lower;
  for (char c : head.substr(0, 64)) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto ws = lower.find_first_not_of(" \t\r\n");
  if (ws != std::string::npos && (lower.compare(ws, 9, "<!doctype") == 0 || lower.compare(ws, 5, "<html") == 0))
    return path + ": an HTML page, not a checkpoint or pickle";
  return {};
}

class FileScanner {
 public:
  FileScanner(Env& env, const std::string& path, const ScanLimits& limits)
      : env_(env), limits_(limits) {
    out_.path = path;
  }

  SafetyScan run() {
    auto file = env_.open_read(out_.path);
    try {
      if (container::ZipReader::looks_like_zip(*file)) {
        out_.container = "zip";
        scan_zip(std::move(file));
      } else if (looks_like_legacy(*file)) {
        out_.container = "legacy";
        scan_legacy(*file);
      } else {
        out_.container = "pickle";
        scan_bare(*file);
      }
    } catch (const FormatError& e) {
      if (out_.problem.empty()) out_.problem = e.what();
    }
    return std::move(out_);
  }

 private:
  static bool looks_like_legacy(RandomAccessFile& f) {
    if (f.size() < sizeof kLegacyMagic) return false;
    std::string head = f.read_string(0, sizeof kLegacyMagic);
    return std::memcmp(head.data(), kLegacyMagic, sizeof kLegacyMagic) == 0;
  }

  // Scans the pickle at data[pos...]; returns the offset just past its STOP.
  // A malformed pickle stays listed as incomplete and its FormatError
  // becomes the problem.
  size_t scan_one(std::string_view data, size_t pos, uint64_t file_offset, const std::string& name) {
    ScannedPickle p;
    p.name = name;
    p.offset = file_offset + pos;
    out_.pickles.push_back(p);
    size_t used = 0;
    std::string source = out_.path + ": " + name;
    std::vector<pickle::GlobalUse> uses = pickle::scan_globals(data.substr(pos), source, &used);
    for (auto& u : uses) {
      bool allowed = u.module != "?" && pickle::audiocraft_allows(u.module, u.name);
      out_.globals.push_back(ScannedGlobal{std::move(u), name, allowed});
    }
    out_.pickles.back().size = used;
    out_.pickles.back().complete = true;
    return pos + used;
  }

  // The one pickle a bare file or zip record holds; bytes after its STOP
  // are counted, not scanned (no loader reads them).
  void scan_single(std::string_view data, uint64_t file_offset, const std::string& name) {
    size_t end = scan_one(data, 0, file_offset, name);
    out_.pickles.back().trailing_bytes = data.size() - end;
  }

  void scan_zip(std::unique_ptr<RandomAccessFile> file) {
    container::ZipReader zip(std::move(file));
    for (const container::ZipRecord& r : zip.records()) {
      if (!ends_with(r.name, ".pkl")) continue;
      if (r.size > limits_.max_pickle_bytes)
        throw FormatError(out_.path + ": record '" + r.name + "' declares " + std::to_string(r.size) +
                          " bytes, over the " + std::to_string(limits_.max_pickle_bytes) + "-byte limit for a pickle");
      if (r.method != 0 && r.size > limits_.max_inflated_pickle_bytes)
        throw FormatError(out_.path + ": record '" + r.name + "' is compressed and inflates to " +
                          std::to_string(r.size) + " bytes, over the " +
                          std::to_string(limits_.max_inflated_pickle_bytes) + " allowed (a DEFLATE bomb?)");
      std::string data = zip.read(r, limits_.max_pickle_bytes);
      if (crc32_update(0, data.data(), data.size()) != r.crc32)
        throw FormatError(out_.path + ": record '" + r.name + "': CRC-32 differs from the central directory's");
      if (data.empty()) throw FormatError(out_.path + ": record '" + r.name + "' is empty");
      scan_single(data, r.data_offset, r.name);
    }
    if (out_.pickles.empty())
      throw FormatError(out_.path + ": zip archive without a .pkl record: no pickle to scan");
  }

  void scan_legacy(RandomAccessFile& f) {
    uint64_t window = std::min<uint64_t>(f.size(), limits_.max_pickle_bytes);
    std::string head = f.read_string(0, static_cast<size_t>(window));
    size_t pos = 0;
    for (const char* what : kLegacyPickles) {
      if (pos >= head.size())
        throw FormatError(out_.path + ": legacy file ends before its " + std::string(what) + " pickle");
      pos = scan_one(head, pos, 0, std::string("legacy ") + what + " pickle");
    }
    // The rest is storage bytes; the checkpoint reader checks that it is
    // exactly what the key list declares.
    Checkpoint::open(env_, out_.path);
  }

  void scan_bare(RandomAccessFile& f) {
    uint64_t size = f.size();
    std::string head = f.read_string(0, static_cast<size_t>(std::min<uint64_t>(size, 256)));
    std::string hint = not_a_pickle(out_.path, head, size);
    if (!hint.empty()) throw FormatError(hint);
    if (size > limits_.max_pickle_bytes)
      throw FormatError(out_.path + ": " + std::to_string(size) + " bytes, over the " +
                        std::to_string(limits_.max_pickle_bytes) + "-byte limit for a pickle");
    std::string data = f.read_string(0, static_cast<size_t>(size));
    scan_single(data, 0, "pickle");
  }

  Env& env_;
  ScanLimits limits_;
  SafetyScan out_;
};

}  // namespace

SafetyScan scan_file(Env& env, const std::string& path, const ScanLimits& limits) {
  return FileScanner(env, path, limits).run();
}

}  // namespace ckpt::torch
