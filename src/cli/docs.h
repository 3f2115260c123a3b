// Help, bash completion and the manual, all generated from the one CLI11
// definition of the commands: `ckpt help [COMMAND]`, `ckpt completion bash`,
// `ckpt man`. Every command's --help ends with a worked example taken from
// the table in docs.cc, keyed by command name.
#pragma once
#include <string>

namespace CLI {
class App;
}

namespace ckpt::cli {

struct Context;

// Registers help, completion and man, and sets the example footers. Call it
// after every other command is registered.
void register_docs_commands(CLI::App& app, Context& ctx);
// Sets the example footers of the commands registered so far and the usage's
// footer (what register_docs_commands does first): for a run that registers
// only the group of the command it runs.
void add_example_footers(CLI::App& app);

// The worked example of a command ("" when it has none).
std::string example_for(const std::string& command);
std::string bash_completion(const CLI::App& app);
std::string man_page(const CLI::App& app);

}  // namespace ckpt::cli
