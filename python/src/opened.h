// The extension's opened checkpoint: what ckpt.open() and ckpt.load() read
// through (python/ckpt/_handle.py, _load.py). The file is opened and its
// pickle parsed once (a DCP folder consolidated into a temporary file
// first); tensor bytes stay on disk. Uses the api layer's headers only.
#pragma once
#include <pybind11/pybind11.h>

#include <optional>
#include <string>

#include "api/access.h"

namespace ckpt::python {

namespace py = pybind11;

class Opened {
 public:
  explicit Opened(const std::string& path);

  const api::Opened& opened() const { return path_.opened; }
  const torch::Checkpoint& checkpoint() const { return *path_.opened.ck; }
  const std::string& source() const { return source_; }

  // The state dict at a '/'-separated path (None: the best state; "/": the root).
  const pickle::Node* state_dict(const std::optional<std::string>& path) const;

 private:
  std::string source_;
  api::OpenedPath path_;
};

// Module parts, each defining its functions and classes on m.
void register_errors(py::module_& m);
void register_opened(py::module_& m);
void register_graph(py::module_& m);
void register_operations(py::module_& m);

// A TensorInfo as the loader's dict (dtype, shape, stride, storage key,
// plain, problem, ...): what python/ckpt/_tensors.py and _load.py build from.
py::dict tensor_dict(const torch::TensorInfo& t);

}  // namespace ckpt::python
