#include "torch/checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <set>

#include "container/zip_writer.h"
#include "pickle/pickler.h"
#include "pickle/unpickler.h"
#include "torch/container_kind.h"
#include "util/alongside.h"
#include "util/coding.h"
#include "util/error.h"

namespace ckpt::torch {

using pickle::Kind;
using pickle::Node;

const char* to_string(Format f) {
  return f == Format::Zip ? "zip" : "legacy";
}
const char* to_string(Dialect d) {
  switch (d) {
    case Dialect::Torch1_6: return "torch-1.6";
    case Dialect::Torch2_1: return "torch-2.1";
    case Dialect::Torch2_7: return "torch-2.7";
  }
  return "?";
}

std::optional<Dialect> parse_dialect(std::string_view text) {
  if (text.rfind("torch-", 0) == 0) text.remove_prefix(6);
  if (text == "1.6") return Dialect::Torch1_6;
  if (text == "2.1") return Dialect::Torch2_1;
  if (text == "2.7") return Dialect::Torch2_7;
  return std::nullopt;
}

bool is_storage_pid(const Node* t) {
  return t && t->kind == Kind::Tuple && (t->items.size() == 5 || t->items.size() == 6) &&
         t->items[0]->is_str("storage") && t->items[1]->kind == Kind::Global &&
         t->items[2]->kind == Kind::Str && t->items[3]->kind == Kind::Str &&
         t->items[4]->kind == Kind::Int && !t->items[4]->is_big_int();
}

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

// The most a compressed data.pkl may inflate to (README "Limits").
constexpr uint64_t kMaxInflatedPickle = uint64_t{64} << 20;

}  // namespace

RandomAccessFile& Checkpoint::file() const {
  return zip_ ? zip_->file() : *legacy_file_;
}

StorageLocation locate_storage(const Checkpoint& ck, const Storage& s) {
  if (!s.present) throw FormatError(ck.path() + ": storage '" + s.key + "' has no data record");
  StorageLocation loc;
  loc.size = s.nbytes();
  if (s.external_file) {
    loc.file = s.external_file;
    loc.offset = s.external_offset;
  } else if (s.record) {
    if (s.record->size != loc.size)
      throw FormatError(ck.path() + ": record '" + s.record->name + "' holds " + std::to_string(s.record->size) +
                        " bytes, its storage needs " + std::to_string(loc.size));
    loc.record = s.record;
    if (s.record->method == 0) {
      loc.file = &ck.file();
      loc.offset = ck.zip()->data_offset(*s.record);
    }
  } else {
    loc.file = &ck.file();
    loc.offset = s.legacy_offset;
  }
  return loc;
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
  // torch 2.7+ writes .format_version (and .storage_alignment); 2.1-2.6
  // byteorder and .data/serialization_id; older torch none of them.
  dialect_ = Dialect::Torch1_6;
  for (const char* marker : {"byteorder", ".data/serialization_id"})
    if (zip_->find(marker)) dialect_ = Dialect::Torch2_1;
  for (const char* marker : {".format_version", ".storage_alignment"})
    if (zip_->find(marker)) dialect_ = Dialect::Torch2_7;
  storage_alignment_ = 64;
  if (const container::ZipRecord* r = zip_->find(".storage_alignment")) {
    // Decimal digits only, in the range a writer can pad to; else 0 (a
    // save then refuses, naming the record).
    std::string text = r->size <= 8 ? zip_->read(*r, 8) : "";
    uint64_t v = 0;
    bool digits = !text.empty();
    for (char c : text) {
      if (c < '0' || c > '9') digits = false;
      else v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    storage_alignment_ = digits && v >= 1 && v <= container::ZipWriter::kMaxAlignment ? v : 0;
  }
}

void Checkpoint::load_legacy(const OpenOptions& options) {
  format_ = Format::Legacy;
  dialect_ = kDefaultDialect;
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
    uint64_t numel = decode_fixed64(n.data());
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
  // Walk the graph once for persistent ids (leaves hold none).
  pickle::walk_non_leaves(graph_.root, pickle::kAllEdges, [&](const Node* n) {
    if (n->kind == Kind::PersId) {
      const Node* t = n->pid;
      if (is_storage_pid(t)) {
        const std::string& key = t->items[2]->text;
        const DTypeInfo* dt = from_storage_class(t->items[1]->name);
        // torch 2.x pickles untyped storages (of _rebuild_tensor_v3) as torch.storage.UntypedStorage.
        bool known_module = t->items[1]->text == "torch" ||
                            (t->items[1]->text == "torch.storage" && t->items[1]->name == "UntypedStorage");
        if (!dt || !known_module)
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
    }
    return true;
  }, graph_.non_leaves_made());
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
  s.external_offset = offset;
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

// data.pkl with storage keys renumbered in first-seen order, as torch.save
// assigns them; old_keys lists the source keys by new number. PersId nodes
// are pointed at fresh id tuples for the write and restored afterwards, so
// the source graph is unchanged.
struct RenumberedPickle {
  std::string data;
  std::vector<std::string> old_keys;
};

RenumberedPickle pickle_renumbered(Checkpoint& source, const Node* root, const SaveOptions& options) {
  pickle::Graph& g = source.graph();
  RenumberedPickle out;
  std::map<std::string, Node*> new_key_of;  // old key -> new key string node
  std::vector<std::pair<Node*, Node*>> restore;
  pickle::PickleOptions popts;
  popts.on_persistent_id = [&](Node* p) {
    Node* t = p->pid;
    if (!is_storage_pid(t)) return;
    const std::string& old = t->items[2]->text;
    auto it = new_key_of.find(old);
    if (it == new_key_of.end()) {
      it = new_key_of.emplace(old, g.str(std::to_string(out.old_keys.size()))).first;
      out.old_keys.push_back(old);
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
  try {
    out.data = pickle::pickle(root, popts);
  } catch (...) {
    for (auto& [p, t] : restore) p->pid = t;
    throw;
  }
  for (auto& [p, t] : restore) p->pid = t;
  return out;
}

// Writes data/<new key> records: transformed, streamed from a compressed
// record, or copied from wherever locate_storage() says the bytes are.
class StorageRecordWriter {
 public:
  StorageRecordWriter(Checkpoint& source, const std::vector<std::string>& old_keys, Dialect dialect,
                      const SaveOptions& options)
      : source_(source), old_keys_(old_keys), options_(options), order_(old_keys.size()) {
    // torch 2.7+ writes storages in pickling order; older torch sorts the
    // keys as strings ("0", "1", "10", "2").
    for (size_t i = 0; i < order_.size(); ++i) order_[i] = i;
    if (dialect != Dialect::Torch2_7)
      std::sort(order_.begin(), order_.end(),
                [](size_t a, size_t b) { return std::to_string(a) < std::to_string(b); });
    for (const std::string& k : old_keys) {
      const Storage* s = source.storage(k);
      if (!s) throw FormatError("storage '" + k + "' is referenced but not declared");
      const StorageTransform* tr = transform(k);
      total_ += tr ? s->numel * tr->dtype->element_size : s->nbytes();
    }
  }

  // The record bytes write() will add, headers aside: a lower bound of the output's size.
  uint64_t total() const { return total_; }

  void write(container::ZipWriter& zw) {
    for (size_t i : order_) write_one(zw, "data/" + std::to_string(i), *source_.storage(old_keys_[i]));
  }

 private:
  const StorageTransform* transform(const std::string& key) const {
    auto it = options_.transforms.find(key);
    return it == options_.transforms.end() ? nullptr : &it->second;
  }

  void write_one(container::ZipWriter& zw, const std::string& name, const Storage& s) {
    const StorageLocation loc = locate_storage(source_, s);
    // A zip record checked against its directory's CRC-32 (verify_crcs).
    const container::ZipRecord* checked = options_.verify_crcs ? loc.record : nullptr;
    if (const StorageTransform* tr = transform(s.key)) {
      // The conversion reads the source as it likes: its record is checked first.
      if (checked) {
        const uint32_t crc = source_.zip()->compute_crc(*checked);
        if (crc != checked->crc32) crc_mismatch(*checked, crc);
      }
      zw.add_stream(name, s.numel * tr->dtype->element_size,
                    [&](const std::function<void(std::string_view)>& sink) { tr->produce(s, sink); });
      advance(s.numel * tr->dtype->element_size);
      return;
    }
    uint32_t written_crc;
    if (loc.compressed()) {
      zw.add_stream(name, loc.size, [&](const std::function<void(std::string_view)>& sink) {
        source_.zip()->stream(*loc.record, sink);
      });
      written_crc = zw.entries().back().crc32;  // of the inflated bytes, as the directory's
    } else if (checked) {
      // Copied without being read, under the CRC-32 the directory gives; the
      // bytes are checked against it later, while the output is fsync'd
      // (check_copies), when both cores are otherwise idle.
      written_crc = zw.add_copy(name, *loc.file, loc.offset, loc.size, checked->crc32);
      deferred_.push_back(checked);
    } else {
      // A stored record's CRC-32 is known: the bytes are copied without being
      // read; otherwise they are read once, as they are copied.
      std::optional<uint32_t> crc;
      if (loc.record && (loc.record->crc32 != 0 || loc.size == 0)) crc = loc.record->crc32;
      written_crc = zw.add_copy(name, *loc.file, loc.offset, loc.size, crc);
    }
    if (checked && written_crc != checked->crc32) crc_mismatch(*checked, written_crc);
    advance(loc.size);
  }

 public:
  // Checks the records copied unread (deferred_) against their directory's
  // CRC-32, reporting the first mismatch in write order as write_one would
  // have. save_to runs it alongside the output's fsync.
  bool has_copies_to_check() const { return !deferred_.empty(); }
  void check_copies() {
    for (const container::ZipRecord* r : deferred_) {
      const uint32_t crc = source_.zip()->compute_crc(*r);
      if (crc != r->crc32) crc_mismatch(*r, crc);
    }
  }

 private:

  [[noreturn]] void crc_mismatch(const container::ZipRecord& record, uint32_t crc) {
    if (options_.on_crc_mismatch) options_.on_crc_mismatch(record, crc);
    throw crc_mismatch_error(source_, record, crc);
  }

  void advance(uint64_t bytes) {
    done_ += bytes;
    if (options_.progress) options_.progress(done_, total_);
  }

  Checkpoint& source_;
  const std::vector<std::string>& old_keys_;
  const SaveOptions& options_;
  std::vector<size_t> order_;
  std::vector<const container::ZipRecord*> deferred_;  // copied unread, checked by check_copies
  uint64_t total_ = 0, done_ = 0;
};

// Alignment: the source's when it is a 2.7+ file kept in its dialect (it
// may have been saved with another .storage_alignment); else torch's 64.
uint64_t output_alignment(const Checkpoint& source, Dialect dialect) {
  const bool keep_layout = source.zip() && dialect == source.dialect();
  const uint64_t alignment =
      keep_layout || (dialect == Dialect::Torch2_7 && source.dialect() == Dialect::Torch2_7)
          ? source.storage_alignment()
          : 64;
  if (alignment == 0)
    throw FormatError(source.path() + ": record .storage_alignment holds no alignment ckpt can write (1 to " +
                      std::to_string(container::ZipWriter::kMaxAlignment) + ")");
  return alignment;
}

// Keeps the source's record sequence; only data.pkl and data/* change, and
// .data/serialization_id is computed anew, last, as torch does.
void write_in_source_layout(const Checkpoint& source, const std::string& data, StorageRecordWriter& storages,
                            container::ZipWriter& zw) {
  const container::ZipReader* zip = source.zip();
  bool storages_written = false, had_serialization_id = false;
  for (const auto& r : zip->records()) {
    std::string rel = zip->relative_name(r);
    if (rel == "data.pkl") {
      zw.add("data.pkl", data);
    } else if (rel.rfind("data/", 0) == 0) {
      if (!storages_written) storages.write(zw);
      storages_written = true;
    } else if (rel == ".data/serialization_id") {
      had_serialization_id = true;
    } else {
      if (!storages_written && (rel == "version" || rel == ".data/version")) {
        storages.write(zw);
        storages_written = true;
      }
      if (r.size > (uint64_t{1} << 20))
        throw FormatError(source.path() + ": unexpected large record '" + r.name + "'");
      zw.add(rel, zip->read(r, uint64_t{1} << 20));
    }
  }
  if (!storages_written) storages.write(zw);
  if (had_serialization_id) zw.add_serialization_id();
}

// The record sequence torch of `dialect` writes.
void write_in_dialect_layout(const Checkpoint& source, const std::string& data, Dialect dialect, uint64_t alignment,
                             StorageRecordWriter& storages, container::ZipWriter& zw) {
  // Storage bytes are copied as they are, so their byte order goes along.
  const container::ZipReader* zip = source.zip();
  std::string byteorder = "little";
  if (const container::ZipRecord* r = zip ? zip->find("byteorder") : nullptr) byteorder = zip->read(*r, 16);
  if (byteorder != "little" && dialect == Dialect::Torch1_6)
    throw UsageError(source.path() + ": storages are " + byteorder +
                     "-endian, which the torch-1.6 dialect (no byteorder record) cannot say");
  zw.add("data.pkl", data);
  if (dialect == Dialect::Torch2_7) {
    zw.add(".format_version", "1");
    zw.add(".storage_alignment", std::to_string(alignment));
  }
  if (dialect != Dialect::Torch1_6) zw.add("byteorder", byteorder);
  storages.write(zw);
  zw.add("version", "3\n");
  if (dialect != Dialect::Torch1_6) zw.add_serialization_id();
}

}  // namespace

void save_to(Checkpoint& source, const Node* root, WritableFile& out, const std::string& archive_name,
             const SaveOptions& options) {
  RenumberedPickle pickled = pickle_renumbered(source, root, options);
  const Dialect dialect = options.dialect.value_or(source.dialect());
  StorageRecordWriter storages(source, pickled.old_keys, dialect, options);
  out.reserve(storages.total());
  const uint64_t alignment = output_alignment(source, dialect);
  container::ZipWriter zw(out, archive_name, alignment);
  if (source.zip() && dialect == source.dialect())
    write_in_source_layout(source, pickled.data, storages, zw);
  else
    write_in_dialect_layout(source, pickled.data, dialect, alignment, storages, zw);
  zw.finish();
  // Nothing reads the source meanwhile: the writer has finished with it.
  std::function<void()> check;
  if (storages.has_copies_to_check() || options.check_source)
    check = [&] {
      storages.check_copies();
      if (options.check_source) options.check_source();
    };
  run_alongside([&] { out.sync(); }, check);
}

FormatError crc_mismatch_error(const Checkpoint& ck, const container::ZipRecord& record, uint32_t crc) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "CRC-32 is %08x, the directory says %08x", crc, record.crc32);
  return FormatError(ck.path() + ": record '" + record.name + "' fails its CRC-32 check (" + buf +
                     "): the file is damaged and the output would carry the damage on; fetch or copy it again");
}

void save(Checkpoint& source, const Node* root, Env& env, const std::string& out_path,
          const SaveOptions& options) {
  AtomicOutput output(env, out_path, options.force);
  std::string name = options.archive_name.empty() ? archive_name_for(out_path) : options.archive_name;
  save_to(source, root, output.file(), name, options);
  output.commit();
}

}  // namespace ckpt::torch
