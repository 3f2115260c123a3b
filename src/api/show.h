// `show`: a tensor's values, read from its storage alone (no other tensor is
// touched), as text in row-major order.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "api/checkpoint.h"
#include "api/schema.h"
#include "util/env.h"

namespace ckpt::torch {
class ElementReader;
}

namespace ckpt::api {

// The values of one tensor of a state dict, read in chunks.
class TensorValues {
 public:
  // state: the state dict's path (nullopt: the best state). Throws
  // UsageError when there is no tensor `name` there.
  // Unless ignore_crc, the tensor's zip record is checked against its CRC-32
  // first (read whole once: a few values tell nothing of the rest), failing
  // with throw_crc_mismatch's error (reading).
  TensorValues(Env& env, const std::string& file, const std::string& name, const std::optional<std::string>& state,
               bool ignore_crc = false);
  ~TensorValues();
  TensorValues(const TensorValues&) = delete;
  TensorValues& operator=(const TensorValues&) = delete;

  const torch::TensorInfo& info() const { return *info_; }
  const std::string& state_note() const { return state_note_; }
  // Appends the next values (at most max) as text to cells: the shortest
  // decimal that reads back as the same value of the dtype, exact 64-bit
  // integers, (re+imj) for complex, hex bytes for quantized types. Returns
  // how many were appended (0 at the end).
  size_t next(std::vector<std::string>& cells, size_t max);

 private:
  Opened opened_;
  std::unique_ptr<torch::TensorInfo> info_;
  std::unique_ptr<torch::ElementReader> reader_;
  std::string buf_;
  std::string state_note_;
};

struct ShowOptions {
  static constexpr const char* kName = "ShowOptions";
  static constexpr const char* kDoc = "which tensor, and how many of its values";
  std::string name;
  std::optional<std::string> state;
  int64_t head = 20;
  bool ignore_crc = false;
  template <class V>
  static void describe(V& v) {
    v.field("name", &ShowOptions::name, "the tensor's name, as tensors lists it");
    v.field("state", &ShowOptions::state, "the state dict's '/'-separated path (default: the best state)");
    v.field("head", &ShowOptions::head, "the first K values (0: all)");
    v.field("ignore_crc", &ShowOptions::ignore_crc,
            "read a zip record that fails its CRC-32, as it is (refused otherwise: the tensor's record is checked)");
  }
};
struct ShowResult {
  static constexpr const char* kName = "ShowResult";
  static constexpr const char* kDoc = "a tensor's first values, in row-major order";
  std::string name, dtype;
  std::vector<int64_t> shape;
  uint64_t numel = 0;
  std::vector<std::string> values;
  uint64_t more = 0;
  template <class V>
  static void describe(V& v) {
    v.field("name", &ShowResult::name, "the tensor");
    v.field("dtype", &ShowResult::dtype, "its dtype");
    v.field("shape", &ShowResult::shape, "its shape");
    v.field("numel", &ShowResult::numel, "its elements");
    v.field("values", &ShowResult::values,
            "its first values as text: the shortest decimal that reads back as the same value, (re+imj), 0x.. bytes");
    v.field("more", &ShowResult::more, "values not shown");
  }
};
// The first options.head values of a tensor (all for 0), read from its
// storage alone.
ShowResult show(Env& env, const std::string& file, const ShowOptions& options);

}  // namespace ckpt::api
