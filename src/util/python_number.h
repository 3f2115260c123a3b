// Python's number syntax and text: whether int(s) / float(s) accept a
// string, and repr(float). OmegaConf's quoting rules and YAML's float text
// build on them; mapping keys print with them.
#pragma once
#include <string>
#include <string_view>

namespace ckpt {

// int(text) succeeds (ASCII digits, underscores between digits, surrounding
// Python whitespace).
bool python_int_accepts(std::string_view text);

// float(text) succeeds.
bool python_float_accepts(std::string_view text);

// Python's repr(float): the shortest round-trip digits, positional when the
// decimal exponent is in [-4, 16), scientific otherwise.
std::string python_float_repr(double d);

}  // namespace ckpt
