// `stats`: per-tensor numel, NaN, Inf, min, max, mean, std and L2 norm of a
// state dict, in float64 over finite values, streamed from the storages.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "torch/stats.h"
#include "util/env.h"

namespace ckpt::api {

struct StatsOptions {
  std::optional<std::string> state;  // default: the best state
  std::vector<std::string> match;    // globs; empty: all
};

struct StatsRow {
  std::string name, dtype, form;
  std::vector<int64_t> shape;
  uint64_t numel = 0;
  std::optional<torch::TensorStats> stats;  // absent: see note
  std::string note;                         // why a tensor has no statistics
};

struct StatsResult {
  std::vector<StatsRow> rows;
  std::vector<std::string> nonfinite;  // tensors holding NaN or Inf
  std::string state_note;              // Opened::state_note
};

// A DCP folder is consolidated into a temporary file first.
StatsResult stats(Env& env, const std::string& file, const StatsOptions& options);

}  // namespace ckpt::api
