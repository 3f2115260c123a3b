#include "torch/stats.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <functional>
#include <vector>

#include "torch/convert.h"
#include "torch/shape.h"
#include "torch/tensor_data.h"
#include "util/error.h"

namespace ckpt::torch {

namespace {

constexpr size_t kChunkElements = 64 * 1024;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

template <typename T>
void decode_as(const char* src, double* out, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, src + i * sizeof(T), sizeof(T));
    out[i] = static_cast<double>(v);
  }
}

template <typename Kernel>
void decode_bits16(const char* src, double* out, size_t n, Kernel to_f32) {
  for (size_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    uint32_t u = to_f32(h);
    float f;
    std::memcpy(&f, &u, 4);
    out[i] = f;
  }
}

// float8_e4m3fn: bias 7, no infinities, S.1111.111 is NaN.
double e4m3fn_value(uint8_t b) {
  const int e = (b >> 3) & 0xF, m = b & 7;
  double mag = e == 0 ? std::ldexp(m, -9) : std::ldexp(8 + m, e - 10);
  if (e == 15 && m == 7) mag = kNaN;
  return (b & 0x80) ? -mag : mag;
}

// float8_e4m3fnuz: bias 8, no infinities or negative zero, 0x80 is NaN.
double e4m3fnuz_value(uint8_t b) {
  if (b == 0x80) return kNaN;
  const int e = (b >> 3) & 0xF, m = b & 7;
  double mag = e == 0 ? std::ldexp(m, -10) : std::ldexp(8 + m, e - 11);
  return (b & 0x80) ? -mag : mag;
}

// float8_e5m2fnuz: bias 16, no infinities or negative zero, 0x80 is NaN.
double e5m2fnuz_value(uint8_t b) {
  if (b == 0x80) return kNaN;
  const int e = (b >> 2) & 0x1F, m = b & 3;
  double mag = e == 0 ? std::ldexp(m, -17) : std::ldexp(4 + m, e - 18);
  return (b & 0x80) ? -mag : mag;
}

// float8_e8m0fnu: an exponent only, 2^(b - 127); 0xFF is NaN.
double e8m0fnu_value(uint8_t b) { return b == 0xFF ? kNaN : std::ldexp(1.0, b - 127); }

// The integer type a quantized dtype stores its values as.
const DTypeInfo* quantized_repr(DType d) {
  switch (d) {
    case DType::QInt8: return &info(DType::Int8);
    case DType::QUInt8: return &info(DType::UInt8);
    case DType::QInt32: return &info(DType::Int32);
    default: return nullptr;
  }
}

}  // namespace

bool has_real_values(const DTypeInfo& d) {
  switch (d.dtype) {
    case DType::Float64: case DType::Float32: case DType::Float16: case DType::BFloat16:
    case DType::Float8E5M2: case DType::Float8E4M3FN:
    case DType::Float8E4M3FNUZ: case DType::Float8E5M2FNUZ: case DType::Float8E8M0FNU:
    case DType::Int64: case DType::Int32: case DType::Int16: case DType::Int8: case DType::UInt8:
    case DType::UInt16: case DType::UInt32: case DType::UInt64: case DType::Bool:
      return true;
    default:
      return false;
  }
}

void decode_to_double(const DTypeInfo& d, const char* src, double* out, size_t n) {
  switch (d.dtype) {
    case DType::Float64: return decode_as<double>(src, out, n);
    case DType::Float32: return decode_as<float>(src, out, n);
    case DType::Float16: return decode_bits16(src, out, n, float16_to_float32);
    case DType::BFloat16: return decode_bits16(src, out, n, bfloat16_to_float32);
    case DType::Int64: return decode_as<int64_t>(src, out, n);
    case DType::Int32: return decode_as<int32_t>(src, out, n);
    case DType::Int16: return decode_as<int16_t>(src, out, n);
    case DType::Int8: return decode_as<int8_t>(src, out, n);
    case DType::UInt8: return decode_as<uint8_t>(src, out, n);
    case DType::UInt16: return decode_as<uint16_t>(src, out, n);
    case DType::UInt32: return decode_as<uint32_t>(src, out, n);
    case DType::UInt64: return decode_as<uint64_t>(src, out, n);
    case DType::Bool:
      for (size_t i = 0; i < n; ++i) out[i] = src[i] != 0;
      return;
    case DType::Float8E5M2:  // the top byte of a float16
      for (size_t i = 0; i < n; ++i) {
        uint32_t u = float16_to_float32(static_cast<uint16_t>(static_cast<uint8_t>(src[i]) << 8));
        float f;
        std::memcpy(&f, &u, 4);
        out[i] = f;
      }
      return;
    case DType::Float8E4M3FN:
      for (size_t i = 0; i < n; ++i) out[i] = e4m3fn_value(static_cast<uint8_t>(src[i]));
      return;
    case DType::Float8E4M3FNUZ:
      for (size_t i = 0; i < n; ++i) out[i] = e4m3fnuz_value(static_cast<uint8_t>(src[i]));
      return;
    case DType::Float8E5M2FNUZ:
      for (size_t i = 0; i < n; ++i) out[i] = e5m2fnuz_value(static_cast<uint8_t>(src[i]));
      return;
    case DType::Float8E8M0FNU:
      for (size_t i = 0; i < n; ++i) out[i] = e8m0fnu_value(static_cast<uint8_t>(src[i]));
      return;
    default:
      throw UsageError(std::string("dtype ") + d.name + " has no real values");
  }
}

std::string stats_refusal(const TensorInfo& t) {
  if (t.is_meta) return "a meta tensor holds no data";
  if (t.conj) return "complex values (conj bit)";
  const TensorInfo* data = &t;
  if (t.layout == TensorLayout::Jagged && t.part("lengths"))
    return "a jagged tensor with lengths (its values have holes)";
  if (t.layout == TensorLayout::Nested) data = t.part("buffer");
  else if (t.layout != TensorLayout::Strided) data = t.part("values");
  if (!data || !data->dtype) return "no dtype";
  if (t.quantization) {
    if (!quantized_repr(data->dtype->dtype)) return std::string("no statistics for dtype ") + data->dtype->name;
    return {};
  }
  if (!has_real_values(*data->dtype)) return std::string("no statistics for dtype ") + data->dtype->name;
  return {};
}

namespace {

// Elements of a dense tensor as torch shows them, decoded to double in
// row-major order: dequantized (as torch's dequantize(), in float32),
// negative bit applied.
void for_each_value(const Checkpoint& ck, const TensorInfo& t, const std::string& name,
                    const std::function<void(double* v, size_t n)>& fn) {
  const DTypeInfo* repr = t.quantization ? quantized_repr(t.dtype->dtype) : t.dtype;
  if (!repr || !has_real_values(*repr))
    throw UsageError(ck.path() + ": tensor '" + name + "': no statistics for dtype " + t.dtype->name);
  std::vector<double> scales, zero_points;
  uint64_t inner = 1, channels = 1;
  if (t.quantization && t.quantization->per_channel()) {
    auto read_all = [&](const char* part, std::vector<double>& out) {
      const TensorInfo* p = t.part(part);
      for_each_value(ck, *p, name + " (" + part + ")", [&](double* v, size_t n) { out.insert(out.end(), v, v + n); });
    };
    read_all("scales", scales);
    read_all("zero_points", zero_points);
    const auto axis = static_cast<size_t>(t.quantization->axis);
    if (axis >= t.shape.size() || scales.size() != static_cast<uint64_t>(t.shape[axis]) ||
        zero_points.size() != scales.size())
      throw FormatError(ck.path() + ": tensor '" + name + "': per-channel scales do not fit its size");
    channels = scales.size();
    for (size_t d = axis + 1; d < t.shape.size(); ++d) inner *= static_cast<uint64_t>(t.shape[d]);
  }
  ElementReader reader(ck, t, name);
  const uint64_t total = reader.remaining();
  std::string raw(static_cast<size_t>(std::min<uint64_t>(kChunkElements, total)) * reader.element_size(), '\0');
  std::vector<double> v(std::min<uint64_t>(kChunkElements, total));
  uint64_t index = 0;
  while (size_t n = reader.read(raw.data(), kChunkElements)) {
    decode_to_double(*repr, raw.data(), v.data(), n);
    if (t.quantization) {
      for (size_t i = 0; i < n; ++i) {
        double scale = t.quantization->scale, zp = static_cast<double>(t.quantization->zero_point);
        if (!scales.empty()) {
          const uint64_t c = ((index + i) / inner) % channels;
          scale = scales[c];
          zp = zero_points[c];
        }
        v[i] = static_cast<float>(static_cast<float>(v[i] - zp) * static_cast<float>(scale));
      }
    }
    if (t.neg)
      for (size_t i = 0; i < n; ++i) v[i] = -v[i];
    index += n;
    fn(v.data(), n);
  }
}

// Whether a COO indices tensor [sparse_dim, nnz] names an element twice
// (of a tensor whose first sparse_dim sizes are `shape`'s): sorts the
// elements' linear indices, 8 bytes per stored value.
bool has_duplicate_indices(const Checkpoint& ck, const TensorInfo& indices, const std::vector<int64_t>& shape,
                           const std::string& name) {
  if (indices.shape.size() != 2 || !indices.dtype || indices.dtype->dtype != DType::Int64 ||
      indices.shape[0] < 0 || indices.shape[1] < 0 || static_cast<size_t>(indices.shape[0]) > shape.size())
    throw FormatError(ck.path() + ": tensor '" + name + "': sparse indices are not an int64 [sparse_dim, nnz] matrix");
  const auto dims = static_cast<size_t>(indices.shape[0]);
  const auto nnz = static_cast<size_t>(indices.shape[1]);
  if (dims == 0) return nnz > 1;  // every value is the one element
  // Row-major strides of the sparse dimensions; their product is at most
  // numel(), which fits in 64 bits.
  std::vector<uint64_t> stride(dims, 1);
  for (size_t d = dims; d-- > 1;) stride[d - 1] = stride[d] * static_cast<uint64_t>(shape[d]);
  // Grown as the first row is read (never more than the file holds), then
  // added to row by row.
  std::vector<uint64_t> linear;
  uint64_t at = 0;  // element number within the [dims, nnz] matrix
  for_each_element_chunk(ck, indices, name + " (indices)", [&](const char* data, size_t n) {
    for (size_t i = 0; i < n; ++i, ++at) {
      int64_t v;
      std::memcpy(&v, data + i * sizeof v, sizeof v);
      const size_t d = static_cast<size_t>(at / nnz);
      if (v < 0 || v >= shape[d])
        throw FormatError(ck.path() + ": tensor '" + name + "': sparse index " + std::to_string(v) +
                          " is outside dimension " + std::to_string(d));
      const uint64_t term = static_cast<uint64_t>(v) * stride[d];
      if (d == 0) linear.push_back(term);
      else linear[at % nnz] += term;
    }
  });
  if (linear.size() != nnz) throw FormatError(ck.path() + ": tensor '" + name + "': sparse indices ended early");
  std::sort(linear.begin(), linear.end());
  return std::adjacent_find(linear.begin(), linear.end()) != linear.end();
}

// Running statistics: exact two-pass mean and squared deviations within a
// chunk, merged into the running ones with Chan et al.'s update.
struct Accumulator {
  TensorStats s;
  double mean = 0, m2 = 0, sumsq = 0;
  double lo = std::numeric_limits<double>::infinity(), hi = -std::numeric_limits<double>::infinity();
  uint64_t count = 0;

  void merge(uint64_t k, double chunk_mean, double chunk_m2) {
    const uint64_t total = count + k;
    const double delta = chunk_mean - mean;
    mean += delta * static_cast<double>(k) / static_cast<double>(total);
    m2 += chunk_m2 + delta * delta * static_cast<double>(count) * static_cast<double>(k) / static_cast<double>(total);
    count = total;
  }
  void add(double* v, size_t n) {
    size_t k = 0;
    double sum = 0;
    for (size_t i = 0; i < n; ++i) {
      double x = v[i];
      if (std::isnan(x)) {
        ++s.nan;
      } else if (std::isinf(x)) {
        ++s.inf;
      } else {
        v[k++] = x;
        sum += x;
        lo = std::min(lo, x);
        hi = std::max(hi, x);
      }
    }
    if (k == 0) return;
    const double chunk_mean = sum / static_cast<double>(k);
    double chunk_m2 = 0;
    for (size_t i = 0; i < k; ++i) {
      const double d = v[i] - chunk_mean;
      chunk_m2 += d * d;
      sumsq += v[i] * v[i];
    }
    merge(k, chunk_mean, chunk_m2);
  }
  // The zeros a sparse tensor does not store.
  void add_zeros(uint64_t k) {
    if (k == 0) return;
    lo = std::min(lo, 0.0);
    hi = std::max(hi, 0.0);
    merge(k, 0, 0);
  }
  TensorStats finish(uint64_t numel) {
    s.numel = numel;
    s.finite = count;
    s.min = count ? lo : kNaN;
    s.max = count ? hi : kNaN;
    s.mean = count ? mean : kNaN;
    s.std = count > 1 ? std::sqrt(m2 / static_cast<double>(count - 1)) : kNaN;
    s.std_population = count ? std::sqrt(m2 / static_cast<double>(count)) : kNaN;
    s.norm = std::sqrt(sumsq);
    return s;
  }
};

}  // namespace

TensorStats tensor_stats(const Checkpoint& ck, const TensorInfo& t, const std::string& name) {
  if (std::string why = stats_refusal(t); !why.empty())
    throw UsageError(ck.path() + ": tensor '" + name + "': " + why);
  Accumulator acc;
  auto add = [&](double* v, size_t n) { acc.add(v, n); };
  if (t.layout == TensorLayout::Strided) {
    for_each_value(ck, t, name, add);
    return acc.finish(t.numel());
  }
  // Sparse: the stored values and the zeros of the dense tensor; nested:
  // every element of every component.
  if (t.layout == TensorLayout::SparseCoo && !t.coalesced && has_duplicate_indices(ck, *t.part("indices"), t.shape, name))
    throw UsageError(ck.path() + ": tensor '" + name +
                     "': an uncoalesced sparse_coo tensor with duplicate indices (their values add up): coalesce() "
                     "it for statistics");
  const TensorInfo& data = *t.part(t.layout == TensorLayout::Nested ? "buffer" : "values");
  for_each_value(ck, data, name, add);
  if (t.layout == TensorLayout::Nested || t.layout == TensorLayout::Jagged) return acc.finish(data.numel());
  const uint64_t stored = data.numel(), numel = t.numel();
  if (stored > numel) throw FormatError(ck.path() + ": tensor '" + name + "' stores more values than it has elements");
  acc.add_zeros(numel - stored);
  return acc.finish(numel);
}

ValueDiff compare_values(const Checkpoint& a, const TensorInfo& ta, const std::string& name_a, const Checkpoint& b,
                         const TensorInfo& tb, const std::string& name_b, double atol, double rtol) {
  ElementReader ra(a, ta, name_a), rb(b, tb, name_b);
  if (ra.remaining() != rb.remaining())
    throw UsageError("cannot compare '" + name_a + "' (" + std::to_string(ra.remaining()) + " elements) with '" +
                     name_b + "' (" + std::to_string(rb.remaining()) + ")");
  ValueDiff out;
  const bool same_dtype = ta.dtype == tb.dtype;
  const bool real = has_real_values(*ta.dtype) && has_real_values(*tb.dtype);
  if (!same_dtype && !real)
    throw UsageError("cannot compare '" + name_a + "' (" + ta.dtype->name + ") with '" + name_b + "' (" +
                     tb.dtype->name + ")");
  const size_t ea = ra.element_size(), eb = rb.element_size();
  const size_t chunk = static_cast<size_t>(std::min<uint64_t>(kChunkElements, ra.remaining()));
  std::string bufa(chunk * ea, '\0'), bufb(chunk * eb, '\0');
  std::vector<double> va(chunk), vb(chunk);
  while (size_t n = ra.read(bufa.data(), chunk)) {
    if (rb.read(bufb.data(), n) != n) throw FormatError(b.path() + ": tensor '" + name_b + "' ended early");
    out.compared += n;
    if (same_dtype && std::memcmp(bufa.data(), bufb.data(), n * ea) == 0) continue;
    if (real) {
      decode_to_double(*ta.dtype, bufa.data(), va.data(), n);
      decode_to_double(*tb.dtype, bufb.data(), vb.data(), n);
    }
    for (size_t i = 0; i < n; ++i) {
      bool differs;
      if (same_dtype) {
        differs = std::memcmp(bufa.data() + i * ea, bufb.data() + i * eb, ea) != 0;
      } else {
        differs = !(va[i] == vb[i] || (std::isnan(va[i]) && std::isnan(vb[i])));
      }
      if (!differs) continue;
      ++out.differing;
      if (!real) {
        ++out.beyond_tolerance;
        continue;
      }
      if (!std::isfinite(va[i]) || !std::isfinite(vb[i])) {
        ++out.nonfinite_differing;
        ++out.beyond_tolerance;
      } else {
        double d = std::fabs(va[i] - vb[i]);
        out.max_abs_diff = std::max(out.max_abs_diff, d);
        if (!(d <= atol + rtol * std::fabs(vb[i]))) ++out.beyond_tolerance;
      }
    }
  }
  return out;
}

namespace {

std::string exact_form(const TensorInfo& t) {
  std::string f = t.form();
  if (t.quantization && !t.quantization->per_channel()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, " [scale %.17g]", t.quantization->scale);
    f += buf;
  }
  return f;
}

bool comparable(const TensorInfo& a, const TensorInfo& b) {
  return a.dtype && b.dtype && a.shape == b.shape &&
         (a.dtype == b.dtype || (has_real_values(*a.dtype) && has_real_values(*b.dtype)));
}

}  // namespace

TensorDiff compare_tensors(const Checkpoint& a, const TensorInfo& ta, const std::string& name_a, const Checkpoint& b,
                           const TensorInfo& tb, const std::string& name_b) {
  TensorDiff out;
  std::string fa = ta.form(), fb = tb.form();
  if (fa != fb) {
    out.form_changes.push_back((fa.empty() ? "plain" : fa) + " -> " + (fb.empty() ? "plain" : fb));
  } else if (exact_form(ta) != exact_form(tb)) {
    out.form_changes.push_back(exact_form(ta) + " -> " + exact_form(tb));
  }
  if (ta.layout != tb.layout || ta.is_meta || tb.is_meta) return out;
  if (ta.layout == TensorLayout::Strided && comparable(ta, tb)) {
    ValueDiff v = compare_values(a, ta, name_a, b, tb, name_b);
    if (!v.equal()) out.values.emplace_back("", v);
  }
  for (const auto& [part, pa] : ta.parts) {
    const TensorInfo* pb = tb.part(part);
    if (!pb) continue;  // a form change says so
    if (!comparable(pa, *pb)) {
      out.form_changes.push_back(part + " " + (pa.dtype ? pa.dtype->name : "?") + " " + shape_text(pa.shape) +
                                 " -> " + (pb->dtype ? pb->dtype->name : "?") + " " + shape_text(pb->shape));
      continue;
    }
    ValueDiff v = compare_values(a, pa, name_a + " (" + part + ")", b, *pb, name_b + " (" + part + ")");
    if (!v.equal()) out.values.emplace_back(part, v);
  }
  return out;
}

}  // namespace ckpt::torch
