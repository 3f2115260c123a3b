#include "torch/dcp.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "pickle/unpickler.h"
#include "torch/safetensors.h"
#include "torch/tensor_data.h"
#include "util/error.h"
#include "util/http_file.h"

namespace ckpt::torch {

using pickle::Kind;
using pickle::Node;

namespace {

constexpr const char* kMetadataModule = "torch.distributed.checkpoint.metadata";
constexpr uint64_t kMaxMetadataBytes = uint64_t{256} << 20;
// Chunk runs kept per tensor (16 bytes each): a tensor chunked finer than
// this is refused rather than indexed.
constexpr uint64_t kMaxRuns = uint64_t{1} << 24;

// A window [offset, offset + length) of another file, seen as a whole file.
class SliceFile : public RandomAccessFile {
 public:
  SliceFile(std::shared_ptr<RandomAccessFile> base, uint64_t offset, uint64_t length, std::string name)
      : base_(std::move(base)), offset_(offset), length_(length), name_(std::move(name)) {}
  void read(uint64_t offset, size_t n, char* buf) override {
    if (offset > length_ || n > length_ - offset)
      throw FormatError(name_ + ": read of " + std::to_string(n) + " bytes at " + std::to_string(offset) +
                        " is past the item's end (" + std::to_string(length_) + " bytes)");
    base_->read(offset_ + offset, n, buf);
  }
  uint64_t size() const override { return length_; }
  const std::string& path() const override { return name_; }

 private:
  std::shared_ptr<RandomAccessFile> base_;
  uint64_t offset_, length_;
  std::string name_;
};

// One slice of a .distcp file under a made-up name, opened as often as a
// reader asks (a legacy-format item is opened twice); nothing else.
class SliceEnv : public Env {
 public:
  SliceEnv(std::shared_ptr<RandomAccessFile> base, uint64_t offset, uint64_t length, std::string name)
      : base_(std::move(base)), offset_(offset), length_(length), name_(std::move(name)) {}
  std::unique_ptr<RandomAccessFile> open_read(const std::string&) override {
    return std::make_unique<SliceFile>(base_, offset_, length_, name_);
  }
  std::unique_ptr<WritableFile> create(const std::string& p) override { throw UsageError("read-only: " + p); }
  void rename(const std::string& from, const std::string&) override { throw UsageError("read-only: " + from); }
  void remove(const std::string&) override {}
  bool exists(const std::string&) override { return false; }
  void sync_dir(const std::string&) override {}

 private:
  std::shared_ptr<RandomAccessFile> base_;
  uint64_t offset_, length_;
  std::string name_;
};

std::string join(const std::string& dir, const std::string& name) { return join_path(dir, name); }

// A remote name is a DCP folder when it ends with '/' or names its .metadata;
// a name without a suffix (https://host/run/dcp, hf://ORG/REPO/step100) is one
// when FOLDER/.metadata opens (one request, remembered for the process). A
// folder cannot be listed over HTTP: the shards are named by the metadata.
bool is_remote_dcp_folder(Env& env, const std::string& path) {
  const std::string name = last_name(path);
  if (name == ".metadata" || (!path.empty() && path.back() == '/')) return true;
  if (name.find('.') != std::string::npos) return false;
  static std::mutex mu;
  static std::map<std::string, bool> known;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (auto it = known.find(path); it != known.end()) return it->second;
  }
  bool is_dcp = false;
  try {
    is_dcp = env.open_read(join(path, ".metadata"))->size() > 0;
  } catch (const Error&) {
    is_dcp = false;  // opening the name itself says what is wrong
  }
  std::lock_guard<std::mutex> lock(mu);
  known[path] = is_dcp;
  return is_dcp;
}

std::string location_text(const DcpLocation& w) {
  return w.file + " [" + std::to_string(w.offset) + ", +" + std::to_string(w.length) + "]";
}

// A dataclass instance as pickle writes it: NEWOBJ of the class, BUILD with a dict.
bool is_dataclass(const Node* n, const char* module, const char* name) {
  return n && n->is_instance_of(module, name);
}

const Node* field(const Node* obj, const char* name) {
  if (!obj || !obj->state || obj->state->kind != Kind::Dict) return nullptr;
  return pickle::get_item(obj->state, name);
}

int64_t int_value(const Node* n, const std::string& what) {
  if (!n || n->kind != Kind::Int || n->is_big_int()) throw FormatError(what + " is not an integer");
  return n->integer;
}

// torch.Size((...)) or a plain tuple / list of ints.
std::vector<int64_t> int_tuple(const Node* n, const std::string& what) {
  if (n && n->kind == Kind::Object && n->callable && n->callable->is_global("torch", "Size") && n->args &&
      n->args->kind == Kind::Tuple && n->args->items.size() == 1)
    n = n->args->items[0];
  if (!n || (n->kind != Kind::Tuple && n->kind != Kind::List)) throw FormatError(what + " is not a torch.Size");
  std::vector<int64_t> v;
  for (const Node* i : n->items) v.push_back(int_value(i, what));
  return v;
}

void check_file_name(const std::string& name, const std::string& where) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
      name.find('\\') != std::string::npos || name.find('\0') != std::string::npos)
    throw FormatError(where + ": storage file '" + name + "' is not a plain file name inside the folder");
}

uint64_t checked_numel(const std::vector<int64_t>& size, const std::string& where) {
  uint64_t n = 1;
  for (int64_t d : size) {
    if (d < 0) throw FormatError(where + ": negative size");
    if (d && n > (uint64_t{1} << 62) / static_cast<uint64_t>(d)) throw FormatError(where + ": size too large");
    n *= static_cast<uint64_t>(d);
  }
  return n;
}

}  // namespace

uint64_t DcpChunk::numel() const {
  uint64_t n = 1;
  for (int64_t d : sizes) n *= static_cast<uint64_t>(d);
  return n;
}

uint64_t DcpItem::numel() const {
  uint64_t n = 1;
  for (int64_t d : size) n *= static_cast<uint64_t>(d);
  return n;
}

bool DcpCheckpoint::is_dcp_folder(Env& env, const std::string& path) {
  if (http::is_remote(path)) return is_remote_dcp_folder(env, path);
  if (!env.is_directory(path)) return false;
  const std::string meta = join(path, ".metadata");
  return env.exists(meta) && !env.is_directory(meta);
}

bool DcpCheckpoint::is_dcp_folder(const std::string& path) { return is_dcp_folder(Env::Default(), path); }

std::shared_ptr<RandomAccessFile> DcpCheckpoint::file(const std::string& name) const {
  for (const auto& [n, f] : open_files_)
    if (n == name) return f;
  throw FormatError(dir_ + ": no storage file '" + name + "'");
}

std::string DcpCheckpoint::slice_name(const DcpLocation& where) const {
  return join(dir_, where.file) + " [item at " + std::to_string(where.offset) + "]";
}

std::unique_ptr<Env> DcpCheckpoint::slice_env(const DcpLocation& where) const {
  return std::make_unique<SliceEnv>(file(where.file), where.offset, where.length, slice_name(where));
}

std::unique_ptr<Checkpoint> DcpCheckpoint::open_slice(const DcpLocation& where) const {
  auto env = slice_env(where);
  return Checkpoint::open(*env, slice_name(where));
}

namespace {

// storage_data: MetadataIndex(fqn, offset) -> _StorageInfo(relative_path,
// offset, length), for tensor chunks (by fqn and chunk offsets) and byte
// items (by fqn).
struct StorageData {
  std::map<std::pair<std::string, std::vector<int64_t>>, DcpLocation> chunks;
  std::map<std::string, DcpLocation> bytes;
};

StorageData read_storage_data(const Node* root, const std::string& meta_path) {
  StorageData out;
  auto& where_of = out.chunks;
  auto& bytes_where = out.bytes;
  const Node* sd = field(root, "storage_data");
  if (!sd || sd->kind != Kind::Dict) throw FormatError(meta_path + ": storage_data is not a dict (not a FileSystemWriter checkpoint?)");
  for (const auto& [k, v] : sd->entries) {
    if (!is_dataclass(k, kMetadataModule, "MetadataIndex"))
      throw FormatError(meta_path + ": storage_data key is not a MetadataIndex");
    const Node* fqn = field(k, "fqn");
    if (!fqn || fqn->kind != Kind::Str) throw FormatError(meta_path + ": MetadataIndex without an fqn");
    std::string what = meta_path + ": storage of '" + fqn->text + "'";
    if (!is_dataclass(v, "torch.distributed.checkpoint.filesystem", "_StorageInfo"))
      throw FormatError(what + " is not a _StorageInfo");
    if (const Node* td = field(v, "transform_descriptors"); td && td->kind != Kind::None &&
                                                            !((td->kind == Kind::List || td->kind == Kind::Tuple) &&
                                                              td->items.empty()))
      throw FormatError(what + " uses storage transforms (compression, ...), which ckpt does not read");
    DcpLocation loc;
    const Node* rp = field(v, "relative_path");
    if (!rp || rp->kind != Kind::Str) throw FormatError(what + ": relative_path is not a string");
    loc.file = rp->text;
    check_file_name(loc.file, what);
    int64_t off = int_value(field(v, "offset"), what + ": offset");
    int64_t len = int_value(field(v, "length"), what + ": length");
    if (off < 0 || len < 0) throw FormatError(what + ": negative offset or length");
    loc.offset = static_cast<uint64_t>(off);
    loc.length = static_cast<uint64_t>(len);
    const Node* o = field(k, "offset");
    if (!o || o->kind == Kind::None) {
      if (!bytes_where.emplace(fqn->text, loc).second) throw FormatError(what + ": listed twice");
    } else if (!where_of.emplace(std::make_pair(fqn->text, int_tuple(o, what + ": offset")), loc).second) {
      throw FormatError(what + ": chunk listed twice");
    }
  }
  return out;
}

using CheckLocation = std::function<void(const DcpLocation&, const std::string&)>;

// A TensorStorageMetadata: dtype, requires_grad, size and chunks, each chunk
// inside the tensor and located in storage_data.
void read_tensor_metadata(const Node* v, DcpItem& item, const std::string& what, const StorageData& storage,
                          const CheckLocation& check_location) {
  const auto& where_of = storage.chunks;
  item.is_tensor = true;
  const Node* props = field(v, "properties");
  if (!is_dataclass(props, kMetadataModule, "TensorProperties") || !props->state)
    throw FormatError(what + ": properties are not TensorProperties");
  const Node* dt = nullptr;
  const Node* rg = nullptr;
  if (props->state->kind == Kind::Tuple && props->state->items.size() >= 3) {
    dt = props->state->items[0];
    rg = props->state->items[2];
  } else {
    dt = field(props, "dtype");
    rg = field(props, "requires_grad");
  }
  if (!dt || dt->kind != Kind::Global || dt->text != "torch" || !(item.dtype = from_name(dt->name)))
    throw FormatError(what + ": unknown tensor dtype");
  item.requires_grad = rg && rg->kind == Kind::Bool && rg->boolean;
  item.size = int_tuple(field(v, "size"), what + ": size");
  uint64_t numel = checked_numel(item.size, what);
  if (numel > (uint64_t{1} << 62) / item.dtype->element_size) throw FormatError(what + ": size too large");
  const Node* chunks = field(v, "chunks");
  if (!chunks || chunks->kind != Kind::List) throw FormatError(what + ": chunks is not a list");
  for (const Node* c : chunks->items) {
    if (!is_dataclass(c, kMetadataModule, "ChunkStorageMetadata"))
      throw FormatError(what + ": chunk is not a ChunkStorageMetadata");
    DcpChunk chunk;
    chunk.offsets = int_tuple(field(c, "offsets"), what + ": chunk offsets");
    chunk.sizes = int_tuple(field(c, "sizes"), what + ": chunk sizes");
    if (chunk.offsets.size() != item.size.size() || chunk.sizes.size() != item.size.size())
      throw FormatError(what + ": a chunk has " + std::to_string(chunk.sizes.size()) +
                        " dimensions, the tensor " + std::to_string(item.size.size()));
    for (size_t d = 0; d < item.size.size(); ++d)
      if (chunk.offsets[d] < 0 || chunk.sizes[d] < 0 || chunk.offsets[d] > item.size[d] ||
          chunk.sizes[d] > item.size[d] - chunk.offsets[d])
        throw FormatError(what + ": a chunk at offset " + std::to_string(chunk.offsets[d]) + " of size " +
                          std::to_string(chunk.sizes[d]) + " leaves dimension " + std::to_string(d) +
                          " (size " + std::to_string(item.size[d]) + ")");
    auto it = where_of.find({item.fqn, chunk.offsets});
    if (it == where_of.end()) throw FormatError(what + ": a chunk has no storage_data");
    chunk.where = it->second;
    check_location(chunk.where, what);
    item.chunks.push_back(std::move(chunk));
  }
  if (item.chunks.size() > std::numeric_limits<uint32_t>::max()) throw FormatError(what + ": too many chunks");
  DcpCheckpoint::runs_of(item, what);  // overlap / gap check
}

// The item's place in the state dict: planner_data's path, else its fqn.
void read_planner_path(const Node* planner, DcpItem& item, const std::string& what) {
  const Node* path = planner && planner->kind == Kind::Dict ? pickle::get_item(planner, item.fqn) : nullptr;
  if (path && path->kind != Kind::None) {
    if (path->kind != Kind::Tuple && path->kind != Kind::List)
      throw FormatError(what + ": planner_data path is not a tuple");
    for (const Node* s : path->items) {
      DcpPathStep step;
      if (s->kind == Kind::Str) {
        step.key = s->text;
      } else if (s->kind == Kind::Int && !s->is_big_int() && s->integer >= 0 && s->integer < (1 << 24)) {
        step.is_index = true;
        step.index = s->integer;
      } else {
        throw FormatError(what + ": planner_data path step is neither a string nor a list index");
      }
      item.path.push_back(std::move(step));
    }
    if (item.path.empty()) throw FormatError(what + ": empty planner_data path");
    if (item.path[0].is_index) throw FormatError(what + ": planner_data path starts with a list index");
  } else {
    item.path.push_back({false, item.fqn, 0});
  }
}

}  // namespace

std::unique_ptr<DcpCheckpoint> DcpCheckpoint::open(Env& env, const std::string& dir_in) {
  std::unique_ptr<DcpCheckpoint> dcp(new DcpCheckpoint);
  // A remote folder may be named by its .metadata file (the name a Hub page links to).
  const std::string dir =
      http::is_remote(dir_in) && last_name(dir_in) == ".metadata" ? sibling_path(dir_in, "") : dir_in;
  dcp->dir_ = dir;
  const std::string meta_path = join(dir, ".metadata");
  if (!env.exists(meta_path)) throw FormatError(dir + ": no .metadata: not a torch distributed checkpoint folder");
  auto meta_file = env.open_read(meta_path);
  if (meta_file->size() > kMaxMetadataBytes)
    throw FormatError(meta_path + ": " + std::to_string(meta_file->size()) + " bytes, over the limit");
  std::string data = meta_file->read_string(0, static_cast<size_t>(meta_file->size()));
  dcp->open_files_.emplace_back(".metadata", std::move(meta_file));
  pickle::Graph g = pickle::unpickle(data, {.limits = {}, .source = meta_path});
  const Node* root = g.root;
  if (!is_dataclass(root, kMetadataModule, "Metadata"))
    throw FormatError(meta_path + ": not a pickled torch.distributed.checkpoint Metadata");
  if (const Node* v = field(root, "version"); v && v->kind == Kind::Str) dcp->version_ = v->text;

  const StorageData storage = read_storage_data(root, meta_path);
  const auto& bytes_where = storage.bytes;

  // Open each file named once; check each location lies inside it.
  std::map<std::string, uint64_t> sizes;
  auto check_location = [&](const DcpLocation& loc, const std::string& what) {
    auto it = sizes.find(loc.file);
    if (it == sizes.end()) {
      std::string path = join(dir, loc.file);
      if (!env.exists(path)) throw FormatError(what + ": storage file " + path + " is missing");
      std::shared_ptr<RandomAccessFile> f = env.open_read(path);
      it = sizes.emplace(loc.file, f->size()).first;
      dcp->open_files_.emplace_back(loc.file, std::move(f));
    }
    if (loc.offset > it->second || loc.length > it->second - loc.offset)
      throw FormatError(what + ": bytes [" + std::to_string(loc.offset) + ", " +
                        std::to_string(loc.offset + loc.length) + ") are past the end of " + join(dir, loc.file) +
                        " (" + std::to_string(it->second) + " bytes; truncated?)");
  };

  const Node* planner = field(root, "planner_data");
  const Node* sdm = field(root, "state_dict_metadata");
  if (!sdm || sdm->kind != Kind::Dict) throw FormatError(meta_path + ": state_dict_metadata is not a dict");
  for (const auto& [k, v] : sdm->entries) {
    if (k->kind != Kind::Str) throw FormatError(meta_path + ": state_dict_metadata key is not a string");
    DcpItem item;
    item.fqn = k->text;
    std::string what = meta_path + ": '" + item.fqn + "'";
    if (is_dataclass(v, kMetadataModule, "BytesStorageMetadata")) {
      auto it = bytes_where.find(item.fqn);
      if (it == bytes_where.end()) throw FormatError(what + ": byte item without storage_data");
      item.where = it->second;
      check_location(item.where, what);
    } else if (is_dataclass(v, kMetadataModule, "TensorStorageMetadata")) {
      read_tensor_metadata(v, item, what, storage, check_location);
    } else {
      throw FormatError(what + ": unknown storage metadata type");
    }
    read_planner_path(planner, item, what);
    dcp->items_.push_back(std::move(item));
  }
  for (const auto& [n, s] : sizes) dcp->files_.emplace_back(n, s);
  return dcp;
}

std::vector<DcpRun> DcpCheckpoint::runs_of(const DcpItem& item, const std::string& where) {
  const auto& G = item.size;
  size_t nd = G.size();
  std::vector<int64_t> gstride = contiguous_strides(G);
  uint64_t total = item.numel();
  std::vector<DcpRun> runs;
  std::vector<uint64_t> run_len(item.chunks.size());
  for (uint32_t c = 0; c < item.chunks.size(); ++c) {
    const DcpChunk& ch = item.chunks[c];
    if (ch.numel() == 0) continue;
    if (nd == 0) {
      runs.push_back({0, c});
      run_len[c] = 1;
      continue;
    }
    // k: the outermost dimension below which the chunk spans whole dimensions.
    size_t k = nd - 1;
    while (k > 0 && ch.sizes[k] == G[k]) --k;
    uint64_t len = 1;
    for (size_t d = k; d < nd; ++d) len *= static_cast<uint64_t>(ch.sizes[d]);
    run_len[c] = len;
    uint64_t count = ch.numel() / len;
    if (runs.size() + count > kMaxRuns)
      throw FormatError(where + ": chunked into more than " + std::to_string(kMaxRuns) + " pieces");
    std::vector<int64_t> idx(k, 0);
    for (uint64_t r = 0; r < count; ++r) {
      uint64_t start = static_cast<uint64_t>(ch.offsets[k]) * static_cast<uint64_t>(gstride[k]);
      for (size_t d = 0; d < k; ++d)
        start += static_cast<uint64_t>(ch.offsets[d] + idx[d]) * static_cast<uint64_t>(gstride[d]);
      runs.push_back({start, c});
      for (size_t d = k; d-- > 0;) {
        if (++idx[d] < ch.sizes[d]) break;
        idx[d] = 0;
      }
    }
  }
  std::sort(runs.begin(), runs.end(), [](const DcpRun& a, const DcpRun& b) { return a.start < b.start; });
  uint64_t cursor = 0;
  for (const DcpRun& r : runs) {
    if (r.start < cursor)
      throw FormatError(where + ": chunks overlap at element " + std::to_string(r.start));
    if (r.start > cursor)
      throw FormatError(where + ": no chunk holds elements " + std::to_string(cursor) + " to " +
                        std::to_string(r.start - 1));
    cursor += run_len[r.chunk];
  }
  if (cursor != total)
    throw FormatError(where + ": no chunk holds elements " + std::to_string(cursor) + " to " +
                      std::to_string(total - 1));
  return runs;
}

// ---------------------------------------------------------------- chunks

namespace {

// A chunk's torch.save file, checked against the metadata.
struct OpenChunk {
  std::unique_ptr<Checkpoint> ck;
  TensorInfo tensor;
};

OpenChunk open_chunk(const DcpCheckpoint& dcp, const DcpItem& item, const DcpChunk& chunk) {
  OpenChunk oc;
  oc.ck = dcp.open_slice(chunk.where);
  std::string what = dcp.dir() + ": '" + item.fqn + "' chunk in " + location_text(chunk.where);
  auto t = oc.ck->tensor(oc.ck->root());
  if (!t) throw FormatError(what + " does not hold a tensor");
  oc.tensor = *t;
  if (oc.tensor.dtype != item.dtype)
    throw FormatError(what + " holds " + std::string(oc.tensor.dtype->name) + ", .metadata says " + item.dtype->name);
  if (oc.tensor.shape != chunk.sizes)
    throw FormatError(what + " has another shape than .metadata's chunk size");
  std::string problem = oc.tensor.view_problem();
  if (!problem.empty()) throw FormatError(what + ": " + problem);
  return oc;
}

}  // namespace

std::vector<std::string> verify_dcp(const DcpCheckpoint& dcp,
                                    const std::function<void(uint64_t, uint64_t)>& progress) {
  std::vector<std::string> problems;
  uint64_t total = 0, done = 0;
  for (const auto& item : dcp.items())
    for (const auto& c : item.chunks) total += c.where.length;
  auto check_records = [&](const Checkpoint& ck) {
    for (const auto& r : ck.zip()->records()) {
      uint32_t crc = ck.zip()->compute_crc(r);
      if (crc != r.crc32) problems.push_back(ck.path() + ": record '" + r.name + "': CRC-32 mismatch");
    }
  };
  for (const auto& item : dcp.items()) {
    try {
      if (!item.is_tensor) {
        auto ck = dcp.open_slice(item.where);
        if (!ck->zip()) throw FormatError(ck->path() + ": byte item is not a torch.save zip");
        check_records(*ck);
        continue;
      }
      for (const auto& chunk : item.chunks) {
        OpenChunk oc = open_chunk(dcp, item, chunk);
        if (!oc.ck->zip()) throw FormatError(oc.ck->path() + ": chunk is not a torch.save zip");
        check_records(*oc.ck);
        done += chunk.where.length;
        if (progress) progress(done, total);
      }
    } catch (const Error& e) {
      problems.push_back(e.what());
    }
  }
  return problems;
}

// ---------------------------------------------------------------- consolidate

Node* copy_subgraph(const Node* root, pickle::Graph& to, const std::string& what) {
  std::unordered_map<const Node*, Node*> copy;
  std::vector<const Node*> order;
  pickle::walk_graph(root, pickle::kAllEdges, [&](const Node* n) {
    if (n->kind == Kind::PersId) throw FormatError(what + " holds tensors, which ckpt does not consolidate");
    Node* c = to.make(n->kind);
    c->how = n->how;
    c->boolean = n->boolean;
    c->integer = n->integer;
    c->real = n->real;
    c->text = n->text;
    c->name = n->name;
    copy.emplace(n, c);
    order.push_back(n);
    return true;
  });
  auto map = [&](const Node* n) -> Node* { return n ? copy.at(n) : nullptr; };
  for (const Node* n : order) {
    Node* c = copy.at(n);
    for (const Node* i : n->items) c->items.push_back(map(i));
    for (const auto& [k, v] : n->entries) c->entries.emplace_back(map(k), map(v));
    c->callable = map(n->callable);
    c->args = map(n->args);
    c->kwargs = map(n->kwargs);
    c->state = map(n->state);
  }
  return copy.at(root);
}

namespace {

// set_element of torch/distributed/checkpoint/_traverse.py over graph nodes.
class Nester {
 public:
  explicit Nester(pickle::Graph& g) : g_(g), root_(g.dict()) {}
  Node* root() const { return root_; }

  void set(const std::vector<DcpPathStep>& path, Node* value, const std::string& what) {
    Node* cur = root_;
    for (size_t i = 1; i < path.size(); ++i) {
      const DcpPathStep& prev = path[i - 1];
      Node* def = path[i].is_index ? g_.list() : g_.dict();
      if (cur->kind == Kind::Dict) {
        if (prev.is_index) throw FormatError(what + ": list index into a dict");
        Node*& slot = slot_of(cur, prev.key);
        if (!slot) slot = def;
        cur = slot;
      } else {
        if (!prev.is_index) throw FormatError(what + ": key into a list");
        extend(cur, prev.index);
        Node*& slot = cur->items[static_cast<size_t>(prev.index)];
        if (slot->kind == Kind::None) slot = def;
        cur = slot;
      }
      if (cur->kind != Kind::Dict && cur->kind != Kind::List)
        throw FormatError(what + ": path runs through a value that is not a container");
    }
    const DcpPathStep& last = path.back();
    if (cur->kind == Kind::Dict && !last.is_index) {
      slot_of(cur, last.key) = value;
    } else if (cur->kind == Kind::List && last.is_index) {
      extend(cur, last.index);
      cur->items[static_cast<size_t>(last.index)] = value;
    } else {
      throw FormatError(what + ": path does not fit the state dict's nesting");
    }
  }

 private:
  Node*& slot_of(Node* dict, const std::string& key) {
    auto& index = index_[dict];
    auto it = index.find(key);
    if (it == index.end()) {
      dict->entries.emplace_back(g_.str(key), nullptr);
      it = index.emplace(key, dict->entries.size() - 1).first;
    }
    return dict->entries[it->second].second;
  }
  void extend(Node* list, int64_t index) {
    while (list->items.size() <= static_cast<size_t>(index)) list->items.push_back(g_.none());
  }

  pickle::Graph& g_;
  Node* root_;
  std::unordered_map<Node*, std::unordered_map<std::string, size_t>> index_;
};

}  // namespace

// Streams a tensor's elements in row-major order from its chunks: `runs`
// says which chunk each stretch of elements comes from.
void assemble_tensor(const DcpCheckpoint& dcp, const DcpItem& it, const std::vector<DcpRun>& runs,
                     size_t buffer_bytes, const std::function<void(std::string_view)>& sink) {
  std::vector<OpenChunk> chunks;
  std::vector<std::unique_ptr<ElementReader>> readers;
  std::vector<uint64_t> run_len;
  chunks.reserve(it.chunks.size());
  for (const DcpChunk& c : it.chunks) {
    chunks.push_back(open_chunk(dcp, it, c));
    uint64_t len = c.numel();
    size_t k = it.size.size() ? it.size.size() - 1 : 0;
    while (k > 0 && c.sizes[k] == it.size[k]) --k;
    if (!it.size.empty()) {
      len = 1;
      for (size_t d = k; d < it.size.size(); ++d) len *= static_cast<uint64_t>(c.sizes[d]);
    }
    run_len.push_back(len);
  }
  for (size_t i = 0; i < chunks.size(); ++i)
    readers.push_back(std::make_unique<ElementReader>(*chunks[i].ck, chunks[i].tensor, it.fqn));
  const size_t es = it.dtype->element_size;
  std::string buf(buffer_bytes - buffer_bytes % es, '\0');
  size_t used = 0;
  for (const DcpRun& r : runs) {
    uint64_t left = run_len[r.chunk];
    while (left) {
      if (used == buf.size()) {
        sink(std::string_view(buf.data(), used));
        used = 0;
      }
      size_t want = static_cast<size_t>(std::min<uint64_t>(left, (buf.size() - used) / es));
      size_t got = readers[r.chunk]->read(buf.data() + used, want);
      if (got == 0) throw FormatError(chunks[r.chunk].ck->path() + ": chunk of '" + it.fqn + "' ends early");
      used += got * es;
      left -= got;
    }
  }
  if (used) sink(std::string_view(buf.data(), used));
}

ConsolidateReport consolidate_dcp(const DcpCheckpoint& dcp, Env& env, const std::string& out_path,
                                  const ConsolidateOptions& options) {
  auto out = Checkpoint::create(out_path, kDefaultDialect);
  pickle::Graph& g = out->graph();
  Nester nest(g);
  Node* storage_word = g.str("storage");
  Node* cpu = g.str("cpu");
  ConsolidateReport report;
  SaveOptions so;
  so.force = options.force;
  so.progress = options.progress;

  // Per assembled tensor: its item, computed once up front (metadata only).
  struct Assembly {
    const DcpItem* item;
    std::vector<DcpRun> runs;
  };
  std::map<std::string, Assembly> assemblies;  // by storage key

  for (const DcpItem& item : dcp.items()) {
    std::string what = dcp.dir() + ": '" + item.fqn + "'";
    if (!item.is_tensor) {
      auto ck = dcp.open_slice(item.where);
      nest.set(item.path, copy_subgraph(ck->root(), g, what), what);
      ++report.byte_items;
      continue;
    }
    std::string key = std::to_string(report.tensors++);
    report.tensor_bytes += item.nbytes();
    if (!*item.dtype->storage_class)
      throw UsageError(what + ": dtype " + item.dtype->name + " is not supported by consolidate yet");
    // One contiguous chunk over the whole tensor: copied file to file.
    bool direct = false;
    if (item.chunks.size() == 1 && item.chunks[0].numel() == item.numel() && item.numel() > 0) {
      OpenChunk oc = open_chunk(dcp, item, item.chunks[0]);
      const Storage* s = oc.tensor.storage;
      // A stored record of the chunk's torch.save: its offset in the chunk's file.
      const std::optional<StorageLocation> loc =
          oc.tensor.is_contiguous() && s ? std::optional(locate_storage(*oc.ck, *s)) : std::nullopt;
      if (loc && loc->record && !loc->compressed()) {
        uint64_t at = item.chunks[0].where.offset + loc->offset +
                      static_cast<uint64_t>(oc.tensor.storage_offset) * item.dtype->element_size;
        const Storage& st = out->add_external_storage(key, item.dtype, "cpu", item.numel(),
                                                      dcp.file(item.chunks[0].where.file), at);
        nest.set(item.path, make_tensor_node(g, st, item.size, false, storage_word, cpu), what);
        direct = true;
      }
    }
    if (direct) continue;
    std::shared_ptr<RandomAccessFile> any = item.chunks.empty() ? dcp.file(".metadata")
                                                                : dcp.file(item.chunks[0].where.file);
    const Storage& st = out->add_external_storage(key, item.dtype, "cpu", item.numel(), any, 0);
    nest.set(item.path, make_tensor_node(g, st, item.size, false, storage_word, cpu), what);
    assemblies.emplace(key, Assembly{&item, DcpCheckpoint::runs_of(item, what)});
    StorageTransform tr;
    tr.dtype = item.dtype;
    const size_t buffer_bytes = std::max<size_t>(options.buffer_bytes, 4096);
    tr.produce = [&dcp, &assemblies, key, buffer_bytes](const Storage&,
                                                        const std::function<void(std::string_view)>& sink) {
      const Assembly& a = assemblies.at(key);
      assemble_tensor(dcp, *a.item, a.runs, buffer_bytes, sink);
    };
    so.transforms.emplace(key, std::move(tr));
  }
  out->graph().root = nest.root();
  save(*out, nest.root(), env, out_path, so);
  return report;
}

}  // namespace ckpt::torch
