#include "cli/dialect_option.h"

#include <CLI/CLI.hpp>

#include "util/error.h"

namespace ckpt::cli {

void add_dialect_option(CLI::App* sub, std::string& target) {
  sub->add_option("--dialect", target,
                  "zip layout of the output: 1.6 (torch 1.6-2.0), 2.1 (2.1-2.6) or 2.7 (2.7+); "
                  "default: the input's (2.7 for a legacy or safetensors input)")
      ->check(CLI::IsMember({"1.6", "2.1", "2.7"}));
}

std::optional<torch::Dialect> dialect_from(const std::string& text) {
  if (text.empty()) return std::nullopt;
  auto d = torch::parse_dialect(text);
  if (!d) throw UsageError("--dialect '" + text + "': expected 1.6, 2.1 or 2.7");
  return d;
}

}  // namespace ckpt::cli
