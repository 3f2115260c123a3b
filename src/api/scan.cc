#include "api/scan.h"

#include "torch/open_any.h"
#include "torch/safetensors_format.h"
#include "util/error.h"

namespace ckpt::api {

torch::SafetyScan scan(Env& env, const std::string& file) {
  // A safetensors file holds no pickle: nothing is unpickled by any loader.
  // Its header is checked as safetensors' loader checks it (a damaged one is
  // unreadable, never safe).
  if (file != "-" && !env.is_directory(file)) {
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

}  // namespace ckpt::api
