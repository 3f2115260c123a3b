// Sharded safetensors as Hugging Face writes them: `model-00001-of-00003.safetensors`...
// plus `model.safetensors.index.json` ({"metadata": {"total_size"}, "weight_map"}), split
// as huggingface_hub's split_torch_state_dict_into_shards does: tensors taken in state-dict
// order; one over the limit gets a shard of its own; otherwise a new shard starts when the
// next tensor would take the current one over the limit. One shard: `model.safetensors`,
// no index.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "torch/checkpoint.h"
#include "torch/safetensors.h"

namespace ckpt::torch {

// huggingface_hub's parse_size_to_int: a number and a unit of KB, MB, GB or TB
// (powers of 10: "5GB" is 5,000,000,000 bytes); a plain number is bytes.
uint64_t parse_shard_size(const std::string& text);

struct ShardPlan {
  std::vector<std::pair<std::string, std::vector<size_t>>> files;  // file name -> tensor indexes
  uint64_t total_size = 0;
};

// The split of tensors of these sizes (in bytes, state-dict order).
ShardPlan plan_shards(const std::vector<uint64_t>& sizes, uint64_t max_shard_size);

struct ShardedWriteReport {
  ShardPlan plan;
  bool wrote_index = false;
};

// Writes the tensors into out_dir (created if missing) as the shards and
// index above; existing files of those names need options.force. On an
// error the files written so far are removed.
ShardedWriteReport write_sharded_safetensors(Checkpoint& source,
                                             const std::vector<std::pair<std::string, TensorInfo>>& tensors,
                                             Env& env, const std::string& out_dir, uint64_t max_shard_size,
                                             const SafetensorsWriteOptions& options = {});

// The index file a path names: the path itself when it ends in .json, else
// `<folder>/model.safetensors.index.json` when the path is a folder holding
// one; empty when neither.
std::string safetensors_index_of(const std::string& path);

// A plain state dict of every tensor the index maps, in weight_map order,
// their bytes read from the shard files (which must lie beside the index).
std::unique_ptr<Checkpoint> checkpoint_from_safetensors_index(Env& env, const std::string& index_path);

}  // namespace ckpt::torch
