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
#include <variant>
#include <vector>

#include "api/checkpoint.h"
#include "api/schema.h"
#include "api/shard.h"
#include "util/env.h"

namespace ckpt::api {

// Tensor totals of one state dict.
struct StateDictSummary {
  static constexpr const char* kName = "StateDictSummary";
  static constexpr const char* kDoc = "the tensor totals of one state dict";
  std::string path;
  uint64_t tensors = 0, parameters = 0, bytes = 0;
  std::map<std::string, uint64_t> bytes_by_dtype;
  template <class V>
  static void describe(V& v) {
    v.field("path", &StateDictSummary::path, "the state dict's '/'-separated path ('' is the root)");
    v.field("tensors", &StateDictSummary::tensors, "tensors in it");
    v.field("parameters", &StateDictSummary::parameters, "their elements");
    v.field("bytes", &StateDictSummary::bytes, "their bytes");
    v.field("bytes_by_dtype", &StateDictSummary::bytes_by_dtype, "bytes per dtype");
  }
};

struct ZipRecord {
  static constexpr const char* kName = "ZipRecord";
  static constexpr const char* kDoc = "a record of a zip checkpoint";
  std::string name;
  uint64_t size = 0;
  uint32_t crc32 = 0;
  std::optional<uint64_t> offset;  // none: a remote file's record whose local header was not fetched
  template <class V>
  static void describe(V& v) {
    v.field("name", &ZipRecord::name, "the record's name");
    v.field("size", &ZipRecord::size, "its uncompressed size");
    v.field("crc32", &ZipRecord::crc32, "its CRC-32 as the directory says");
    v.field("offset", &ZipRecord::offset,
            "where its data starts in the file; None for a remote record whose local header was not fetched");
  }
};

struct TopLevelKey {
  static constexpr const char* kName = "TopLevelKey";
  static constexpr const char* kDoc = "a key of the top-level mapping";
  std::string key, kind, summary;
  template <class V>
  static void describe(V& v) {
    v.field("key", &TopLevelKey::key, "the key");
    v.field("kind", &TopLevelKey::kind, "its value's kind: dict, tensor, DictConfig, int, ...");
    v.field("summary", &TopLevelKey::summary, "its value described in a few words");
  }
};

struct InfoResult {
  static constexpr const char* kName = "InfoResult";
  static constexpr const char* kDoc = "a checkpoint file's format, layout, top-level keys and state dicts";
  std::string file;
  uint64_t file_size = 0;
  std::string format;                  // "zip", "legacy", "safetensors"
  std::optional<std::string> dialect;  // a torch zip's
  std::optional<std::string> archive;  // a torch zip's
  uint64_t pickle_bytes = 0;
  uint64_t storages = 0;
  std::vector<ZipRecord> records;  // in file order; empty for non-zip files
  std::string layout;
  std::optional<std::string> kind;  // AudioCraft's name for the file
  std::optional<std::string> best_state;
  std::vector<TopLevelKey> keys;  // of the root mapping
  // Mappings of tensors within a few levels of the root, and the best state.
  std::vector<StateDictSummary> state_dicts;
  std::optional<RankSetInfo> rank_set;  // an FSDP rank file's set
  // A training checkpoint's state that a resumed run restores besides the
  // weights (audiocraft::training_state_present); empty when none.
  std::vector<std::string> training_state;
  template <class V>
  static void describe(V& v) {
    v.field("file", &InfoResult::file, "the file");
    v.field("file_size", &InfoResult::file_size, "its size in bytes");
    v.field("format", &InfoResult::format, "zip, legacy or safetensors");
    v.field("dialect", &InfoResult::dialect, "a torch zip's dialect: torch-1.6, torch-2.1 or torch-2.7");
    v.field("archive", &InfoResult::archive, "a torch zip's archive name (the records' folder)");
    v.field("pickle_bytes", &InfoResult::pickle_bytes, "size of the pickle (data.pkl)");
    v.field("storages", &InfoResult::storages, "storages the pickle names");
    v.field("records", &InfoResult::records, "the zip's records in file order");
    v.field("layout", &InfoResult::layout, "AudioCraft layout: audiocraft-training, audiocraft-exported, state-dict, ...");
    v.field("kind", &InfoResult::kind, "AudioCraft's name for the file (a MusicGen LM, an EnCodec model, ...)");
    v.field("best_state", &InfoResult::best_state, "the best state dict's path ('' the root); None when none");
    v.field("keys", &InfoResult::keys, "the top-level mapping's keys");
    v.field("state_dicts", &InfoResult::state_dicts, "the state dicts found near the root, and the best state");
    v.field("training_state", &InfoResult::training_state,
            "a training checkpoint's state that a resumed run restores besides the weights (optimizer, ema, ...)");
    v.field("rank_set", &InfoResult::rank_set, "an FSDP rank file's set", Presence::OmitEmpty);
  }
};

// `ckpt info FILE` on a file (info_any takes folders too).
InfoResult info(Env& env, const std::string& file);

// `info` on any path: a file, a DCP folder or a folder of rank files.
using InfoAny = std::variant<InfoResult, DcpInfoResult, FolderInfoResult>;
InfoAny info_any(Env& env, const std::string& path);

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
  static constexpr const char* kName = "LsOptions";
  static constexpr const char* kDoc = "where ls starts and how deep it goes";
  std::string path;  // where to start ('/'-separated keys and indexes)
  int depth = 2;     // levels to expand
  template <class V>
  static void describe(V& v) {
    v.field("path", &LsOptions::path, "where to start: '/'-separated keys and indexes (best_state/model)");
    v.field("depth", &LsOptions::depth, "levels to expand");
  }
};
// Walks the tree, handing each entry to visit as it is reached (so a huge
// container costs no memory per child). At most 10,000 children of one
// container are listed.
void ls(Env& env, const std::string& file, const LsOptions& options, const std::function<void(const LsEntry&)>& visit);

// The tree as data: an object, its children, or the note that more were left out.
struct LsNode {
  static constexpr const char* kName = "LsNode";
  static constexpr const char* kDoc = "an object of the tree and its children";
  std::string key, path, kind, summary;
  std::string ref;  // the path where a shared object was first listed
  uint64_t more = 0;  // a note (kind "more"): this many more children of the parent not listed
  std::optional<Json> value;  // a scalar's value, typed as Python has it (nan/inf as "nan", "inf", "-inf")
  std::vector<LsNode> children;
  template <class V>
  static void describe(V& v) {
    v.field("key", &LsNode::key, "its key or index in its parent ('/' for where the listing starts)");
    v.field("path", &LsNode::path, "its '/'-separated path");
    v.field("kind", &LsNode::kind, "its kind: dict, list, tensor, DictConfig, int, ...; 'more' for the note");
    v.field("summary", &LsNode::summary, "it described in a few words");
    v.field("ref", &LsNode::ref, "the path where this (shared) object was listed first", Presence::OmitEmpty);
    v.field("more", &LsNode::more, "a note, not an object: this many more children not listed",
            Presence::OmitEmpty);
    v.field("value", &LsNode::value, "a scalar's value (None, bool, int, float, str); absent for other objects",
            Presence::OmitEmpty);
    v.field("children", &LsNode::children, "its children, listed to the depth asked", Presence::OmitEmpty);
  }
};
LsNode ls_tree(Env& env, const std::string& file, const LsOptions& options);

struct TensorsOptions {
  static constexpr const char* kName = "TensorsOptions";
  static constexpr const char* kDoc = "which tensors, and whether to sum them by name prefix";
  std::optional<std::string> state;  // default: the best state; "" or "/": the root
  std::vector<std::string> match;    // globs; empty: all
  int group = 0;                     // > 0: sums per name prefix of this many components
  bool tree = false;                 // the module tree (one node per name component)
  template <class V>
  static void describe(V& v) {
    v.field("state", &TensorsOptions::state, "the state dict's '/'-separated path (default: the best state; '/': the root)");
    v.field("match", &TensorsOptions::match, "only tensors whose names match one of these globs");
    v.field("group", &TensorsOptions::group, "sum tensors, parameters and bytes by the first N dot-separated name components");
    v.field("tree", &TensorsOptions::tree,
            "the module tree: one node per name component with the parameters below it, as print(model) nests modules");
  }
};

struct TensorPartEntry {
  static constexpr const char* kName = "TensorPartEntry";
  static constexpr const char* kDoc = "a component tensor of a sparse, quantized or nested tensor";
  std::string dtype;
  std::vector<int64_t> shape;
  std::optional<std::string> storage;
  template <class V>
  static void describe(V& v) {
    v.field("dtype", &TensorPartEntry::dtype, "its dtype");
    v.field("shape", &TensorPartEntry::shape, "its shape");
    v.field("storage", &TensorPartEntry::storage, "its storage's key");
  }
};

// A tensor of a state dict as `tensors` lists it.
struct TensorEntry {
  static constexpr const char* kName = "TensorEntry";
  static constexpr const char* kDoc = "a tensor's metadata as stored";
  std::string name, dtype;
  std::vector<int64_t> shape;
  uint64_t numel = 0, nbytes = 0;
  std::vector<int64_t> stride;
  int64_t storage_offset = 0;
  std::optional<std::string> storage;
  bool contiguous = false, requires_grad = false, parameter = false;
  std::string layout, form;
  std::optional<uint64_t> nnz;
  std::optional<bool> coalesced;
  std::string qscheme;
  std::optional<int64_t> axis;
  std::optional<double> scale;
  std::optional<int64_t> zero_point;
  std::string device;
  bool conj = false, neg = false;
  std::string subclass;
  bool has_state = false;
  std::map<std::string, TensorPartEntry> parts;
  template <class V>
  static void describe(V& v) {
    using T = TensorEntry;
    v.field("name", &T::name, "the tensor's key in the state dict");
    v.field("dtype", &T::dtype, "its dtype (float32, bfloat16, ...)");
    v.field("shape", &T::shape, "its shape");
    v.field("numel", &T::numel, "its elements");
    v.field("nbytes", &T::nbytes, "bytes its data takes in the file");
    v.field("stride", &T::stride, "its strides, in elements");
    v.field("storage_offset", &T::storage_offset, "its first element's offset in its storage, in elements");
    v.field("storage", &T::storage, "its storage's key (the record data/KEY)");
    v.field("contiguous", &T::contiguous, "its elements are contiguous in row-major order");
    v.field("requires_grad", &T::requires_grad, "requires_grad as stored");
    v.field("parameter", &T::parameter, "a torch.nn.Parameter");
    v.field("layout", &T::layout, "strided, sparse_coo, sparse_csr, ..., nested, jagged");
    v.field("form", &T::form, "empty for a plain tensor, else what it is ('sparse_coo, nnz 5', 'meta')");
    v.field("nnz", &T::nnz, "sparse: stored elements", Presence::OmitEmpty);
    v.field("coalesced", &T::coalesced, "sparse COO: torch's is_coalesced flag", Presence::OmitEmpty);
    v.field("qscheme", &T::qscheme, "quantized: the scheme", Presence::OmitEmpty);
    v.field("axis", &T::axis, "quantized per channel: the axis", Presence::OmitEmpty);
    v.field("scale", &T::scale, "quantized per tensor: the scale", Presence::OmitEmpty);
    v.field("zero_point", &T::zero_point, "quantized per tensor: the zero point", Presence::OmitEmpty);
    v.field("device", &T::device, "'meta' for a tensor without data", Presence::OmitEmpty);
    v.field("conj", &T::conj, "the conjugate bit is set", Presence::OmitEmpty);
    v.field("neg", &T::neg, "the negative bit is set", Presence::OmitEmpty);
    v.field("subclass", &T::subclass, "a Tensor subclass's module.Name", Presence::OmitEmpty);
    v.field("has_state", &T::has_state, "Python attributes were pickled with it", Presence::OmitEmpty);
    v.field("parts", &T::parts, "component tensors (sparse indices/values, per-channel scales, ...)",
            Presence::OmitEmpty);
  }
};
TensorEntry tensor_entry(const std::string& name, const torch::TensorInfo& t);

// tensors --group N: parameters and bytes summed per name prefix of N
// dot-separated components, in the order the prefixes first appear.
struct TensorGroup {
  static constexpr const char* kName = "TensorGroup";
  static constexpr const char* kDoc = "tensors, parameters and bytes summed over a name prefix";
  std::string name;
  uint64_t tensors = 0, parameters = 0, bytes = 0;
  template <class V>
  static void describe(V& v) {
    v.field("group", &TensorGroup::name, "the name prefix");
    v.field("tensors", &TensorGroup::tensors, "tensors under it");
    v.field("parameters", &TensorGroup::parameters, "their elements");
    v.field("bytes", &TensorGroup::bytes, "their bytes");
  }
};
std::vector<TensorGroup> group_tensors(const std::vector<TensorEntry>& rows, int depth);

// tensors --tree: a node per dot-separated name component, with the sums of
// the tensors below it; a tensor's node (a leaf) has its dtype and shape.
// Children keep the order of their first tensor.
struct TensorTree {
  static constexpr const char* kName = "TensorTree";
  static constexpr const char* kDoc = "a module of the tree and the tensors below it";
  std::string name;  // the name component (the root: the state dict's path)
  uint64_t tensors = 0, parameters = 0, bytes = 0;
  std::optional<std::string> dtype;           // a tensor's
  std::optional<std::vector<int64_t>> shape;  // a tensor's
  std::vector<TensorTree> children;
  template <class V>
  static void describe(V& v) {
    v.field("name", &TensorTree::name, "the name component (the root: the state dict's path)");
    v.field("tensors", &TensorTree::tensors, "tensors below it");
    v.field("parameters", &TensorTree::parameters, "their elements");
    v.field("bytes", &TensorTree::bytes, "their bytes");
    v.field("dtype", &TensorTree::dtype, "a tensor's dtype (leaves only)", Presence::OmitEmpty);
    v.field("shape", &TensorTree::shape, "a tensor's shape (leaves only)", Presence::OmitEmpty);
    v.field("children", &TensorTree::children, "the modules and tensors under it", Presence::OmitEmpty);
  }
};
// UsageError for a name of more than 100 components (use group).
TensorTree tensor_tree(const std::vector<TensorEntry>& rows, const std::string& path);

struct TensorsResult {
  std::string state;               // the state dict's path
  std::vector<TensorEntry> rows;   // in file order
  std::string state_note;          // Opened::state_note
};
// `ckpt tensors FILE`: one row per tensor of a state dict; UsageError when
// the state dict is missing (or, by default, the layout has no best state).
TensorsResult tensors(Env& env, const std::string& file, const TensorsOptions& options);

// `tensors` on any path: rows, groups (options.group > 0), the tree (options.tree) or a DCP folder's items.
using TensorsAny =
    std::variant<std::vector<TensorEntry>, std::vector<TensorGroup>, TensorTree, std::vector<DcpTensorEntry>>;
TensorsAny tensors_any(Env& env, const std::string& path, const TensorsOptions& options);

struct VerifyResult {
  static constexpr const char* kName = "VerifyResult";
  static constexpr const char* kDoc = "the problems verify found in a file (none: ok)";
  std::string file;
  bool ok = true;
  uint64_t records = 0, tensors = 0;
  std::vector<std::string> problems;  // one line each, naming file and place
  template <class V>
  static void describe(V& v) {
    v.field("file", &VerifyResult::file, "the file");
    v.field("ok", &VerifyResult::ok, "no problem found");
    v.field("records", &VerifyResult::records, "zip records checked against their CRC-32");
    v.field("tensors", &VerifyResult::tensors, "tensors checked");
    v.field("problems", &VerifyResult::problems, "one line each, naming the file and the place");
  }
};
// CRC-32 of every zip record, storage sizes, integrity of the graph, every
// tensor view's bounds. A file that cannot be opened is a problem, not an
// exception.
VerifyResult verify(Env& env, const std::string& file);

using VerifyAny = std::variant<VerifyResult, DcpVerifyResult>;
VerifyAny verify_any(Env& env, const std::string& path);

}  // namespace ckpt::api
