#include "torch/safety_scan.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "container/zip_reader.h"
#include "pickle/allowlist.h"
#include "torch/checkpoint.h"
#include "torch/container_kind.h"
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
      // The reader torch.load would pick, in torch's order.
      ContainerGuess guess = detect_container(*file);
      out_.container = to_string(guess.kind);
      switch (guess.kind) {
        case ContainerKind::Zip: scan_zip(std::move(file)); break;
        case ContainerKind::Tar: scan_tar(*file); break;
        case ContainerKind::Legacy: scan_legacy(*file); break;
        case ContainerKind::Pickle: scan_bare(*file); break;
      }
    } catch (const FormatError& e) {
      if (out_.problem.empty()) out_.problem = e.what();
    }
    return std::move(out_);
  }

 private:
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
      uint64_t at = p.offset + u.first_offset;
      out_.globals.push_back(ScannedGlobal{std::move(u), name, allowed, at});
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

  // torch.load reads the tar form's members 'storages', 'tensors' (pickles
  // between raw bytes) and 'pickle'. ckpt does not model that interleaving,
  // so such a file is never called safe.
  void scan_tar(RandomAccessFile&) {
    throw FormatError(out_.path + ": a tar archive (torch < 0.4's form, or a tar that torch.load would read as "
                      "one): its pickles sit between raw storage bytes, which ckpt does not model; not scanned");
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
    size_t first_global = out_.globals.size();
    scan_single(data, 0, "pickle");
    // torch.load goes on past this pickle only if its value equals the legacy
    // magic number. A literal number was recognised already; a value built by
    // calls cannot be told without running them, so more bytes after it are
    // never ignored: they may be the rest of a legacy file.
    bool builds_objects = out_.globals.size() > first_global;
    bool all_allowed = std::all_of(out_.globals.begin() + static_cast<std::ptrdiff_t>(first_global),
                                   out_.globals.end(), [](const ScannedGlobal& g) { return g.allowed; });
    if (builds_objects && all_allowed && out_.pickles.back().trailing_bytes)
      throw FormatError(out_.path + ": the first pickle builds its value with calls and " +
                        std::to_string(out_.pickles.back().trailing_bytes) +
                        " bytes follow: torch.load would read them as a legacy file if that value "
                        "equals the magic number, which ckpt cannot tell without running the calls");
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
