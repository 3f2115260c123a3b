// The pickle graph as flat Python data for ckpt.load (python/ckpt/_load.py):
// nodes numbered from the root, each a tuple that names its children by
// number, so sharing and cycles survive; plus the tensor each node is, as the
// torch layer reads it. Nothing is imported or called here.
#include <pybind11/stl.h>

#include <vector>

#include "opened.h"

namespace ckpt::python {
namespace {

using pickle::Kind;
using pickle::Node;

// Tags of the node tuples (python/ckpt/_load.py reads the same numbers).
enum Tag : int { kValue = 0, kBigInt, kTuple, kList, kDict, kSet, kFrozenSet, kGlobal, kObject, kPersId };

using Numbering = api::NumberedGraph;

py::object scalar(const Node* n) {
  switch (n->kind) {
    case Kind::None: return py::none();
    case Kind::Bool: return py::bool_(n->boolean);
    case Kind::Int: return py::int_(n->integer);
    case Kind::Float: return py::float_(n->real);
    case Kind::Str: {
      PyObject* s = PyUnicode_DecodeUTF8(n->text.data(), static_cast<Py_ssize_t>(n->text.size()), "surrogatepass");
      if (!s) throw py::error_already_set();
      return py::reinterpret_steal<py::object>(s);
    }
    case Kind::Bytes: return py::bytes(n->text);
    case Kind::ByteArray: return py::bytearray(n->text);
    default: return py::none();
  }
}

py::list numbers(const Numbering& num, const std::vector<Node*>& items) {
  py::list l;
  for (const Node* c : items) l.append(num.of(c));
  return l;
}

py::list entry_numbers(const Numbering& num, const std::vector<std::pair<Node*, Node*>>& entries) {
  py::list l;
  for (const auto& [k, v] : entries) l.append(py::make_tuple(num.of(k), num.of(v)));
  return l;
}

py::tuple node_tuple(const Numbering& num, const Node* n) {
  switch (n->kind) {
    case Kind::Int:
      if (n->is_big_int()) return py::make_tuple(int(kBigInt), py::bytes(n->text));
      return py::make_tuple(int(kValue), scalar(n));
    case Kind::Tuple: return py::make_tuple(int(kTuple), numbers(num, n->items));
    case Kind::List: return py::make_tuple(int(kList), numbers(num, n->items));
    case Kind::Dict: return py::make_tuple(int(kDict), entry_numbers(num, n->entries));
    case Kind::Set: return py::make_tuple(int(kSet), numbers(num, n->items));
    case Kind::FrozenSet: return py::make_tuple(int(kFrozenSet), numbers(num, n->items));
    case Kind::Global: return py::make_tuple(int(kGlobal), n->text, n->name);
    case Kind::Object:
      return py::make_tuple(int(kObject), static_cast<int>(n->how), num.of(n->callable), num.of(n->args),
                            num.of(n->kwargs), num.of(n->state), numbers(num, n->items),
                            entry_numbers(num, n->entries));
    case Kind::PersId: return py::make_tuple(int(kPersId), num.of(n->pid));
    default: return py::make_tuple(int(kValue), scalar(n));
  }
}

// graph() -> (nodes, tensors, tensor_errors): node 0 is the root; tensors
// maps a node's number to its tensor dict (with "object": the number of the
// tensor inside a Parameter); tensor_errors to why a tensor-looking node
// cannot be read.
py::tuple export_graph(const Opened& o) {
  const torch::Checkpoint& ck = o.checkpoint();
  Numbering num(ck.root());
  py::list nodes;
  py::dict tensors, errors;
  for (const Node* n : num.nodes()) {
    nodes.append(node_tuple(num, n));
    if (n->kind != Kind::Object) continue;
    try {
      std::optional<torch::TensorInfo> t = ck.tensor(n);
      if (!t || t->outer != n) continue;
      py::dict d = tensor_dict(*t);
      d["object"] = num.of(t->object);
      tensors[py::int_(num.of(n))] = d;
    } catch (const Error& e) {
      errors[py::int_(num.of(n))] = std::string(e.what());
    }
  }
  return py::make_tuple(nodes, tensors, errors);
}

}  // namespace

void register_graph(py::module_& m) {
  m.def("graph", &export_graph, py::arg("opened"),
        "The pickle graph as (nodes, tensors, tensor_errors); see python/ckpt/_load.py.");
  m.def("allowed_global", &api::allowed_global, py::arg("module"), py::arg("name"),
        "Whether `ckpt scan` calls module.name safe (torch's weights_only list plus AudioCraft's needs).");
}

}  // namespace ckpt::python
