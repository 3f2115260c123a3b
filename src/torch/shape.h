// Shapes: their text, their byte size with overflow checked, and torch's
// contiguous strides.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ckpt::torch {

// "[2, 3]", as torch.Size lists its sizes.
std::string shape_text(const std::vector<int64_t>& shape);

// numel * element_size in bytes, or nullopt for a negative size or on overflow.
std::optional<uint64_t> checked_nbytes(const std::vector<int64_t>& shape, uint64_t element_size);

// Contiguous row-major strides for a shape, as torch computes them (a size
// of 0 counts as 1). Throws FormatError when they overflow int64.
std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape);

}  // namespace ckpt::torch
