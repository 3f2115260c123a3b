// `stats`: per-tensor numel, NaN, Inf, min, max, mean, std and L2 norm of a
// state dict, in float64 over finite values, streamed from the storages.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "api/schema.h"
#include "util/env.h"

namespace ckpt::api {

struct StatsOptions {
  static constexpr const char* kName = "StatsOptions";
  static constexpr const char* kDoc = "which tensors stats reads";
  std::optional<std::string> state;  // default: the best state
  std::vector<std::string> match;    // globs; empty: all
  bool ignore_crc = false;           // read a zip whose records fail their CRC-32, as read
  template <class V>
  static void describe(V& v) {
    v.field("state", &StatsOptions::state, "the state dict's '/'-separated path (default: the best state; '/': the root)");
    v.field("match", &StatsOptions::match, "only tensors whose names match one of these globs");
    v.field("ignore_crc", &StatsOptions::ignore_crc,
            "read a zip whose records fail their CRC-32, as it is (refused otherwise: each record read is checked)");
  }
};

// One tensor's statistics; the numbers are None when it has none (see note)
// or, for min to norm, no finite values.
struct StatsRow {
  static constexpr const char* kName = "StatsRow";
  static constexpr const char* kDoc = "a tensor's statistics (float64, over its finite values)";
  std::string name, dtype;
  std::vector<int64_t> shape;
  std::string form;
  uint64_t numel = 0;
  std::optional<uint64_t> nan, inf, finite;
  std::optional<double> min, max, mean, std, std_population, norm;
  std::string note;  // why a tensor has no statistics
  template <class V>
  static void describe(V& v) {
    v.field("name", &StatsRow::name, "the tensor");
    v.field("dtype", &StatsRow::dtype, "its dtype");
    v.field("shape", &StatsRow::shape, "its shape");
    v.field("form", &StatsRow::form, "what a non-plain tensor is", Presence::OmitEmpty);
    v.field("numel", &StatsRow::numel, "its elements");
    v.field("nan", &StatsRow::nan, "NaN elements");
    v.field("inf", &StatsRow::inf, "infinite elements");
    v.field("finite", &StatsRow::finite, "finite elements, which the rest are taken over");
    v.field("min", &StatsRow::min, "the least finite value");
    v.field("max", &StatsRow::max, "the greatest");
    v.field("mean", &StatsRow::mean, "their mean");
    v.field("std", &StatsRow::std, "their standard deviation, unbiased as torch.std()");
    v.field("std_population", &StatsRow::std_population, "their population standard deviation (correction 0)");
    v.field("norm", &StatsRow::norm, "the L2 norm");
    v.field("note", &StatsRow::note, "why the tensor has no statistics", Presence::OmitEmpty);
  }
};

// One row per tensor of the state dict, in file order. A DCP folder is
// consolidated into a temporary file first.
std::vector<StatsRow> stats(Env& env, const std::string& file, const StatsOptions& options);

}  // namespace ckpt::api
