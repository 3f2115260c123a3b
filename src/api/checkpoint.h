// The opened checkpoint most operations start from: the file (a torch zip or
// legacy checkpoint, or a .safetensors file seen as a plain state dict), its
// AudioCraft layout, its best state, and the tensors of its state dicts.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "audiocraft/layout.h"
#include "torch/checkpoint.h"
#include "util/env.h"

namespace ckpt::api {

// Progress of a long write, for the options of writing operations: the
// output being written, bytes done and the total. Called often: it should
// only record or redraw. It may throw to cancel the write (an interrupt):
// the exception propagates and the output's temporary file is removed.
using ProgressFn = std::function<void(const std::string& output, uint64_t done, uint64_t total)>;

// Binds a ProgressFn to one output, as torch's write options take it.
std::function<void(uint64_t, uint64_t)> progress_for(const ProgressFn& progress, const std::string& output);

// One tensor value of a state dict. `node` and `info` point into the
// checkpoint they came from: valid while its Opened lives.
struct TensorRow {
  std::string name;
  const pickle::Node* node;
  torch::TensorInfo info;
};

struct Opened {
  std::unique_ptr<torch::Checkpoint> ck;
  audiocraft::Layout layout;
  std::optional<std::string> best_state;  // '/'-separated path; "" is the root
  bool safetensors = false;  // a .safetensors file, seen as a plain state dict
  uint64_t file_size = 0;

  // The state dict at path ("" or "/": the root); throws UsageError naming
  // the path when it is missing or not a mapping.
  pickle::Node* state_dict(const std::string& path) const;
  // The best state's path; throws UsageError (asking for --state) when the
  // layout has none.
  std::string default_state_path() const;
  // The path a `state` option names: the best state's for nullopt, "" for
  // "/" (the root), else itself.
  std::string state_path_or_best(const std::optional<std::string>& path) const;
  // One row per tensor value of a mapping, in file order (non-tensors skipped).
  std::vector<TensorRow> tensors_of(const pickle::Node* mapping) const;
};

// Opens path ('-': standard input, spooled) through env and finds its layout
// (a rank file `checkpoint.th.N` of the training layout is an FSDP shard).
Opened open_checkpoint(Env& env, const std::string& path);

// Whether a node is a tensor of the checkpoint (a malformed one is not).
class CheckpointTensorTest : public audiocraft::TensorTest {
 public:
  explicit CheckpointTensorTest(const torch::Checkpoint& ck) : ck_(ck) {}
  bool is_tensor(const pickle::Node* n) const override;

 private:
  const torch::Checkpoint& ck_;
};

// True when globs is empty or one of them matches name (fnmatch, as Python's).
bool matches_any(const std::vector<std::string>& globs, const std::string& name);

// "; did you mean 'best_state/model'?" for a '/'-separated PATH that does not
// resolve: the closest key where it stops; "" when none is close.
std::string path_hint(pickle::Node* root, const std::string& path);

}  // namespace ckpt::api
