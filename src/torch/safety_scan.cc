#include "torch/safety_scan.h"

#include <algorithm>
#include <cctype>

#include "container/zip_reader.h"
#include "pickle/allowlist.h"
#include "pickle/unpickler.h"
#include "torch/dtype.h"
#include "torch/checkpoint.h"
#include "torch/container_kind.h"
#include "torch/dcp.h"
#include "torch/safetensors_shards.h"
#include "util/coding.h"
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

bool ends_with_ignoring_case(const std::string& s, std::string_view suffix) {
  if (s.size() < suffix.size()) return false;
  for (size_t i = 0; i < suffix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[s.size() - suffix.size() + i])) !=
        std::tolower(static_cast<unsigned char>(suffix[i])))
      return false;
  return true;
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

  // A torch distributed checkpoint's `.metadata`: torch.distributed.checkpoint
  // reads it with a plain pickle.load (the first pickle; what follows is
  // never read), which may build DCP's own metadata dataclasses.
  SafetyScan run_dcp_metadata() {
    out_.container = "pickle";
    allows_ = pickle::dcp_metadata_allows;
    auto file = env_.open_read(out_.path);
    try {
      uint64_t size = file->size();
      if (size > limits_.max_pickle_bytes)
        throw FormatError(out_.path + ": " + std::to_string(size) + " bytes, over the " +
                          std::to_string(limits_.max_pickle_bytes) + "-byte limit for a pickle");
      if (size == 0) throw FormatError(out_.path + ": empty file, not DCP metadata");
      scan_single(file->read_string(0, static_cast<size_t>(size)), 0, ".metadata");
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
    size_t frame_end = 0;
    std::vector<pickle::GlobalUse> uses = pickle::scan_globals(data.substr(pos), source, &used, &frame_end);
    last_frame_end_ = frame_end > used ? pos + frame_end : 0;
    for (auto& u : uses) {
      // A class whose attributes the pickle sets is never allowed (the
      // tar + collections.Counter trick of issue 19).
      bool allowed = u.module != "?" && !u.class_built && allows_(u.module, u.name);
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

  // Every record a loader may unpickle: the one torch's getRecord("data.pkl")
  // resolves to (ASCII case ignored, miniz's pick among duplicates), and
  // every record whose name ends in ".pkl" in any case (a TorchScript
  // archive's constants.pkl, duplicates torch does not pick).
  void scan_zip(std::unique_ptr<RandomAccessFile> file) {
    container::ZipReader zip(std::move(file));
    const container::ZipRecord* data_pkl = zip.find("data.pkl");
    for (const container::ZipRecord& r : zip.records()) {
      if (!ends_with_ignoring_case(r.name, ".pkl") && &r != data_pkl) continue;
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
    if (zip.torch_routes_to_jit())
      throw FormatError(out_.path + ": a TorchScript archive (it holds '" + zip.archive_name() +
                        "/constants.pkl'): torch.load hands it to torch.jit.load, which runs the archive's code; "
                        "ckpt does not model TorchScript, so it never calls one safe");
  }

  void scan_legacy(RandomAccessFile& f) {
    uint64_t window = std::min<uint64_t>(f.size(), limits_.max_pickle_bytes);
    std::string head = f.read_string(0, static_cast<size_t>(window));
    size_t pos = 0;
    for (const char* what : kLegacyPickles) {
      if (pos >= head.size())
        throw FormatError(out_.path + ": legacy file ends before its " + std::string(what) + " pickle");
      pos = scan_one(head, pos, 0, std::string("legacy ") + what + " pickle");
      // torch reads a legacy file through a buffered file object: where the
      // next pickle.load starts after a FRAME that runs past STOP depends on
      // how much BufferedReader.peek returned (CPython's
      // _Unpickler_ReadFromFile), i.e. on the file system's block size.
      if (last_frame_end_)
        throw FormatError(out_.path + ": the legacy " + what + " pickle's FRAME runs " +
                          std::to_string(last_frame_end_ - pos) +
                          " bytes past its STOP: where torch's next pickle.load starts then depends on "
                          "Python's file buffering, which ckpt does not model");
    }
    // The rest is storage bytes; the checkpoint reader checks that it is
    // exactly what the key list declares.
    Checkpoint::open(env_, out_.path);
  }

  // The members as Python's tarfile lists them (container_kind.h).
  std::vector<TarMember> tar_members(RandomAccessFile& f) {
    std::string unmodelled;
    std::optional<std::vector<TarMember>> members = python_tarfile_members(f, &unmodelled);
    if (!members)  // detect_container checked this; a file that changed meanwhile
      throw FormatError(out_.path + ": tarfile refuses the archive now");
    if (!unmodelled.empty()) throw FormatError(out_.path + ": " + unmodelled);
    return *members;
  }

  const TarMember& tar_member(const std::vector<TarMember>& members, const std::string& name) {
    for (auto it = members.rbegin(); it != members.rend(); ++it) {
      if (it->name != name) continue;
      if (!it->regular())
        throw FormatError(out_.path + ": tar member '" + name +
                          "' is not a regular file (a link or directory: torch would extract it and read what it "
                          "points at, which ckpt does not model)");
      return *it;
    }
    throw FormatError(out_.path + ": tar archive without the member '" + name + "' (torch.load fails)");
  }

  // Scans the pickle at data[pos...] and unpickles it (nothing is run).
  pickle::Graph scan_and_read(std::string_view data, size_t& pos, uint64_t file_offset, const std::string& name) {
    size_t start = pos;
    pos = scan_one(data, pos, file_offset, name);
    pickle::Graph g = pickle::unpickle(data.substr(start, pos - start), {.limits = {}, .source = out_.path + ": " + name});
    // torch opens tar members unbuffered (open(..., "rb", 0): no peek), so
    // CPython's unpickler read a FRAME whole with read(n) and the next read
    // starts at the frame's end even when STOP came earlier.
    if (last_frame_end_) {
      if (last_frame_end_ > data.size())
        throw FormatError(out_.path + ": " + name + ": FRAME runs past the end of its tar member");
      pos = last_frame_end_;
    }
    return g;
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
      uint64_t numel = decode_fixed64(data.data() + pos);
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
      auto ndim = static_cast<int32_t>(decode_fixed32(data.data() + pos));
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
  bool (*allows_)(std::string_view, std::string_view) = pickle::audiocraft_allows;
  SafetyScan out_;
  // After scan_one: where the last FRAME of that pickle ends, in the data
  // scan_one was given, when that is past its STOP; else 0.
  size_t last_frame_end_ = 0;
};

// A torch distributed checkpoint (torch.distributed.checkpoint.load with
// its FileSystemReader): `.metadata` by pickle.load, then each item the
// metadata names by torch.load of its slice of a .distcp file (tensor chunks
// with weights_only=True, other objects with weights_only=False). Every
// slice is scanned as a file of its own; files the metadata does not name
// are never read.
SafetyScan scan_dcp(Env& env, const std::string& dir, const ScanLimits& limits) {
  SafetyScan s;
  s.path = dir;
  s.container = "dcp";
  auto take = [&s](SafetyScan&& part, const std::string& prefix) {
    for (auto& p : part.pickles) {
      p.name = prefix + p.name;
      s.pickles.push_back(std::move(p));
    }
    for (auto& g : part.globals) {
      g.record = prefix + g.record;
      s.globals.push_back(std::move(g));
    }
    if (s.problem.empty() && !part.problem.empty()) s.problem = part.problem;
  };
  take(FileScanner(env, join_path(dir, ".metadata"), limits).run_dcp_metadata(), "");
  // pickle.load of .metadata comes first: what it would run is decided there.
  if (!s.readable() || !s.all_allowed()) return s;
  std::unique_ptr<DcpCheckpoint> dcp;
  try {
    dcp = DcpCheckpoint::open(env, dir);
  } catch (const FormatError& e) {
    s.problem = e.what();
    return s;
  }
  auto scan_item = [&](const DcpLocation& where) {
    std::string name = dcp->slice_name(where);
    auto slice = dcp->slice_env(where);
    SafetyScan part = FileScanner(*slice, name, limits).run();
    // Offsets in the slice, moved to the .distcp file's.
    for (auto& p : part.pickles) p.offset += where.offset;
    for (auto& g : part.globals) g.file_offset += where.offset;
    take(std::move(part), where.file + " [item at " + std::to_string(where.offset) + "]: ");
  };
  for (const DcpItem& item : dcp->items()) {
    if (item.is_tensor)
      for (const DcpChunk& c : item.chunks) scan_item(c.where);
    else
      scan_item(item.where);
  }
  return s;
}

}  // namespace

SafetyScan scan_file(Env& env, const std::string& path, const ScanLimits& limits) {
  // A Hugging Face index (or a folder holding one): its shards are
  // safetensors, which hold no pickle; each shard's header is checked as
  // safetensors' loader checks it, and the index against the shards.
  if (path != "-") {
    if (std::string index = safetensors_index_of(env, path); !index.empty()) {
      SafetyScan s;
      s.path = path;
      s.container = "safetensors index";
      try {
        checkpoint_from_safetensors_index(env, index);
      } catch (const FormatError& e) {
        s.problem = e.what();
      }
      return s;
    }
  }
  if (DcpCheckpoint::is_dcp_folder(env, path)) return scan_dcp(env, path, limits);
  if (path != "-" && env.is_directory(path))
    throw FormatError(path + ": a folder with neither a DCP .metadata nor a safetensors index: scan the checkpoint "
                      "files in it one by one (ckpt scan " + join_path(path, "FILE") + ")");
  return FileScanner(env, path, limits).run();
}

}  // namespace ckpt::torch
