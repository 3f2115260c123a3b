// ckpt.to_transformers / ckpt.from_transformers over api/transformers.h.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "api/transformers.h"
#include "util/env.h"

namespace py = pybind11;

namespace ckpt::python {

namespace {

py::dict to_transformers(const std::string& file, const std::string& out, const std::string& state,
                         const std::string& text_encoder, const std::string& audio_encoder, const std::string& dtype,
                         const std::string& max_shard_size, bool force) {
  api::ToTransformersOptions o;
  o.out = out;
  o.state = state;
  o.text_encoder = text_encoder;
  o.audio_encoder = audio_encoder;
  o.dtype = dtype;
  o.max_shard_size = max_shard_size;
  o.force = force;
  api::ToTransformersResult r;
  {
    py::gil_scoped_release release;
    r = api::to_transformers(Env::Default(), file, o);
  }
  py::dict d;
  d["out"] = out;
  d["architecture"] = r.architecture;
  d["melody"] = r.melody;
  d["decoder_only"] = r.decoder_only;
  d["tensors"] = r.tensors;
  d["bytes"] = r.bytes;
  d["files"] = r.written;
  d["notes"] = r.notes;
  return d;
}

py::dict from_transformers(const std::string& dir, const std::string& out, const std::string& compression,
                           bool force) {
  api::FromTransformersOptions o;
  o.out = out;
  o.compression = compression;
  o.force = force;
  api::FromTransformersResult r;
  {
    py::gil_scoped_release release;
    r = api::from_transformers(Env::Default(), dir, o);
  }
  py::dict d;
  d["out"] = out;
  d["melody"] = r.melody;
  d["tensors"] = r.tensors;
  d["compression"] = r.compression;
  d["files"] = r.written;
  d["notes"] = r.notes;
  return d;
}

}  // namespace

void register_transformers(py::module_& m) {
  using py::arg;
  m.def("to_transformers", &to_transformers, arg("file"), arg("out"), arg("state"), arg("text_encoder"),
        arg("audio_encoder"), arg("dtype"), arg("max_shard_size"), arg("force"));
  m.def("from_transformers", &from_transformers, arg("dir"), arg("out"), arg("compression"), arg("force"));
}

}  // namespace ckpt::python
