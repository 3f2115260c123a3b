// The pickle graph as flat Python data for ckpt.load (python/ckpt/_load.py):
// nodes numbered from the root, each a tuple that names its children by
// number, so sharing and cycles survive; plus the tensor each node is, as the
// torch layer reads it. Nothing is imported or called here.
#include <pybind11/stl.h>

#include <algorithm>
#include <optional>
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
    case Kind::Global: return py::make_tuple(int(kGlobal), n->text, n->name.str());
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


// Builder: ckpt.load's rebuilding loop (python/ckpt/_load.py, Loader) in C++
// for the nodes whose objects need no Python decision: scalars, containers,
// calls of globals the Loader already resolved (and allowlisted) and their
// BUILD; tensors, globals, persistent ids and every case that needs checks or
// a placeholder are handed to the Loader's Python methods (_tensor, _global,
// _persistent, _object), which call back into build() for their children.
// The objects are made in the order, and with the calls, the Python loop
// made (Loader's semantics are the reference; see _load.py).
class Builder {
 public:
  // storage: None (framework="numpy": every tensor is the Loader's _tensor)
  // or the Loader's key -> UntypedStorage function: plain tensors are then
  // made here (TorchMaker).
  Builder(py::object opened, const py::object& storage)
      : opened_(std::move(opened)), o_(opened_.cast<const Opened&>()), num_(o_.checkpoint().root()),
        memo_(num_.nodes().size()) {
    if (!storage.is_none()) maker_.emplace(storage);
  }

  size_t size() const { return num_.nodes().size(); }

  py::tuple node(int64_t i) const { return node_tuple(num_, at(i)); }

  // The tensor dict of node i (as graph()'s tensors), None when it is not one;
  // raises nothing: why it cannot be read is tensor_error(i).
  py::object tensor(int64_t i) const {
    const Node* n = at(i);
    if (n->kind != Kind::Object) return py::none();
    try {
      std::optional<torch::TensorInfo> t = o_.checkpoint().tensor(n);
      if (!t || t->outer != n) return py::none();
      py::dict d = tensor_dict(*t);
      d["object"] = num_.of(t->object);
      return d;
    } catch (const Error&) {
      return py::none();
    }
  }

  py::object tensor_error(int64_t i) const {
    const Node* n = at(i);
    if (n->kind != Kind::Object) return py::none();
    try {
      (void)o_.checkpoint().tensor(n);
      return py::none();
    } catch (const Error& e) {
      return py::str(std::string(e.what()));
    }
  }

  // Node i's object is obj (the Loader's _object records it before building
  // what may refer back to it).
  void remember(int64_t i, py::object obj) {
    (void)at(i);
    memo_[static_cast<size_t>(i)] = std::move(obj);
  }

  // (module, name) of every global node, in node order.
  py::list globals() const {
    py::list out;
    for (const Node* n : num_.nodes())
      if (n->kind == Kind::Global) out.append(py::make_tuple(n->text, n->name.str()));
    return out;
  }

  // Whether hashing some dict key or set member visits more than max_work
  // objects (the Loader's old _check_hash_work, same counting: a tuple or
  // frozenset costs 1 + its members, an object 1 + its callable and
  // arguments, a cycle the limit).
  bool hash_work_exceeds(int64_t max_work) const {
    const auto& nodes = num_.nodes();
    const int64_t limit = max_work + 1;
    constexpr int64_t kUnset = -2, kInProgress = -1;
    std::vector<int64_t> cost(nodes.size(), kUnset);
    std::vector<int64_t> kids;
    auto children = [&](int64_t i, std::vector<int64_t>& out) {
      out.clear();
      const Node* n = nodes[i];
      if (n->kind == Kind::Tuple || n->kind == Kind::FrozenSet) {
        for (const Node* c : n->items) out.push_back(num_.of(c));
      } else if (n->kind == Kind::Object) {
        if (n->callable) out.push_back(num_.of(n->callable));
        if (n->args) out.push_back(num_.of(n->args));
      }
    };
    std::vector<std::pair<int64_t, bool>> stack;
    auto work = [&](int64_t root) -> int64_t {
      if (cost[root] != kUnset) return cost[root];
      stack.assign(1, {root, false});
      while (!stack.empty()) {
        auto [i, expanded] = stack.back();
        stack.pop_back();
        if (!expanded && cost[i] != kUnset) continue;
        children(i, kids);
        if (!expanded) {
          cost[i] = kInProgress;
          stack.emplace_back(i, true);
          for (int64_t c : kids)
            if (cost[c] == kUnset) stack.emplace_back(c, false);
          continue;
        }
        int64_t total = 1;
        for (int64_t c : kids) {
          int64_t v = cost[c] == kUnset ? limit : cost[c];
          total = v < 0 ? limit : std::min(limit, total + v);
          if (total >= limit) break;
        }
        cost[i] = total;
      }
      return cost[root];
    };
    for (const Node* n : nodes) {
      if (n->kind == Kind::Dict || n->kind == Kind::Object) {
        for (const auto& [k, v] : n->entries)
          if (work(num_.of(k)) > max_work) return true;
      } else if (n->kind == Kind::Set || n->kind == Kind::FrozenSet) {
        for (const Node* k : n->items)
          if (work(num_.of(k)) > max_work) return true;
      }
    }
    return false;
  }

  // The object of node i, made once (memo). `loader` is the Python Loader
  // whose methods make what needs Python (see the class comment).
  py::object build(int64_t i, py::handle loader) {
    const Node* n = at(i);
    if (memo_[i]) return memo_[i];
    // Python's recursion limit bounds the nesting as the Python loop's
    // frames did (RecursionError: the Loader's "nested deeper" error); the
    // fixed bound keeps the C stack safe under a raised limit.
    if (depth_ >= kMaxDepth) {
      PyErr_SetString(PyExc_RecursionError, "maximum recursion depth exceeded while rebuilding objects");
      throw py::error_already_set();
    }
    if (Py_EnterRecursiveCall(" while rebuilding the pickle's objects")) throw py::error_already_set();
    struct Leave {
      int& depth;
      explicit Leave(int& d) : depth(d) { ++depth; }
      ~Leave() {
        --depth;
        Py_LeaveRecursiveCall();
      }
    } leave(depth_);
    py::object obj;
    switch (n->kind) {
      case Kind::Int:
        if (n->is_big_int()) {
          PyObject* v = _PyLong_FromByteArray(reinterpret_cast<const unsigned char*>(n->text.data()),
                                              n->text.size(), /*little_endian=*/1, /*is_signed=*/1);
          if (!v) throw py::error_already_set();
          obj = py::reinterpret_steal<py::object>(v);
        } else {
          obj = scalar(n);
        }
        break;
      case Kind::Tuple: {
        py::tuple t(n->items.size());
        for (size_t k = 0; k < n->items.size(); ++k) t[k] = build(num_.of(n->items[k]), loader);
        obj = std::move(t);
        break;
      }
      case Kind::List: {
        py::list l;
        memo_[i] = l;
        for (const Node* c : n->items) l.append(build(num_.of(c), loader));
        return l;
      }
      case Kind::Dict: {
        py::dict d;
        memo_[i] = d;
        for (const auto& [k, v] : n->entries) {
          py::object value = build(num_.of(v), loader);  // Python's obj[k] = v evaluates v first
          py::object key = build(num_.of(k), loader);
          if (PyDict_SetItem(d.ptr(), key.ptr(), value.ptr()) != 0) throw py::error_already_set();
        }
        return d;
      }
      case Kind::Set:
      case Kind::FrozenSet: {
        py::list members;
        for (const Node* c : n->items) members.append(build(num_.of(c), loader));
        PyObject* s = n->kind == Kind::Set ? PySet_New(members.ptr()) : PyFrozenSet_New(members.ptr());
        if (!s) throw py::error_already_set();
        obj = py::reinterpret_steal<py::object>(s);
        break;
      }
      case Kind::Global: obj = loader.attr("_global")(n->text, n->name.str()); break;
      case Kind::PersId: obj = loader.attr("_persistent")(num_.of(n->pid)); break;
      case Kind::Object: return object(i, n, loader);
      default: obj = scalar(n); break;
    }
    memo_[i] = obj;
    return obj;
  }

 private:
  static constexpr int kMaxDepth = 20000;

  const Node* at(int64_t i) const {
    if (i < 0 || static_cast<size_t>(i) >= num_.nodes().size()) throw py::index_error("no node " + std::to_string(i));
    return num_.nodes()[static_cast<size_t>(i)];
  }

  const py::object& placeholder_type(py::handle loader) {
    if (!placeholder_type_) placeholder_type_ = loader.attr("_placeholder_global");
    return placeholder_type_;
  }

  py::object python_object(int64_t i, const Node* n, py::handle loader) {
    return loader.attr("_object")(i, node_tuple(num_, n));
  }

  py::object object(int64_t i, const Node* n, py::handle loader) {
    std::optional<torch::TensorInfo> t;
    try {
      t = o_.checkpoint().tensor(n);
    } catch (const Error&) {
      return python_object(i, n, loader);  // the Loader raises the tensor's error
    }
    if (t && t->outer == n) {
      if (t->is_plain() && t->subclass.empty() && !t->has_state) {
        if (maker_) {
          // The Loader's _tensor: a Parameter wraps its tensor node's object.
          py::object obj = t->is_parameter ? maker_->parameter(build(num_.of(t->object), loader), t->requires_grad)
                                           : maker_->make(*t);
          if (obj) {
            memo_[i] = obj;
            return obj;
          }
        }
        py::dict d = tensor_dict(*t);
        d["object"] = num_.of(t->object);
        py::object obj = loader.attr("_tensor")(i, d);
        memo_[i] = obj;
        return obj;
      }
      return python_object(i, n, loader);
    }
    // A call of an allowlisted global with no APPENDs and no keyword
    // arguments: made here. Everything else (placeholders, bytes(n)'s
    // allocation bound, NEWOBJ_EX, APPENDs) is the Loader's.
    if (!n->callable || !n->items.empty() || n->how == pickle::How::NewObjEx) return python_object(i, n, loader);
    py::object fn = build(num_.of(n->callable), loader);
    if (fn.ptr() == reinterpret_cast<PyObject*>(&PyBytes_Type) ||
        fn.ptr() == reinterpret_cast<PyObject*>(&PyByteArray_Type) ||
        py::isinstance(fn, placeholder_type(loader)))
      return python_object(i, n, loader);
    py::object args = n->args ? build(num_.of(n->args), loader) : py::tuple();
    if (!PyTuple_Check(args.ptr())) return python_object(i, n, loader);
    PyObject* made = nullptr;
    if (n->how == pickle::How::Reduce) {
      made = PyObject_Call(fn.ptr(), args.ptr(), nullptr);
    } else {
      PyObject* new_fn = PyObject_GetAttrString(fn.ptr(), "__new__");
      if (new_fn) {
        Py_ssize_t na = PyTuple_GET_SIZE(args.ptr());
        PyObject* full = PyTuple_New(na + 1);
        if (full) {
          Py_INCREF(fn.ptr());
          PyTuple_SET_ITEM(full, 0, fn.ptr());
          for (Py_ssize_t k = 0; k < na; ++k) {
            PyObject* a = PyTuple_GET_ITEM(args.ptr(), k);
            Py_INCREF(a);
            PyTuple_SET_ITEM(full, k + 1, a);
          }
          made = PyObject_Call(new_fn, full, nullptr);
          Py_DECREF(full);
        }
        Py_DECREF(new_fn);
      }
    }
    if (!made) {
      if (PyErr_ExceptionMatches(PyExc_TypeError) || PyErr_ExceptionMatches(PyExc_ValueError) ||
          PyErr_ExceptionMatches(PyExc_AttributeError) || PyErr_ExceptionMatches(PyExc_RuntimeError)) {
        py::error_already_set e;
        py::object err = loader.attr("_call_failed")(fn, e.value());
        PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(err.ptr())), err.ptr());
      }
      throw py::error_already_set();
    }
    py::object obj = py::reinterpret_steal<py::object>(made);
    memo_[i] = obj;
    for (const auto& [k, v] : n->entries) {
      py::object value = build(num_.of(v), loader);
      py::object key = build(num_.of(k), loader);
      if (PyObject_SetItem(obj.ptr(), key.ptr(), value.ptr()) != 0) throw py::error_already_set();
    }
    if (n->state) set_state(obj, build(num_.of(n->state), loader), loader);
    return obj;
  }

  // pickle's BUILD: the class's __setstate__ (looked up on the class, never
  // the instance: on a DictConfig an instance lookup resolves), else the
  // Loader's _set_state (__dict__ update and slot state). Whether the class
  // has one is asked of its MRO (and its metaclass's) first: a failed getattr
  // makes an AttributeError, which costs more than the BUILD.
  void set_state(const py::object& obj, const py::object& state, py::handle loader) {
    static PyObject* name = PyUnicode_InternFromString("__setstate__");
    PyTypeObject* cls = Py_TYPE(obj.ptr());
    py::object setstate;
    if (_PyType_Lookup(cls, name) || _PyType_Lookup(Py_TYPE(cls), name)) {
      PyObject* found = PyObject_GetAttr(reinterpret_cast<PyObject*>(cls), name);
      if (!found) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) throw py::error_already_set();
        PyErr_Clear();
      }
      setstate = py::reinterpret_steal<py::object>(found);
    }
    if (setstate && !setstate.is(object_setstate())) {
      setstate(obj, state);
      return;
    }
    loader.attr("_set_state")(obj, state);
  }

  // object.__setstate__ (None where Python has none: before 3.11 and in 3.11).
  const py::object& object_setstate() {
    if (!object_setstate_) {
      PyObject* v = PyObject_GetAttrString(reinterpret_cast<PyObject*>(&PyBaseObject_Type), "__setstate__");
      if (!v) PyErr_Clear();
      object_setstate_ = v ? py::reinterpret_steal<py::object>(v) : py::none();
    }
    return object_setstate_;
  }

  py::object opened_;  // keeps o_ alive
  const Opened& o_;
  Numbering num_;
  std::vector<py::object> memo_;
  std::optional<TorchMaker> maker_;
  py::object object_setstate_, placeholder_type_;
  int depth_ = 0;
};

}  // namespace

void register_graph(py::module_& m) {
  m.def("graph", &export_graph, py::arg("opened"),
        "The pickle graph as (nodes, tensors, tensor_errors); see python/ckpt/_load.py.");
  py::class_<Builder>(m, "Builder", "ckpt.load's object rebuilding (python/ckpt/_load.py, Loader).")
      .def(py::init<py::object, const py::object&>(), py::arg("opened"), py::arg("storage") = py::none())
      .def("__len__", &Builder::size)
      .def("node", &Builder::node, py::arg("i"))
      .def("tensor", &Builder::tensor, py::arg("i"))
      .def("tensor_error", &Builder::tensor_error, py::arg("i"))
      .def("remember", &Builder::remember, py::arg("i"), py::arg("obj"))
      .def("globals", &Builder::globals)
      .def("hash_work_exceeds", &Builder::hash_work_exceeds, py::arg("max_work"))
      .def("build", &Builder::build, py::arg("i"), py::arg("loader"));
  m.def("allowed_global", &api::allowed_global, py::arg("module"), py::arg("name"),
        "Whether `ckpt scan` calls module.name safe (torch's weights_only list plus AudioCraft's needs).");
}

}  // namespace ckpt::python
