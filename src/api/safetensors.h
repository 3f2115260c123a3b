// safetensors in and out: a state dict of a checkpoint written as a
// .safetensors file (or Hugging Face shards), and a .safetensors file (or a
// sharded model's index) turned back into a torch.save checkpoint, alone or
// put into an AudioCraft template.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "api/checkpoint.h"
#include "torch/checkpoint.h"
#include "util/env.h"
#include "util/error.h"

namespace ckpt::api {

struct ToSafetensorsOptions {
  std::string out;               // a file, or with max_shard_size a folder
  WritableFile* sink = nullptr;  // when set: streamed there instead of out (not with max_shard_size)
  std::string state;             // default: the best state
  bool skip_unsupported = false; // leave out tensors safetensors cannot hold, instead of refusing
  std::string max_shard_size;    // "5GB", "500MB", bytes; "": one file
  bool force = false;
  ProgressFn progress;
  bool ignore_crc = false;       // convert a zip whose records fail their CRC-32, as read
};
struct ToSafetensorsResult {
  std::string state;  // the state dict's path
  std::string state_note;  // Opened::state_note
  size_t tensors = 0;
  uint64_t bytes = 0;
  std::vector<std::string> skipped;  // "'name' why", with skip_unsupported
  size_t non_tensors = 0;            // entries of the state dict that are not tensors (not written)
  bool sharded = false;
  size_t files = 0;                  // sharded: shard files written
  bool wrote_index = false;          // sharded: model.safetensors.index.json written
};
// A state dict as safetensors.torch.save_file writes it. A tensor it cannot
// hold (quantized, sparse, nested, meta, conj/neg bits, a dtype it lacks) is
// a UsageError unless skip_unsupported.
ToSafetensorsResult to_safetensors(Env& env, const std::string& file, const ToSafetensorsOptions& options);

struct FromSafetensorsOptions {
  std::string out;
  std::string into;   // an AudioCraft checkpoint whose state dict's tensors the file replaces; "": none
  std::string state;  // with into: the state dict (default: the best state)
  bool force = false;
  std::optional<torch::Dialect> dialect;
  ProgressFn progress;
};
struct FromSafetensorsResult {
  size_t tensors = 0;                      // without into: tensors written
  std::string state;                       // with into: the state dict replaced
  size_t replaced = 0;                     // with into
  std::vector<std::string> dtype_changes;  // with into: "name: float32 -> float16"
};
// Thrown by from_safetensors with `into` when the file does not match the
// template's state dict (names or shapes); nothing is written.
class SafetensorsMismatch : public UsageError {
 public:
  SafetensorsMismatch(const std::string& what, std::vector<std::string> differences)
      : UsageError(what), differences(std::move(differences)) {}
  std::vector<std::string> differences;
};
// FILE: a .safetensors file, or a sharded model's index .json or its folder.
FromSafetensorsResult from_safetensors(Env& env, const std::string& file, const FromSafetensorsOptions& options);

}  // namespace ckpt::api
