// The safetensors format (huggingface/safetensors): a little-endian u64
// header length N, N bytes of JSON header (padded with spaces to a multiple
// of 8), then the tensors' bytes back to back, each row-major and
// little-endian. The header maps each tensor name to {"dtype", "shape",
// "data_offsets": [begin, end]} (offsets relative to the end of the header)
// and may hold "__metadata__", a map of strings to strings.
//
// The reader validates as the reference implementation (safetensors 0.4,
// tensor.rs read_metadata / validate) does: header at most 100,000,000
// bytes, UTF-8 JSON object, known dtypes, offsets that tile the data
// exactly (sorted by offset: contiguous, non-overlapping, ending at the end
// of the file) and sizes equal to numel * element size. It is stricter in
// two ways, both reported by name: a duplicate key, and nesting deeper than
// the format has (the reference's serde reader takes the last duplicate).
//
// The writer orders tensors as the reference's `prepare` does (dtype
// alignment descending, then name bytewise) so that `ckpt safetensors`
// output matches safetensors.torch.save_file's byte for byte (plus
// "__metadata__": {"format": "pt"}, as transformers writes it).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "torch/checkpoint.h"
#include "util/env.h"

namespace ckpt::torch {

inline constexpr uint64_t kSafetensorsMaxHeader = 100'000'000;

// "F32" for float32 etc.; nullptr when safetensors has no such dtype.
const char* safetensors_dtype_name(DType d);
// The torch dtype of a safetensors dtype name; nullptr when unknown.
const DTypeInfo* dtype_from_safetensors(std::string_view name);
// The reference's alignment rank (its Dtype enum order); sorts the writer's output.
int safetensors_dtype_rank(DType d);

struct SafetensorsTensor {
  std::string name;
  std::string dtype_name;  // as in the header: "F32"
  const DTypeInfo* dtype = nullptr;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // in the data section
  uint64_t nbytes() const { return end - begin; }
};

struct SafetensorsHeader {
  std::vector<SafetensorsTensor> tensors;  // in header (JSON text) order
  std::vector<std::pair<std::string, std::string>> metadata;
  uint64_t data_start = 0;  // 8 + N: the file offset of the data section
};

// Parses and validates a header's JSON text against a data section of
// data_size bytes. `where` names the file in messages.
SafetensorsHeader parse_safetensors_header(std::string_view json, uint64_t data_size, const std::string& where);

// Reads and validates a whole file's header (FormatError naming the file).
SafetensorsHeader read_safetensors(RandomAccessFile& file);

// The header JSON for tensors laid out in the given order, as serde_json
// writes it (compact, "__metadata__" first), padded with spaces to a multiple of 8.
struct SafetensorsEntry {
  std::string name;
  const char* dtype_name;
  std::vector<int64_t> shape;
  uint64_t nbytes;
};
std::string safetensors_header_json(const std::vector<SafetensorsEntry>& entries,
                                    const std::vector<std::pair<std::string, std::string>>& metadata);

struct SafetensorsWriteOptions {
  bool force = false;
  std::vector<std::pair<std::string, std::string>> metadata{{"format", "pt"}};
  std::function<void(uint64_t done, uint64_t total)> progress;
};

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

// Contiguous row-major strides for a shape, as torch computes them (a size
// of 0 counts as 1).
std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape);

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
