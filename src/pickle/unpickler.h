// A pickle virtual machine for protocols 0 to 5 that never imports or calls
// anything: it builds a Graph. Iterative (no recursion), bounded by the input
// size and GraphLimits.
#pragma once
#include <string_view>

#include "pickle/value.h"

namespace ckpt::pickle {

struct UnpickleOptions {
  GraphLimits limits;
  // Name of the input used in error messages ("model/data.pkl").
  std::string_view source = "pickle";
};

// Parses one pickle (up to and including STOP). Throws FormatError with the
// source and byte offset on malformed input ("data.pkl: offset 1234: memo
// index 7 undefined"). If end_offset is given it receives the offset just
// past STOP (the legacy format has pickles back to back).
Graph unpickle(std::string_view data, const UnpickleOptions& options = {},
               size_t* end_offset = nullptr);

}  // namespace ckpt::pickle
