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
#include "api/schema.h"
#include "torch/checkpoint.h"
#include "util/env.h"
#include "util/error.h"

namespace ckpt::api {

struct ToSafetensorsOptions {
  static constexpr const char* kName = "ToSafetensorsOptions";
  static constexpr const char* kDoc = "which state dict, and the file or shards to write";
  std::string out;               // a file, or with max_shard_size a folder
  WritableFile* sink = nullptr;  // when set: streamed there instead of out (not with max_shard_size)
  std::optional<std::string> state;  // default: the best state
  bool skip_unsupported = false; // leave out tensors safetensors cannot hold, instead of refusing
  std::string max_shard_size;    // "5GB", "500MB", bytes; "": one file
  bool force = false;
  ProgressFn progress;
  bool ignore_crc = false;       // convert a zip whose records fail their CRC-32, as read
  template <class V>
  static void describe(V& v) {
    v.field("out", &ToSafetensorsOptions::out, "the file to write (with max_shard_size: the folder)");
    v.field("state", &ToSafetensorsOptions::state, "the state dict's '/'-separated path (default: the best state)");
    v.field("skip_unsupported", &ToSafetensorsOptions::skip_unsupported,
            "leave out (and list) tensors safetensors cannot hold instead of refusing");
    v.field("max_shard_size", &ToSafetensorsOptions::max_shard_size,
            "write Hugging Face shards and their index, each at most this size (5GB, 500MB, or bytes as a number)");
    v.field("force", &ToSafetensorsOptions::force, "replace an existing output");
    v.field("ignore_crc", &ToSafetensorsOptions::ignore_crc,
            "convert a zip whose records fail their CRC-32, as read (refused otherwise)");
  }
};
struct ToSafetensorsResult {
  static constexpr const char* kName = "ToSafetensorsResult";
  static constexpr const char* kDoc = "what to_safetensors wrote";
  std::string out;
  std::string state;  // the state dict's path
  std::string state_note;  // Opened::state_note
  uint64_t tensors = 0;
  uint64_t bytes = 0;
  std::vector<std::string> skipped;  // "'name' why", with skip_unsupported
  uint64_t non_tensors = 0;          // entries of the state dict that are not tensors (not written)
  bool sharded = false;
  uint64_t files = 0;                // sharded: shard files written
  bool wrote_index = false;          // sharded: model.safetensors.index.json written
  template <class V>
  static void describe(V& v) {
    v.field("out", &ToSafetensorsResult::out, "the file or folder written");
    v.field("state", &ToSafetensorsResult::state, "the state dict written");
    v.field("state_note", &ToSafetensorsResult::state_note, "which state dict was picked, when none was named",
            Presence::OmitEmpty);
    v.field("tensors", &ToSafetensorsResult::tensors, "tensors written");
    v.field("bytes", &ToSafetensorsResult::bytes, "their bytes");
    v.field("skipped", &ToSafetensorsResult::skipped, "tensors left out, \"'name' why\"");
    v.field("non_tensors", &ToSafetensorsResult::non_tensors, "entries of the state dict that are not tensors");
    v.field("sharded", &ToSafetensorsResult::sharded, "written as shards");
    v.field("files", &ToSafetensorsResult::files, "shard files written");
    v.field("wrote_index", &ToSafetensorsResult::wrote_index, "model.safetensors.index.json written");
  }
};
// A state dict as safetensors.torch.save_file writes it. A tensor it cannot
// hold (quantized, sparse, nested, meta, conj/neg bits, a dtype it lacks) is
// a UsageError unless skip_unsupported.
ToSafetensorsResult to_safetensors(Env& env, const std::string& file, const ToSafetensorsOptions& options);

struct FromSafetensorsOptions {
  static constexpr const char* kName = "FromSafetensorsOptions";
  static constexpr const char* kDoc = "the checkpoint to write, alone or into a template";
  std::string out;
  std::string into;   // an AudioCraft checkpoint whose state dict's tensors the file replaces; "": none
  std::optional<std::string> state;  // with into: the state dict (default: the best state)
  bool force = false;
  std::string dialect;
  ProgressFn progress;
  template <class V>
  static void describe(V& v) {
    v.field("out", &FromSafetensorsOptions::out, "the checkpoint to write");
    v.field("into", &FromSafetensorsOptions::into,
            "an AudioCraft checkpoint whose best state's tensors the file replaces (names and shapes must match)");
    v.field("state", &FromSafetensorsOptions::state, "with into: the state dict to replace (default: the best state)");
    v.field("force", &FromSafetensorsOptions::force, "replace an existing output");
    v.field("dialect", &FromSafetensorsOptions::dialect, "zip layout of the output: 1.6, 2.1 or 2.7 (default: 2.7)");
  }
};
struct FromSafetensorsResult {
  static constexpr const char* kName = "FromSafetensorsResult";
  static constexpr const char* kDoc = "what from_safetensors wrote";
  std::string out;
  uint64_t tensors = 0;                    // tensors written from the file
  std::string state;                       // with into: the state dict replaced
  uint64_t replaced = 0;                   // with into
  std::vector<std::string> dtype_changes;  // with into: "name: float32 -> float16"
  template <class V>
  static void describe(V& v) {
    v.field("out", &FromSafetensorsResult::out, "the file written");
    v.field("tensors", &FromSafetensorsResult::tensors, "tensors written from the safetensors file");
    v.field("state", &FromSafetensorsResult::state, "with into: the state dict replaced");
    v.field("replaced", &FromSafetensorsResult::replaced, "with into: tensors replaced");
    v.field("dtype_changes", &FromSafetensorsResult::dtype_changes, "with into: 'name: float32 -> float16'");
  }
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
