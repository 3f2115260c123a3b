// libFuzzer entry for the safetensors target (body in fuzz_targets.h).
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ckpt::fuzz::safetensors_one(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
