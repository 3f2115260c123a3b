#include "cli/dialect_option.h"

#include <CLI/CLI.hpp>


namespace ckpt::cli {

void add_dialect_option(CLI::App* sub, std::string& target) {
  sub->add_option("--dialect", target,
                  "zip layout of the output: 1.6 (torch 1.6-2.0), 2.1 (2.1-2.6) or 2.7 (2.7+); "
                  "default: the input's (2.7 for a legacy or safetensors input)")
      ->check(CLI::IsMember({"1.6", "2.1", "2.7"}));
}

}  // namespace ckpt::cli
