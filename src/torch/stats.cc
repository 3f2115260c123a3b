#include "torch/stats.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "torch/convert.h"
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

}  // namespace

bool has_real_values(const DTypeInfo& d) {
  switch (d.dtype) {
    case DType::Float64: case DType::Float32: case DType::Float16: case DType::BFloat16:
    case DType::Float8E5M2: case DType::Float8E4M3FN:
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
    default:
      throw UsageError(std::string("dtype ") + d.name + " has no real values");
  }
}

TensorStats tensor_stats(const Checkpoint& ck, const TensorInfo& t, const std::string& name) {
  if (!t.dtype || !has_real_values(*t.dtype))
    throw UsageError(ck.path() + ": tensor '" + name + "': no statistics for dtype " +
                     (t.dtype ? t.dtype->name : "?"));
  ElementReader reader(ck, t, name);
  TensorStats s;
  s.numel = reader.remaining();
  std::string raw(static_cast<size_t>(std::min<uint64_t>(kChunkElements, s.numel)) * reader.element_size(), '\0');
  std::vector<double> v(std::min<uint64_t>(kChunkElements, s.numel));
  // Chunk by chunk: exact two-pass mean and squared deviations within a
  // chunk, merged into the running ones with Chan et al.'s update.
  double mean = 0, m2 = 0, sumsq = 0;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  uint64_t count = 0;
  while (size_t n = reader.read(raw.data(), kChunkElements)) {
    decode_to_double(*t.dtype, raw.data(), v.data(), n);
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
    if (k == 0) continue;
    const double chunk_mean = sum / static_cast<double>(k);
    double chunk_m2 = 0;
    for (size_t i = 0; i < k; ++i) {
      const double d = v[i] - chunk_mean;
      chunk_m2 += d * d;
      sumsq += v[i] * v[i];
    }
    const uint64_t total = count + k;
    const double delta = chunk_mean - mean;
    mean += delta * static_cast<double>(k) / static_cast<double>(total);
    m2 += chunk_m2 + delta * delta * static_cast<double>(count) * static_cast<double>(k) / static_cast<double>(total);
    count = total;
  }
  s.finite = count;
  s.min = count ? lo : kNaN;
  s.max = count ? hi : kNaN;
  s.mean = count ? mean : kNaN;
  s.std = count > 1 ? std::sqrt(m2 / static_cast<double>(count - 1)) : kNaN;
  s.std_population = count ? std::sqrt(m2 / static_cast<double>(count)) : kNaN;
  s.norm = std::sqrt(sumsq);
  return s;
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

}  // namespace ckpt::torch
