#include "api/stats.h"

#include "api/checkpoint.h"
#include "api/shard.h"
#include "torch/stats.h"
#include "util/error.h"

namespace ckpt::api {

std::vector<StatsRow> stats(Env& env, const std::string& file, const StatsOptions& options) {
  ReadableCheckpoint input(env, file);  // a DCP folder: its consolidation
  Opened o = open_checkpoint(env, input.path());
  std::string path = o.state_path_or_best(options.state);
  ValueCrcCheck crc(*o.ck, options.ignore_crc);  // folded into the reads below
  std::vector<StatsRow> rows;
  for (const TensorRow& r : o.tensors_of(o.state_dict(path))) {
    if (!matches_any(options.match, r.name)) continue;
    StatsRow row;
    row.name = r.name;
    row.dtype = r.info.dtype ? r.info.dtype->name : "?";
    row.shape = r.info.shape;
    row.form = r.info.form();
    row.numel = r.info.numel();
    // A tensor without statistics gets a note saying why.
    row.note = torch::stats_refusal(r.info);
    if (row.note.empty()) {
      try {
        torch::TensorStats s = torch::tensor_stats(*o.ck, r.info, r.name);
        row.numel = s.numel;
        row.nan = s.nan, row.inf = s.inf, row.finite = s.finite;
        row.min = s.min, row.max = s.max, row.mean = s.mean;  // NaN (none finite): None in JSON
        row.std = s.std, row.std_population = s.std_population, row.norm = s.norm;
      } catch (const UsageError& e) {
        row.note = e.what();
      }
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace ckpt::api
