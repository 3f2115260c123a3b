// ckpt._ckpt.Opened: a checkpoint opened once (torch zip, legacy or
// safetensors), its layout, best state, tensors, xp.cfg and storage bytes.
#include "opened.h"

#include <pybind11/stl.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <type_traits>

#include "api/config.h"
#include "api/inspect.h"

namespace ckpt::python {
namespace {

py::object value_to_python(const omegaconf::Value& v) {
  using T = omegaconf::Value::Type;
  switch (v.type) {
    case T::Null: return py::none();
    case T::Bool: return py::bool_(v.boolean);
    case T::Int:
      if (!v.big_int.empty()) return py::reinterpret_steal<py::object>(PyLong_FromString(v.big_int.c_str(), nullptr, 10));
      return py::int_(v.integer);
    case T::Float: return py::float_(v.real);
    case T::Str: return py::str(v.str);
    case T::Map: {
      py::dict d;
      for (const auto& [k, val] : v.map) d[value_to_python(k)] = value_to_python(val);
      return d;
    }
    case T::Seq: {
      py::list l;
      for (const auto& item : v.seq) l.append(value_to_python(item));
      return l;
    }
  }
  return py::none();
}

const char* format_name(const Opened& o) {
  if (o.opened().safetensors) return "safetensors";
  return torch::to_string(o.checkpoint().format());
}

py::dict storage_dict(const Opened& o, const torch::Storage& s) {
  py::dict d;
  d["key"] = s.key;
  d["dtype"] = s.dtype->name;
  d["location"] = s.location;
  d["numel"] = s.numel;
  d["nbytes"] = s.nbytes();
  d["present"] = s.present;
  auto off = api::mappable_offset(o.opened(), s);
  d["file_offset"] = off ? py::object(py::int_(*off)) : py::object(py::none());
  return d;
}

// key -> whole[offset:offset + nbytes] for every storage whose bytes lie
// stored (not deflated) and 8-byte aligned in the opened file (`whole`: the
// file as one torch.UntypedStorage); meta and empty storages, and the rest,
// are left to python/ckpt/_tensors.py's StorageBytes.
py::dict file_slices(const Opened& o, const py::object& whole) {
  py::dict out;
  uint64_t size = o.opened().file_size;
  for (const auto& [key, s] : o.checkpoint().storages()) {
    uint64_t n = s.nbytes();
    if (!s.present || n == 0 || s.location == "meta") continue;
    std::optional<uint64_t> off = api::mappable_offset(o.opened(), s);
    if (!off || *off % 8 != 0 || *off > size || n > size - *off) continue;
    py::slice span(static_cast<py::ssize_t>(*off), static_cast<py::ssize_t>(*off + n), 1);
    PyObject* part = PyObject_GetItem(whole.ptr(), span.ptr());
    if (!part) throw py::error_already_set();
    out[py::str(key)] = py::reinterpret_steal<py::object>(part);
  }
  return out;
}

// Reads bytes [offset, offset + n) of a storage into a new bytearray,
// without the GIL while reading.
py::bytearray read_storage(const Opened& o, const std::string& key, uint64_t offset, uint64_t n) {
  py::bytearray out(nullptr, 0);
  if (PyByteArray_Resize(out.ptr(), static_cast<Py_ssize_t>(n)) != 0) throw py::error_already_set();
  char* dst = PyByteArray_AsString(out.ptr());
  py::gil_scoped_release release;
  api::read_storage(o.opened(), key, offset, n, dst);
  return out;
}

// (name, loader's dict) per tensor.
py::list tensor_rows(const Opened& o, const std::optional<std::string>& state) {
  py::list rows;
  for (const api::TensorRow& r : o.opened().tensors_of(o.state_dict(state)))
    rows.append(py::make_tuple(r.name, tensor_dict(r.info)));
  return rows;
}

// A described value (api/schema.h) as the Python data its to_json gives
// after json.loads: dicts in field order (OmitEmpty fields left out), lists,
// str, int, float (None for NaN and Inf, as JSON has neither), bool, None.
// Made directly, without JSON text in between.
template <class T>
py::object to_python(const T& value);

template <class S>
struct PythonWriter {
  const S& object;
  py::dict& out;
  template <class M>
  void field(const char* name, M S::*member, const char*, api::Presence presence = api::Presence::Always) {
    const M& v = object.*member;
    if (presence == api::Presence::OmitEmpty && api::is_empty_value(v)) return;
    out[name] = to_python(v);
  }
  template <class M>
  void flatten(M S::*member) {
    PythonWriter<M> inner{object.*member, out};
    M::describe(inner);
  }
};

template <class T>
py::object to_python(const T& value) {
  if constexpr (api::Described<T>) {
    py::dict out;
    PythonWriter<T> w{value, out};
    T::describe(w);
    return std::move(out);
  } else if constexpr (api::is_optional<T>::value) {
    return value ? to_python(*value) : py::none();
  } else if constexpr (api::is_vector<T>::value) {
    py::list out(value.size());
    for (size_t i = 0; i < value.size(); ++i) out[i] = to_python(value[i]);
    return std::move(out);
  } else if constexpr (api::is_map<T>::value) {
    py::dict out;
    for (const auto& [k, v] : value) out[py::str(k)] = to_python(v);
    return std::move(out);
  } else if constexpr (api::is_variant<T>::value) {
    return std::visit([](const auto& alt) { return to_python(alt); }, value);
  } else if constexpr (std::is_same_v<T, bool>) {
    return py::bool_(value);
  } else if constexpr (std::is_integral_v<T>) {
    return py::int_(value);
  } else if constexpr (std::is_floating_point_v<T>) {
    return std::isfinite(value) ? py::object(py::float_(value)) : py::none();
  } else if constexpr (std::is_same_v<T, std::string>) {
    return py::str(value);
  } else {
    static_assert(sizeof(T) == 0, "to_python: a field type the results do not use");
  }
}

// The rows `tensors` lists (api::TensorEntry) as to_python gives them: what
// ckpt.open(F).tensors() wraps, without a JSON round trip per row.
py::list tensor_entries(const Opened& o, const std::optional<std::string>& state) {
  const std::vector<api::TensorRow> rows = o.opened().tensors_of(o.state_dict(state));
  py::list out(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) out[i] = to_python(api::tensor_entry(rows[i].name, rows[i].info));
  return out;
}

py::list top_level_keys(const Opened& o) {
  py::list keys;
  const auto* entries = pickle::entries_of(o.checkpoint().root());
  if (!entries) return keys;
  for (const auto& [k, v] : *entries) keys.append(pickle::key_text(k));
  return keys;
}

}  // namespace

py::dict tensor_dict(const torch::TensorInfo& t) {
  py::dict d;
  d["dtype"] = t.dtype ? t.dtype->name : "";
  d["shape"] = py::tuple(py::cast(t.shape));
  d["stride"] = py::tuple(py::cast(t.stride));
  d["storage_key"] = t.storage ? py::object(py::str(t.storage->key)) : py::object(py::none());
  d["storage_offset"] = t.storage_offset;
  d["element_size"] = t.dtype ? t.dtype->element_size : 0;
  d["nbytes"] = t.nbytes();
  d["requires_grad"] = t.requires_grad;
  d["is_parameter"] = t.is_parameter;
  d["plain"] = t.is_plain() && t.subclass.empty() && !t.has_state;
  d["form"] = t.form();
  d["problem"] = t.view_problem();
  d["layout"] = torch::to_string(t.layout);
  d["subclass"] = t.subclass;
  return d;
}

Opened::Opened(const std::string& path) : source_(path) {
  py::gil_scoped_release release;
  path_ = api::open_path(Env::Default(), path);
}

const pickle::Node* Opened::state_dict(const std::optional<std::string>& path) const {
  return opened().state_dict(opened().state_path_or_best(path));
}

void register_opened(py::module_& m) {
  py::class_<Opened>(m, "Opened", "A checkpoint opened by the C++ core (use ckpt.open).")
      .def(py::init<const std::string&>(), py::arg("path"))
      .def_property_readonly("path", [](const Opened& o) { return o.checkpoint().path(); })
      .def_property_readonly("source", &Opened::source)
      .def_property_readonly("format", &format_name)
      .def_property_readonly("dialect", [](const Opened& o) -> py::object {
        if (o.opened().safetensors || o.checkpoint().format() != torch::Format::Zip) return py::none();
        return py::str(torch::to_string(o.checkpoint().dialect()));
      })
      .def_property_readonly("layout", [](const Opened& o) { return audiocraft::to_string(o.opened().layout); })
      .def_property_readonly("best_state", [](const Opened& o) { return o.opened().best_state; })
      .def_property_readonly("file_size", [](const Opened& o) { return o.opened().file_size; })
      .def("top_level_keys", &top_level_keys)
      .def("storages", [](const Opened& o) {
        py::dict out;
        for (const auto& [key, s] : o.checkpoint().storages()) out[py::str(key)] = storage_dict(o, s);
        return out;
      })
      .def("file_slices", &file_slices, py::arg("whole"))
      .def("tensors", &tensor_rows, py::arg("state") = py::none())
      .def("tensor_entries", &tensor_entries, py::arg("state") = py::none())
      .def("read_storage", &read_storage, py::arg("key"), py::arg("offset"), py::arg("n"))
      .def("cfg_tree", [](const Opened& o, const std::string& path) -> py::object {
        return value_to_python(api::config_tree(o.opened(), path));
      }, py::arg("path") = "")
      .def("cfg_yaml", [](const Opened& o, const std::string& path) -> std::string {
        return api::config_yaml(o.opened(), path);
      }, py::arg("path") = "");
}

}  // namespace ckpt::python
