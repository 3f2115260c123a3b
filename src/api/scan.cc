#include "api/scan.h"

#include "torch/dcp.h"
#include "torch/open_any.h"
#include "torch/safety_scan.h"
#include "torch/safetensors_format.h"
#include "util/error.h"

namespace ckpt::api {

namespace {

torch::SafetyScan scan_safety(Env& env, const std::string& file) {
  // A safetensors file holds no pickle: nothing is unpickled by any loader.
  // Its header is checked as safetensors' loader checks it (a damaged one is
  // unreadable, never safe).
  if (file != "-" && !env.is_directory(file) && !torch::DcpCheckpoint::is_dcp_folder(env, file)) {
    bool safetensors = false;
    {
      auto f = env.open_read(file);
      safetensors = torch::looks_like_safetensors(*f);
    }
    if (safetensors) {
      torch::SafetyScan s;
      s.path = file;
      s.container = "safetensors";
      try {
        auto f = env.open_read(file);
        torch::read_safetensors(*f);
      } catch (const FormatError& e) {
        s.problem = e.what();
      }
      return s;
    }
  }
  return torch::scan_file(env, file);
}

}  // namespace

ScanResult scan(Env& env, const std::string& file) {
  torch::SafetyScan s = scan_safety(env, file);
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
