// `diff`: two checkpoints compared (tensors by name: dtype, shape, form and
// values; top-level keys and scalars; xp.cfg as a unified diff). Tensor
// values are streamed, so memory does not grow with the model.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "audiocraft/layout.h"
#include "util/env.h"

namespace ckpt::api {

struct DiffOptions {
  std::optional<std::string> state;  // the state dict in both; default: each one's best state
  double atol = 0, rtol = 0;         // as torch.allclose: |a - b| <= atol + rtol * |b|
};

struct DiffResult {
  struct Side {
    std::string file, state;
    audiocraft::Layout layout = audiocraft::Layout::Other;
    std::string state_note;  // Opened::state_note
  };
  struct TensorChange {  // dtype, shape or form
    std::string name, dtype_a, dtype_b;
    std::vector<int64_t> shape_a, shape_b;
    std::vector<std::string> form;  // form changes (quantized, sparse, ...)
  };
  struct ValueChange {
    std::string name, part;  // part: a component of a non-plain tensor, or ""
    uint64_t numel = 0, differing = 0, nonfinite_differing = 0;
    double max_abs_diff = 0;
    std::optional<uint64_t> beyond_tolerance;  // under a tolerance
  };
  struct TopChange {
    std::string key, a, b;  // a and b described as `info` does
  };
  Side a, b;
  uint64_t compared = 0;
  std::vector<std::string> only_in_a, only_in_b;
  std::vector<TensorChange> changed;
  std::vector<ValueChange> values;
  std::vector<std::string> top_only_in_a, top_only_in_b;
  std::vector<TopChange> top_changed;
  bool config_in_a = false, config_in_b = false;
  std::string config_diff;    // unified diff of the two xp.cfg's YAML
  std::vector<std::string> config_changes;  // both have xp.cfg: "key: a -> b" per changed leaf, as edit says
  bool tensors_only = false;  // a side is a safetensors file: top level and config not compared
  bool equal = false;
};

// A DCP folder on either side is consolidated into a temporary file first.
DiffResult diff(Env& env, const std::string& a, const std::string& b, const DiffOptions& options);

}  // namespace ckpt::api
