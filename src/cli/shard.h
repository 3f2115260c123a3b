// Commands on sharded checkpoints (commands_shard.cc): the DCP-folder forms
// of info, tensors and verify, which the inspect commands hand a folder to.
#pragma once
#include <string>

#include "cli/commands.h"

namespace ckpt::cli {

// True when `path` is a torch distributed checkpoint folder (has .metadata).
bool is_dcp_folder(const std::string& path);
int dcp_info(const std::string& dir, const Common& c);
int dcp_tensors(const std::string& dir, const std::string& match, const Common& c);
int dcp_verify(const std::string& dir, const Common& c);

}  // namespace ckpt::cli
