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
int dcp_tensors(const std::string& dir, const std::string& match, const Common& c);
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

}  // namespace ckpt::cli
