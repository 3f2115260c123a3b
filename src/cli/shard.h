// Text for the results of info, tensors and verify (commands_inspect.cc) on
// folders and their verify results: DCP folders, rank sets (commands_shard.cc).
#pragma once
#include <string>
#include <vector>

#include "api/inspect.h"
#include "api/shard.h"
#include "cli/commands.h"

namespace ckpt::cli {

void print_text(const api::DcpInfoResult& r);
void print_text(const api::FolderInfoResult& r);
void print_dcp_tensors(const std::vector<api::DcpTensorEntry>& rows);
// verify's text: "WHAT: ok (DETAIL)", or the problems one per line and their count.
void print_text(const api::VerifyResult& r);
void print_text(const api::DcpVerifyResult& r);

std::string rank_set_text(const api::RankSetInfo& r);

}  // namespace ckpt::cli
