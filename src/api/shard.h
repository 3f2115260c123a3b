// Sharded checkpoints: torch distributed checkpoint (DCP) folders (their
// info / tensors / verify forms, consolidate, to-dcp) and AudioCraft's FSDP
// rank sets (checkpoint.th.N).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "api/checkpoint.h"
#include "torch/dcp.h"
#include "util/env.h"

namespace ckpt::api {

// True when path is a DCP folder (has .metadata).
bool is_dcp_folder(const std::string& path);

struct DcpInfoResult {
  std::unique_ptr<torch::DcpCheckpoint> dcp;  // items() and files() in full
  uint64_t tensors = 0, parameters = 0, bytes = 0, byte_items = 0, file_bytes = 0;
  std::map<std::string, uint64_t> bytes_by_dtype;
};
// `info` on a DCP folder: its files, and tensor totals by dtype.
DcpInfoResult dcp_info(Env& env, const std::string& dir);

struct DcpTensorsResult {
  std::unique_ptr<torch::DcpCheckpoint> dcp;
  std::vector<const torch::DcpItem*> rows;  // tensor items matching, in metadata order
  uint64_t parameters = 0, bytes = 0;
};
// `tensors` on a DCP folder: the tensor items (global shapes, chunks) whose
// names match one of the globs (all when empty).
DcpTensorsResult dcp_tensors(Env& env, const std::string& dir, const std::vector<std::string>& match);

struct DcpVerifyResult {
  std::string dir;
  size_t items = 0, chunks = 0;
  std::vector<std::string> problems;
  bool ok() const { return problems.empty(); }
};
// `verify` on a DCP folder: every chunk and byte item read (zip records
// against their CRCs, chunks against the metadata's dtype and size); a
// folder that cannot be opened is a problem, not an exception.
DcpVerifyResult dcp_verify(Env& env, const std::string& dir);

// An AudioCraft FSDP rank file and its set: for `checkpoint[_name].th.N`, and
// for `checkpoint[_name].th` when rank files lie beside it.
struct RankSetInfo {
  std::string set;
  int rank = 0;
  std::vector<int> ranks, missing;
};
// The set a rank file belongs to, from the files beside it; nullopt for a
// file of another name or a lone checkpoint.th.
std::optional<RankSetInfo> rank_set_of(Env& env, const std::string& file);

// `info` on a folder that is not a DCP checkpoint: the rank sets in it.
struct RankSetSummary {
  std::string set;
  std::vector<int> ranks, missing;
};
std::vector<RankSetSummary> folder_rank_sets(Env& env, const std::string& dir);

// What `stats` and `diff` read for a path: the path itself, or for a DCP
// folder its consolidation (as `consolidate`) in a temporary folder, removed
// when this goes away. Costs the model's size in temporary disk, not memory.
class ReadableCheckpoint {
 public:
  ReadableCheckpoint(Env& env, const std::string& path);
  ~ReadableCheckpoint();
  ReadableCheckpoint(const ReadableCheckpoint&) = delete;
  ReadableCheckpoint& operator=(const ReadableCheckpoint&) = delete;
  const std::string& path() const { return path_; }

 private:
  void remove_temporary() noexcept;
  Env& env_;
  std::string path_, temp_dir_;
};

struct ConsolidateOptions {
  std::string out;  // the torch.save file to write
  bool force = false;
  ProgressFn progress;
};
struct ConsolidateResult {
  torch::ConsolidateReport report;
  size_t source_files = 0;  // .distcp files read
};
// A DCP folder as one torch.save file (as dcp_to_torch_save).
ConsolidateResult consolidate(Env& env, const std::string& dir, const ConsolidateOptions& options);

struct ToDcpOptions {
  std::string out;    // the folder to write
  std::string state;  // '/'-separated path of the state dict; "": the whole object
  int ranks = 1;
  bool force = false;
  ProgressFn progress;
};
// A torch.save file as a DCP folder.
torch::ToDcpReport to_dcp(Env& env, const std::string& file, const ToDcpOptions& options);

}  // namespace ckpt::api
