// ckpt::Error and its subclasses as the Python exceptions of ckpt._errors
// (FormatError, IoError, UsageError under ckpt.Error), carrying the message
// the CLI prints after "ckpt: error: ".
#include <pybind11/pybind11.h>

#include <string>
#include <string_view>

#include "opened.h"
#include "util/error.h"

namespace ckpt::python {

namespace {

// The core names the CLI's flags where a flag is the way out; in Python the
// same way out is a keyword argument.
std::string python_message(std::string text) {
  static constexpr std::string_view kFlag = "(use --force to";
  if (auto at = text.find(kFlag); at != std::string::npos) text.replace(at, kFlag.size(), "(pass force=True to");
  return text;
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

namespace ckpt::python {
void register_transformers(pybind11::module_& m);  // transformers.cc
}

PYBIND11_MODULE(_ckpt, m) {
  m.doc() = "ckpt's C++ core: opened checkpoints, their pickle graph and tensor bytes";
  ckpt::python::register_errors(m);
  ckpt::python::register_opened(m);
  ckpt::python::register_graph(m);
  ckpt::python::register_operations(m);
  ckpt::python::register_transformers(m);
}
