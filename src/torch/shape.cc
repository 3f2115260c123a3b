#include "torch/shape.h"

#include <algorithm>
#include <limits>

#include "util/error.h"

namespace ckpt::torch {

std::string shape_text(const std::vector<int64_t>& shape) {
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

std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> stride(shape.size());
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    stride[i] = s;
    int64_t d = std::max<int64_t>(shape[i], 1);
    if (s > std::numeric_limits<int64_t>::max() / d) throw FormatError("shape " + shape_text(shape) + " is too large");
    s *= d;
  }
  return stride;
}

}  // namespace ckpt::torch
