#include "torch/checkpoint.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>

#include "container/zip_writer.h"
#include "pickle/pickler.h"
#include "pickle/unpickler.h"
#include "torch/container_kind.h"
#include "util/error.h"

namespace ckpt::torch {

using pickle::Kind;
using pickle::Node;

const char* to_string(Format f) {
  return f == Format::Zip ? "zip" : "legacy";
}
const char* to_string(Dialect d) { return d == Dialect::Torch1 ? "torch-1.x" : "torch-2.x"; }

namespace {

// The first bytes of files people mistake for checkpoints, with what to say.
std::string explain_non_checkpoint(const std::string& path, RandomAccessFile& f) {
  if (f.size() == 0) return path + ": empty file, not a checkpoint";
  std::string head = f.read_string(0, std::min<uint64_t>(f.size(), 256));
  if (head.rfind("version https://git-lfs.github.com/spec/", 0) == 0)
    return path + ": a Git LFS pointer, not the checkpoint: run git lfs pull";
  std::string lower;
  for (char c : head.substr(0, 64)) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto ws = lower.find_first_not_of(" \t\r\n");
  if (ws != std::string::npos && (lower.compare(ws, 9, "<!doctype") == 0 || lower.compare(ws, 5, "<html") == 0))
    return path + ": an HTML page, not a checkpoint (a download that saved an error or login page?)";
  return path + ": not a PyTorch checkpoint (neither a zip archive nor the legacy format)";
}

// ('storage', StorageClass, key, location, numel[, view_metadata])
bool is_storage_pid(const Node* t) {
  return t && t->kind == Kind::Tuple && (t->items.size() == 5 || t->items.size() == 6) &&
         t->items[0]->is_str("storage") && t->items[1]->kind == Kind::Global &&
         t->items[2]->kind == Kind::Str && t->items[3]->kind == Kind::Str &&
         t->items[4]->kind == Kind::Int && !t->items[4]->is_big_int();
}

int64_t int_arg(const Node* n, const char* what) {
  if (!n || n->kind != Kind::Int || n->is_big_int())
    throw FormatError(std::string("tensor ") + what + " is not an integer");
  return n->integer;
}

std::vector<int64_t> int_tuple(const Node* n, const char* what) {
  if (!n || n->kind != Kind::Tuple) throw FormatError(std::string("tensor ") + what + " is not a tuple");
  std::vector<int64_t> v;
  v.reserve(n->items.size());
  for (const Node* i : n->items) v.push_back(int_arg(i, what));
  return v;
}

constexpr std::string_view kUtils = "torch._utils";
// The most a compressed data.pkl may inflate to (README "Limits").
constexpr uint64_t kMaxInflatedPickle = uint64_t{64} << 20;

}  // namespace

uint64_t TensorInfo::numel() const {
  uint64_t n = 1;
  for (int64_t s : shape) {
    if (s < 0) return 0;
    if (s != 0 && n > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(s))
      return std::numeric_limits<uint64_t>::max();
    n *= static_cast<uint64_t>(s);
  }
  return n;
}

bool TensorInfo::is_contiguous() const {
  int64_t expected = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    if (shape[i] == 1) continue;
    if (stride[i] != expected) return numel() == 0;
    expected *= shape[i];
  }
  return true;
}

std::string TensorInfo::view_problem() const {
  if (shape.size() != stride.size()) return "size and stride have different lengths";
  if (storage_offset < 0) return "negative storage offset";
  // Last element index = offset + sum((size-1)*stride), in 128 bits.
  __int128 last = storage_offset;
  bool empty = false;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0) return "negative size";
    if (stride[i] < 0) return "negative stride";
    if (shape[i] == 0) empty = true;
    last += static_cast<__int128>(shape[i] - 1) * stride[i];
  }
  if (numel() == std::numeric_limits<uint64_t>::max()) return "element count overflows";
  if (empty) return {};
  if (!storage) return "no storage";
  if (last >= static_cast<__int128>(storage->numel) ||
      static_cast<__int128>(storage->numel) * storage->dtype->element_size > (static_cast<__int128>(1) << 62))
    return "view reaches element " + std::to_string(static_cast<long long>(last)) +
           " of a storage of " + std::to_string(storage->numel);
  return {};
}

RandomAccessFile& Checkpoint::file() const {
  return zip_ ? zip_->file() : *legacy_file_;
}

const Storage* Checkpoint::storage(const std::string& key) const {
  auto it = storages_.find(key);
  return it == storages_.end() ? nullptr : &it->second;
}

std::unique_ptr<Checkpoint> Checkpoint::open(Env& env, const std::string& path,
                                             const OpenOptions& options) {
  std::unique_ptr<Checkpoint> ck(new Checkpoint);
  ck->path_ = path;
  auto file = env.open_read(path);
  ContainerGuess kind = detect_container(*file);
  if (kind.kind == ContainerKind::Pickle && file->size() > 4096) {
    // A magic pickle padded past detect_container's window is still torch's.
    std::string head = file->read_string(0, static_cast<size_t>(std::min<uint64_t>(file->size(), uint64_t{1} << 20)));
    if (legacy_magic_pickle_size(head)) kind.kind = ContainerKind::Legacy;
  }
  if (kind.kind == ContainerKind::Zip) {
    ck->zip_ = std::make_unique<container::ZipReader>(std::move(file));
    ck->load_zip(env, options);
  } else if (kind.kind == ContainerKind::Tar) {
    throw FormatError(path + ": the tar form of torch < 0.4 (members storages, tensors, pickle): "
                      "only `ckpt scan` reads it; load and re-save it with torch to use other commands");
  } else if (kind.kind == ContainerKind::Legacy) {
    ck->legacy_file_ = std::move(file);
    ck->load_legacy(options);
  } else {
    throw FormatError(explain_non_checkpoint(path, *file));
  }
  ck->index_storages();
  return ck;
}

void Checkpoint::load_zip(Env&, const OpenOptions& options) {
  format_ = Format::Zip;
  archive_name_ = zip_->archive_name();
  const container::ZipRecord* pkl = zip_->find("data.pkl");
  if (!pkl) throw FormatError(path_ + ": zip archive without data.pkl: not a torch.save checkpoint");
  if (pkl->size > options.max_pickle_bytes)
    throw FormatError(path_ + ": data.pkl is " + std::to_string(pkl->size) + " bytes, over the limit");
  // torch stores data.pkl uncompressed; a compressed one is inflated in
  // memory, so a small DEFLATE bomb must not get the full limit.
  if (pkl->method != 0 && pkl->size > kMaxInflatedPickle)
    throw FormatError(path_ + ": data.pkl is compressed and inflates to " + std::to_string(pkl->size) +
                      " bytes, over the " + std::to_string(kMaxInflatedPickle) + " allowed (a DEFLATE bomb?)");
  std::string data = zip_->read(*pkl, options.max_pickle_bytes);
  pickle_size_ = data.size();
  std::string source = path_ + ": " + pkl->name;
  graph_ = pickle::unpickle(data, {.limits = {}, .source = source});
  dialect_ = Dialect::Torch1;
  for (const char* marker : {".format_version", "byteorder", ".data/serialization_id", ".storage_alignment"})
    if (zip_->find(marker)) dialect_ = Dialect::Torch2;
}

void Checkpoint::load_legacy(const OpenOptions& options) {
  format_ = Format::Legacy;
  dialect_ = Dialect::Torch1;
  RandomAccessFile& f = *legacy_file_;
  // Magic, protocol version and sys_info are small pickles; the object pickle
  // and the key list follow. Read a bounded window and parse them in turn.
  uint64_t window = std::min<uint64_t>(f.size(), options.max_pickle_bytes);
  std::string head = f.read_string(0, window);
  size_t pos = 0;
  auto next = [&](const char* what) {
    size_t used = 0;
    std::string source = path_ + ": legacy " + what + " pickle at offset " + std::to_string(pos);
    pickle::Graph g = pickle::unpickle(std::string_view(head).substr(pos), {.limits = {}, .source = source}, &used);
    pos += used;
    return g;
  };
  next("magic");
  pickle::Graph proto = next("protocol");
  if (!proto.root || proto.root->kind != Kind::Int || proto.root->integer != 1001)
    throw FormatError(path_ + ": legacy format with an unsupported protocol version");
  next("sys_info");
  size_t object_start = pos;
  graph_ = next("object");
  pickle_size_ = pos - object_start;
  pickle::Graph keys = next("storage keys");
  if (!keys.root || keys.root->kind != Kind::List)
    throw FormatError(path_ + ": legacy storage key list is not a list");
  // Element sizes come from the persistent ids of the object pickle.
  index_storages();
  uint64_t off = pos;
  for (const Node* k : keys.root->items) {
    if (k->kind != Kind::Str) throw FormatError(path_ + ": legacy storage key is not a string");
    auto it = storages_.find(k->text);
    if (off + 8 > f.size())
      throw FormatError(path_ + ": legacy storage '" + k->text + "' is past the end of the file");
    std::string n = f.read_string(off, 8);
    uint64_t numel = 0;
    std::memcpy(&numel, n.data(), 8);
    uint64_t elsize = it == storages_.end() ? 1 : it->second.dtype->element_size;
    if (numel > (f.size() - off - 8) / elsize)
      throw FormatError(path_ + ": legacy storage '" + k->text + "' declares " + std::to_string(numel) +
                        " elements, past the end of the file");
    if (it != storages_.end()) {
      if (numel != it->second.numel)
        throw FormatError(path_ + ": legacy storage '" + k->text + "' holds " + std::to_string(numel) +
                          " elements, the pickle declares " + std::to_string(it->second.numel));
      it->second.legacy_offset = off + 8;
      it->second.present = true;
    }
    off += 8 + numel * elsize;
  }
}

void Checkpoint::index_storages() {
  // Walk the graph once (iteratively) for persistent ids.
  std::vector<const Node*> stack{graph_.root};
  std::set<const Node*> seen;
  while (!stack.empty()) {
    const Node* n = stack.back();
    stack.pop_back();
    if (!n || !seen.insert(n).second) continue;
    if (n->kind == Kind::PersId) {
      const Node* t = n->pid;
      if (is_storage_pid(t)) {
        const std::string& key = t->items[2]->text;
        const DTypeInfo* dt = from_storage_class(t->items[1]->name);
        if (!dt || t->items[1]->text != "torch")
          throw FormatError(path_ + ": storage '" + key + "' has unknown type " + t->items[1]->text + "." +
                            t->items[1]->name);
        if (t->items[4]->integer < 0)
          throw FormatError(path_ + ": storage '" + key + "' has a negative size");
        auto [it, fresh] = storages_.try_emplace(key);
        Storage& s = it->second;
        if (fresh) {
          s.key = key;
          s.dtype = dt;
          s.location = t->items[3]->text;
          s.numel = static_cast<uint64_t>(t->items[4]->integer);
          if (zip_) {
            s.record = zip_->find("data/" + key);
            s.present = s.record != nullptr;
          }
        } else if (s.dtype != dt || s.numel != static_cast<uint64_t>(t->items[4]->integer)) {
          throw FormatError(path_ + ": storage '" + key + "' is declared twice with different types or sizes");
        }
      }
      stack.push_back(n->pid);
      continue;
    }
    for (auto* c : {n->callable, n->args, n->kwargs, n->state}) stack.push_back(c);
    for (const Node* c : n->items) stack.push_back(c);
    for (auto& [k, v] : n->entries) {
      stack.push_back(k);
      stack.push_back(v);
    }
  }
}

std::optional<TensorInfo> Checkpoint::tensor(const Node* n) const {
  if (!n || n->kind != Kind::Object || !n->callable || n->callable->kind != Kind::Global ||
      n->callable->text != kUtils)
    return std::nullopt;
  const std::string& fn = n->callable->name;
  const Node* args = n->args;
  if (fn == "_rebuild_parameter" || fn == "_rebuild_parameter_with_state") {
    if (!args || args->kind != Kind::Tuple || args->items.size() < 2)
      throw FormatError("malformed _rebuild_parameter arguments");
    auto inner = tensor(args->items[0]);
    if (!inner) return std::nullopt;
    inner->outer = n;
    inner->is_parameter = true;
    inner->requires_grad = args->items[1]->kind == Kind::Bool && args->items[1]->boolean;
    return inner;
  }
  if (fn != "_rebuild_tensor_v2" && fn != "_rebuild_tensor_v3") return std::nullopt;
  if (!args || args->kind != Kind::Tuple || args->items.size() < 5)
    throw FormatError("malformed " + fn + " arguments");
  const Node* p = args->items[0];
  if (p->kind != Kind::PersId || !is_storage_pid(p->pid))
    throw FormatError(fn + " without a storage persistent id");
  TensorInfo t;
  t.object = n;
  t.outer = n;
  t.storage = storage(p->pid->items[2]->text);
  t.dtype = t.storage ? t.storage->dtype : nullptr;
  if (fn == "_rebuild_tensor_v3" && args->items.size() >= 7 && args->items[6]->kind == Kind::Global) {
    if (const DTypeInfo* d = from_name(args->items[6]->name)) t.dtype = d;
  }
  t.storage_offset = int_arg(args->items[1], "storage offset");
  t.shape = int_tuple(args->items[2], "size");
  t.stride = int_tuple(args->items[3], "stride");
  t.requires_grad = args->items[4]->kind == Kind::Bool && args->items[4]->boolean;
  if (t.shape.size() != t.stride.size()) throw FormatError(fn + ": size and stride lengths differ");
  return t;
}

std::unique_ptr<Checkpoint> Checkpoint::create(const std::string& path, Dialect dialect) {
  std::unique_ptr<Checkpoint> ck(new Checkpoint);
  ck->path_ = path;
  ck->format_ = Format::Zip;
  ck->dialect_ = dialect;
  ck->archive_name_ = archive_name_for(path);
  return ck;
}

const Storage& Checkpoint::add_external_storage(const std::string& key, const DTypeInfo* dtype,
                                                const std::string& location, uint64_t numel,
                                                std::shared_ptr<RandomAccessFile> file, uint64_t offset) {
  if (!dtype || !file) throw UsageError(path_ + ": external storage '" + key + "' without a dtype or file");
  auto [it, fresh] = storages_.try_emplace(key);
  if (!fresh) throw UsageError(path_ + ": storage key '" + key + "' is already in use");
  Storage& s = it->second;
  s.key = key;
  s.dtype = dtype;
  s.location = location;
  s.numel = numel;
  s.present = true;
  s.legacy_offset = offset;
  s.external_file = file.get();
  external_files_.push_back(std::move(file));
  return s;
}

std::string archive_name_for(const std::string& path) {
  // As PyTorchStreamWriter's basename(): after the last separator, before the last dot.
  size_t start = 0;
  for (size_t i = 0; i < path.size(); ++i)
    if (path[i] == '/' || path[i] == '\\') start = i + 1;
  size_t end = path.size();
  for (size_t i = end; i > start; --i)
    if (path[i - 1] == '.') {
      end = i - 1;
      break;
    }
  std::string name = path.substr(start, end - start);
  return name.empty() ? "archive" : name;
}

namespace {


}  // namespace

void save_to(Checkpoint& source, const Node* root, WritableFile& out, const std::string& archive_name,
             const SaveOptions& options) {
  pickle::Graph& g = source.graph();
  // Pickle with storage keys renumbered in first-seen order, as torch.save
  // assigns them. PersId nodes are pointed at fresh id tuples for the
  // write and restored afterwards, so the source graph is unchanged.
  std::vector<std::string> old_keys;        // by new key number
  std::map<std::string, Node*> new_key_of;  // old key -> new key string node
  std::vector<std::pair<Node*, Node*>> restore;
  pickle::PickleOptions popts;
  popts.on_persistent_id = [&](Node* p) {
    Node* t = p->pid;
    if (!is_storage_pid(t)) return;
    const std::string& old = t->items[2]->text;
    auto it = new_key_of.find(old);
    if (it == new_key_of.end()) {
      it = new_key_of.emplace(old, g.str(std::to_string(old_keys.size()))).first;
      old_keys.push_back(old);
    }
    std::vector<Node*> items(t->items.begin(), t->items.begin() + 5);
    if (t->items.size() == 6 && t->items[5]->kind != Kind::None)
      throw FormatError("storage '" + old + "' is a legacy storage view, which ckpt cannot rewrite");
    items[2] = it->second;
    auto tr = options.transforms.find(old);
    if (tr != options.transforms.end()) items[1] = g.global("torch", tr->second.dtype->storage_class);
    restore.emplace_back(p, t);
    p->pid = g.tuple(std::move(items));
  };
  std::string data;
  try {
    data = pickle::pickle(root, popts);
  } catch (...) {
    for (auto& [p, t] : restore) p->pid = t;
    throw;
  }
  for (auto& [p, t] : restore) p->pid = t;

  Dialect dialect = options.dialect.value_or(source.dialect());
  std::vector<size_t> order(old_keys.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  if (dialect == Dialect::Torch1)
    std::sort(order.begin(), order.end(),
              [](size_t a, size_t b) { return std::to_string(a) < std::to_string(b); });

  uint64_t total = 0, done = 0;
  for (const std::string& k : old_keys) {
    const Storage* s = source.storage(k);
    if (!s) throw FormatError("storage '" + k + "' is referenced but not declared");
    auto tr = options.transforms.find(k);
    total += tr != options.transforms.end() ? s->numel * tr->second.dtype->element_size : s->nbytes();
  }

  container::ZipWriter zw(out, archive_name);
  auto write_storages = [&] {
    for (size_t i : order) {
      const std::string& k = old_keys[i];
      const Storage& s = *source.storage(k);
      std::string name = "data/" + std::to_string(i);
      if (!s.present) throw FormatError(source.path() + ": storage '" + k + "' has no data record");
      auto tr = options.transforms.find(k);
      if (tr != options.transforms.end()) {
        zw.add_stream(name, s.numel * tr->second.dtype->element_size,
                      [&](const std::function<void(std::string_view)>& sink) { tr->second.produce(s, sink); });
        done += s.numel * tr->second.dtype->element_size;
      } else if (s.record) {
        if (s.record->size != s.nbytes())
          throw FormatError(source.path() + ": record '" + s.record->name + "' holds " +
                            std::to_string(s.record->size) + " bytes, its storage needs " +
                            std::to_string(s.nbytes()));
        if (s.record->method == 0) {
          std::optional<uint32_t> crc;
          if (s.record->crc32 != 0 || s.record->size == 0) crc = s.record->crc32;
          zw.add_copy(name, source.file(), s.record->data_offset, s.record->size, crc);
        } else {
          zw.add_stream(name, s.record->size, [&](const std::function<void(std::string_view)>& sink) {
            source.zip()->stream(*s.record, sink);
          });
        }
        done += s.nbytes();
      } else {
        zw.add_copy(name, s.external_file ? *s.external_file : source.file(), s.legacy_offset, s.nbytes(),
                    std::nullopt);
        done += s.nbytes();
      }
      if (options.progress) options.progress(done, total);
    }
  };

  bool storages_written = false;
  const container::ZipReader* zip = source.zip();
  if (zip && (!options.dialect || *options.dialect == source.dialect())) {
    // Keep the source's record sequence; only data.pkl and data/* change.
    for (const auto& r : zip->records()) {
      std::string rel = zip->relative_name(r);
      if (rel == "data.pkl") {
        zw.add("data.pkl", data);
      } else if (rel.rfind("data/", 0) == 0) {
        if (!storages_written) write_storages();
        storages_written = true;
      } else {
        if (!storages_written && (rel == "version" || rel == ".data/version" || rel == ".data/serialization_id")) {
          write_storages();
          storages_written = true;
        }
        if (r.size > (uint64_t{1} << 20))
          throw FormatError(source.path() + ": unexpected large record '" + r.name + "'");
        zw.add(rel, zip->read(r, uint64_t{1} << 20));
      }
    }
    if (!storages_written) write_storages();
  } else if (dialect == Dialect::Torch1) {
    zw.add("data.pkl", data);
    write_storages();
    zw.add("version", "3\n");
  } else {
    zw.add("data.pkl", data);
    zw.add(".format_version", "1");
    zw.add(".storage_alignment", "64");
    zw.add("byteorder", "little");
    write_storages();
    zw.add("version", "3\n");
  }
  zw.finish();
}

void save(Checkpoint& source, const Node* root, Env& env, const std::string& out_path,
          const SaveOptions& options) {
  AtomicOutput output(env, out_path, options.force);
  std::string name = options.archive_name.empty() ? archive_name_for(out_path) : options.archive_name;
  save_to(source, root, output.file(), name, options);
  output.commit();
}

}  // namespace ckpt::torch
