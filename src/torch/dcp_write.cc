// write_dcp: a torch.save state dict as a DCP folder (see dcp.h).

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "container/zip_writer.h"
#include "pickle/pickler.h"
#include "torch/dcp.h"
#include "torch/safetensors.h"
#include "torch/tensor_data.h"
#include "util/error.h"
#include "util/folder_replace.h"

namespace ckpt::torch {

using pickle::How;
using pickle::Kind;
using pickle::Node;

namespace {

constexpr const char* kMetadataModule = "torch.distributed.checkpoint.metadata";
constexpr uint64_t kMaxFlattenSteps = uint64_t{1} << 24;

// A view of a file being written that starts at its current end, so that a
// zip written through it has offsets relative to its own first byte (each
// DCP item is read back as a file of its own).
class RelativeFile : public WritableFile {
 public:
  explicit RelativeFile(WritableFile& base) : base_(base), start_(base.offset()) {}
  void append(std::string_view data) override { base_.append(data); }
  void copy_from(RandomAccessFile& src, uint64_t offset, uint64_t n) override { base_.copy_from(src, offset, n); }
  uint32_t copy_from_with_crc(RandomAccessFile& src, uint64_t offset, uint64_t n) override {
    return base_.copy_from_with_crc(src, offset, n);
  }
  void reserve(uint64_t n) override { base_.reserve(n); }
  uint64_t offset() const override { return base_.offset() - start_; }
  void sync() override {}
  void close() override {}

 private:
  WritableFile& base_;
  uint64_t start_;
};

struct Leaf {
  std::vector<DcpPathStep> path;
  std::string fqn;
  const Node* value = nullptr;
  std::optional<TensorInfo> tensor;
};

std::string step_text(const Node* k, const std::string& where) {
  switch (k->kind) {
    case Kind::Str: return k->text;
    case Kind::Int:
      if (!k->is_big_int()) return std::to_string(k->integer);
      break;
    case Kind::Bool: return k->boolean ? "True" : "False";
    default: break;
  }
  throw UsageError(where + ": a key that is not a string or an integer cannot be flattened as DCP does");
}

// _is_terminal of torch/distributed/checkpoint/_traverse.py: a list is a leaf
// unless it holds (at any depth of lists) a tensor or a mapping.
bool is_terminal(const Checkpoint& ck, const Node* v) {
  if (pickle::is_mapping(v)) return false;
  if (v->kind != Kind::List) return true;
  std::vector<const Node*> stack{v};
  std::set<const Node*> seen;
  while (!stack.empty()) {
    const Node* l = stack.back();
    stack.pop_back();
    if (!seen.insert(l).second) continue;
    for (const Node* e : l->items) {
      if (pickle::is_mapping(e) || ck.tensor(e)) return false;
      if (e->kind == Kind::List) stack.push_back(e);
    }
  }
  return true;
}

std::vector<Leaf> flatten(const Checkpoint& ck, const Node* root, const std::string& where) {
  if (!pickle::is_mapping(root)) throw UsageError(where + ": the object is not a state dict (a mapping)");
  struct Todo {
    const Node* value;
    std::vector<DcpPathStep> path;
  };
  std::vector<Todo> stack;
  auto push_children = [&](const Node* n, const std::vector<DcpPathStep>& path) {
    std::vector<Todo> kids;
    if (pickle::is_mapping(n)) {
      for (const auto& [k, v] : *pickle::entries_of(n)) {
        auto p = path;
        p.push_back({false, step_text(k, where), 0});
        kids.push_back({v, std::move(p)});
      }
    } else {
      for (size_t i = 0; i < n->items.size(); ++i) {
        auto p = path;
        p.push_back({true, "", static_cast<int64_t>(i)});
        kids.push_back({n->items[i], std::move(p)});
      }
    }
    for (auto it = kids.rbegin(); it != kids.rend(); ++it) stack.push_back(std::move(*it));
  };
  push_children(root, {});
  std::vector<Leaf> leaves;
  std::set<std::string> fqns;
  uint64_t steps = 0;
  while (!stack.empty()) {
    Todo t = std::move(stack.back());
    stack.pop_back();
    if (++steps > kMaxFlattenSteps) throw UsageError(where + ": the state dict is too deeply shared to flatten");
    if (pickle::is_mapping(t.value) || !is_terminal(ck, t.value)) {
      push_children(t.value, t.path);
      continue;
    }
    Leaf leaf;
    for (const auto& s : t.path) leaf.fqn += (leaf.fqn.empty() ? "" : ".") + (s.is_index ? std::to_string(s.index) : s.key);
    if (!fqns.insert(leaf.fqn).second) throw UsageError(where + ": two items flatten to the key '" + leaf.fqn + "'");
    leaf.path = std::move(t.path);
    leaf.value = t.value;
    leaf.tensor = ck.tensor(t.value);
    leaves.push_back(std::move(leaf));
  }
  return leaves;
}

// The records torch 2.x's torch.save writes around data.pkl and storages.
void write_torch_save(WritableFile& out, const std::string& pkl,
                      const std::function<void(container::ZipWriter&)>& storages) {
  RelativeFile rel(out);
  container::ZipWriter zw(rel, "archive");
  zw.add("data.pkl", pkl);
  zw.add(".format_version", "1");
  zw.add(".storage_alignment", "64");
  zw.add("byteorder", "little");
  if (storages) storages(zw);
  zw.add("version", "3\n");
  zw.finish();
}

// Metadata graph builders.
struct MetaBuilder {
  pickle::Graph g;
  Node* size(const std::vector<int64_t>& v) {
    std::vector<Node*> items;
    for (int64_t x : v) items.push_back(g.integer(x));
    return g.object(How::Reduce, g.global("torch", "Size"), g.tuple({g.tuple(std::move(items))}));
  }
  Node* dataclass(const char* module, const char* name, std::vector<std::pair<const char*, Node*>> fields) {
    Node* o = g.object(How::NewObj, g.global(module, name), g.tuple());
    Node* d = g.dict();
    for (auto& [k, v] : fields) d->entries.emplace_back(g.str(k), v);
    o->state = d;
    return o;
  }
  Node* properties(const DTypeInfo* dtype, bool requires_grad) {
    Node* o = g.object(How::NewObj, g.global(kMetadataModule, "TensorProperties"), g.tuple());
    Node* layout = g.object(How::Reduce, g.global("torch.serialization", "_get_layout"), g.tuple({g.str("torch.strided")}));
    Node* mem = g.object(How::Reduce, g.global(kMetadataModule, "_MEM_FORMAT_ENCODING"), g.tuple({g.integer(0)}));
    o->state = g.tuple({g.global("torch", dtype->name), layout, g.boolean(requires_grad), mem, g.boolean(false)});
    return o;
  }
  Node* storage_info(const std::string& file, uint64_t offset, uint64_t length) {
    return dataclass("torch.distributed.checkpoint.filesystem", "_StorageInfo",
                     {{"relative_path", g.str(file)},
                      {"offset", g.integer(static_cast<int64_t>(offset))},
                      {"length", g.integer(static_cast<int64_t>(length))}});
  }
};

// Rows of dimension 0 rank `rank` of `ranks` holds, as torch.chunk / Shard(0)
// split them; a scalar or empty tensor goes whole to rank 0.
std::pair<int64_t, int64_t> rows_of(const TensorInfo& t, int rank, int ranks) {
  if (t.shape.empty() || t.shape[0] == 0) return rank == 0 ? std::make_pair<int64_t, int64_t>(0, 1) : std::make_pair<int64_t, int64_t>(0, 0);
  int64_t d = t.shape[0], per = (d + ranks - 1) / ranks;
  int64_t a = std::min<int64_t>(d, per * rank), b = std::min<int64_t>(d, per * (rank + 1));
  return {a, b};
}

// The bytes of rows [r0, r0 + numel / row size) of t as record data/0:
// copied file to file where they lie contiguous in a stored record or file,
// else gathered through an ElementReader.
void write_rows_record(container::ZipWriter& zw, const Checkpoint& source, const TensorInfo& t, const std::string& fqn,
                       int64_t r0, uint64_t numel) {
  const size_t es = t.dtype->element_size;
  const uint64_t nbytes = numel * es;
  const uint64_t first =
      t.shape.empty() || t.shape[0] == 0 ? 0 : static_cast<uint64_t>(r0) * static_cast<uint64_t>(t.stride[0]);
  const Storage* s = t.storage;
  const std::optional<StorageLocation> loc =
      nbytes && t.is_contiguous() && s ? std::optional(locate_storage(source, *s)) : std::nullopt;
  if (loc && !loc->compressed()) {
    // The whole stored record: its CRC-32 is known, so the bytes need not be read.
    std::optional<uint32_t> crc;
    if (loc->record && t.storage_offset == 0 && first == 0 && loc->size == nbytes &&
        (loc->record->crc32 != 0 || nbytes == 0))
      crc = loc->record->crc32;
    zw.add_copy("data/0", *loc->file, loc->offset + (static_cast<uint64_t>(t.storage_offset) + first) * es, nbytes,
                crc);
    return;
  }
  zw.add_stream("data/0", nbytes, [&](const std::function<void(std::string_view)>& sink) {
    if (!nbytes) return;
    ElementReader reader(source, t, fqn);
    std::string buf(size_t{1} << 20, '\0');
    const size_t per = buf.size() / es;
    for (uint64_t skip = static_cast<uint64_t>(r0) * (t.numel() / static_cast<uint64_t>(t.shape[0])); skip;) {
      size_t got = reader.read(buf.data(), static_cast<size_t>(std::min<uint64_t>(skip, per)));
      if (!got) throw FormatError(source.path() + ": tensor '" + fqn + "' ends early");
      skip -= got;
    }
    for (uint64_t left = numel; left;) {
      size_t got = reader.read(buf.data(), static_cast<size_t>(std::min<uint64_t>(left, per)));
      if (!got) throw FormatError(source.path() + ": tensor '" + fqn + "' ends early");
      sink(std::string_view(buf.data(), got * es));
      left -= got;
    }
  });
}

// The tensors' bytes in all, once each is checked writable.
uint64_t checked_tensor_bytes(const Checkpoint& source, const std::vector<Leaf>& leaves) {
  uint64_t total = 0;
  for (const auto& l : leaves)
    if (l.tensor) {
      std::string p = l.tensor->view_problem();
      if (!p.empty()) throw FormatError(source.path() + ": tensor '" + l.fqn + "': " + p);
      if (!*l.tensor->dtype->storage_class)
        throw UsageError(source.path() + ": tensor '" + l.fqn + "': dtype " + l.tensor->dtype->name +
                         " is not supported by to-dcp yet");
      total += l.tensor->nbytes();
    }
  return total;
}

// Declares every leaf in the metadata: its planner path, and a
// TensorStorageMetadata (its chunks list returned by fqn, for the ranks to
// fill) or a BytesStorageMetadata.
std::map<std::string, Node*> declare_leaves(MetaBuilder& mb, const std::vector<Leaf>& leaves, Node* sdm,
                                            Node* planner, ToDcpReport& report) {
  pickle::Graph& mg = mb.g;
  std::map<std::string, Node*> chunk_lists;
  for (const Leaf& l : leaves) {
    Node* path = mg.tuple();
    for (const auto& s : l.path) path->items.push_back(s.is_index ? mg.integer(s.index) : mg.str(s.key));
    planner->entries.emplace_back(mg.str(l.fqn), path);
    if (l.tensor) {
      Node* chunks = mg.list();
      chunk_lists[l.fqn] = chunks;
      sdm->entries.emplace_back(mg.str(l.fqn),
                                mb.dataclass(kMetadataModule, "TensorStorageMetadata",
                                             {{"properties", mb.properties(l.tensor->dtype, l.tensor->requires_grad)},
                                              {"size", mb.size(l.tensor->shape)},
                                              {"chunks", chunks}}));
      ++report.tensors;
      report.tensor_bytes += l.tensor->nbytes();
    } else {
      sdm->entries.emplace_back(mg.str(l.fqn), mb.dataclass(kMetadataModule, "BytesStorageMetadata", {}));
      ++report.byte_items;
    }
  }
  return chunk_lists;
}

// The pickle of a rank's piece of a tensor: a contiguous tensor of `shape`
// over storage "0".
std::string piece_pickle(const DTypeInfo* dtype, uint64_t numel, const std::vector<int64_t>& shape) {
  pickle::Graph g;
  Storage st;
  st.key = "0";
  st.dtype = dtype;
  st.location = "cpu";
  st.numel = numel;
  g.root = make_tensor_node(g, st, shape, false, g.str("storage"), g.str("cpu"));
  return pickle::pickle(g.root);
}

// The .metadata file: torch's Metadata dataclass over what the ranks wrote.
void write_metadata(Env& env, FolderReplace& tmp, MetaBuilder& mb, Node* sdm, Node* planner, Node* storage_data) {
  Node* md = mb.dataclass(kMetadataModule, "Metadata",
                          {{"state_dict_metadata", sdm},
                           {"planner_data", planner},
                           {"storage_data", storage_data},
                           {"storage_meta", mb.g.none()},
                           {"version", mb.g.str("1.0.0")}});
  auto f = env.create(tmp.path(".metadata"));
  f->append(pickle::pickle(md));
  f->sync();
  f->close();
}

}  // namespace

ToDcpReport write_dcp(Checkpoint& source, const Node* root, Env& env, const std::string& out_dir,
                      const ToDcpOptions& options) {
  if (options.ranks < 1 || options.ranks > 4096) throw UsageError(option_name("ranks") + " must be between 1 and 4096");
  std::string out = out_dir;
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  std::error_code ec;
  bool exists = std::filesystem::exists(out, ec);
  if (exists && !options.force) throw UsageError(out + " exists (use " + option_set("force") + " to replace it)");
  if (exists && !DcpCheckpoint::is_dcp_folder(out) && !std::filesystem::is_empty(out, ec))
    throw UsageError(out + " exists and is not a DCP folder; not replacing it");

  std::vector<Leaf> leaves = flatten(source, root, source.path());
  const uint64_t total = checked_tensor_bytes(source, leaves);
  uint64_t done = 0;

  // Written into a temporary folder beside `out` and put in its place in one
  // step (util/folder_replace.h, Whole: an old folder exchanged with the new,
  // then removed): a crash leaves the old folder or the new one.
  FolderReplace tmp(env, out, FolderReplace::Whole{}, options.force);
  MetaBuilder mb;
  pickle::Graph& mg = mb.g;
  Node* sdm = mg.dict();
  Node* storage_data = mg.dict();
  Node* planner = mg.dict();
  ToDcpReport report;
  const int ranks = options.ranks;

  std::map<std::string, Node*> chunk_lists = declare_leaves(mb, leaves, sdm, planner, report);

  std::unique_ptr<WritableFile> previous;  // the last rank's file, written, not yet synced
  for (int rank = 0; rank < ranks; ++rank) {
    std::string name = "__" + std::to_string(rank) + "_0.distcp";
    // This rank's tensor bytes: a lower bound of its file's size, reserved
    // at once (WritableFile::reserve).
    uint64_t rank_bytes = 0;
    for (const Leaf& l : leaves) {
      if (!l.tensor) continue;
      const auto rows = rows_of(*l.tensor, rank, ranks);
      if (rows.second <= rows.first) continue;
      const int64_t dim0 = l.tensor->shape.empty() ? 1 : std::max<int64_t>(l.tensor->shape[0], 1);
      rank_bytes += l.tensor->nbytes() / static_cast<uint64_t>(dim0) * static_cast<uint64_t>(rows.second - rows.first);
    }
    std::unique_ptr<WritableFile> f;
    auto file = [&]() -> WritableFile& {
      if (!f) {
        f = env.create(tmp.path(name));
        f->reserve(rank_bytes);
        ++report.files;
      }
      return *f;
    };
    for (const Leaf& l : leaves) {
      if (!l.tensor) {
        if (rank != 0) continue;
        pickle::Graph g;
        g.root = copy_subgraph(l.value, g, source.path() + ": '" + l.fqn + "'");
        uint64_t at = file().offset();
        write_torch_save(file(), pickle::pickle(g.root), {});
        Node* key = mb.dataclass(kMetadataModule, "MetadataIndex", {{"fqn", mg.str(l.fqn)}, {"index", mg.none()}});
        storage_data->entries.emplace_back(key, mb.storage_info(name, at, file().offset() - at));
        continue;
      }
      const TensorInfo& t = *l.tensor;
      const auto rows = rows_of(t, rank, ranks);
      const auto r0 = rows.first, r1 = rows.second;
      if (r1 <= r0) continue;
      std::vector<int64_t> shape = t.shape, offsets(t.shape.size(), 0);
      if (!shape.empty() && shape[0] > 0) {
        shape[0] = r1 - r0;
        offsets[0] = r0;
      }
      uint64_t numel = 1;
      for (int64_t d : shape) numel *= static_cast<uint64_t>(d);
      uint64_t at = file().offset();
      write_torch_save(file(), piece_pickle(t.dtype, numel, shape),
                       [&](container::ZipWriter& zw) { write_rows_record(zw, source, t, l.fqn, r0, numel); });
      Node* chunk = mb.dataclass(kMetadataModule, "ChunkStorageMetadata", {{"offsets", mb.size(offsets)}, {"sizes", mb.size(shape)}});
      chunk_lists[l.fqn]->items.push_back(chunk);
      Node* key = mb.dataclass(kMetadataModule, "MetadataIndex",
                               {{"fqn", mg.str(l.fqn)}, {"offset", mb.size(offsets)},
                                {"index", mg.integer(static_cast<int64_t>(chunk_lists[l.fqn]->items.size() - 1))}});
      storage_data->entries.emplace_back(key, mb.storage_info(name, at, file().offset() - at));
      done += numel * t.dtype->element_size;
      if (options.progress) options.progress(done, total);
    }
    // The previous rank's file is made durable only now: its bytes went to
    // the disk while this rank's were copied, instead of the copy waiting
    // for its fsync. Each file is still fsync'd before the metadata is
    // written and the folder renamed into place.
    if (previous) {
      previous->sync();
      previous->close();
    }
    previous = std::move(f);
  }
  if (previous) {
    previous->sync();
    previous->close();
  }

  write_metadata(env, tmp, mb, sdm, planner, storage_data);
  tmp.commit();
  return report;
}

}  // namespace ckpt::torch
