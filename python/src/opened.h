// The extension's opened checkpoint: what ckpt.open() and ckpt.load() read
// through (python/ckpt/_handle.py, _load.py). The file is opened and its
// pickle parsed once (a DCP folder consolidated into a temporary file
// first); tensor bytes stay on disk. Uses the api layer's headers only.
#pragma once
#include <pybind11/pybind11.h>

#include <optional>
#include <string>
#include <unordered_map>

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
void register_torch_tensors(py::module_& m);

// A TensorInfo as the loader's dict (dtype, shape, stride, storage key,
// plain, problem, ...): what python/ckpt/_tensors.py and _load.py build from.
py::dict tensor_dict(const torch::TensorInfo& t);

// Plain strided torch tensors made from C++ as python/ckpt/_tensors.py's
// make_torch makes them (python/src/torch_tensors.cc); storage_fn(key) gives
// a storage key's UntypedStorage, asked once per key.
class TorchMaker {
 public:
  explicit TorchMaker(py::object storage_fn);
  // The tensor (requires_grad as stored; no Parameter), or a null object
  // where make_torch would raise or needs what only Python knows (a view
  // problem, no storage, a dtype this torch lacks).
  py::object make(const torch::TensorInfo& t);
  py::object parameter(const py::object& data, bool requires_grad);

 private:
  py::object dtype(const std::string& name);
  py::object storage(const std::string& key);

  py::object storage_fn_, torch_, empty_, parameter_, dtype_type_, zero_shape_;
  std::unordered_map<std::string, py::object> dtypes_, storages_;
};

}  // namespace ckpt::python
