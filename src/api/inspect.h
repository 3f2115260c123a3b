// Read-only views of a checkpoint: info (format, layout, keys, state-dict
// totals), ls (the object tree), tensors (one row per tensor, or sums per
// name prefix) and verify (CRCs, storage sizes, tensor views). The sharded
// forms (DCP folders, rank sets) are in api/shard.h.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "api/checkpoint.h"
#include "api/shard.h"
#include "util/env.h"

namespace ckpt::api {

// Tensor totals of one state dict.
struct StateDictSummary {
  std::string path;
  size_t tensors = 0;
  uint64_t parameters = 0, bytes = 0;
  std::map<std::string, uint64_t> bytes_by_dtype;
};

struct InfoResult {
  struct Record {
    std::string name;
    uint64_t size = 0;
    uint32_t crc32 = 0;
    uint64_t offset = 0;
    bool offset_known = true;  // false: a remote file's record not read (its local header not fetched)
  };
  struct Key {
    std::string key, kind, summary;  // kind: "dict", "tensor", "DictConfig", ...
  };
  std::string file;
  uint64_t file_size = 0;
  bool safetensors = false;
  torch::Format format = torch::Format::Zip;
  bool torch_zip = false;     // a torch zip (dialect and archive name apply)
  std::string dialect;        // torch_zip only
  std::string archive;        // torch_zip only
  uint64_t pickle_bytes = 0;
  size_t storages = 0;
  std::vector<Record> records;  // in file order; empty for non-zip files
  audiocraft::Layout layout = audiocraft::Layout::Other;
  std::string kind;             // AudioCraft's name for the file, or ""
  std::optional<std::string> best_state;
  std::vector<Key> keys;        // of the root mapping
  // Mappings of tensors within a few levels of the root, and the best state.
  std::vector<StateDictSummary> state_dicts;
  std::optional<RankSetInfo> rank_set;  // an FSDP rank file's set
  // A training checkpoint's state that a resumed run restores besides the
  // weights (audiocraft::training_state_present); empty when none.
  std::vector<std::string> training_state;
};

// `ckpt info FILE` (a file, not a folder: see dcp_info / folder_info).
InfoResult info(Env& env, const std::string& file);

// One object of the tree `ls` walks, in depth-first order. An entry with
// more > 0 is the note that a container's first children only were listed.
struct LsEntry {
  int depth = 0;
  std::string key, path, kind, summary;
  std::string ref;     // "path" of the first place a shared object was seen
  uint64_t more = 0;
  const pickle::Node* node = nullptr;  // the object (valid during the visit)
};
struct LsOptions {
  std::string path;  // where to start ('/'-separated keys and indexes)
  int depth = 2;     // levels to expand
};
// Walks the tree, handing each entry to visit as it is reached (so a huge
// container costs no memory per child). At most 10,000 children of one
// container are listed.
void ls(Env& env, const std::string& file, const LsOptions& options, const std::function<void(const LsEntry&)>& visit);

struct TensorsOptions {
  std::string state;                // default: the best state
  std::vector<std::string> match;   // globs; empty: all
};
struct TensorsResult {
  Opened opened;                   // the rows point into it
  std::string state;               // the state dict's path
  std::vector<TensorRow> rows;     // in file order
  std::string state_note;          // Opened::state_note
};
// `ckpt tensors FILE`: one row per tensor of a state dict; UsageError when
// the state dict is missing (or, by default, the layout has no best state).
TensorsResult tensors(Env& env, const std::string& file, const TensorsOptions& options);

// tensors --group N: parameters and bytes summed per name prefix of N
// dot-separated components, in the order the prefixes first appear.
struct TensorGroup {
  std::string name;
  uint64_t tensors = 0, parameters = 0, bytes = 0;
};
std::vector<TensorGroup> group_tensors(const std::vector<TensorRow>& rows, int depth);

struct VerifyResult {
  std::string file;
  size_t records = 0, tensors = 0;
  std::vector<std::string> problems;  // one line each, naming file and place
  bool ok() const { return problems.empty(); }
};
// CRC-32 of every zip record, storage sizes, integrity of the graph, every
// tensor view's bounds. A file that cannot be opened is a problem, not an
// exception.
VerifyResult verify(Env& env, const std::string& file);

}  // namespace ckpt::api
