// zsh and fish completion scripts, generated from the command definitions
// as the bash one is (docs.cc). After `edit FILE`, all three complete the
// config keys of FILE's xp.cfg (from the hidden `ckpt __config-keys FILE`,
// which reads only data.pkl: about as long as `ckpt cfg`).
#pragma once
#include <string>

#include "cli/commands.h"

namespace CLI {
class App;
}

namespace ckpt::cli {

std::string zsh_completion(CLI::App& app);
std::string fish_completion(CLI::App& app);
// Registers `__config-keys FILE` (not listed in help): every dotted key of
// xp.cfg, one per line.
void register_config_keys_command(CLI::App& app, Context& ctx);

}  // namespace ckpt::cli
