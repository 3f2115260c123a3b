// ckpt::Error and its subclasses as the Python exceptions of ckpt._errors
// (FormatError, IoError, UsageError under ckpt.Error), carrying the message
// the CLI prints after "ckpt: error: ".
#include <pybind11/pybind11.h>

#include <string>

#include "opened.h"
#include "api/operations.h"  // and util/error.h: the errors every operation throws

namespace ckpt::python {

namespace {

// The core names options by their fields (util/error.h); Python spells
// them as keyword arguments: `allow_no_match` -> allow_no_match,
// `force=true` -> force=True, `state=PATH` -> state=PATH.
std::string python_message(const std::string& text) {
  return spell_options(text, [](const std::string& field, const std::string& value, bool set) {
    if (!set) return field;
    return field + "=" + (value == "true" ? std::string("True") : value);
  });
}

}  // namespace

void register_errors(py::module_& m) {
  py::module_ errors = py::module_::import("ckpt._errors");
  // Owned references kept for the process's life (released, never
  // destroyed: a static py::object would be freed after the interpreter).
  static py::handle base = py::object(errors.attr("Error")).release();
  static py::handle format = py::object(errors.attr("FormatError")).release();
  static py::handle io = py::object(errors.attr("IoError")).release();
  static py::handle usage = py::object(errors.attr("UsageError")).release();
  m.attr("Error") = base;
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const FormatError& e) {
      PyErr_SetString(format.ptr(), python_message(e.what()).c_str());
    } catch (const IoError& e) {
      PyErr_SetString(io.ptr(), python_message(e.what()).c_str());
    } catch (const UsageError& e) {
      PyErr_SetString(usage.ptr(), python_message(e.what()).c_str());
    } catch (const Error& e) {
      PyErr_SetString(base.ptr(), python_message(e.what()).c_str());
    }
  });
}

}  // namespace ckpt::python

PYBIND11_MODULE(_ckpt, m) {
  m.doc() = "ckpt's C++ core: opened checkpoints, their pickle graph and tensor bytes";
  ckpt::python::register_errors(m);
  ckpt::python::register_opened(m);
  ckpt::python::register_graph(m);
  ckpt::python::register_torch_tensors(m);
  ckpt::python::register_operations(m);
}
