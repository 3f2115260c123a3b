#include "api/stats.h"

#include "api/checkpoint.h"
#include "api/shard.h"
#include "util/error.h"

namespace ckpt::api {

StatsResult stats(Env& env, const std::string& file, const StatsOptions& options) {
  ReadableCheckpoint input(env, file);  // a DCP folder: its consolidation
  Opened o = open_checkpoint(env, input.path());
  std::string path = options.state ? *options.state : o.default_state_path();
  StatsResult result;
  result.state_note = o.state_note(options.state.value_or(""));
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
        row.stats = torch::tensor_stats(*o.ck, r.info, r.name);
        row.numel = row.stats->numel;
        if (row.stats->nan || row.stats->inf) result.nonfinite.push_back(r.name);
      } catch (const UsageError& e) {
        row.note = e.what();
      }
    }
    result.rows.push_back(std::move(row));
  }
  return result;
}

}  // namespace ckpt::api
