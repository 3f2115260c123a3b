// `ckpt edit --dtype`: which storages to convert, as save() transforms.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "cli/session.h"
#include "torch/checkpoint.h"

namespace ckpt::cli {

// Transforms converting the floating tensors of the given state dicts
// (default: the best state) whose names match one of `match` (all when
// empty) to `dtype` (float16, bfloat16, float32). Conversion is per storage:
// a storage also viewed by a tensor outside the selection is converted too
// (a storage has one dtype), and `say` reports how many such views there are.
std::map<std::string, torch::StorageTransform> plan_dtype_conversion(
    const Opened& o, const std::vector<std::string>& states, const std::string& dtype,
    const std::vector<std::string>& match, const std::function<void(const std::string&)>& say);

}  // namespace ckpt::cli
