// torch distributed checkpoints (DCP), as torch.distributed.checkpoint.save
// writes them with its FileSystemWriter: a folder holding `.metadata` (a
// pickle of torch.distributed.checkpoint.metadata.Metadata) and
// `__<rank>_<n>.distcp` files. Each item of the state dict (flattened to a
// dotted fqn; `planner_data` keeps the path to nest it again) is either a
// tensor, stored as chunks (offsets and sizes in the global tensor), each
// chunk a torch.save zip at storage_data's (relative_path, offset, length),
// or a byte item: any other object, torch.save'd the same way.
//
// The .metadata pickle is read as data (never executed). Opening checks the
// folder as far as the metadata allows: file names inside the folder, every
// item's bytes inside its file, chunks inside their tensor, tiling it with
// neither overlap nor gap. Chunk contents are checked when read.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "torch/checkpoint.h"
#include "util/env.h"

namespace ckpt::torch {

struct DcpLocation {
  std::string file;  // relative to the folder, a plain file name
  uint64_t offset = 0, length = 0;
};

struct DcpChunk {
  std::vector<int64_t> offsets, sizes;
  DcpLocation where;
  uint64_t numel() const;
};

// One step of an item's path in the nested state dict: a key or a list index.
struct DcpPathStep {
  bool is_index = false;
  std::string key;
  int64_t index = 0;
};

struct DcpItem {
  std::string fqn;
  bool is_tensor = false;
  // Tensors:
  const DTypeInfo* dtype = nullptr;
  bool requires_grad = false;
  std::vector<int64_t> size;
  std::vector<DcpChunk> chunks;
  // Byte items:
  DcpLocation where;
  std::vector<DcpPathStep> path;  // from planner_data; {fqn} when absent

  uint64_t numel() const;
  uint64_t nbytes() const { return numel() * (dtype ? dtype->element_size : 0); }
};

// A contiguous run of a tensor's row-major elements that lies in one chunk
// and is contiguous in that chunk's own row-major order too.
struct DcpRun {
  uint64_t start = 0;  // element index in the global tensor
  uint32_t chunk = 0;
};

class DcpCheckpoint {
 public:
  // Throws FormatError naming the folder (and file, item) when it is not a
  // readable DCP checkpoint; see the header comment for what is checked.
  static std::unique_ptr<DcpCheckpoint> open(Env& env, const std::string& dir);
  // True when `path` is a folder holding a `.metadata` file. A remote name
  // (util/http_file.h) is one when it ends with '/', names the .metadata
  // itself, or has no suffix and NAME/.metadata opens. The path-only form
  // asks Env::Default().
  static bool is_dcp_folder(Env& env, const std::string& path);
  static bool is_dcp_folder(const std::string& path);

  const std::string& dir() const { return dir_; }
  const std::string& version() const { return version_; }
  const std::vector<DcpItem>& items() const { return items_; }
  // The files the metadata names, sorted, with their sizes.
  const std::vector<std::pair<std::string, uint64_t>>& files() const { return files_; }

  // The torch.save file at a location (a chunk or a byte item), opened as a
  // Checkpoint over that slice of its .distcp file.
  std::unique_ptr<Checkpoint> open_slice(const DcpLocation& where) const;
  // The same slice as an Env whose every open_read gives it, for readers
  // that take a path (the safety scan); slice_name is the path they see.
  std::unique_ptr<Env> slice_env(const DcpLocation& where) const;
  std::string slice_name(const DcpLocation& where) const;
  std::shared_ptr<RandomAccessFile> file(const std::string& name) const;

  // The chunk runs of a tensor item sorted by global start; throws
  // FormatError when the chunks overlap or leave a gap.
  static std::vector<DcpRun> runs_of(const DcpItem& item, const std::string& where);

 private:
  std::string dir_, version_;
  std::vector<DcpItem> items_;
  std::vector<std::pair<std::string, uint64_t>> files_;
  std::vector<std::pair<std::string, std::shared_ptr<RandomAccessFile>>> open_files_;
};

// Reads every chunk and byte item: zip records against their CRCs, each
// chunk's tensor against the metadata's dtype and chunk size. Returns the
// problems found (empty: intact).
std::vector<std::string> verify_dcp(const DcpCheckpoint& dcp,
                                    const std::function<void(uint64_t done, uint64_t total)>& progress = {});

struct ConsolidateOptions {
  bool force = false;
  size_t buffer_bytes = size_t{4} << 20;  // assembly buffer for chunked tensors
  std::function<void(uint64_t done, uint64_t total)> progress;
};

struct ConsolidateReport {
  size_t tensors = 0, byte_items = 0;
  uint64_t tensor_bytes = 0;
};

// Writes the state dict as torch.distributed.checkpoint.format_utils.
// dcp_to_torch_save does (items nested again along planner_data, tensors
// contiguous and whole, torch 2.x layout), atomically. Tensor bytes are
// copied file to file, or assembled from their chunks through a bounded
// buffer, so memory does not grow with the model.
ConsolidateReport consolidate_dcp(const DcpCheckpoint& dcp, Env& env, const std::string& out_path,
                                  const ConsolidateOptions& options = {});

struct ToDcpOptions {
  bool force = false;  // replace an existing DCP folder
  int ranks = 1;       // tensors split along dimension 0 into this many chunks, one file per rank
  std::function<void(uint64_t done, uint64_t total)> progress;
};

struct ToDcpReport {
  size_t tensors = 0, byte_items = 0, files = 0;
  uint64_t tensor_bytes = 0;
};

// Writes the state dict `root` (a mapping of source's graph) as
// torch.distributed.checkpoint.save would from `ranks` processes each
// holding a dim-0 shard (flattened as its flatten_state_dict does: mappings
// always, lists holding tensors or mappings by index, everything else a
// byte item). The folder is built under a temporary name beside out_dir and
// renamed into place when complete. Tensor bytes are copied file to file.
ToDcpReport write_dcp(Checkpoint& source, const pickle::Node* root, Env& env, const std::string& out_dir,
                      const ToDcpOptions& options = {});

// Copies the subgraph under `root` into another graph (identity and cycles
// kept). Throws FormatError naming `what` for persistent ids (tensors).
pickle::Node* copy_subgraph(const pickle::Node* root, pickle::Graph& to, const std::string& what);

}  // namespace ckpt::torch
