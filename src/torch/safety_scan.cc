#include "torch/safety_scan.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "container/zip_reader.h"
#include "pickle/allowlist.h"
#include "pickle/unpickler.h"
#include "torch/dtype.h"
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
      scan_single(data, zip.data_offset(r), r.name);
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

  // A tar member as Python's tarfile lists it.
  struct TarMember {
    std::string name;
    char type = '0';
    uint64_t offset = 0, size = 0;
  };

  // The members, read as tarfile reads them (ustar prefix, last of a name
  // wins for getmember). Anything tarfile might read differently (PAX or GNU
  // long-name headers, a damaged header: torch then falls back to reading the
  // file as pickles) is a problem, so the file is never called safe.
  std::vector<TarMember> tar_members(RandomAccessFile& f) {
    std::vector<TarMember> members;
    uint64_t off = 0;
    while (off < f.size()) {
      if (f.size() - off < 512)
        throw FormatError(out_.path + ": tar header at offset " + std::to_string(off) + " is cut short");
      std::string h = f.read_string(off, 512);
      if (std::all_of(h.begin(), h.end(), [](char c) { return c == '\0'; })) break;
      if (!tar_checksum_matches(h))
        throw FormatError(out_.path + ": tar header at offset " + std::to_string(off) +
                          " has a bad checksum (torch would read the file another way)");
      auto field = [&](size_t at, size_t len) {
        std::string v = h.substr(at, len);
        auto nul = v.find('\0');
        return nul == std::string::npos ? v : v.substr(0, nul);
      };
      TarMember m;
      m.name = field(0, 100);
      m.type = h[156];
      if (h.compare(257, 6, std::string("ustar\0", 6)) == 0 && !field(345, 155).empty())
        m.name = field(345, 155) + "/" + m.name;
      std::string size_text = field(124, 12);
      uint64_t size = 0;
      for (char c : size_text) {
        if (c == ' ') continue;
        if (c < '0' || c > '7' || size > (uint64_t{1} << 50))
          throw FormatError(out_.path + ": tar member '" + m.name + "' has a size field ckpt does not model");
        size = size * 8 + static_cast<uint64_t>(c - '0');
      }
      if (m.type == 'x' || m.type == 'g' || m.type == 'L' || m.type == 'K')
        throw FormatError(out_.path + ": tar member at offset " + std::to_string(off) +
                          " is a PAX or GNU extended header, which ckpt does not model");
      m.offset = off + 512;
      m.size = size;
      if (size > f.size() - m.offset)
        throw FormatError(out_.path + ": tar member '" + m.name + "' runs past the end of the file");
      members.push_back(m);
      off = m.offset + (size + 511) / 512 * 512;
    }
    return members;
  }

  const TarMember& tar_member(const std::vector<TarMember>& members, const std::string& name) {
    for (auto it = members.rbegin(); it != members.rend(); ++it) {
      if (it->name != name) continue;
      if (it->type != '0' && it->type != '\0' && it->type != '7')
        throw FormatError(out_.path + ": tar member '" + name + "' is not a regular file (a link?)");
      return *it;
    }
    throw FormatError(out_.path + ": tar archive without the member '" + name + "' (torch.load fails)");
  }

  // Scans the pickle at data[pos...] and unpickles it (nothing is run).
  pickle::Graph scan_and_read(std::string_view data, size_t& pos, uint64_t file_offset, const std::string& name) {
    size_t start = pos;
    pos = scan_one(data, pos, file_offset, name);
    return pickle::unpickle(data.substr(start, pos - start), {.limits = {}, .source = out_.path + ": " + name});
  }

  static int64_t count_of(const pickle::Graph& g, const std::string& what) {
    if (!g.root || g.root->kind != pickle::Kind::Int || g.root->is_big_int() || g.root->integer < 0)
      throw FormatError(what + " is not a count");
    return g.root->integer;
  }

  // torch < 0.4's tar form, read as torch's legacy_load reads it: 'storages'
  // (a count, then per storage a (key, location, class) pickle, an int64
  // element count and the bytes; then the views pickle), 'tensors' (a count,
  // then per tensor a pickle and its raw geometry), then 'pickle'.
  void scan_tar(RandomAccessFile& f) {
    std::vector<TarMember> members = tar_members(f);
    auto read_member = [&](const TarMember& m) {
      if (m.size > limits_.max_pickle_bytes)
        throw FormatError(out_.path + ": tar member '" + m.name + "' is over the " +
                          std::to_string(limits_.max_pickle_bytes) + "-byte limit");
      return f.read_string(m.offset, static_cast<size_t>(m.size));
    };
    const TarMember& st = tar_member(members, "storages");
    std::string data = read_member(st);
    size_t pos = 0;
    std::string where = out_.path + ": tar member 'storages'";
    int64_t n = count_of(scan_and_read(data, pos, st.offset, "tar storages count pickle"), where + " count");
    for (int64_t i = 0; i < n; ++i) {
      pickle::Graph args = scan_and_read(data, pos, st.offset, "tar storage " + std::to_string(i) + " pickle");
      const pickle::Node* t = args.root;
      if (!t || t->kind != pickle::Kind::Tuple || t->items.size() != 3 || t->items[2]->kind != pickle::Kind::Global ||
          t->items[2]->text != "torch")
        throw FormatError(where + ": storage " + std::to_string(i) + " is not (key, location, torch storage class)");
      const DTypeInfo* dt = from_storage_class(t->items[2]->name);
      if (!dt) throw FormatError(where + ": unknown storage class torch." + t->items[2]->name);
      if (data.size() - pos < 8) throw FormatError(where + ": storage " + std::to_string(i) + " is cut short");
      uint64_t numel = 0;
      std::memcpy(&numel, data.data() + pos, 8);
      pos += 8;
      if (numel > (data.size() - pos) / dt->element_size)
        throw FormatError(where + ": storage " + std::to_string(i) + " runs past the member");
      pos += static_cast<size_t>(numel * dt->element_size);
    }
    scan_and_read(data, pos, st.offset, "tar storage views pickle");

    const TarMember& te = tar_member(members, "tensors");
    data = read_member(te);
    pos = 0;
    where = out_.path + ": tar member 'tensors'";
    n = count_of(scan_and_read(data, pos, te.offset, "tar tensors count pickle"), where + " count");
    for (int64_t i = 0; i < n; ++i) {
      scan_and_read(data, pos, te.offset, "tar tensor " + std::to_string(i) + " pickle");
      if (data.size() - pos < 8) throw FormatError(where + ": tensor " + std::to_string(i) + " is cut short");
      int32_t ndim = 0;
      std::memcpy(&ndim, data.data() + pos, 4);
      pos += 8;
      if (ndim < 0 || static_cast<uint64_t>(ndim) * 16 + 8 > data.size() - pos)
        throw FormatError(where + ": tensor " + std::to_string(i) + " geometry is cut short");
      pos += static_cast<size_t>(ndim) * 16 + 8;
    }

    const TarMember& pk = tar_member(members, "pickle");
    data = read_member(pk);
    pos = 0;
    scan_one(data, pos, pk.offset, "tar pickle");
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
    if (legacy_magic_pickle_size(data)) {
      // The magic number, padded past what detect_container looks at.
      out_.container = "legacy";
      scan_legacy(f);
      return;
    }
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
