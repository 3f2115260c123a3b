// The DCP-folder and rank-set forms of info, tensors and verify, which the
// inspect commands hand a folder to (commands_shard.cc), and text shared by
// both.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "api/shard.h"
#include "cli/commands.h"

namespace ckpt::cli {

int print_dcp_info(Env& env, const std::string& dir, const Common& c);
int print_dcp_tensors(Env& env, const std::string& dir, const std::vector<std::string>& match, const Common& c);
int print_dcp_verify(Env& env, const std::string& dir, const Common& c);
// `info` on a folder that is not a DCP checkpoint: the rank sets in it.
int print_folder_info(Env& env, const std::string& dir, const Common& c);

std::string rank_set_text(const api::RankSetInfo& r);
// verify's output for a file or folder `what`: JSON {file, ok, <counts>,
// problems}, or "WHAT: ok (DETAIL)", or the problems one per line and their
// count. Returns the exit code (1 when there are problems).
int print_verify(const Common& c, const std::string& what, const std::vector<std::pair<std::string, size_t>>& counts,
                 const std::string& detail, const std::vector<std::string>& problems);

}  // namespace ckpt::cli
