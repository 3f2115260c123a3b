// The kernels are written as branch-free selects over integers so that the
// compiler vectorizes the bulk loops; target_clones adds an AVX2 (x86-64-v3)
// and an AVX-512 version picked at load time, so the binary stays portable.
//
// NaNs, as torch 1.13 writes them on x86 CPUs (tests/unit/data/convert has
// the goldens):
// - float32 -> bfloat16: 0xFFFF for every NaN (ATen's vectorized cvtfp32_bf16);
// - float64/float16 -> bfloat16: 0x7FC0 (c10::BFloat16's scalar rounding; for
//   float64 torch's own output depends on the NaN's position, see the golden
//   script, and ckpt keeps the scalar result);
// - to float16: sign | 0x7E00 (payload dropped);
// - float16 -> float32: payload kept, quiet bit set; bfloat16 -> float32: the
//   bits shifted, signalling NaNs stay signalling;
// - float64 -> float32: the hardware conversion (quiet, top payload bits kept).
// float64 sources are rounded to float32 first, as c10 does (double rounding).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#include "torch/convert.h"

#include <cstring>
#include <string>

#include "torch/tensor_data.h"
#include "util/error.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__SANITIZE_ADDRESS__)
#define CKPT_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CKPT_VECTOR_CLONES
#endif

namespace ckpt::torch {

namespace {

inline uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
// c ? a : b as mask arithmetic: chained ternaries make GCC emit branches,
// which stop the vectorizer.
inline uint32_t select(bool c, uint32_t a, uint32_t b) {
  const uint32_t m = 0u - static_cast<uint32_t>(c);
  return (a & m) | (b & ~m);
}

// Round to nearest even on the top 16 bits; `nan` is what a NaN becomes.
inline uint16_t f32_to_bf16(uint32_t x, uint16_t nan) {
  uint32_t rounded = (x + 0x7FFFu + ((x >> 16) & 1u)) >> 16;
  return (x & 0x7FFFFFFFu) > 0x7F800000u ? nan : static_cast<uint16_t>(rounded);
}

inline uint16_t f32_to_f16(uint32_t x) {
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t a = x & 0x7FFFFFFFu;
  // Normal result: rebias the exponent (127 -> 15) and round off 13 bits;
  // a carry out of the mantissa correctly bumps the exponent.
  const uint32_t r = a - 0x38000000u;
  const uint32_t normal = (r + 0xFFFu + ((r >> 13) & 1u)) >> 13;
  // Subnormal result (|x| < 2^-14): adding 0.5 puts the float's last
  // mantissa bit at 2^-24, the float16 subnormal step, so the hardware's
  // round to nearest even does the rounding; the low bits are the result.
  float af;
  std::memcpy(&af, &a, 4);
  const uint32_t sub = bits_of(af + 0.5f) - 0x3F000000u;
  uint32_t mag = select(a >= 0x38800000u, normal, sub);
  mag = select(a >= 0x477FF000u, 0x7C00u, mag);  // >= 65520 rounds to Inf
  mag = select(a > 0x7F800000u, 0x7E00u, mag);
  return static_cast<uint16_t>(sign | mag);
}

inline uint32_t f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1Fu;
  const uint32_t m = h & 0x3FFu;
  const uint32_t normal = ((e + 112u) << 23) | (m << 13);
  const uint32_t special = select(m == 0, 0x7F800000u, 0x7FC00000u | (m << 13));
  const uint32_t sub = bits_of(static_cast<float>(m) * 0x1p-24f);  // exact; 0 for m == 0
  return sign | select(e == 0x1Fu, special, select(e == 0, sub, normal));
}

inline uint32_t bf16_to_f32(uint16_t b) { return static_cast<uint32_t>(b) << 16; }

inline uint32_t f64_to_f32(double d) { return bits_of(static_cast<float>(d)); }

// One bulk loop per conversion; loads and stores go through memcpy so any
// alignment is fine and the vectorizer sees plain loads.
template <typename From, typename To, typename Kernel>
inline void convert_loop(const char* src, char* dst, size_t n, Kernel k) {
  for (size_t i = 0; i < n; ++i) {
    From x;
    std::memcpy(&x, src + i * sizeof(From), sizeof(From));
    To y = k(x);
    std::memcpy(dst + i * sizeof(To), &y, sizeof(To));
  }
}

CKPT_VECTOR_CLONES void loop_f32_bf16(const char* s, char* d, size_t n) {
  convert_loop<uint32_t, uint16_t>(s, d, n, [](uint32_t x) { return f32_to_bf16(x, 0xFFFF); });
}
CKPT_VECTOR_CLONES void loop_f32_f16(const char* s, char* d, size_t n) {
  convert_loop<uint32_t, uint16_t>(s, d, n, [](uint32_t x) { return f32_to_f16(x); });
}
CKPT_VECTOR_CLONES void loop_f16_f32(const char* s, char* d, size_t n) {
  convert_loop<uint16_t, uint32_t>(s, d, n, [](uint16_t x) { return f16_to_f32(x); });
}
CKPT_VECTOR_CLONES void loop_bf16_f32(const char* s, char* d, size_t n) {
  convert_loop<uint16_t, uint32_t>(s, d, n, [](uint16_t x) { return bf16_to_f32(x); });
}
CKPT_VECTOR_CLONES void loop_f16_bf16(const char* s, char* d, size_t n) {
  convert_loop<uint16_t, uint16_t>(s, d, n, [](uint16_t x) { return f32_to_bf16(f16_to_f32(x), 0x7FC0); });
}
CKPT_VECTOR_CLONES void loop_bf16_f16(const char* s, char* d, size_t n) {
  convert_loop<uint16_t, uint16_t>(s, d, n, [](uint16_t x) { return f32_to_f16(bf16_to_f32(x)); });
}
CKPT_VECTOR_CLONES void loop_f64_f32(const char* s, char* d, size_t n) {
  convert_loop<double, uint32_t>(s, d, n, [](double x) { return f64_to_f32(x); });
}
CKPT_VECTOR_CLONES void loop_f64_f16(const char* s, char* d, size_t n) {
  convert_loop<double, uint16_t>(s, d, n, [](double x) { return f32_to_f16(f64_to_f32(x)); });
}
CKPT_VECTOR_CLONES void loop_f64_bf16(const char* s, char* d, size_t n) {
  convert_loop<double, uint16_t>(s, d, n, [](double x) { return f32_to_bf16(f64_to_f32(x), 0x7FC0); });
}

using Loop = void (*)(const char*, char*, size_t);

Loop loop_for(DType from, DType to) {
  switch (from) {
    case DType::Float32:
      return to == DType::BFloat16 ? loop_f32_bf16 : to == DType::Float16 ? loop_f32_f16 : nullptr;
    case DType::Float16:
      return to == DType::Float32 ? loop_f16_f32 : to == DType::BFloat16 ? loop_f16_bf16 : nullptr;
    case DType::BFloat16:
      return to == DType::Float32 ? loop_bf16_f32 : to == DType::Float16 ? loop_bf16_f16 : nullptr;
    case DType::Float64:
      return to == DType::Float32   ? loop_f64_f32
             : to == DType::Float16 ? loop_f64_f16
             : to == DType::BFloat16 ? loop_f64_bf16
                                     : nullptr;
    default:
      return nullptr;
  }
}

}  // namespace

uint16_t float32_to_bfloat16(uint32_t f32) { return f32_to_bf16(f32, 0xFFFF); }
uint16_t float32_to_float16(uint32_t f32) { return f32_to_f16(f32); }
uint32_t float16_to_float32(uint16_t f16) { return f16_to_f32(f16); }
uint32_t bfloat16_to_float32(uint16_t bf16) { return bf16_to_f32(bf16); }

bool can_convert(DType from, DType to) { return loop_for(from, to) != nullptr; }

void convert_elements(DType from, DType to, const void* src, void* dst, size_t n) {
  Loop loop = loop_for(from, to);
  if (!loop)
    throw UsageError(std::string("cannot convert ") + info(from).name + " to " + info(to).name);
  loop(static_cast<const char*>(src), static_cast<char*>(dst), n);
}

StorageTransform dtype_transform(const Checkpoint& ck, DType to) {
  StorageTransform tr;
  tr.dtype = &info(to);
  tr.produce = [&ck, to](const Storage& s, const std::function<void(std::string_view)>& sink) {
    const DType from = s.dtype->dtype;
    if (!can_convert(from, to))
      throw UsageError("storage '" + s.key + "': cannot convert " + s.dtype->name + " to " + info(to).name);
    const size_t in_size = s.dtype->element_size, out_size = info(to).element_size;
    std::string carry, out;
    auto emit = [&](const char* p, size_t count) {
      if (count == 0) return;
      out.resize(count * out_size);
      convert_elements(from, to, p, out.data(), count);
      sink(out);
    };
    // Chunks from the reader need not end on element boundaries (inflate).
    stream_storage(ck, s, [&](std::string_view chunk) {
      if (!carry.empty()) {
        size_t take = std::min(in_size - carry.size(), chunk.size());
        carry.append(chunk.substr(0, take));
        chunk.remove_prefix(take);
        if (carry.size() < in_size) return;
        emit(carry.data(), 1);
        carry.clear();
      }
      size_t whole = chunk.size() / in_size;
      emit(chunk.data(), whole);
      carry.assign(chunk.substr(whole * in_size));
    });
    if (!carry.empty())
      throw FormatError(ck.path() + ": storage '" + s.key + "' ends inside an element");
  };
  return tr;
}

}  // namespace ckpt::torch
