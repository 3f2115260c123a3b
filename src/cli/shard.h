// Commands on sharded checkpoints (commands_shard.cc): the DCP-folder forms
// of info, tensors and verify, which the inspect commands hand a folder to.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.h"

namespace ckpt::cli {

// True when `path` is a torch distributed checkpoint folder (has .metadata).
bool is_dcp_folder(const std::string& path);
int dcp_info(const std::string& dir, const Common& c);
int dcp_tensors(const std::string& dir, const std::vector<std::string>& match, const Common& c);
int dcp_verify(const std::string& dir, const Common& c);

// An AudioCraft FSDP rank file and its set: for `checkpoint[_name].th.N`, and
// for `checkpoint[_name].th` when rank files lie beside it.
struct RankSetInfo {
  std::string set;
  int rank = 0;
  std::vector<int> ranks, missing;
};
std::optional<RankSetInfo> rank_set_of(const std::string& file);
std::string rank_set_text(const RankSetInfo& r);
// `info` on a folder that is not a DCP checkpoint: the rank sets in it.
int folder_info(const std::string& dir, const Common& c);
bool is_folder(const std::string& path);

// What `stats` and `diff` read for a path: the path itself, or for a DCP
// folder its consolidation (as `ckpt consolidate`) in a temporary folder,
// removed when this goes away. Costs the model's size in temporary disk,
// not memory.
class ReadableCheckpoint {
 public:
  explicit ReadableCheckpoint(const std::string& path);
  ~ReadableCheckpoint();
  ReadableCheckpoint(const ReadableCheckpoint&) = delete;
  ReadableCheckpoint& operator=(const ReadableCheckpoint&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_, temp_dir_;
};

}  // namespace ckpt::cli
