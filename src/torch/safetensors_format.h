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
// This is the codec: dtype names, the header's JSON read and validated, and
// written as serde_json writes it. Tensors to and from checkpoints are in
// safetensors.h.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "torch/dtype.h"
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

}  // namespace ckpt::torch
