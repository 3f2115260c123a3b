// ckpt._ckpt.Opened: a checkpoint opened once (torch zip, legacy or
// safetensors), its layout, best state, tensors, xp.cfg and storage bytes.
#include "opened.h"

#include <pybind11/stl.h>

#include <cstdio>
#include <cstring>

#include "audiocraft/operations.h"
#include "omegaconf/yaml.h"
#include "torch/tensor_data.h"
#include "util/error.h"

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
  if (o.safetensors()) return "safetensors";
  return torch::to_string(o.checkpoint().format());
}

// Where a storage's bytes can be memory-mapped from the opened file: a
// stored (not deflated) zip record of exactly the storage's size, or a
// safetensors tensor's span. nullopt: read them (copy) instead.
std::optional<uint64_t> mappable_offset(const Opened& o, const torch::Storage& s) {
  if (!s.present) return std::nullopt;
  // A safetensors input's storages are spans of that very file; otherwise
  // only zip records are mapped (a legacy file's bytes are read).
  bool in_opened_file = o.safetensors() ? s.external_file != nullptr : !s.external_file && s.record;
  if (!in_opened_file) return std::nullopt;
  try {
    torch::StorageLocation loc = torch::locate_storage(o.checkpoint(), s);
    if (loc.compressed()) return std::nullopt;
    return loc.offset;
  } catch (const Error&) {
    return std::nullopt;  // bytes missing or of the wrong size: reading them names the problem
  }
}

py::dict storage_dict(const Opened& o, const torch::Storage& s) {
  py::dict d;
  d["key"] = s.key;
  d["dtype"] = s.dtype->name;
  d["location"] = s.location;
  d["numel"] = s.numel;
  d["nbytes"] = s.nbytes();
  d["present"] = s.present;
  auto off = mappable_offset(o, s);
  d["file_offset"] = off ? py::object(py::int_(*off)) : py::object(py::none());
  return d;
}

// Reads bytes [offset, offset + n) of a storage into a new bytearray,
// without the GIL while reading.
py::bytearray read_storage(const Opened& o, const std::string& key, uint64_t offset, uint64_t n) {
  const torch::Storage* s = o.checkpoint().storage(key);
  if (!s) throw UsageError(o.checkpoint().path() + ": no storage '" + key + "'");
  if (offset > s->nbytes() || n > s->nbytes() - offset)
    throw UsageError(o.checkpoint().path() + ": storage '" + key + "': bytes past its end requested");
  py::bytearray out(nullptr, 0);
  if (PyByteArray_Resize(out.ptr(), static_cast<Py_ssize_t>(n)) != 0) throw py::error_already_set();
  char* dst = PyByteArray_AsString(out.ptr());
  {
    py::gil_scoped_release release;
    torch::StorageReader reader(o.checkpoint(), *s);
    reader.read(offset, n, dst);
  }
  return out;
}

py::list tensor_rows(const Opened& o, const std::optional<std::string>& state) {
  const pickle::Node* mapping = o.state_dict(state);
  py::list rows;
  for (const auto& [k, v] : *pickle::entries_of(mapping)) {
    std::optional<torch::TensorInfo> t;
    try {
      t = o.checkpoint().tensor(v);
    } catch (const FormatError& e) {
      throw FormatError(o.checkpoint().path() + ": tensor '" + key_text(k) + "': " + e.what());
    }
    if (!t) continue;
    rows.append(py::make_tuple(key_text(k), tensor_dict(*t)));
  }
  return rows;
}

py::list top_level_keys(const Opened& o) {
  py::list keys;
  const auto* entries = pickle::entries_of(o.checkpoint().root());
  if (!entries) return keys;
  for (const auto& [k, v] : *entries) keys.append(key_text(k));
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

Opened::Opened(const std::string& path) {
  py::gil_scoped_release release;
  opened_ = api::open_checkpoint(Env::Default(), path);
}

pickle::Node* Opened::state_dict(const std::optional<std::string>& path) const {
  std::string p;
  if (path && !path->empty()) {
    p = *path;
  } else if (opened_.best_state) {
    p = *opened_.best_state;
  } else {
    throw UsageError(opened_.ck->path() + ": no best state in a checkpoint of layout '" +
                     audiocraft::to_string(opened_.layout) + "': name one with state=PATH");
  }
  return opened_.state_dict(p == "/" ? "" : p);
}

void register_opened(py::module_& m) {
  py::class_<Opened>(m, "Opened", "A checkpoint opened by the C++ core (use ckpt.open).")
      .def(py::init<const std::string&>(), py::arg("path"))
      .def_property_readonly("path", [](const Opened& o) { return o.checkpoint().path(); })
      .def_property_readonly("format", &format_name)
      .def_property_readonly("dialect", [](const Opened& o) -> py::object {
        if (o.safetensors() || o.checkpoint().format() != torch::Format::Zip) return py::none();
        return py::str(torch::to_string(o.checkpoint().dialect()));
      })
      .def_property_readonly("layout", [](const Opened& o) { return audiocraft::to_string(o.layout()); })
      .def_property_readonly("best_state", [](const Opened& o) { return o.best_state(); })
      .def_property_readonly("file_size", &Opened::file_size)
      .def("top_level_keys", &top_level_keys)
      .def("storages", [](const Opened& o) {
        py::dict out;
        for (const auto& [key, s] : o.checkpoint().storages()) out[py::str(key)] = storage_dict(o, s);
        return out;
      })
      .def("tensors", &tensor_rows, py::arg("state") = py::none())
      .def("read_storage", &read_storage, py::arg("key"), py::arg("offset"), py::arg("n"))
      .def("cfg_tree", [](const Opened& o, const std::string& path) -> py::object {
        return value_to_python(audiocraft::config_tree_at(o.checkpoint().root(), path));
      }, py::arg("path") = "")
      .def("cfg_yaml", [](const Opened& o, const std::string& path) -> std::string {
        return omegaconf::to_yaml(audiocraft::config_tree_at(o.checkpoint().root(), path));
      }, py::arg("path") = "");
}

}  // namespace ckpt::python
