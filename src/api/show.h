// `show`: a tensor's values, read from its storage alone (no other tensor is
// touched), as text in row-major order.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "api/checkpoint.h"
#include "util/env.h"

namespace ckpt::torch {
class ElementReader;
}

namespace ckpt::api {

// The values of one tensor of a state dict, read in chunks.
class TensorValues {
 public:
  // state: the state dict's path ("" : the best state). Throws UsageError when
  // there is no tensor `name` there.
  TensorValues(Env& env, const std::string& file, const std::string& name, const std::string& state);
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

}  // namespace ckpt::api
