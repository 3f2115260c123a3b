// Values of tensors: per-tensor statistics and element-wise comparison of two
// tensors, streamed chunk by chunk with float64 accumulation.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "torch/checkpoint.h"

namespace ckpt::torch {

// Whether elements of this dtype decode to numbers: floats (incl. float16,
// bfloat16, float8), integers and bool; not complex or quantized types.
bool has_real_values(const DTypeInfo& d);

// Decodes n little-endian elements of d to double (exact for every type but
// 64-bit integers beyond 2^53). d must have real values.
void decode_to_double(const DTypeInfo& d, const char* src, double* out, size_t n);

struct TensorStats {
  uint64_t numel = 0, nan = 0, inf = 0;
  uint64_t finite = 0;  // elements the following are taken over
  // NaN when there are no finite values (std: fewer than two).
  double min, max, mean;
  double std;       // unbiased (correction = 1), as torch.std()'s default
  double std_population;  // correction = 0
  double norm = 0;  // L2 norm, sqrt(sum x^2)
};

// Why tensor_stats cannot take a tensor's statistics; empty when it can.
// It can for real dtypes, quantized tensors (dequantized values, as
// torch's dequantize()), negative bits, coalesced sparse tensors (the dense
// tensor's values: stored ones and zeros) and nested tensors.
std::string stats_refusal(const TensorInfo& t);

// Throws UsageError when stats_refusal() says why not, FormatError for a
// view that does not fit its storage (naming `name`).
TensorStats tensor_stats(const Checkpoint& ck, const TensorInfo& t, const std::string& name);

struct ValueDiff {
  uint64_t compared = 0;
  uint64_t differing = 0;         // elements whose values differ (bits, for equal dtypes)
  uint64_t nonfinite_differing = 0;  // of those, with a NaN or Inf on either side
  double max_abs_diff = 0;        // over differing elements finite on both sides
  // Differing elements outside the tolerance, as torch.allclose counts:
  // |a - b| > atol + rtol * |b|, or a NaN/Inf on either side.
  uint64_t beyond_tolerance = 0;
  bool equal() const { return differing == 0; }
};

// Element-wise comparison of two tensors of the same shape, in row-major
// order. Same dtype: an element differs when its bytes differ. Different
// dtypes: when the values differ as doubles (NaN equal to NaN).
ValueDiff compare_values(const Checkpoint& a, const TensorInfo& ta, const std::string& name_a,
                         const Checkpoint& b, const TensorInfo& tb, const std::string& name_b,
                         double atol = 0, double rtol = 0);

// Two tensors of one name compared beyond dtype and shape: how their forms
// differ (layout, quantizer, conj / neg bits, subclass, component shapes),
// and which components' values differ: "" for the tensor's own elements,
// else the part ("values", "indices", "scales", ...). Equal when both are
// empty.
struct TensorDiff {
  std::vector<std::string> form_changes;
  std::vector<std::pair<std::string, ValueDiff>> values;
  bool equal() const { return form_changes.empty() && values.empty(); }
};

TensorDiff compare_tensors(const Checkpoint& a, const TensorInfo& ta, const std::string& name_a,
                           const Checkpoint& b, const TensorInfo& tb, const std::string& name_b);

}  // namespace ckpt::torch
