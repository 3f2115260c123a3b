// --dialect for commands that write a checkpoint: which torch's zip layout
// (torch/checkpoint.h, docs/dialects.md) the output follows.
#pragma once
#include <optional>
#include <string>

#include "torch/checkpoint.h"

namespace CLI {
class App;
}

namespace ckpt::cli {

void add_dialect_option(CLI::App* sub, std::string& target);
// nullopt for "" (keep the input's); throws UsageError for an unknown name.
std::optional<torch::Dialect> dialect_from(const std::string& text);

}  // namespace ckpt::cli
