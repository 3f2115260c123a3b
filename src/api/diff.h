// `diff`: two checkpoints compared (tensors by name: dtype, shape, form and
// values; top-level keys and scalars; xp.cfg as a unified diff). Tensor
// values are streamed, so memory does not grow with the model.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "api/schema.h"
#include "util/env.h"

namespace ckpt::api {

struct DiffOptions {
  static constexpr const char* kName = "DiffOptions";
  static constexpr const char* kDoc = "which state dicts to compare, and the tolerance";
  std::optional<std::string> state;  // the state dict in both; default: each one's best state
  double atol = 0, rtol = 0;         // as torch.allclose: |a - b| <= atol + rtol * |b|
  bool ignore_crc = false;           // compare zips whose records fail their CRC-32, as read
  template <class V>
  static void describe(V& v) {
    v.field("state", &DiffOptions::state, "the state dict's path in both (default: each one's best state)");
    v.field("atol", &DiffOptions::atol, "values equal when |a - b| <= atol + rtol * |b| (as torch.allclose); a finite number >= 0");
    v.field("rtol", &DiffOptions::rtol, "relative tolerance, a finite number >= 0 (0: values compared exactly)");
    v.field("ignore_crc", &DiffOptions::ignore_crc,
            "compare a zip whose records fail their CRC-32, as it is (refused otherwise: each record read is checked)");
  }
};

struct DiffSide {
  static constexpr const char* kName = "DiffSide";
  static constexpr const char* kDoc = "one side of a diff";
  std::string file, state, layout;
  std::string state_note;  // Opened::state_note
  template <class V>
  static void describe(V& v) {
    v.field("file", &DiffSide::file, "the file");
    v.field("state", &DiffSide::state, "the state dict compared");
    v.field("layout", &DiffSide::layout, "its AudioCraft layout");
    v.field("state_note", &DiffSide::state_note, "which state dict was picked, when none was named", Presence::OmitEmpty);
  }
};

struct TensorChange {  // dtype, shape or form
  static constexpr const char* kName = "TensorChange";
  static constexpr const char* kDoc = "a tensor whose dtype, shape or form differs";
  std::string name, dtype_a, dtype_b;
  std::vector<int64_t> shape_a, shape_b;
  std::vector<std::string> form;  // form changes (quantized, sparse, ...)
  template <class V>
  static void describe(V& v) {
    v.field("name", &TensorChange::name, "the tensor");
    v.field("dtype_a", &TensorChange::dtype_a, "its dtype in a");
    v.field("dtype_b", &TensorChange::dtype_b, "in b");
    v.field("shape_a", &TensorChange::shape_a, "its shape in a");
    v.field("shape_b", &TensorChange::shape_b, "in b");
    v.field("form", &TensorChange::form, "changes of form (quantized, sparse, ...)", Presence::OmitEmpty);
  }
};

struct ValueChange {
  static constexpr const char* kName = "ValueChange";
  static constexpr const char* kDoc = "a tensor (or part) whose values differ";
  std::string name;
  uint64_t numel = 0, differing = 0;
  double max_abs_diff = 0;
  uint64_t nonfinite_differing = 0;
  std::string part;  // a component of a non-plain tensor, or ""
  std::optional<uint64_t> beyond_tolerance;  // under a tolerance
  template <class V>
  static void describe(V& v) {
    v.field("name", &ValueChange::name, "the tensor");
    v.field("numel", &ValueChange::numel, "elements compared");
    v.field("differing", &ValueChange::differing, "elements that differ");
    v.field("max_abs_diff", &ValueChange::max_abs_diff, "the largest |a - b|");
    v.field("nonfinite_differing", &ValueChange::nonfinite_differing, "differing elements holding NaN or Inf");
    v.field("part", &ValueChange::part, "a component of a non-plain tensor (values, indices, ...)",
            Presence::OmitEmpty);
    v.field("beyond_tolerance", &ValueChange::beyond_tolerance, "under a tolerance: elements beyond it",
            Presence::OmitEmpty);
  }
};

struct DiffTensors {
  static constexpr const char* kName = "DiffTensors";
  static constexpr const char* kDoc = "the tensors of a diff";
  uint64_t compared = 0;
  std::vector<std::string> only_in_a, only_in_b;
  std::vector<TensorChange> changed;
  std::vector<ValueChange> values;
  template <class V>
  static void describe(V& v) {
    v.field("compared", &DiffTensors::compared, "tensors in both");
    v.field("only_in_a", &DiffTensors::only_in_a, "tensor names only in a");
    v.field("only_in_b", &DiffTensors::only_in_b, "only in b");
    v.field("changed", &DiffTensors::changed, "dtype, shape or form changes");
    v.field("values", &DiffTensors::values, "value differences");
  }
};

struct TopChange {
  static constexpr const char* kName = "TopChange";
  static constexpr const char* kDoc = "a top-level key whose value differs";
  std::string key, a, b;  // a and b described as `info` does
  template <class V>
  static void describe(V& v) {
    v.field("key", &TopChange::key, "the key ('(layout)' for the layout)");
    v.field("a", &TopChange::a, "its value in a, described");
    v.field("b", &TopChange::b, "in b");
  }
};

struct DiffTopLevel {
  static constexpr const char* kName = "DiffTopLevel";
  static constexpr const char* kDoc = "the top-level keys of a diff";
  std::vector<std::string> only_in_a, only_in_b;
  std::vector<TopChange> changed;
  template <class V>
  static void describe(V& v) {
    v.field("only_in_a", &DiffTopLevel::only_in_a, "keys only in a");
    v.field("only_in_b", &DiffTopLevel::only_in_b, "only in b");
    v.field("changed", &DiffTopLevel::changed, "keys whose values differ");
  }
};

struct DiffConfig {
  static constexpr const char* kName = "DiffConfig";
  static constexpr const char* kDoc = "xp.cfg in a diff";
  bool in_a = false, in_b = false;
  std::string diff;  // unified diff of the two xp.cfg's YAML
  std::vector<std::string> changes;  // both have xp.cfg: "key: a -> b" per changed leaf, as edit says
  template <class V>
  static void describe(V& v) {
    v.field("in_a", &DiffConfig::in_a, "a has an xp.cfg");
    v.field("in_b", &DiffConfig::in_b, "b has one");
    v.field("diff", &DiffConfig::diff, "unified diff of their YAML (empty: the same)");
    v.field("changes", &DiffConfig::changes, "both have one: 'key: a -> b' per changed leaf (dotted keys)");
  }
};

struct DiffResult {
  static constexpr const char* kName = "DiffResult";
  static constexpr const char* kDoc = "two checkpoints compared: tensors, top-level keys, xp.cfg";
  bool equal = false;
  DiffSide a, b;
  DiffTensors tensors;
  DiffTopLevel top_level;
  DiffConfig config;
  bool tensors_only = false;  // a side is a safetensors file: top level and config not compared
  template <class V>
  static void describe(V& v) {
    v.field("equal", &DiffResult::equal, "no difference found");
    v.field("a", &DiffResult::a, "the first checkpoint");
    v.field("b", &DiffResult::b, "the second");
    v.field("tensors", &DiffResult::tensors, "their tensors");
    v.field("top_level", &DiffResult::top_level, "their top-level keys");
    v.field("config", &DiffResult::config, "their xp.cfg");
    v.field("tensors_only", &DiffResult::tensors_only,
            "a side is a safetensors file: top level and xp.cfg not compared");
  }
};

// A DCP folder on either side is consolidated into a temporary file first.
DiffResult diff(Env& env, const std::string& a, const std::string& b, const DiffOptions& options);

}  // namespace ckpt::api
