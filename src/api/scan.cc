#include "api/scan.h"

namespace ckpt::api {

torch::SafetyScan scan(Env& env, const std::string& file) { return torch::scan_file(env, file); }

}  // namespace ckpt::api
