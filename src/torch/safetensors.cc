#include "torch/safetensors.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <optional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "util/error.h"

namespace ckpt::torch {

using pickle::How;
using pickle::Kind;
using pickle::Node;

namespace {

struct DTypeName {
  const char* name;
  DType dtype;
  int rank;  // position in the reference's Dtype enum (increasing alignment)
};

// The reference's enum, in its order (BOOL, F4, F6_E2M3, F6_E3M2, U8, I8,
// F8_E5M2, F8_E4M3, F8_E8M0, F8_E4M3FNUZ, F8_E5M2FNUZ, I16, U16, F16, BF16,
// I32, U32, F32, C64, F64, I64, U64), less the types torch has no storage
// for; the ranks keep the gaps so the sort order is the reference's.
constexpr DTypeName kNames[] = {
    {"BOOL", DType::Bool, 0},           {"U8", DType::UInt8, 4},     {"I8", DType::Int8, 5},
    {"F8_E5M2", DType::Float8E5M2, 6},  {"F8_E4M3", DType::Float8E4M3FN, 7},
    {"F8_E4M3FNUZ", DType::Float8E4M3FNUZ, 9}, {"F8_E5M2FNUZ", DType::Float8E5M2FNUZ, 10},
    {"I16", DType::Int16, 11},          {"U16", DType::UInt16, 12},  {"F16", DType::Float16, 13},
    {"BF16", DType::BFloat16, 14},      {"I32", DType::Int32, 15},   {"U32", DType::UInt32, 16},
    {"F32", DType::Float32, 17},        {"C64", DType::Complex64, 18}, {"F64", DType::Float64, 19},
    {"I64", DType::Int64, 20},          {"U64", DType::UInt64, 21},
};

const DTypeName* by_dtype(DType d) {
  for (const auto& n : kNames)
    if (n.dtype == d) return &n;
  return nullptr;
}

// serde_json's string escaping: quote, backslash and control characters;
// everything else (UTF-8 included) as is.
void append_json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (u < 0x20) {
          out += "\\u00";
          out += kHex[u >> 4];
          out += kHex[u & 15];
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

// Strict UTF-8 (no surrogates, no overlongs): what a Rust String holds.
bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c >> 5) == 6) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c >> 4) == 14) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c >> 3) == 30) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc >> 6) != 2) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// numel * size in bytes, or nullopt on overflow.
std::optional<uint64_t> checked_nbytes(const std::vector<int64_t>& shape, uint64_t element_size) {
  uint64_t n = element_size;
  for (int64_t d : shape) {
    if (d < 0) return std::nullopt;
    uint64_t u = static_cast<uint64_t>(d);
    if (u != 0 && n > std::numeric_limits<uint64_t>::max() / u) return std::nullopt;
    n *= u;
  }
  return n;
}

using OrderedJson = nlohmann::ordered_json;

uint64_t json_uint(const OrderedJson& v, const std::string& what) {
  if (!v.is_number_unsigned()) throw FormatError(what + " is not a non-negative integer");
  return v.get<uint64_t>();
}

}  // namespace

const char* safetensors_dtype_name(DType d) {
  const DTypeName* n = by_dtype(d);
  return n ? n->name : nullptr;
}

const DTypeInfo* dtype_from_safetensors(std::string_view name) {
  for (const auto& n : kNames)
    if (name == n.name) return &info(n.dtype);
  return nullptr;
}

int safetensors_dtype_rank(DType d) {
  const DTypeName* n = by_dtype(d);
  return n ? n->rank : -1;
}

std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> stride(shape.size());
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    stride[i] = s;
    int64_t d = std::max<int64_t>(shape[i], 1);
    if (s > std::numeric_limits<int64_t>::max() / d) throw FormatError("shape " + shape_string(shape) + " is too large");
    s *= d;
  }
  return stride;
}

// ---------------------------------------------------------------- reading

SafetensorsHeader parse_safetensors_header(std::string_view json, uint64_t data_size, const std::string& where) {
  if (!valid_utf8(json)) throw FormatError(where + ": safetensors header is not valid UTF-8");
  // JSON has no raw NUL anywhere (nlohmann's lexer would stop at one as at
  // the end of the input; the reference rejects it).
  if (size_t nul = json.find('\0'); nul != std::string_view::npos)
    throw FormatError(where + ": safetensors header is not valid JSON (NUL byte at offset " + std::to_string(8 + nul) +
                      ")");
  // The format nests three deep ({name: {"shape": [n]}}); unknown fields
  // may nest a little more (the reference ignores them), but not without
  // bound, so that no hostile header costs deep recursion anywhere.
  constexpr int kMaxDepth = 64;
  std::set<std::string> seen_keys;
  auto guard = [&](int depth, OrderedJson::parse_event_t event, OrderedJson& parsed) {
    if (depth > kMaxDepth)
      throw FormatError(where + ": safetensors header nests deeper than " + std::to_string(kMaxDepth) + " levels");
    if (event == OrderedJson::parse_event_t::key && depth == 1) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!seen_keys.insert(key).second)
        throw FormatError(where + ": safetensors header names '" + key + "' twice");
    }
    return true;
  };
  OrderedJson doc;
  try {
    doc = OrderedJson::parse(json.begin(), json.end(), guard);
  } catch (const OrderedJson::exception& e) {
    throw FormatError(where + ": safetensors header is not valid JSON (" + e.what() + ")");
  }
  if (!doc.is_object()) throw FormatError(where + ": safetensors header is not a JSON object");

  SafetensorsHeader h;
  for (auto& [key, value] : doc.items()) {
    std::string what = where + ": safetensors header: '" + key + "'";
    if (key == "__metadata__") {
      if (value.is_null()) continue;
      if (!value.is_object()) throw FormatError(what + " is not a map of strings");
      for (auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) throw FormatError(what + ": value of '" + mk + "' is not a string");
        h.metadata.emplace_back(mk, mv.get<std::string>());
      }
      continue;
    }
    if (!value.is_object()) throw FormatError(what + " is not a tensor description");
    SafetensorsTensor t;
    t.name = key;
    auto dtype = value.find("dtype"), shape = value.find("shape"), offsets = value.find("data_offsets");
    if (dtype == value.end() || shape == value.end() || offsets == value.end())
      throw FormatError(what + " lacks dtype, shape or data_offsets");
    if (!dtype->is_string()) throw FormatError(what + ": dtype is not a string");
    t.dtype_name = dtype->get<std::string>();
    t.dtype = dtype_from_safetensors(t.dtype_name);
    if (!t.dtype) throw FormatError(what + ": unknown or unsupported dtype '" + t.dtype_name + "'");
    if (!shape->is_array()) throw FormatError(what + ": shape is not a list");
    for (const auto& d : *shape) {
      uint64_t v = json_uint(d, what + ": shape element");
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        throw FormatError(what + ": shape element " + std::to_string(v) + " is too large");
      t.shape.push_back(static_cast<int64_t>(v));
    }
    if (!offsets->is_array() || offsets->size() != 2) throw FormatError(what + ": data_offsets is not a pair");
    t.begin = json_uint((*offsets)[0], what + ": data_offsets");
    t.end = json_uint((*offsets)[1], what + ": data_offsets");
    h.tensors.push_back(std::move(t));
  }

  // The reference's validate(): sorted by offsets, each tensor starts where
  // the previous ended, its size is numel * element size, and the last one
  // ends at the end of the file.
  std::vector<const SafetensorsTensor*> by_offset;
  for (const auto& t : h.tensors) by_offset.push_back(&t);
  std::stable_sort(by_offset.begin(), by_offset.end(), [](const SafetensorsTensor* a, const SafetensorsTensor* b) {
    return std::pair(a->begin, a->end) < std::pair(b->begin, b->end);
  });
  uint64_t start = 0;
  for (const SafetensorsTensor* t : by_offset) {
    std::string what = where + ": safetensors tensor '" + t->name + "'";
    if (t->end < t->begin) throw FormatError(what + ": data_offsets end before they begin");
    if (t->begin != start)
      throw FormatError(what + ": data_offsets [" + std::to_string(t->begin) + ", " + std::to_string(t->end) + "] " +
                        (t->begin < start ? "overlap the previous tensor" : "leave a hole after byte " +
                                                                                 std::to_string(start)));
    auto nbytes = checked_nbytes(t->shape, t->dtype->element_size);
    if (!nbytes) throw FormatError(what + ": shape " + shape_string(t->shape) + " overflows");
    if (*nbytes != t->nbytes())
      throw FormatError(what + ": " + t->dtype_name + " " + shape_string(t->shape) + " needs " +
                        std::to_string(*nbytes) + " bytes, data_offsets give " + std::to_string(t->nbytes()));
    start = t->end;
  }
  if (start != data_size)
    throw FormatError(where + ": safetensors tensors cover " + std::to_string(start) + " bytes of a data section of " +
                      std::to_string(data_size));
  return h;
}

SafetensorsHeader read_safetensors(RandomAccessFile& file) {
  const std::string& where = file.path();
  uint64_t size = file.size();
  if (size < 8) throw FormatError(where + ": " + std::to_string(size) + " bytes: too short for a safetensors file");
  std::string len_bytes = file.read_string(0, 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(len_bytes[i]);
  if (n > kSafetensorsMaxHeader)
    throw FormatError(where + ": safetensors header of " + std::to_string(n) + " bytes is over the limit of " +
                      std::to_string(kSafetensorsMaxHeader) + " (not a safetensors file?)");
  if (n > size - 8)
    throw FormatError(where + ": safetensors header of " + std::to_string(n) + " bytes runs past the end of the file");
  std::string json = file.read_string(8, n);
  SafetensorsHeader h = parse_safetensors_header(json, size - 8 - n, where);
  h.data_start = 8 + n;
  return h;
}

// ---------------------------------------------------------------- writing

std::string safetensors_header_json(const std::vector<SafetensorsEntry>& entries,
                                    const std::vector<std::pair<std::string, std::string>>& metadata) {
  std::string out = "{";
  bool first = true;
  if (!metadata.empty()) {
    out += "\"__metadata__\":{";
    for (size_t i = 0; i < metadata.size(); ++i) {
      if (i) out += ',';
      append_json_string(out, metadata[i].first);
      out += ':';
      append_json_string(out, metadata[i].second);
    }
    out += '}';
    first = false;
  }
  uint64_t offset = 0;
  for (const auto& e : entries) {
    if (!first) out += ',';
    first = false;
    append_json_string(out, e.name);
    out += ":{\"dtype\":";
    append_json_string(out, e.dtype_name);
    out += ",\"shape\":[";
    for (size_t i = 0; i < e.shape.size(); ++i) {
      if (i) out += ',';
      out += std::to_string(e.shape[i]);
    }
    out += "],\"data_offsets\":[" + std::to_string(offset) + ',' + std::to_string(offset + e.nbytes) + "]}";
    offset += e.nbytes;
  }
  out += '}';
  out.append((8 - out.size() % 8) % 8, ' ');
  return out;
}

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
  const DTypeName* dtype;
  uint64_t nbytes;
};

// Appends the tensor's elements in row-major order.
void write_tensor(Checkpoint& ck, const Planned& p, WritableFile& out,
                  const std::function<void(uint64_t)>& advance) {
  const TensorInfo& t = *p.info;
  if (p.nbytes == 0) return;
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

std::string safetensors_refusal(const TensorInfo& t) {
  if (!t.is_plain()) return "is " + t.form() + ", which safetensors cannot hold (dense tensors only)";
  if (!t.dtype) return "has no dtype";
  if (!by_dtype(t.dtype->dtype)) return std::string("has dtype ") + t.dtype->name + ", which safetensors cannot hold";
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
    const DTypeName* d = by_dtype(info.dtype->dtype);
    if (!d) throw UsageError("tensor '" + name + "' has dtype " + info.dtype->name + ", which safetensors cannot hold");
    if (info.shape.size() != info.stride.size())
      throw FormatError(source.path() + ": tensor '" + name + "': size and stride lengths differ");
    auto nbytes = checked_nbytes(info.shape, info.dtype->element_size);
    if (!nbytes) throw FormatError(source.path() + ": tensor '" + name + "' has an invalid shape");
    plan.push_back({name, &info, d, *nbytes});
  }
  // The reference's order: alignment (its dtype enum) descending, then name.
  std::stable_sort(plan.begin(), plan.end(), [](const Planned& a, const Planned& b) {
    if (a.dtype->rank != b.dtype->rank) return a.dtype->rank > b.dtype->rank;
    return a.name < b.name;
  });

  std::vector<SafetensorsEntry> entries;
  uint64_t total = 0;
  for (const auto& p : plan) {
    entries.push_back({p.name, p.dtype->name, p.info->shape, p.nbytes});
    total += p.nbytes;
  }
  std::string header = safetensors_header_json(entries, options.metadata);
  std::string len(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((n >> (8 * i)) & 0xff);
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

std::unique_ptr<Checkpoint> checkpoint_from_safetensors(Env& env, const std::string& path) {
  std::shared_ptr<RandomAccessFile> file = env.open_read(path);
  SafetensorsHeader h = read_safetensors(*file);
  auto ck = Checkpoint::create(path, kDefaultDialect);
  pickle::Graph& g = ck->graph();
  Node* root = g.object(How::Reduce, g.global("collections", "OrderedDict"), g.tuple());
  g.root = root;
  Node* storage_word = g.str("storage");
  Node* cpu = g.str("cpu");
  for (size_t i = 0; i < h.tensors.size(); ++i) {
    const SafetensorsTensor& t = h.tensors[i];
    if (!*t.dtype->storage_class)
      throw UsageError(path + ": tensor '" + t.name + "' has dtype " + t.dtype_name +
                       ", which torch 1.x checkpoints cannot hold");
    const Storage& s = ck->add_external_storage(std::to_string(i), t.dtype, "cpu", t.nbytes() / t.dtype->element_size,
                                                file, h.data_start + t.begin);
    root->entries.emplace_back(g.str(t.name), make_tensor_node(g, s, t.shape, false, storage_word, cpu));
  }
  return ck;
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
                       "; from-safetensors --into replaces plain tensors and Parameters only");
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
      report.differences.push_back("'" + k->text + "' has shape " + shape_string(info->shape) + " in " + ck.path() +
                                   ", " + shape_string(t.shape) + " in " + file_label);
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
