#include "torch/safetensors_format.h"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "torch/shape.h"
#include "util/coding.h"
#include "util/error.h"
#include "util/utf8.h"

namespace ckpt::torch {

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

// ---------------------------------------------------------------- reading

namespace {

// The header's JSON, checked as the reference reads it (UTF-8, no NUL, no
// duplicate top-level key) and bounded in depth.
OrderedJson parse_header_json(std::string_view json, const std::string& where) {
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
  return doc;
}

// One tensor's description: {"dtype", "shape", "data_offsets"}.
SafetensorsTensor parse_tensor_entry(const std::string& key, const OrderedJson& value, const std::string& what) {
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
  return t;
}

// The reference's validate(): sorted by offsets, each tensor starts where
// the previous ended, its size is numel * element size, and the last one
// ends at the end of the file.
void check_offsets_tile_data(const SafetensorsHeader& h, uint64_t data_size, const std::string& where) {
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
    if (!nbytes) throw FormatError(what + ": shape " + shape_text(t->shape) + " overflows");
    if (*nbytes != t->nbytes())
      throw FormatError(what + ": " + t->dtype_name + " " + shape_text(t->shape) + " needs " +
                        std::to_string(*nbytes) + " bytes, data_offsets give " + std::to_string(t->nbytes()));
    start = t->end;
  }
  if (start != data_size)
    throw FormatError(where + ": safetensors tensors cover " + std::to_string(start) + " bytes of a data section of " +
                      std::to_string(data_size));
}

}  // namespace

SafetensorsHeader parse_safetensors_header(std::string_view json, uint64_t data_size, const std::string& where) {
  OrderedJson doc = parse_header_json(json, where);
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
    h.tensors.push_back(parse_tensor_entry(key, value, what));
  }
  check_offsets_tile_data(h, data_size, where);
  return h;
}

namespace {

// A file shorter than its header's last data offset says: the file was cut
// (the tiling check would name a tensor instead). Any header it cannot read
// is left to the full parse.
void truncation_check(const std::string& json, uint64_t size, uint64_t n, const std::string& where) {
  uint64_t end = 0;
  try {
    OrderedJson doc = parse_header_json(json, where);  // depth-guarded
    if (!doc.is_object()) return;
    for (auto& [key, value] : doc.items()) {
      if (key == "__metadata__" || !value.is_object()) continue;
      auto it = value.find("data_offsets");
      if (it == value.end() || !it->is_array() || it->size() != 2 || !(*it)[1].is_number_unsigned()) continue;
      end = std::max(end, (*it)[1].get<uint64_t>());
    }
  } catch (const std::exception&) {
    return;
  }
  if (end > size - 8 - n)
    throw FormatError(where + ": truncated: " + std::to_string(size) + " bytes, and its safetensors header declares " +
                      std::to_string(8 + n + end) + " (interrupted download or copy?)");
}

}  // namespace

SafetensorsHeader read_safetensors(RandomAccessFile& file) {
  const std::string& where = file.path();
  uint64_t size = file.size();
  if (size < 8) throw FormatError(where + ": " + std::to_string(size) + " bytes: too short for a safetensors file");
  std::string len_bytes = file.read_string(0, 8);
  uint64_t n = decode_fixed64(len_bytes.data());
  if (n > kSafetensorsMaxHeader)
    throw FormatError(where + ": safetensors header of " + std::to_string(n) + " bytes is over the limit of " +
                      std::to_string(kSafetensorsMaxHeader) + " (not a safetensors file?)");
  if (n > size - 8)
    throw FormatError(where + ": truncated: " + std::to_string(size) + " bytes, and the safetensors header of " +
                      std::to_string(n) + " bytes runs past the end of the file (it needs " + std::to_string(8 + n) +
                      "; interrupted download or copy?)");
  std::string json = file.read_string(8, n);
  truncation_check(json, size, n, where);
  SafetensorsHeader h = parse_safetensors_header(json, size - 8 - n, where);
  h.data_start = 8 + n;
  return h;
}

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

}  // namespace ckpt::torch
