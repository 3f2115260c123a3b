// Small text-formatting helpers shared by the commands.
#pragma once
#include <cstdint>
#include <string>

#include "pickle/value.h"
#include "torch/checkpoint.h"
#include "torch/dtype.h"
#include "torch/shape.h"
#include "util/glob.h"

namespace ckpt::api {

std::string human_bytes(uint64_t n);          // "1.68 GB"
std::string with_commas(uint64_t n);          // "420,371,456"
using torch::shape_text;  // "[1024, 768]" (torch/shape.h)
// A Python-like repr of a scalar or a short description of a container.
std::string describe(const pickle::Node* n, const torch::Checkpoint& ck);
// Kind name for JSON: "dict", "OrderedDict", "list", "tensor", "DictConfig", ...
std::string kind_name(const pickle::Node* n, const torch::Checkpoint& ck);
using pickle::key_text;  // a mapping key as text
using ckpt::glob_match;  // Python's fnmatch (util/glob.h)
// A --dtype as users type it: torch's names and aliases ("float16", "half"),
// with "torch." ("torch.float16") and the fp16 / bf16 / fp32 spellings;
// nullptr when none.
const torch::DTypeInfo* dtype_option(const std::string& name);

}  // namespace ckpt::api
