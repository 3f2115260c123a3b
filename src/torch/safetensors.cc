#include "torch/safetensors.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <set>

#include "torch/convert.h"
#include "util/alongside.h"
#include "util/coding.h"
#include "util/error.h"
#include "util/utf8.h"

namespace ckpt::torch {

using pickle::How;
using pickle::Kind;
using pickle::Node;

namespace {

// Reads storage bytes through a few fixed-size chunks, so that a strided
// walk over a large storage costs bounded memory.
class ChunkedStorage {
 public:
  static constexpr uint64_t kChunk = uint64_t{1} << 20;
  static constexpr size_t kMaxChunks = 64;

  ChunkedStorage(RandomAccessFile& file, uint64_t base, uint64_t size) : file_(file), base_(base), size_(size) {}

  // Pointer to byte `off` of the storage; valid for the rest of its chunk
  // (chunks are multiples of every element size, so an element never straddles).
  const char* at(uint64_t off) {
    if (off - span_lo_ < span_.size()) return span_.data() + (off - span_lo_);
    uint64_t index = off / kChunk;
    if (last_ && last_->index == index) return last_->bytes.data() + (off - index * kChunk);
    Chunk* found = nullptr;
    for (auto& c : chunks_)
      if (c.index == index) found = &c;
    if (!found) {
      if (chunks_.size() < kMaxChunks) {
        chunks_.emplace_back();
        found = &chunks_.back();
      } else {
        found = &*std::min_element(chunks_.begin(), chunks_.end(),
                                   [](const Chunk& a, const Chunk& b) { return a.used < b.used; });
      }
      uint64_t start = index * kChunk, n = std::min(kChunk, size_ - start);
      found->index = index;
      found->bytes.resize(n);
      file_.read(base_ + start, n, found->bytes.data());
    }
    found->used = ++clock_;
    last_ = found;
    return found->bytes.data() + (off - index * kChunk);
  }

  // Reads bytes [lo, hi) at once; at() then serves them from memory. For a
  // view whose span is not much larger than the view itself, this avoids
  // rereading chunks when the walk jumps (a transposed matrix).
  void preload(uint64_t lo, uint64_t hi) {
    span_.resize(hi - lo);
    file_.read(base_ + lo, hi - lo, span_.data());
    span_lo_ = lo;
  }

 private:
  struct Chunk {
    uint64_t index = 0, used = 0;
    std::string bytes;
  };
  RandomAccessFile& file_;
  uint64_t base_, size_;
  std::deque<Chunk> chunks_;
  Chunk* last_ = nullptr;
  uint64_t clock_ = 0;
  std::string span_;
  uint64_t span_lo_ = 0;
};

struct Planned {
  std::string name;
  const TensorInfo* info;
  const char* dtype_name;
  int rank;  // safetensors_dtype_rank
  uint64_t nbytes;
  const DTypeInfo* convert_to = nullptr;  // float_dtype, when it changes the tensor
};

// Appends a contiguous tensor's elements converted to p.convert_to, read in
// bounded chunks.
void write_converted(Checkpoint& ck, const Planned& p, WritableFile& out, const std::function<void(uint64_t)>& advance) {
  const TensorInfo& t = *p.info;
  const StorageLocation where = locate_storage(ck, *t.storage);
  if (!t.is_contiguous() || where.compressed())
    throw UsageError(ck.path() + ": tensor '" + p.name +
                     "' is a strided view or in a compressed record; run 'ckpt rewrite' before converting its dtype");
  const uint64_t in_size = t.dtype->element_size, out_size = p.convert_to->element_size;
  const uint64_t first = where.offset + static_cast<uint64_t>(t.storage_offset) * in_size;
  const uint64_t n = t.numel();
  constexpr uint64_t kElems = uint64_t{1} << 18;
  std::string in, conv;
  for (uint64_t done = 0; done < n;) {
    uint64_t k = std::min(kElems, n - done);
    in.resize(k * in_size);
    conv.resize(k * out_size);
    where.file->read(first + done * in_size, in.size(), in.data());
    convert_elements(t.dtype->dtype, p.convert_to->dtype, in.data(), conv.data(), k);
    out.append(conv);
    advance(conv.size());
    done += k;
  }
}

// Appends the tensor's elements in row-major order.
void write_tensor(Checkpoint& ck, const Planned& p, WritableFile& out,
                  const std::function<void(uint64_t)>& advance) {
  const TensorInfo& t = *p.info;
  if (p.nbytes == 0) return;
  if (p.convert_to) return write_converted(ck, p, out, advance);
  const uint64_t esize = t.dtype->element_size;
  if (!t.storage) throw FormatError(ck.path() + ": tensor '" + p.name + "' has no storage");
  // Bounds in bytes (a _rebuild_tensor_v3 view may use another element
  // type than its storage).
  __int128 last = t.storage_offset;
  if (t.storage_offset < 0) throw FormatError(ck.path() + ": tensor '" + p.name + "' has a negative storage offset");
  for (size_t i = 0; i < t.shape.size(); ++i) {
    if (t.stride[i] < 0) throw FormatError(ck.path() + ": tensor '" + p.name + "' has a negative stride");
    last += static_cast<__int128>(t.shape[i] - 1) * t.stride[i];
  }
  if ((last + 1) * esize > static_cast<__int128>(t.storage->nbytes()))
    throw FormatError(ck.path() + ": tensor '" + p.name + "' reaches past the end of storage '" + t.storage->key + "'");
  const StorageLocation where = locate_storage(ck, *t.storage);
  const uint64_t first_byte = static_cast<uint64_t>(t.storage_offset) * esize;

  if (t.is_contiguous()) {
    if (!where.compressed()) {
      out.copy_from(*where.file, where.offset + first_byte, p.nbytes);
    } else {
      // A DEFLATE record: stream it, keeping the tensor's bytes.
      uint64_t pos = 0, end = first_byte + p.nbytes;
      ck.zip()->stream(*where.record, [&](std::string_view chunk) {
        uint64_t lo = std::max(pos, first_byte), hi = std::min(pos + chunk.size(), end);
        if (lo < hi) out.append(chunk.substr(lo - pos, hi - lo));
        pos += chunk.size();
      });
    }
    advance(p.nbytes);
    return;
  }
  if (t.shape.empty()) throw FormatError(ck.path() + ": tensor '" + p.name + "': a scalar that is not contiguous");
  if (where.compressed())
    throw UsageError(ck.path() + ": tensor '" + p.name +
                     "' is a strided view of a compressed record; run 'ckpt rewrite' first");

  // Gather: an odometer over the outer dimensions, the innermost one walked
  // by its stride; output flushed in bounded pieces.
  ChunkedStorage storage(*where.file, where.offset, where.size);
  const uint64_t span = static_cast<uint64_t>((last + 1) * esize) - first_byte;
  const uint64_t span_budget = std::min(uint64_t{4} << 30, std::max(uint64_t{64} << 20, 2 * p.nbytes));
  if (span <= span_budget) storage.preload(first_byte, first_byte + span);
  const size_t dims = t.shape.size();
  const int64_t inner = t.shape[dims - 1];
  const uint64_t inner_step = static_cast<uint64_t>(t.stride[dims - 1]) * esize;
  std::vector<int64_t> index(dims, 0);
  std::string buffer;
  constexpr size_t kFlush = size_t{1} << 20;
  buffer.reserve(kFlush + 16);
  uint64_t row_start = first_byte;
  while (true) {
    uint64_t off = row_start;
    for (int64_t j = 0; j < inner; ++j, off += inner_step) {
      buffer.append(storage.at(off), esize);
      if (buffer.size() >= kFlush) {
        out.append(buffer);
        advance(buffer.size());
        buffer.clear();
      }
    }
    // Advance the outer index (dimensions 0 .. dims-2), carrying leftwards.
    bool finished = true;
    for (size_t d = dims - 1; d-- > 0;) {
      const uint64_t step = static_cast<uint64_t>(t.stride[d]) * esize;
      if (++index[d] < t.shape[d]) {
        row_start += step;
        finished = false;
        break;
      }
      row_start -= static_cast<uint64_t>(t.shape[d] - 1) * step;
      index[d] = 0;
    }
    if (finished) break;
  }
  out.append(buffer);
  advance(buffer.size());
}

}  // namespace

const DTypeInfo* safetensors_written_dtype(const TensorInfo& t, const SafetensorsWriteOptions& options) {
  if (options.float_dtype && t.dtype && t.dtype->is_floating && t.dtype->dtype != *options.float_dtype &&
      can_convert(t.dtype->dtype, *options.float_dtype))
    return &info(*options.float_dtype);
  return t.dtype;
}

uint64_t safetensors_written_nbytes(const TensorInfo& t, const SafetensorsWriteOptions& options) {
  const DTypeInfo* d = safetensors_written_dtype(t, options);
  return d ? t.numel() * d->element_size : t.nbytes();
}

std::string safetensors_refusal(const TensorInfo& t) {
  if (!t.is_plain()) return "is " + t.form() + ", which safetensors cannot hold (dense tensors only)";
  if (!t.dtype) return "has no dtype";
  if (!safetensors_dtype_name(t.dtype->dtype)) return std::string("has dtype ") + t.dtype->name + ", which safetensors cannot hold";
  return {};
}

void write_safetensors_to(Checkpoint& source, const std::vector<std::pair<std::string, TensorInfo>>& tensors,
                          WritableFile& out, const SafetensorsWriteOptions& options) {
  std::vector<Planned> plan;
  std::set<std::string_view> names;
  for (const auto& [name, info] : tensors) {
    if (!names.insert(name).second) throw UsageError("tensor name '" + name + "' appears twice");
    if (!valid_utf8(name)) throw UsageError("tensor name '" + name + "' is not valid UTF-8, which safetensors needs");
    if (!info.dtype) throw FormatError(source.path() + ": tensor '" + name + "' has no dtype");
    if (!info.is_plain()) throw UsageError("tensor '" + name + "' " + safetensors_refusal(info));
    const DTypeInfo* written = safetensors_written_dtype(info, options);
    const char* d = safetensors_dtype_name(written->dtype);
    if (!d) throw UsageError("tensor '" + name + "' has dtype " + info.dtype->name + ", which safetensors cannot hold");
    if (info.shape.size() != info.stride.size())
      throw FormatError(source.path() + ": tensor '" + name + "': size and stride lengths differ");
    auto nbytes = checked_nbytes(info.shape, written->element_size);
    if (!nbytes) throw FormatError(source.path() + ": tensor '" + name + "' has an invalid shape");
    plan.push_back({name, &info, d, safetensors_dtype_rank(written->dtype), *nbytes,
                    written != info.dtype ? written : nullptr});
  }
  // The reference's order: alignment (its dtype enum) descending, then name.
  std::stable_sort(plan.begin(), plan.end(), [](const Planned& a, const Planned& b) {
    if (a.rank != b.rank) return a.rank > b.rank;
    return a.name < b.name;
  });

  std::vector<SafetensorsEntry> entries;
  uint64_t total = 0;
  for (const auto& p : plan) {
    entries.push_back({p.name, p.dtype_name, p.info->shape, p.nbytes});
    total += p.nbytes;
  }
  std::string header = safetensors_header_json(entries, options.metadata);
  std::string len;
  put_fixed64(len, header.size());
  out.reserve(total);  // a lower bound of the output's size (WritableFile::reserve)
  out.append(len);
  out.append(header);

  uint64_t done = 0;
  auto advance = [&](uint64_t bytes) {
    done += bytes;
    if (options.progress) options.progress(done, total);
  };
  for (const auto& p : plan) write_tensor(source, p, out, advance);
}

void write_safetensors(Checkpoint& source, const std::vector<std::pair<std::string, TensorInfo>>& tensors, Env& env,
                       const std::string& out_path, const SafetensorsWriteOptions& options) {
  AtomicOutput output(env, out_path, options.force);
  write_safetensors_to(source, tensors, output.file(), options);
  run_alongside([&] { output.file().sync(); }, options.check_source);
  output.commit();
}

// ---------------------------------------------------------------- to a checkpoint

Node* make_tensor_node(pickle::Graph& g, const Storage& storage, const std::vector<int64_t>& shape,
                       bool requires_grad, Node* storage_word, Node* location) {
  if (!*storage.dtype->storage_class)
    throw UsageError("dtype " + std::string(storage.dtype->name) + " has no storage type in torch 1.x checkpoints");
  Node* pid = g.persid(g.tuple({storage_word, g.global("torch", storage.dtype->storage_class), g.str(storage.key),
                                location, g.integer(static_cast<int64_t>(storage.numel))}));
  std::vector<Node*> dims, strides;
  for (int64_t d : shape) dims.push_back(g.integer(d));
  for (int64_t s : contiguous_strides(shape)) strides.push_back(g.integer(s));
  Node* hooks = g.object(How::Reduce, g.global("collections", "OrderedDict"), g.tuple());
  Node* args = g.tuple({pid, g.integer(0), g.tuple(std::move(dims)), g.tuple(std::move(strides)),
                        g.boolean(requires_grad), hooks});
  return g.object(How::Reduce, g.global("torch._utils", "_rebuild_tensor_v2"), args);
}

SafetensorsStateDict::SafetensorsStateDict(const std::string& path) : ck_(Checkpoint::create(path, kDefaultDialect)) {
  pickle::Graph& g = ck_->graph();
  root_ = g.object(How::Reduce, g.global("collections", "OrderedDict"), g.tuple());
  g.root = root_;
  storage_word_ = g.str("storage");
  cpu_ = g.str("cpu");
}

void SafetensorsStateDict::add(const SafetensorsTensor& t, const std::shared_ptr<RandomAccessFile>& file,
                               uint64_t data_start, const std::string& file_label) {
  if (!*t.dtype->storage_class)
    throw UsageError(file_label + ": tensor '" + t.name + "' has dtype " + t.dtype_name +
                     ", which torch 1.x checkpoints cannot hold");
  const Storage& s = ck_->add_external_storage(std::to_string(next_key_++), t.dtype, "cpu",
                                               t.nbytes() / t.dtype->element_size, file, data_start + t.begin);
  pickle::Graph& g = ck_->graph();
  root_->entries.emplace_back(g.str(t.name), make_tensor_node(g, s, t.shape, false, storage_word_, cpu_));
}

std::unique_ptr<Checkpoint> checkpoint_from_safetensors(Env& env, const std::string& path) {
  std::shared_ptr<RandomAccessFile> file = env.open_read(path);
  SafetensorsHeader h = read_safetensors(*file);
  SafetensorsStateDict made(path);
  for (const SafetensorsTensor& t : h.tensors) made.add(t, file, h.data_start, path);
  return made.finish();
}

IntoReport replace_tensors_from_safetensors(Checkpoint& ck, Node* state_dict, const SafetensorsHeader& header,
                                            std::shared_ptr<RandomAccessFile> file, const std::string& file_label) {
  IntoReport report;
  auto* entries = pickle::entries_of(state_dict);
  if (!entries) throw UsageError(ck.path() + ": the state to replace is not a mapping");
  std::map<std::string, const SafetensorsTensor*> incoming;
  for (const auto& t : header.tensors) incoming.emplace(t.name, &t);

  struct Slot {
    Node** value;
    TensorInfo info;
    const SafetensorsTensor* from;
  };
  std::vector<Slot> slots;
  std::set<std::string> matched;
  for (auto& [k, v] : *entries) {
    if (k->kind != Kind::Str) continue;
    std::optional<TensorInfo> info = ck.tensor(v);
    auto it = incoming.find(k->text);
    if (info && (!info->is_plain() || !info->subclass.empty() || info->has_state || !info->object->callable ||
                 !(info->object->callable->is_global("torch._utils", "_rebuild_tensor_v2") ||
                   info->object->callable->is_global("torch._utils", "_rebuild_tensor_v3"))))
      throw UsageError(ck.path() + ": tensor '" + k->text + "' is " +
                       (info->form().empty() ? std::string("a Parameter with state") : info->form()) +
                       "; from-safetensors " + option_name("into") + " replaces plain tensors and Parameters only");
    if (!info) {
      if (it != incoming.end()) {
        report.differences.push_back("'" + k->text + "' is a tensor in " + file_label + " but not in " + ck.path());
        matched.insert(k->text);
      }
      continue;
    }
    if (it == incoming.end()) {
      report.differences.push_back("'" + k->text + "' only in " + ck.path());
      continue;
    }
    matched.insert(k->text);
    const SafetensorsTensor& t = *it->second;
    if (t.shape != info->shape) {
      report.differences.push_back("'" + k->text + "' has shape " + shape_text(info->shape) + " in " + ck.path() +
                                   ", " + shape_text(t.shape) + " in " + file_label);
      continue;
    }
    if (!*t.dtype->storage_class)
      throw UsageError(file_label + ": tensor '" + t.name + "' has dtype " + t.dtype_name +
                       ", which torch 1.x checkpoints cannot hold");
    slots.push_back({&v, std::move(*info), &t});
  }
  for (const auto& t : header.tensors)
    if (!matched.count(t.name)) report.differences.push_back("'" + t.name + "' only in " + file_label);
  if (!report.differences.empty()) return report;

  pickle::Graph& g = ck.graph();
  for (size_t i = 0; i < slots.size(); ++i) {
    Slot& s = slots[i];
    const SafetensorsTensor& t = *s.from;
    // Keep the replaced tensor's location and its shared 'storage' /
    // location strings, so the pickle reads as torch would write it.
    const Node* old_pid = s.info.object->args->items[0]->pid;
    Node* storage_word = old_pid->items[0];
    Node* location = old_pid->items[3];
    const Storage& st = ck.add_external_storage("safetensors/" + std::to_string(i), t.dtype,
                                                s.info.storage ? s.info.storage->location : "cpu",
                                                t.nbytes() / t.dtype->element_size, file, header.data_start + t.begin);
    const Node* old_args = s.info.object->args;
    bool inner_grad = old_args->items[4]->kind == Kind::Bool && old_args->items[4]->boolean;
    Node* tensor = make_tensor_node(g, st, t.shape, inner_grad, storage_word, location);
    if (s.info.dtype != t.dtype)
      report.dtype_changes.push_back(t.name + ": " + s.info.dtype->name + " -> " + t.dtype->name);
    if (s.info.is_parameter) {
      Node* hooks = g.object(How::Reduce, g.global("collections", "OrderedDict"), g.tuple());
      tensor = g.object(How::Reduce, g.global("torch._utils", "_rebuild_parameter"),
                        g.tuple({tensor, g.boolean(s.info.requires_grad), hooks}));
    }
    *s.value = tensor;
    ++report.replaced;
  }
  return report;
}

}  // namespace ckpt::torch

