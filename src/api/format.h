// Small text-formatting helpers shared by the commands.
#pragma once
#include <cstdint>
#include <string>

#include "pickle/value.h"
#include "torch/checkpoint.h"

namespace ckpt::api {

std::string human_bytes(uint64_t n);          // "1.68 GB"
std::string with_commas(uint64_t n);          // "420,371,456"
std::string shape_text(const std::vector<int64_t>& shape);  // "[1024, 768]"
// A Python-like repr of a scalar or a short description of a container.
std::string describe(const pickle::Node* n, const torch::Checkpoint& ck);
// Kind name for JSON: "dict", "OrderedDict", "list", "tensor", "DictConfig", ...
std::string kind_name(const pickle::Node* n, const torch::Checkpoint& ck);
std::string key_text(const pickle::Node* key);  // a mapping key as text
bool glob_match(const std::string& pattern, const std::string& text);  // fnmatch

}  // namespace ckpt::api
