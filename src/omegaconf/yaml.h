// YAML text exactly as OmegaConf.to_yaml writes it (PyYAML's emitter with
// OmegaConf's string-quoting rule), and YAML text read exactly as
// OmegaConf.create reads it (YAML 1.1 SafeLoader + OmegaConf's float
// resolver, no timestamps, duplicate keys an error). libyaml does the
// scanning and emitting; the representer/resolver decisions PyYAML makes are
// made here: yaml_emit.cc writes, yaml_parse.cc reads, yaml_resolve.cc and
// yaml_construct.cc type and build plain scalars.
#pragma once
#include <string>
#include <string_view>

#include "omegaconf/value.h"
#include "util/python_number.h"

namespace ckpt::omegaconf {

// OmegaConf.to_yaml(cfg) for the container tree `v` (a Map or Seq), or, for a
// scalar, what yaml.dump prints for it (used by `ckpt cfg FILE KEY`).
std::string to_yaml(const Value& v);

// OmegaConf.create(text) as a tree. Throws FormatError with line and column
// on invalid YAML or duplicate keys. An empty document gives an empty Map.
Value parse_yaml(std::string_view text);

// How PyYAML's YAML 1.1 resolver + OmegaConf's loader would type the plain
// scalar `text` (used for Hydra override values too).
Value resolve_plain_scalar(std::string_view text);

}  // namespace ckpt::omegaconf

namespace ckpt::omegaconf::detail {
// Python's repr(float), and whether float(s) / int(s) accept s (the names
// this layer has always offered; util/python_number.h holds them).
using ckpt::python_float_accepts;
using ckpt::python_float_repr;
using ckpt::python_int_accepts;
}  // namespace ckpt::omegaconf::detail
