// The extension's opened checkpoint (api::open_checkpoint's): what
// ckpt.open() and ckpt.load() read through (python/ckpt/_handle.py,
// _load.py). The file is opened and its pickle parsed once; tensor bytes stay
// on disk.
#pragma once
#include <pybind11/pybind11.h>

#include <memory>
#include <optional>
#include <string>

#include "api/checkpoint.h"
#include "audiocraft/layout.h"
#include "torch/checkpoint.h"

namespace ckpt::python {

namespace py = pybind11;

class Opened {
 public:
  explicit Opened(const std::string& path);

  const torch::Checkpoint& checkpoint() const { return *opened_.ck; }
  torch::Checkpoint& checkpoint() { return *opened_.ck; }
  audiocraft::Layout layout() const { return opened_.layout; }
  const std::optional<std::string>& best_state() const { return opened_.best_state; }
  bool safetensors() const { return opened_.safetensors; }
  uint64_t file_size() const { return opened_.file_size; }

  // The state dict at a '/'-separated path ("" or None: the best state).
  pickle::Node* state_dict(const std::optional<std::string>& path) const;

 private:
  api::Opened opened_;
};

// Module parts, each defining its functions and classes on m.
void register_errors(py::module_& m);
void register_opened(py::module_& m);
void register_graph(py::module_& m);
void register_operations(py::module_& m);

// A mapping key as text: pickle::key_text (str keys as they are, ints in decimal).
using pickle::key_text;
// A TensorInfo as a dict for Python (dtype, shape, stride, storage key, ...).
py::dict tensor_dict(const torch::TensorInfo& t);

}  // namespace ckpt::python
