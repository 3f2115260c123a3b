// Little-endian fields as strings, for tests that build binary input by hand
// (pickle opcodes' arguments, zip and safetensors headers).
#pragma once
#include <cstdint>
#include <string>

#include "util/coding.h"

namespace ckpt_test {

inline std::string u32(uint32_t v) {
  std::string s;
  ckpt::put_fixed32(s, v);
  return s;
}

inline std::string u64(uint64_t v) {
  std::string s;
  ckpt::put_fixed64(s, v);
  return s;
}

}  // namespace ckpt_test
