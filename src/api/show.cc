#include "api/show.h"

#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "api/format.h"
#include "torch/stats.h"
#include "torch/tensor_data.h"
#include "util/error.h"
#include "util/suggest.h"

namespace ckpt::api {

namespace {

// The shortest decimal that reads back as the same value of the dtype
// (float32, float64); the small floats get the digits they hold.
std::string number(double v, torch::DType d = torch::DType::Float64) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[40];
  using torch::DType;
  if (d == DType::Float16 || d == DType::BFloat16 || d == DType::Float8E5M2 || d == DType::Float8E4M3FN) {
    int digits = d == DType::Float16 ? 5 : d == DType::BFloat16 ? 4 : 3;
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    return buf;
  }
  for (int p = 1; p <= 17; ++p) {
    std::snprintf(buf, sizeof buf, "%.*g", p, v);
    double back = std::strtod(buf, nullptr);
    if (d == DType::Float32 ? static_cast<float>(back) == static_cast<float>(v) : back == v) break;
  }
  return buf;
}

// One element as text: exact for 64-bit integers, float pairs for complex,
// hex bytes for quantized types.
std::string element_text(const torch::DTypeInfo& d, const char* p) {
  using torch::DType;
  switch (d.dtype) {
    case DType::Int64: {
      int64_t v;
      std::memcpy(&v, p, 8);
      return std::to_string(v);
    }
    case DType::UInt64: {
      uint64_t v;
      std::memcpy(&v, p, 8);
      return std::to_string(v);
    }
    case DType::Bool: return p[0] ? "True" : "False";
    case DType::Complex64:
    case DType::Complex128: {
      const auto& part = torch::info(d.dtype == DType::Complex64 ? DType::Float32 : DType::Float64);
      double re, im;
      torch::decode_to_double(part, p, &re, 1);
      torch::decode_to_double(part, p + part.element_size, &im, 1);
      return "(" + number(re, part.dtype) + (std::signbit(im) ? "-" : "+") + number(std::fabs(im), part.dtype) + "j)";
    }
    default: break;
  }
  if (torch::has_real_values(d)) {
    double v;
    torch::decode_to_double(d, p, &v, 1);
    return d.is_floating ? number(v, d.dtype) : std::to_string(static_cast<int64_t>(v));
  }
  std::string hex = "0x";
  for (uint32_t i = 0; i < d.element_size; ++i) {
    char b[4];
    std::snprintf(b, sizeof b, "%02x", static_cast<unsigned char>(p[d.element_size - 1 - i]));
    hex += b;
  }
  return hex;
}

}  // namespace

TensorValues::TensorValues(Env& env, const std::string& file, const std::string& name,
                           const std::optional<std::string>& state, bool ignore_crc)
    : opened_(open_checkpoint(env, file)) {
  // NAME is a key of the state dict, or (without --state) a path `ls`
  // prints from the root (optimizer/state/0/exp_avg, _modules/0/_parameters/weight).
  std::string path;
  const pickle::Node* value = nullptr;
  std::vector<std::string> names;
  if (state || opened_.best_state) {
    path = opened_.state_path_or_best(state);
    for (auto& [k, v] : *pickle::entries_of(opened_.state_dict(path))) {
      names.push_back(key_text(k));
      if (names.back() == name) value = v;
    }
    if (value) state_note_ = opened_.state_note(state);
  }
  if (!value && !state) {
    value = audiocraft::resolve_path(opened_.ck->root(), name);
    if (!value && !opened_.best_state) opened_.default_state_path();  // the error listing the state dicts
    if (value) path = "/";
  }
  if (!value)
    throw UsageError(file + ": no tensor '" + name + "' in '" + path + "'" + did_you_mean(name, names) +
                     " (see 'ckpt tensors', 'ckpt ls')");
  auto t = opened_.ck->tensor(value);
  if (!t)
    throw UsageError(file + ": '" + name + "' in '" + path + "' is not a tensor (" + describe(value, *opened_.ck) + ")");
  if (!t->dtype) throw UsageError(file + ": tensor '" + name + "' has an unknown dtype");
  info_ = std::make_unique<torch::TensorInfo>(std::move(*t));
  reader_ = std::make_unique<torch::ElementReader>(*opened_.ck, *info_, name);
  if (const container::ZipRecord* rec = reader_->location().record; rec && !ignore_crc) {
    const uint32_t crc = opened_.ck->zip()->compute_crc(*rec);
    if (crc != rec->crc32) throw_crc_mismatch(*opened_.ck, *rec, crc, /*reading=*/true);
  }
}

TensorValues::~TensorValues() = default;

size_t TensorValues::next(std::vector<std::string>& cells, size_t max) {
  const size_t es = reader_->element_size();
  buf_.resize(std::min<size_t>(max, 4096) * es);
  size_t n = reader_->read(buf_.data(), std::min<size_t>(max, 4096));
  for (size_t i = 0; i < n; ++i) cells.push_back(element_text(*info_->dtype, buf_.data() + i * es));
  return n;
}

ShowResult show(Env& env, const std::string& file, const ShowOptions& options) {
  if (options.head < 0) throw UsageError(option_name("head") + " must be 0 (all) or more");
  TensorValues values(env, file, options.name, options.state, options.ignore_crc);
  const torch::TensorInfo& t = values.info();
  ShowResult r{options.name, t.dtype->name, t.shape, t.numel(), {}, 0};
  const uint64_t wanted = options.head == 0 ? r.numel : std::min<uint64_t>(r.numel, static_cast<uint64_t>(options.head));
  while (r.values.size() < wanted)
    if (values.next(r.values, static_cast<size_t>(std::min<uint64_t>(wanted - r.values.size(), 4096))) == 0) break;
  r.more = r.numel - r.values.size();
  return r;
}

}  // namespace ckpt::api
