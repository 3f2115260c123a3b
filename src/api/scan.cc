#include "api/scan.h"

#include "torch/safety_scan.h"

namespace ckpt::api {

ScanResult scan(Env& env, const std::string& file) {
  torch::SafetyScan s = torch::scan_file(env, file);
  ScanResult r;
  r.file = file;
  r.container = s.container;
  r.verdict = torch::to_string(s.verdict());
  for (const auto& p : s.pickles) r.pickles.push_back({p.name, p.offset, p.size, p.complete, p.trailing_bytes});
  for (const auto& g : s.globals)
    r.globals.push_back({g.use.module, g.use.name, g.use.called, g.use.instantiated, g.use.built,
                         g.use.in_persistent_id, g.allowed, g.record, g.use.first_offset, g.file_offset});
  if (!s.readable()) r.problem = s.problem;
  return r;
}

}  // namespace ckpt::api
