// A PyTorch checkpoint over the pickle graph: its storages (where their bytes
// are in the file) and its tensors (views onto storages). Opening reads the
// central directory and data.pkl only; tensor bytes stay on disk until a save
// copies them record to record.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <string_view>
#include <vector>

#include "container/zip_reader.h"
#include "pickle/value.h"
#include "torch/dtype.h"
#include "util/env.h"
#include "util/error.h"

namespace ckpt::torch {

enum class Format { Zip, Legacy };
// The record layout of torch.save's zip, by the torch that wrote it
// (docs/dialects.md):
//   Torch1_6 (1.6-2.0): data.pkl, data/<key> in string order, version.
//   Torch2_1 (2.1-2.6): data.pkl, byteorder, data/<key> in string order,
//                       version, .data/serialization_id.
//   Torch2_7 (2.7+):    data.pkl, .format_version, .storage_alignment,
//                       byteorder, data/<key> in numeric order, version,
//                       .data/serialization_id.
enum class Dialect { Torch1_6, Torch2_1, Torch2_7 };
// The dialect of files ckpt makes from nothing (from-safetensors, a legacy
// input): what current torch writes.
inline constexpr Dialect kDefaultDialect = Dialect::Torch2_7;

const char* to_string(Format f);
// "torch-1.6", "torch-2.1", "torch-2.7".
const char* to_string(Dialect d);
// "1.6", "2.1", "2.7" (or with a "torch-" prefix); nullopt otherwise.
std::optional<Dialect> parse_dialect(std::string_view text);

struct Storage {
  std::string key;
  const DTypeInfo* dtype = nullptr;  // element type of the storage class
  std::string location;              // "cpu", "cuda:0"
  uint64_t numel = 0;                // elements, as the persistent id declares
  uint64_t nbytes() const { return numel * dtype->element_size; }

  // Where the bytes are: a zip record, an offset in a legacy file, or an
  // offset in another file. Read them through locate_storage(), never these.
  const container::ZipRecord* record = nullptr;
  uint64_t legacy_offset = 0;  // in the legacy file (no record)
  bool present = false;        // false: the file has no bytes for this key
  // Set for storages whose bytes lie in another file, at external_offset
  // (Checkpoint::add_external_storage: safetensors data, for instance).
  RandomAccessFile* external_file = nullptr;
  uint64_t external_offset = 0;
};

class Checkpoint;

// Where a storage's bytes are, for every reader and for save: `size` bytes
// at `offset` of `file` (a stored zip record, a legacy file, an external
// file), or, when `file` is null, the DEFLATE-compressed `record` of the
// checkpoint's zip (streamed or inflated whole, never read at random).
struct StorageLocation {
  RandomAccessFile* file = nullptr;
  uint64_t offset = 0;
  uint64_t size = 0;
  const container::ZipRecord* record = nullptr;  // the zip record holding the bytes, if any
  bool compressed() const { return file == nullptr; }
};

// Throws FormatError naming the file and storage when the storage has no
// bytes or its record's size is not numel * element_size.
StorageLocation locate_storage(const Checkpoint& ck, const Storage& s);

// How a tensor's elements are arranged (torch.layout), as far as ckpt reads it.
// Nested: torch.nested's strided nested tensor (_rebuild_nested_tensor);
// Jagged: its torch.jagged one (a NestedTensor subclass of values + offsets).
enum class TensorLayout { Strided, SparseCoo, SparseCsr, SparseCsc, SparseBsr, SparseBsc, Nested, Jagged };
const char* to_string(TensorLayout l);  // torch's name: "sparse_coo"

// A quantized tensor's quantizer (_rebuild_qtensor): per tensor, a scale and
// zero point; per channel, the parts "scales" and "zero_points" along axis.
struct Quantization {
  std::string scheme;  // "per_tensor_affine", "per_channel_affine", "per_channel_affine_float_qparams"
  double scale = 0;
  int64_t zero_point = 0;
  int64_t axis = 0;
  bool per_channel() const { return scheme != "per_tensor_affine"; }
};

struct TensorPart;

struct TensorInfo {
  const pickle::Node* object = nullptr;  // the tensor object (inside a Parameter)
  const pickle::Node* outer = nullptr;   // the Parameter, or the tensor itself
  const Storage* storage = nullptr;
  const DTypeInfo* dtype = nullptr;
  int64_t storage_offset = 0;
  std::vector<int64_t> shape, stride;
  bool requires_grad = false;
  bool is_parameter = false;

  // Beyond a plain strided tensor (src/torch/tensor_info.cc):
  TensorLayout layout = TensorLayout::Strided;
  bool is_meta = false;           // device "meta": no storage, no data
  bool conj = false, neg = false;  // conjugate / negative bits: values are conj() / -(stored)
  std::optional<Quantization> quantization;  // dtype is then the storage's qint type
  std::string subclass;           // "module.Name" of a _rebuild_from_type_v2 Tensor subclass
  bool has_state = false;         // Python attributes pickled with it (Parameter with state, subclass __dict__)
  bool coalesced = true;          // sparse COO: torch's is_coalesced flag
  // Component tensors: sparse "indices"/"values" (COO), "crow_indices"/
  // "col_indices"/"values" (CSR, and the CSC/BSR/BSC names), per-channel
  // "scales"/"zero_points", nested "buffer"/"sizes"/"strides"/"offsets",
  // jagged "values"/"offsets"[/"lengths"].
  std::vector<TensorPart> parts;

  const TensorInfo* part(std::string_view name) const;
  // Strided with its elements in its storage as torch shows them: not
  // quantized, sparse, nested, meta, nor with a conj / neg bit.
  bool is_plain() const;
  // Empty for a plain tensor; else what it is, e.g. "sparse_coo, nnz 5",
  // "quantized per_tensor_affine (scale 0.1, zero_point 2)", "meta".
  std::string form() const;
  // Stored elements of a sparse tensor (the values' first dimension).
  uint64_t nnz() const;

  uint64_t numel() const;
  // Bytes the tensor's data takes in the file (all parts; 0 for meta).
  uint64_t nbytes() const;
  bool is_contiguous() const;
  // Empty when the view fits its storage; else what is wrong.
  std::string view_problem() const;
  // view_problem() of it and every part, and the parts' agreement with the
  // whole (sparse index shapes, nnz), each prefixed with what it concerns.
  std::vector<std::string> problems() const;
};

// A named component of a TensorInfo. A struct rather than std::pair: a pair
// of a type still being defined is ill-formed (clang refuses it; the fuzz
// build uses clang). Binds like a pair: `for (const auto& [name, info] : t.parts)`.
struct TensorPart {
  TensorPart(std::string name_, TensorInfo info_) : name(std::move(name_)), info(std::move(info_)) {}
  std::string name;
  TensorInfo info;
};

struct OpenOptions {
  uint64_t max_pickle_bytes = uint64_t{1} << 30;
};

// ('storage', StorageClass, key, location, numel[, view_metadata])
bool is_storage_pid(const pickle::Node* t);

// The CRC-32 check of the zip records that readers of storage bytes
// (torch/tensor_data.h's StorageReader) read, when a Checkpoint has one:
// each record once, over its bytes as they are read (the rest of a record
// read in part is read when its reader is done); a mismatch calls
// on_mismatch(record, crc), which throws.
struct ReadCrcCheck {
  std::function<void(const container::ZipRecord& record, uint32_t crc)> on_mismatch;
  std::set<const container::ZipRecord*> checked;
};

class Checkpoint {
 public:
  // Throws FormatError naming the file on anything that is not a readable
  // checkpoint (with a hint for Git LFS pointers, HTML pages, empty files).
  static std::unique_ptr<Checkpoint> open(Env& env, const std::string& path,
                                          const OpenOptions& options = {});

  const std::string& path() const { return path_; }
  Format format() const { return format_; }
  Dialect dialect() const { return dialect_; }
  // Where record data is aligned: the .storage_alignment record (torch
  // 2.7+), else 64; 0 when that record holds no usable alignment.
  uint64_t storage_alignment() const { return storage_alignment_; }
  const std::string& archive_name() const { return archive_name_; }
  const container::ZipReader* zip() const { return zip_.get(); }
  RandomAccessFile& file() const;
  uint64_t pickle_size() const { return pickle_size_; }

  pickle::Graph& graph() { return graph_; }
  pickle::Node* root() const { return graph_.root; }

  const std::map<std::string, Storage>& storages() const { return storages_; }
  const Storage* storage(const std::string& key) const;

  // The tensor a node is (a _rebuild_tensor_v2/_v3 object, a Parameter or
  // subclass around one, a quantized, sparse, nested or meta tensor);
  // nullopt for anything else. Throws FormatError for a tensor whose
  // arguments are malformed or of a kind ckpt cannot read (naming it).
  std::optional<TensorInfo> tensor(const pickle::Node* n) const;

  // A checkpoint built in memory rather than read: an empty graph for the
  // caller to fill, storages from add_external_storage. `path` names it in
  // messages; save() writes it in `dialect`'s layout.
  static std::unique_ptr<Checkpoint> create(const std::string& path, Dialect dialect = kDefaultDialect);
  // Registers storage `key` whose numel * element_size bytes lie in `file`
  // at `offset`; the checkpoint keeps the file open. Persistent ids naming
  // `key` then save with these bytes. Throws UsageError if the key is taken.
  const Storage& add_external_storage(const std::string& key, const DTypeInfo* dtype, const std::string& location,
                                      uint64_t numel, std::shared_ptr<RandomAccessFile> file, uint64_t offset);

  // With a check set (not owned; null: none), readers of this checkpoint's
  // storages check the CRC-32 of the records they read (api: stats, show).
  void set_read_crc_check(ReadCrcCheck* check) { read_crc_check_ = check; }
  ReadCrcCheck* read_crc_check() const { return read_crc_check_; }

 private:
  Checkpoint() = default;
  void load_zip(Env& env, const OpenOptions& options);
  void load_legacy(const OpenOptions& options);
  void index_storages();
  std::optional<TensorInfo> tensor_call(const pickle::Node* outer, const pickle::Node* callable,
                                        const pickle::Node* args, int depth) const;

  std::string path_;
  Format format_ = Format::Zip;
  Dialect dialect_ = kDefaultDialect;
  uint64_t storage_alignment_ = 64;
  std::string archive_name_;
  std::unique_ptr<container::ZipReader> zip_;
  std::unique_ptr<RandomAccessFile> legacy_file_;
  pickle::Graph graph_;
  uint64_t pickle_size_ = 0;
  std::map<std::string, Storage> storages_;
  std::vector<std::shared_ptr<RandomAccessFile>> external_files_;
  ReadCrcCheck* read_crc_check_ = nullptr;
};

// Storage bytes rewritten on save (dtype conversion): the new storage class
// and a function that streams the converted bytes.
struct StorageTransform {
  const DTypeInfo* dtype;
  std::function<void(const Storage& from, const std::function<void(std::string_view)>& sink)> produce;
};

struct SaveOptions {
  bool force = false;
  // Folder name inside the zip; empty: from the output file name, as torch.
  std::string archive_name;
  // Dialect of the output; default: the source's (kDefaultDialect for a
  // legacy input or a checkpoint made in memory).
  std::optional<Dialect> dialect;
  // Keyed by source storage key.
  std::map<std::string, StorageTransform> transforms;
  std::function<void(uint64_t done, uint64_t total)> progress;
  // Checks each storage record of a zip source against the CRC-32 in its
  // directory: a record inflated or converted as its bytes pass, one copied
  // as it is on a second thread while the output is fsync'd (the copy does
  // not read it, so it runs at the speed of cp); a mismatch calls on_crc_mismatch, which
  // throws (the caller's message, naming its own way to skip the check), or
  // when it is empty or returns, throws crc_mismatch_error's FormatError. The
  // output is then not committed. Records not carried to the output (dropped
  // storages) are not read.
  bool verify_crcs = false;
  std::function<void(const container::ZipRecord& record, uint32_t crc)> on_crc_mismatch;
  // A check of sources the storages were copied from that verify_crcs does
  // not see (the external files of a checkpoint made in memory: the
  // transformers converters' ranges of zip records), run with the copies'
  // check on the second thread while the output is fsync'd; if it throws,
  // the output is not committed.
  std::function<void()> check_source;
};

// The FormatError for a zip record of `ck` whose bytes' CRC-32 (crc) differs
// from its directory's: what and where, and that the file is damaged.
FormatError crc_mismatch_error(const Checkpoint& ck, const container::ZipRecord& record, uint32_t crc);

// What torch.save would write for `root` (a node of source.graph(), possibly
// edited), written atomically to out_path: storage keys renumbered in
// first-seen pickling order, unused storages dropped, record layout of the
// dialect, bytes copied from the source without entering user space.
void save(Checkpoint& source, const pickle::Node* root, Env& env, const std::string& out_path,
          const SaveOptions& options = {});

// The same, written to an already open file (for in-place edits and tests),
// which is fsync'd before it returns (copied records are checked meanwhile).
void save_to(Checkpoint& source, const pickle::Node* root, WritableFile& out,
             const std::string& archive_name, const SaveOptions& options = {});

// torch's archive folder for an output path: base name without its last
// extension ("x/init.th" -> "init").
std::string archive_name_for(const std::string& path);

}  // namespace ckpt::torch
