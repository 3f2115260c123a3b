// `scan`: the globals a file's pickles name, checked against AudioCraft's
// allowlist, without unpickling anything.
#pragma once
#include <string>

#include "torch/safety_scan.h"
#include "util/env.h"

namespace ckpt::api {

// A damaged or hostile file is no exception: the scan says what it read and
// why it stopped (verdict Unreadable). IoError when the file cannot be read.
torch::SafetyScan scan(Env& env, const std::string& file);

}  // namespace ckpt::api
