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
#include "api/schema.h"
#include "torch/dcp.h"
#include "util/env.h"

namespace ckpt::api {

// True when path is a DCP folder (has .metadata).
bool is_dcp_folder(const std::string& path);

struct DcpFile {
  static constexpr const char* kName = "DcpFile";
  static constexpr const char* kDoc = "a file of a DCP folder";
  std::string name;
  uint64_t size = 0;
  template <class V>
  static void describe(V& v) {
    v.field("name", &DcpFile::name, "the file's name in the folder");
    v.field("size", &DcpFile::size, "its size in bytes");
  }
};

struct DcpByteItem {
  static constexpr const char* kName = "DcpByteItem";
  static constexpr const char* kDoc = "a non-tensor item of a DCP folder (pickled bytes)";
  std::string fqn;
  Json path;  // keys (strings) and list indexes (ints)
  std::string file;
  template <class V>
  static void describe(V& v) {
    v.field("fqn", &DcpByteItem::fqn, "its fully qualified name");
    v.field("path", &DcpByteItem::path, "its path in the nested state dict: keys and list indexes");
    v.field("file", &DcpByteItem::file, "the file holding it");
  }
};

struct DcpInfoResult {
  static constexpr const char* kName = "DcpInfoResult";
  static constexpr const char* kDoc = "a torch distributed checkpoint folder's files and tensor totals";
  std::string file;
  std::string format = "dcp";
  std::string version;
  std::vector<DcpFile> files;
  uint64_t tensors = 0, parameters = 0, bytes = 0;
  std::map<std::string, uint64_t> bytes_by_dtype;
  std::vector<DcpByteItem> byte_items;
  template <class V>
  static void describe(V& v) {
    v.field("file", &DcpInfoResult::file, "the folder");
    v.field("format", &DcpInfoResult::format, "dcp");
    v.field("version", &DcpInfoResult::version, "the metadata's version (empty when it has none)");
    v.field("files", &DcpInfoResult::files, "the folder's files");
    v.field("tensors", &DcpInfoResult::tensors, "tensor items");
    v.field("parameters", &DcpInfoResult::parameters, "their elements (global shapes)");
    v.field("bytes", &DcpInfoResult::bytes, "their bytes");
    v.field("bytes_by_dtype", &DcpInfoResult::bytes_by_dtype, "bytes per dtype");
    v.field("byte_items", &DcpInfoResult::byte_items, "the non-tensor items");
  }
};
// `info` on a DCP folder: its files, and tensor totals by dtype.
DcpInfoResult dcp_info(Env& env, const std::string& dir);

struct DcpChunkEntry {
  static constexpr const char* kName = "DcpChunkEntry";
  static constexpr const char* kDoc = "a chunk of a DCP tensor: where in the tensor, where in the files";
  std::vector<int64_t> offsets, sizes;
  std::string file;
  uint64_t offset = 0, length = 0;
  template <class V>
  static void describe(V& v) {
    v.field("offsets", &DcpChunkEntry::offsets, "its first element's index in the tensor, per dimension");
    v.field("sizes", &DcpChunkEntry::sizes, "its shape");
    v.field("file", &DcpChunkEntry::file, "the file holding it");
    v.field("offset", &DcpChunkEntry::offset, "where its bytes start in the file");
    v.field("length", &DcpChunkEntry::length, "their length");
  }
};

struct DcpTensorEntry {
  static constexpr const char* kName = "DcpTensorEntry";
  static constexpr const char* kDoc = "a tensor of a DCP folder: global shape and chunks";
  std::string name, dtype;
  std::vector<int64_t> shape;
  uint64_t numel = 0, bytes = 0;
  std::vector<DcpChunkEntry> chunks;
  template <class V>
  static void describe(V& v) {
    v.field("name", &DcpTensorEntry::name, "its fully qualified name");
    v.field("dtype", &DcpTensorEntry::dtype, "its dtype");
    v.field("shape", &DcpTensorEntry::shape, "its global shape");
    v.field("numel", &DcpTensorEntry::numel, "its elements");
    v.field("bytes", &DcpTensorEntry::bytes, "its bytes");
    v.field("chunks", &DcpTensorEntry::chunks, "its chunks");
  }
};
// `tensors` on a DCP folder: the tensor items (global shapes, chunks) whose
// names match one of the globs (all when empty), in metadata order.
std::vector<DcpTensorEntry> dcp_tensors(Env& env, const std::string& dir, const std::vector<std::string>& match);

struct DcpVerifyResult {
  static constexpr const char* kName = "DcpVerifyResult";
  static constexpr const char* kDoc = "the problems verify found in a DCP folder (none: ok)";
  std::string file;
  bool ok = true;
  uint64_t items = 0, chunks = 0;
  std::vector<std::string> problems;
  template <class V>
  static void describe(V& v) {
    v.field("file", &DcpVerifyResult::file, "the folder");
    v.field("ok", &DcpVerifyResult::ok, "no problem found");
    v.field("items", &DcpVerifyResult::items, "items checked");
    v.field("chunks", &DcpVerifyResult::chunks, "tensor chunks checked");
    v.field("problems", &DcpVerifyResult::problems, "one line each");
  }
};
// `verify` on a DCP folder: every chunk and byte item read (zip records
// against their CRCs, chunks against the metadata's dtype and size); a
// folder that cannot be opened is a problem, not an exception.
DcpVerifyResult dcp_verify(Env& env, const std::string& dir);

// An AudioCraft FSDP rank file and its set: for `checkpoint[_name].th.N`, and
// for `checkpoint[_name].th` when rank files lie beside it.
struct RankSetInfo {
  static constexpr const char* kName = "RankSetInfo";
  static constexpr const char* kDoc = "the FSDP rank set a file belongs to";
  std::string set;
  int rank = 0;
  std::vector<int> ranks, missing;
  template <class V>
  static void describe(V& v) {
    v.field("set", &RankSetInfo::set, "the set's name (checkpoint.th)");
    v.field("rank", &RankSetInfo::rank, "this file's rank");
    v.field("ranks", &RankSetInfo::ranks, "the ranks present");
    v.field("missing", &RankSetInfo::missing, "ranks missing below the highest");
  }
};
// The set a rank file belongs to, from the files beside it; nullopt for a
// file of another name or a lone checkpoint.th.
std::optional<RankSetInfo> rank_set_of(Env& env, const std::string& file);

// `info` on a folder that is not a DCP checkpoint: the rank sets in it.
struct RankSetSummary {
  static constexpr const char* kName = "RankSetSummary";
  static constexpr const char* kDoc = "an FSDP rank set in a folder";
  std::string set;
  std::vector<int> ranks, missing;
  template <class V>
  static void describe(V& v) {
    v.field("set", &RankSetSummary::set, "the set's name (checkpoint.th)");
    v.field("ranks", &RankSetSummary::ranks, "the ranks present");
    v.field("missing", &RankSetSummary::missing, "ranks missing below the highest");
  }
};
struct FolderInfoResult {
  static constexpr const char* kName = "FolderInfoResult";
  static constexpr const char* kDoc = "the AudioCraft FSDP rank sets in a folder";
  std::string file;
  std::string format = "folder";
  std::vector<RankSetSummary> rank_sets;
  template <class V>
  static void describe(V& v) {
    v.field("file", &FolderInfoResult::file, "the folder");
    v.field("format", &FolderInfoResult::format, "folder");
    v.field("rank_sets", &FolderInfoResult::rank_sets, "the rank sets in it");
  }
};
// UsageError when the folder holds no rank set.
FolderInfoResult folder_info(Env& env, const std::string& dir);

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
  int signal_slot_ = -1;  // temp_dir_, removed on a signal (util/signal_cleanup.h)
};

struct ConsolidateOptions {
  static constexpr const char* kName = "ConsolidateOptions";
  static constexpr const char* kDoc = "the file consolidate writes";
  std::string out;  // the torch.save file to write
  bool force = false;
  ProgressFn progress;
  template <class V>
  static void describe(V& v) {
    v.field("out", &ConsolidateOptions::out, "the torch.save file to write");
    v.field("force", &ConsolidateOptions::force, "replace an existing output");
  }
};
struct ConsolidateResult {
  static constexpr const char* kName = "ConsolidateResult";
  static constexpr const char* kDoc = "what consolidate wrote";
  std::string out;
  uint64_t tensors = 0, tensor_bytes = 0, byte_items = 0;
  uint64_t source_files = 0;  // .distcp files read
  template <class V>
  static void describe(V& v) {
    v.field("out", &ConsolidateResult::out, "the file written");
    v.field("tensors", &ConsolidateResult::tensors, "tensors written");
    v.field("tensor_bytes", &ConsolidateResult::tensor_bytes, "their bytes");
    v.field("byte_items", &ConsolidateResult::byte_items, "other items written");
    v.field("source_files", &ConsolidateResult::source_files, ".distcp files read");
  }
};
// A DCP folder as one torch.save file (as dcp_to_torch_save).
ConsolidateResult consolidate(Env& env, const std::string& dir, const ConsolidateOptions& options);

struct ToDcpOptions {
  static constexpr const char* kName = "ToDcpOptions";
  static constexpr const char* kDoc = "the folder to_dcp writes and what goes in it";
  std::string out;    // the folder to write
  int ranks = 1;
  std::string state;  // '/'-separated path of the state dict; "": the whole object
  bool force = false;
  ProgressFn progress;
  template <class V>
  static void describe(V& v) {
    v.field("out", &ToDcpOptions::out, "the folder to write");
    v.field("ranks", &ToDcpOptions::ranks, "split tensors along dimension 0 over this many rank files");
    v.field("state", &ToDcpOptions::state, "'/'-separated path of the state dict to write (default: the whole object)");
    v.field("force", &ToDcpOptions::force, "replace an existing DCP folder");
  }
};
struct ToDcpResult {
  static constexpr const char* kName = "ToDcpResult";
  static constexpr const char* kDoc = "what to_dcp wrote";
  std::string out;
  uint64_t tensors = 0, tensor_bytes = 0, files = 0, byte_items = 0;
  template <class V>
  static void describe(V& v) {
    v.field("out", &ToDcpResult::out, "the folder written");
    v.field("tensors", &ToDcpResult::tensors, "tensors written");
    v.field("tensor_bytes", &ToDcpResult::tensor_bytes, "their bytes");
    v.field("files", &ToDcpResult::files, "rank files written");
    v.field("byte_items", &ToDcpResult::byte_items, "other items written");
  }
};
// A torch.save file as a DCP folder.
ToDcpResult to_dcp(Env& env, const std::string& file, const ToDcpOptions& options);

}  // namespace ckpt::api
