// Plain strided torch tensors made from the extension (ckpt.load's Builder,
// Checkpoint.state_dict): what python/ckpt/_tensors.py's make_torch makes,
// with the same torch calls (torch.empty((0,), dtype).set_(storage, offset,
// shape, stride), requires_grad_, torch.nn.Parameter), without a Python frame
// and a dict per tensor. Storages come from the Python side (StorageBytes:
// one UntypedStorage per key over the copy-on-write map), once per key.
#include <pybind11/stl.h>

#include "opened.h"

namespace ckpt::python {

TorchMaker::TorchMaker(py::object storage_fn) : storage_fn_(std::move(storage_fn)) {
  py::module_ torch = py::module_::import("torch");
  torch_ = torch;
  empty_ = torch.attr("empty");
  parameter_ = torch.attr("nn").attr("Parameter");
  dtype_type_ = torch.attr("dtype");
  zero_shape_ = py::make_tuple(0);
}

py::object TorchMaker::dtype(const std::string& name) {
  auto it = dtypes_.find(name);
  if (it != dtypes_.end()) return it->second;
  py::object d = py::getattr(torch_, name.c_str(), py::none());
  if (!py::isinstance(d, dtype_type_)) d = py::object();
  dtypes_.emplace(name, d);
  return d;
}

py::object TorchMaker::storage(const std::string& key) {
  auto it = storages_.find(key);
  if (it != storages_.end()) return it->second;
  py::object s = storage_fn_(key);
  storages_.emplace(key, s);
  return s;
}

py::object TorchMaker::make(const torch::TensorInfo& t) {
  if (!t.storage || !t.dtype || !t.view_problem().empty()) return {};
  py::object dt = dtype(t.dtype->name);
  if (!dt) return {};
  py::object tensor = empty_(zero_shape_, py::arg("dtype") = dt);
  py::tuple shape(t.shape.size()), stride(t.stride.size());
  for (size_t k = 0; k < t.shape.size(); ++k) shape[k] = py::int_(t.shape[k]);
  for (size_t k = 0; k < t.stride.size(); ++k) stride[k] = py::int_(t.stride[k]);
  tensor = tensor.attr("set_")(storage(t.storage->key), py::int_(t.storage_offset), shape, stride);
  if (t.requires_grad) tensor.attr("requires_grad_")(true);
  return tensor;
}

py::object TorchMaker::parameter(const py::object& data, bool requires_grad) {
  return parameter_(data, py::arg("requires_grad") = requires_grad);
}

namespace {

// Checkpoint.state_dict(framework="torch")'s tensors: an OrderedDict name ->
// tensor (Parameter where the file has one), or None when some tensor is not
// one make() makes (the Python path then makes them, or raises what it raises).
py::object torch_state_dict(const Opened& o, const std::optional<std::string>& state, py::object storage_fn) {
  std::vector<api::TensorRow> rows = o.opened().tensors_of(o.state_dict(state));
  for (const api::TensorRow& r : rows) {
    const torch::TensorInfo& t = r.info;
    if (!(t.is_plain() && t.subclass.empty() && !t.has_state)) return py::none();
  }
  TorchMaker maker(std::move(storage_fn));
  py::object out = py::module_::import("collections").attr("OrderedDict")();
  for (const api::TensorRow& r : rows) {
    py::object tensor = maker.make(r.info);
    if (!tensor) return py::none();
    if (r.info.is_parameter) tensor = maker.parameter(tensor, r.info.requires_grad);
    if (PyObject_SetItem(out.ptr(), py::str(r.name).ptr(), tensor.ptr()) != 0) throw py::error_already_set();
  }
  return out;
}

}  // namespace

void register_torch_tensors(py::module_& m) {
  m.def("torch_state_dict", &torch_state_dict, py::arg("opened"), py::arg("state"), py::arg("storage"),
        "A state dict's plain tensors as torch tensors (OrderedDict), None when one needs the Python path; "
        "storage(key) gives a key's UntypedStorage.");
}

}  // namespace ckpt::python
