// safetensors files and checkpoints: tensors written to a safetensors file,
// and a safetensors file read as a checkpoint or into one. The format
// itself (the header codec) is safetensors_format.h.
//
// The writer orders tensors as the reference's `prepare` does (dtype
// alignment descending, then name bytewise) so that `ckpt safetensors`
// output matches safetensors.torch.save_file's byte for byte (plus
// "__metadata__": {"format": "pt"}, as transformers writes it).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "torch/checkpoint.h"
#include "torch/safetensors_format.h"
#include "torch/shape.h"
#include "util/env.h"

namespace ckpt::torch {

struct SafetensorsWriteOptions {
  bool force = false;
  std::vector<std::pair<std::string, std::string>> metadata{{"format", "pt"}};
  std::function<void(uint64_t done, uint64_t total)> progress;
  // When set, floating tensors of another floating dtype are written
  // converted to it, bit for bit as torch's .to() (torch/convert.h); they
  // must be contiguous in an uncompressed record or file.
  std::optional<DType> float_dtype;
  // A check of the source (its CRC-32s) run on a second thread while the
  // output is fsync'd (write_safetensors; for a shard set, the last shard);
  // if it throws, the output is not committed.
  std::function<void()> check_source;
};

// The dtype a tensor is written with under `options` (float_dtype applied),
// and its size in bytes then.
const DTypeInfo* safetensors_written_dtype(const TensorInfo& t, const SafetensorsWriteOptions& options);
uint64_t safetensors_written_nbytes(const TensorInfo& t, const SafetensorsWriteOptions& options);

// Why a tensor cannot go into a safetensors file ("is quantized ...",
// "has dtype complex32, which safetensors cannot hold"); empty when it can.
std::string safetensors_refusal(const TensorInfo& t);

// Writes the named tensors of `source` as a safetensors file. Contiguous
// tensors are copied file to file; non-contiguous views and tensors that
// share a storage become contiguous copies, gathered through a bounded
// buffer. Throws UsageError for a duplicate name or a dtype safetensors
// lacks, FormatError for a view outside its storage.
void write_safetensors(Checkpoint& source, const std::vector<std::pair<std::string, TensorInfo>>& tensors,
                       Env& env, const std::string& out_path, const SafetensorsWriteOptions& options = {});
void write_safetensors_to(Checkpoint& source, const std::vector<std::pair<std::string, TensorInfo>>& tensors,
                          WritableFile& out, const SafetensorsWriteOptions& options = {});

// The pickle of a contiguous tensor over all of `storage` (offset 0), as
// torch.save writes it: torch._utils._rebuild_tensor_v2 with the persistent
// id ('storage', torch.<Type>Storage, key, location, numel) and a fresh
// OrderedDict of backward hooks. `storage_word` ("storage") and `location`
// are string nodes the caller shares between tensors, as CPython does.
pickle::Node* make_tensor_node(pickle::Graph& g, const Storage& storage, const std::vector<int64_t>& shape,
                               bool requires_grad, pickle::Node* storage_word, pickle::Node* location);

// A checkpoint holding the safetensors file's tensors as a plain state dict
// (collections.OrderedDict in header order), its storages read from the file.
std::unique_ptr<Checkpoint> checkpoint_from_safetensors(Env& env, const std::string& path);

// A checkpoint made in memory whose root is a plain state dict
// (collections.OrderedDict) of contiguous tensors whose bytes lie in
// safetensors files: one file, or the shards of an index.
class SafetensorsStateDict {
 public:
  explicit SafetensorsStateDict(const std::string& path);
  // Appends tensor t of `file` (its data section at data_start) under its
  // name. Throws UsageError naming file_label for a dtype that torch 1.x
  // checkpoints cannot hold.
  void add(const SafetensorsTensor& t, const std::shared_ptr<RandomAccessFile>& file, uint64_t data_start,
           const std::string& file_label);
  std::unique_ptr<Checkpoint> finish() { return std::move(ck_); }

 private:
  std::unique_ptr<Checkpoint> ck_;
  pickle::Node* root_ = nullptr;
  pickle::Node* storage_word_ = nullptr;  // "storage" and "cpu", shared as CPython shares them
  pickle::Node* cpu_ = nullptr;
  size_t next_key_ = 0;
};

struct IntoReport {
  // Names only on one side, shape mismatches; when not empty nothing changed.
  std::vector<std::string> differences;
  std::vector<std::string> dtype_changes;  // "name: float32 -> float16" (allowed)
  size_t replaced = 0;
};

// Replaces each tensor of `state_dict` (a mapping of ck's graph) by the
// safetensors tensor of the same name, its bytes read from `file` when ck
// is saved. Parameters stay Parameters, locations and requires_grad stay;
// non-tensor entries and everything outside the state dict are untouched.
// `file_label` names the safetensors file in the differences.
IntoReport replace_tensors_from_safetensors(Checkpoint& ck, pickle::Node* state_dict, const SafetensorsHeader& header,
                                            std::shared_ptr<RandomAccessFile> file, const std::string& file_label);

}  // namespace ckpt::torch
