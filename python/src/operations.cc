// The operations of the api layer (src/api) for Python: edit, export, wrap,
// bundle, sanitize, rewrite, verify, scan, diff, stats, safetensors in and
// out. Each runs without the GIL and returns its result struct as a dict
// (python/ckpt/_operations.py makes result objects of them). A write checks
// for Ctrl-C at every progress report: KeyboardInterrupt then unwinds through
// the atomic output, which removes its temporary file.
#include <pybind11/stl.h>

#include <chrono>
#include <cmath>

#include "api/diff.h"
#include "api/edit.h"
#include "api/inspect.h"
#include "api/safetensors.h"
#include "api/scan.h"
#include "api/stats.h"
#include "api/write.h"
#include "opened.h"
#include "util/error.h"

namespace ckpt::python {
namespace {

// Thrown from a progress report when Python has a pending signal whose
// handler raised (KeyboardInterrupt): not a ckpt::Error, so nothing on the
// way out mistakes it for one; the Python error stays set for the caller.
struct Interrupted {};

// Progress reports that look for pending signals (at most every 20 ms).
api::ProgressFn interruptible() {
  auto last = std::make_shared<std::chrono::steady_clock::time_point>();
  return [last](const std::string&, uint64_t, uint64_t) {
    auto now = std::chrono::steady_clock::now();
    if (now - *last < std::chrono::milliseconds(20)) return;
    *last = now;
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) throw Interrupted{};
  };
}

// Runs fn without the GIL; turns Interrupted back into the pending Python error.
template <typename Fn>
auto without_gil(Fn&& fn) -> decltype(fn()) {
  try {
    py::gil_scoped_release release;
    return fn();
  } catch (const Interrupted&) {
    throw py::error_already_set();
  }
}

std::optional<torch::Dialect> dialect_arg(const std::optional<std::string>& text) {
  if (!text) return std::nullopt;
  auto d = torch::parse_dialect(*text);
  if (!d) throw UsageError("unknown dialect '" + *text + "' (torch-1.6, torch-2.1 or torch-2.7)");
  return d;
}

api::OutputOptions output(const std::string& out, bool force, const std::optional<std::string>& dialect) {
  api::OutputOptions o;
  o.out = out;
  o.force = force;
  o.dialect = dialect_arg(dialect);
  o.progress = interruptible();
  return o;
}

py::object opt_double(double v) { return std::isnan(v) ? py::object(py::none()) : py::object(py::float_(v)); }

py::dict edit(const std::string& file, const std::optional<std::string>& out, bool in_place,
              const std::vector<std::string>& overrides, const std::vector<std::string>& keep,
              const std::vector<std::string>& drop, const std::vector<std::string>& renames,
              const std::vector<std::string>& states, const std::string& dtype,
              const std::vector<std::string>& dtype_match, bool dry_run, bool allow_no_match, bool allow_empty,
              bool force, bool compact, const std::optional<std::string>& dialect) {
  api::EditOptions o;
  o.output = output(out.value_or(""), force, dialect);
  o.in_place = in_place;
  o.compact = compact;
  o.overrides = overrides;
  o.keep = keep;
  o.drop = drop;
  o.renames = renames;
  o.states = states;
  o.dtype = dtype;
  o.dtype_match = dtype_match;
  o.dry_run = dry_run;
  o.allow_no_match = allow_no_match;
  o.allow_empty = allow_empty;
  api::EditResult r = without_gil([&] { return api::edit(Env::Default(), file, o); });
  py::dict d;
  d["config_changes"] = r.config_changes;
  py::list states_out;
  for (const auto& s : r.states) {
    py::dict e;
    e["path"] = s.path;
    e["before"] = s.report.before;
    e["dropped"] = s.report.dropped_keys;
    e["renamed"] = s.report.renamed_keys;
    states_out.append(e);
  }
  d["states"] = states_out;
  if (r.dtype) {
    py::dict p;
    p["dtype"] = r.dtype->dtype;
    p["converted"] = r.dtype->converted;
    p["kept"] = r.dtype->kept;
    p["bytes_before"] = r.dtype->bytes_before;
    p["bytes_after"] = r.dtype->bytes_after;
    p["not_converted"] = r.dtype->not_dense;
    d["dtype"] = p;
  } else {
    d["dtype"] = py::none();
  }
  d["changes"] = r.changes;
  d["bytes"] = r.bytes;
  d["appended"] = r.in_place ? py::object(py::bool_(r.in_place->appended)) : py::object(py::none());
  d["rewrite_reason"] = r.in_place ? r.in_place->reason : "";
  return d;
}

py::dict export_(const std::string& file, const std::string& out, const std::string& version, bool force,
                 const std::optional<std::string>& dialect) {
  api::ExportOptions o{output(out, force, dialect), version};
  api::ExportResult r = without_gil([&] { return api::export_checkpoint(Env::Default(), file, o); });
  py::dict d;
  d["out"] = out;
  d["exported_from"] = r.exported_from;
  return d;
}

py::dict wrap(const std::string& file, const std::string& out, bool force, const std::optional<std::string>& dialect) {
  api::OutputOptions o = output(out, force, dialect);
  without_gil([&] { api::wrap(Env::Default(), file, o); });
  py::dict d;
  d["out"] = out;
  return d;
}

py::dict rewrite(const std::string& file, const std::string& out, bool force, const std::optional<std::string>& dialect) {
  api::OutputOptions o = output(out, force, dialect);
  without_gil([&] { api::rewrite(Env::Default(), file, o); });
  py::dict d;
  d["out"] = out;
  return d;
}

py::dict bundle(const std::string& file, const std::string& dir, const std::string& compression,
                const std::string& version, bool force, const std::optional<std::string>& dialect) {
  api::BundleOptions o;
  o.dir = dir;
  o.compression = compression;
  o.version = version;
  o.force = force;
  o.dialect = dialect_arg(dialect);
  o.progress = interruptible();
  api::BundleResult r = without_gil([&] { return api::bundle(Env::Default(), file, o); });
  py::dict d;
  d["dir"] = dir;
  d["state_dict"] = r.state_dict;
  d["compression_state_dict"] = r.compression_state_dict;
  d["compression_pretrained"] = r.compression_pretrained;
  d["compression_from_config"] = r.compression_from_config;
  return d;
}

py::dict sanitize(const std::string& file, const std::string& out, bool force, const std::optional<std::string>& dialect) {
  api::OutputOptions o = output(out, force, dialect);
  api::SanitizeResult r = without_gil([&] { return api::sanitize(Env::Default(), file, o); });
  py::dict d;
  d["out"] = out;
  d["refused"] = r.refused;
  d["written"] = r.written();
  return d;
}

py::dict verify(const std::string& file) {
  api::VerifyResult r = without_gil([&] { return api::verify(Env::Default(), file); });
  py::dict d;
  d["file"] = r.file;
  d["records"] = r.records;
  d["tensors"] = r.tensors;
  d["problems"] = r.problems;
  return d;
}

py::dict scan(const std::string& file) {
  torch::SafetyScan s = without_gil([&] { return api::scan(Env::Default(), file); });
  py::dict d;
  d["path"] = s.path;
  d["container"] = s.container;
  d["verdict"] = torch::to_string(s.verdict());
  d["problem"] = s.problem;
  py::list pickles, globals;
  for (const auto& p : s.pickles) {
    py::dict e;
    e["name"] = p.name;
    e["offset"] = p.offset;
    e["size"] = p.size;
    e["complete"] = p.complete;
    e["trailing_bytes"] = p.trailing_bytes;
    pickles.append(e);
  }
  for (const auto& g : s.globals) {
    py::dict e;
    e["module"] = g.use.module;
    e["name"] = g.use.name;
    e["allowed"] = g.allowed;
    e["record"] = g.record;
    e["called"] = g.use.called;
    e["instantiated"] = g.use.instantiated;
    e["built"] = g.use.built;
    e["in_persistent_id"] = g.use.in_persistent_id;
    e["file_offset"] = g.file_offset;
    globals.append(e);
  }
  d["pickles"] = pickles;
  d["globals"] = globals;
  return d;
}

py::dict diff(const std::string& a, const std::string& b, const std::optional<std::string>& state, double atol,
              double rtol) {
  api::DiffOptions o;
  o.state = state;
  o.atol = atol;
  o.rtol = rtol;
  api::DiffResult r = without_gil([&] { return api::diff(Env::Default(), a, b, o); });
  py::dict d;
  d["a"] = py::make_tuple(r.a.file, r.a.state, audiocraft::to_string(r.a.layout));
  d["b"] = py::make_tuple(r.b.file, r.b.state, audiocraft::to_string(r.b.layout));
  d["compared"] = r.compared;
  d["only_in_a"] = r.only_in_a;
  d["only_in_b"] = r.only_in_b;
  py::list changed, values, top;
  for (const auto& c : r.changed) {
    py::dict e;
    e["name"] = c.name;
    e["dtype"] = py::make_tuple(c.dtype_a, c.dtype_b);
    e["shape"] = py::make_tuple(py::tuple(py::cast(c.shape_a)), py::tuple(py::cast(c.shape_b)));
    e["form"] = c.form;
    changed.append(e);
  }
  for (const auto& v : r.values) {
    py::dict e;
    e["name"] = v.name;
    e["part"] = v.part;
    e["numel"] = v.numel;
    e["differing"] = v.differing;
    e["nonfinite_differing"] = v.nonfinite_differing;
    e["max_abs_diff"] = v.max_abs_diff;
    e["beyond_tolerance"] = v.beyond_tolerance;
    values.append(e);
  }
  for (const auto& t : r.top_changed) top.append(py::make_tuple(t.key, t.a, t.b));
  d["changed"] = changed;
  d["values"] = values;
  d["top_only_in_a"] = r.top_only_in_a;
  d["top_only_in_b"] = r.top_only_in_b;
  d["top_changed"] = top;
  d["config_diff"] = r.config_diff;
  d["tensors_only"] = r.tensors_only;
  d["equal"] = r.equal;
  return d;
}

py::list stats(const std::string& file, const std::optional<std::string>& state, const std::vector<std::string>& match) {
  api::StatsOptions o;
  o.state = state;
  o.match = match;
  api::StatsResult r = without_gil([&] { return api::stats(Env::Default(), file, o); });
  py::list rows;
  for (const auto& row : r.rows) {
    py::dict e;
    e["name"] = row.name;
    e["dtype"] = row.dtype;
    e["form"] = row.form;
    e["shape"] = py::tuple(py::cast(row.shape));
    e["numel"] = row.numel;
    e["note"] = row.note;
    if (row.stats) {
      const auto& s = *row.stats;
      e["nan"] = s.nan;
      e["inf"] = s.inf;
      e["min"] = opt_double(s.min);
      e["max"] = opt_double(s.max);
      e["mean"] = opt_double(s.mean);
      e["std"] = opt_double(s.std);
      e["norm"] = s.norm;
    }
    rows.append(e);
  }
  return rows;
}

py::dict to_safetensors(const std::string& file, const std::string& out, const std::string& state,
                        bool skip_unsupported, const std::string& max_shard_size, bool force) {
  api::ToSafetensorsOptions o;
  o.out = out;
  o.state = state;
  o.skip_unsupported = skip_unsupported;
  o.max_shard_size = max_shard_size;
  o.force = force;
  o.progress = interruptible();
  api::ToSafetensorsResult r = without_gil([&] { return api::to_safetensors(Env::Default(), file, o); });
  py::dict d;
  d["out"] = out;
  d["state"] = r.state;
  d["tensors"] = r.tensors;
  d["bytes"] = r.bytes;
  d["skipped"] = r.skipped;
  d["non_tensors"] = r.non_tensors;
  d["sharded"] = r.sharded;
  d["files"] = r.files;
  d["wrote_index"] = r.wrote_index;
  return d;
}

py::dict from_safetensors(const std::string& file, const std::string& out, const std::string& into,
                          const std::string& state, bool force, const std::optional<std::string>& dialect) {
  api::FromSafetensorsOptions o;
  o.out = out;
  o.into = into;
  o.state = state;
  o.force = force;
  o.dialect = dialect_arg(dialect);
  o.progress = interruptible();
  api::FromSafetensorsResult r = without_gil([&] { return api::from_safetensors(Env::Default(), file, o); });
  py::dict d;
  d["out"] = out;
  d["tensors"] = r.tensors;
  d["state"] = r.state;
  d["replaced"] = r.replaced;
  d["dtype_changes"] = r.dtype_changes;
  return d;
}

}  // namespace

void register_operations(py::module_& m) {
  using py::arg;
  m.def("edit", &edit, arg("file"), arg("out"), arg("in_place"), arg("overrides"), arg("keep"), arg("drop"),
        arg("renames"), arg("states"), arg("dtype"), arg("dtype_match"), arg("dry_run"), arg("allow_no_match"),
        arg("allow_empty"), arg("force"), arg("compact"), arg("dialect"));
  m.def("export", &export_, arg("file"), arg("out"), arg("version"), arg("force"), arg("dialect"));
  m.def("wrap", &wrap, arg("file"), arg("out"), arg("force"), arg("dialect"));
  m.def("rewrite", &rewrite, arg("file"), arg("out"), arg("force"), arg("dialect"));
  m.def("bundle", &bundle, arg("file"), arg("dir"), arg("compression"), arg("version"), arg("force"), arg("dialect"));
  m.def("sanitize", &sanitize, arg("file"), arg("out"), arg("force"), arg("dialect"));
  m.def("verify", &verify, arg("file"));
  m.def("scan", &scan, arg("file"));
  m.def("diff", &diff, arg("a"), arg("b"), arg("state"), arg("atol"), arg("rtol"));
  m.def("stats", &stats, arg("file"), arg("state"), arg("match"));
  m.def("to_safetensors", &to_safetensors, arg("file"), arg("out"), arg("state"), arg("skip_unsupported"),
        arg("max_shard_size"), arg("force"));
  m.def("from_safetensors", &from_safetensors, arg("file"), arg("out"), arg("into"), arg("state"), arg("force"),
        arg("dialect"));
}

}  // namespace ckpt::python
