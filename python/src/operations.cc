// The api's operations for Python, generic over their description
// (src/api/operations.h): ckpt/_operations.py builds each function, result
// class, docstring and stub from operations() and types(), and calls
// call(name, inputs, options, progress). Options and results cross as JSON
// text (the same JSON the command's --json prints); the operation runs
// without the GIL. Progress reports take the GIL at most every 20 ms to
// call the Python callback and look for Ctrl-C: KeyboardInterrupt (or the
// callback's exception) unwinds through the atomic output, which removes
// its temporary file.
#include <pybind11/stl.h>

#include <chrono>

#include "api/operations.h"
#include "opened.h"

namespace ckpt::python {
namespace {

// Thrown from a progress report when Python has an error to raise (a
// signal's KeyboardInterrupt, the callback's exception): not a ckpt::Error,
// so nothing on the way out mistakes it for one; the Python error stays set.
struct Interrupted {};

api::ProgressFn progress_reports(py::object callback) {
  auto last = std::make_shared<std::chrono::steady_clock::time_point>();
  auto held = std::make_shared<py::object>(std::move(callback));
  return [last, held](const std::string& output, uint64_t done, uint64_t total) {
    auto now = std::chrono::steady_clock::now();
    if (now - *last < std::chrono::milliseconds(20) && done != total) return;
    *last = now;
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) throw Interrupted{};
    if (held->is_none()) return;
    try {
      (*held)(output, done, total);
    } catch (py::error_already_set& e) {
      e.restore();
      throw Interrupted{};
    }
  };
}

py::tuple call(const std::string& name, const std::vector<std::string>& inputs, const std::string& options,
               py::object progress) {
  const api::Operation& op = api::operation(name);
  api::Json parsed = api::Json::parse(options);
  api::ProgressFn report = progress_reports(std::move(progress));
  api::Operation::Returned r;
  try {
    py::gil_scoped_release release;
    r = op.call(Env::Default(), inputs, parsed, report);
  } catch (const Interrupted&) {
    throw py::error_already_set();
  }
  // Held the callback: dropped with the GIL held.
  report = nullptr;
  return py::make_tuple(r.type, r.value.dump());
}

std::string operations_json() {
  api::Json out = api::Json::array();
  for (const api::Operation& op : api::operations())
    out.push_back({{"name", op.name}, {"cli", op.cli}, {"doc", op.doc}, {"inputs", op.inputs},
                   {"positional", op.positional}, {"options", op.options_type}, {"result", op.result_type},
                   {"progress", op.progress}});
  return out.dump();
}

}  // namespace

void register_operations(py::module_& m) {
  m.def("call", &call, py::arg("name"), py::arg("inputs"), py::arg("options"), py::arg("progress") = py::none(),
        "Runs an operation: options as JSON text; returns (result type, result as JSON text).");
  m.def("operations", &operations_json, "Every operation's description, as JSON text.");
  m.def("types", [] { return api::Json(api::types()).dump(); }, "Every option and result type's description, as JSON text.");
  m.def("version", [] { return std::string(api::version()); });
}

}  // namespace ckpt::python
