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

// What the graph keeps: GLOBAL names exactly as written (protocol 2 files keep
// Python 2 names such as '__builtin__ long'); STRING / BINSTRING /
// SHORT_BINSTRING decoded as UTF-8 into Str (torch.load's encoding); LONG and
// INT values that fit int64 as integers, larger ones as minimal LONG bytes;
// None / True / False as one shared node each per graph; dict keys and set
// items with Python semantics (an equal key keeps its place, takes the new
// value; 1 == 1.0 == True). A second BUILD on one object is accepted only
// with the very same state node (what CPython writes for an object reached
// again through its own constructor arguments); otherwise it is an error.
// Not supported (FormatError): EXT1/2/4, NEXT_BUFFER, READONLY_BUFFER.
//
// Parses one pickle (up to and including STOP). Throws FormatError with the
// source and byte offset on malformed input ("data.pkl: offset 1234: memo
// index 7 undefined"). If end_offset is given it receives the offset just
// past STOP (the legacy format has pickles back to back).
Graph unpickle(std::string_view data, const UnpickleOptions& options = {},
               size_t* end_offset = nullptr);

}  // namespace ckpt::pickle
