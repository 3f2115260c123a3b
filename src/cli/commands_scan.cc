#include <CLI/CLI.hpp>

#include "cli/commands.h"

namespace ckpt::cli {

void register_scan_commands(CLI::App&, Context&) {}

}  // namespace ckpt::cli
