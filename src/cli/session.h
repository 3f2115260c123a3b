// What most commands start from: an opened checkpoint, its layout and the
// state dicts a command works on.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "audiocraft/layout.h"
#include "torch/checkpoint.h"

namespace ckpt::cli {

struct TensorRow {
  std::string name;
  const pickle::Node* node;
  torch::TensorInfo info;
};

struct Opened {
  std::unique_ptr<torch::Checkpoint> ck;
  audiocraft::Layout layout;
  std::optional<std::string> best_state;  // path
  bool safetensors = false;  // a .safetensors file, seen as a plain state dict
  uint64_t file_size = 0;

  // The state dict at path (default: the best state); throws UsageError
  // naming the path when it is missing or not a mapping.
  pickle::Node* state_dict(const std::string& path) const;
  std::string default_state_path() const;
  // One row per tensor value of a mapping, in file order (non-tensors skipped).
  std::vector<TensorRow> tensors_of(const pickle::Node* mapping) const;
};

Opened open_checkpoint(const std::string& path);

class CheckpointTensorTest : public audiocraft::TensorTest {
 public:
  explicit CheckpointTensorTest(const torch::Checkpoint& ck) : ck_(ck) {}
  bool is_tensor(const pickle::Node* n) const override;

 private:
  const torch::Checkpoint& ck_;
};

}  // namespace ckpt::cli
