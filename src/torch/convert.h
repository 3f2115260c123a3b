// Floating-point dtype conversion, bit for bit as torch 1.13's CPU .to():
// round to nearest even, overflow to Inf, subnormals kept, and NaNs as torch
// writes them (see convert.cc for the exact NaN bits per conversion).
#pragma once
#include <cstddef>
#include <cstdint>

#include "torch/checkpoint.h"
#include "torch/dtype.h"

namespace ckpt::torch {

// Scalar kernels on bit patterns.
uint16_t float32_to_bfloat16(uint32_t f32);
uint16_t float32_to_float16(uint32_t f32);
uint32_t float16_to_float32(uint16_t f16);
uint32_t bfloat16_to_float32(uint16_t bf16);

// Whether convert_elements handles from -> to: any pair of float64, float32,
// float16, bfloat16 whose target is not float64.
bool can_convert(DType from, DType to);

// Converts n little-endian elements; src and dst must not overlap. Throws
// UsageError for an unsupported pair.
void convert_elements(DType from, DType to, const void* src, void* dst, size_t n);

// A save() transform that streams a storage converted to `to`.
StorageTransform dtype_transform(const Checkpoint& ck, DType to);

}  // namespace ckpt::torch
