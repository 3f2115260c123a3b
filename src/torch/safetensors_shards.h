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
// index above, replacing the whole shard set the folder held (that needs
// options.force): the new set is written into a temporary folder beside
// out_dir with links to out_dir's other files, fsync'd, and exchanged with
// out_dir in one rename (renameat2 RENAME_EXCHANGE), so that no mix of sets
// is ever visible, even after a crash. A folder holding sub-folders is
// refused. On an error nothing in out_dir changes.
ShardedWriteReport write_sharded_safetensors(Checkpoint& source,
                                             const std::vector<std::pair<std::string, TensorInfo>>& tensors,
                                             Env& env, const std::string& out_dir, uint64_t max_shard_size,
                                             const SafetensorsWriteOptions& options = {});

// Whether a file name belongs to a Hugging Face shard set: model.safetensors,
// model.safetensors.index.json, model-NNNNN-of-NNNNN.safetensors.
bool is_shard_set_name(const std::string& name);
// Throws FormatError naming the files when folder dir holds more than one
// shard set (model.safetensors beside shards, or shards the index does not
// name): the stale files an interrupted or older write left.
void check_single_shard_set(Env& env, const std::string& dir);

// The index file a path names (a folder holding more than one shard set is
// refused, as check_single_shard_set): the path itself when it ends in .json, else
// `<folder>/model.safetensors.index.json` when the path is a folder holding
// one; empty when neither. A remote name (util/http_file.h) is an index when
// its last segment ends in .json (hf://ORG/REPO/X.json@REV is returned as
// hf://ORG/REPO@REV/X.json); a remote folder cannot be listed, so it is not
// looked into. The path-only form asks Env::Default().
std::string safetensors_index_of(Env& env, const std::string& path);
std::string safetensors_index_of(const std::string& path);

// A plain state dict of every tensor the index maps, in weight_map order,
// their bytes read from the shard files (which must lie beside the index).
std::unique_ptr<Checkpoint> checkpoint_from_safetensors_index(Env& env, const std::string& index_path);

}  // namespace ckpt::torch
