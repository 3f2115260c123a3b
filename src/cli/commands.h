// The commands behind the CLI. Each group of commands lives in its own file
// and registers its subcommands on the app; a command parses its options,
// calls the operation in src/api with the context's Env, prints the result
// (text or JSON) and stores its exit code in the context; errors are thrown
// as ckpt::Error.
#pragma once
#include <iostream>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "api/schema.h"
#include "util/env.h"

namespace CLI {
class App;
class Validator;
}

namespace ckpt::cli {

struct Context {
  Env& env;  // every file the commands read or write goes through it
  int exit_code = 0;
};

// Options most commands share.
struct Common {
  bool json = false;
  bool quiet = false;
  bool force = false;
  std::string dialect;  // --dialect of writing commands; empty: the input's
};

// --json: a result as its description says (api/schema.h), on standard output.
template <class Result>
void print_json(const Result& r) {
  std::cout << api::to_json(r).dump(2) << "\n";
}

// The CLI's spelling of an option the core names (util/error.h):
// `allow_no_match` -> --allow-no-match, `state=PATH` -> --state PATH.
std::string cli_message(const std::string& message);

// A summary line on stderr, unless --quiet.
void say(const Common& c, const std::string& line);
// 'tensors --match' / 'stats --match' that select nothing say so on stderr
// (the output stays an empty table or []): "ckpt: warning: --match ...".
void warn_if_nothing_matched(const std::vector<std::string>& match, size_t selected, const std::string& where);
// Standard output as the sink of `-o -` (nullptr for a file name); throws
// UsageError when standard output is a terminal.
std::unique_ptr<WritableFile> stdout_sink(const std::string& out);
// "standard output" for "-", else the name.
std::string output_name(const std::string& out);

// A readable check for "--depth -1" (CLI11's range check prints
// INT64_MAX): "must be a whole number >= 0".
CLI::Validator non_negative_whole_number();
// "--rtol abc": "must be a number (e.g. 1e-3)". The range is the api's to
// check (api::diff refuses a negative or non-finite tolerance), so that the
// CLI and Python say the same.
CLI::Validator number();

void register_inspect_commands(CLI::App& app, Context& ctx);  // info ls tensors verify
void register_write_commands(CLI::App& app, Context& ctx);    // rewrite edit compact export wrap bundle sanitize
void register_config_commands(CLI::App& app, Context& ctx);   // cfg
void register_scan_commands(CLI::App& app, Context& ctx);     // scan
void register_tools_commands(CLI::App& app, Context& ctx);    // stats diff
void register_safetensors_commands(CLI::App& app, Context& ctx);  // safetensors from-safetensors
void register_shard_commands(CLI::App& app, Context& ctx);        // consolidate to-dcp
void register_show_commands(CLI::App& app, Context& ctx);         // show
void register_transformers_commands(CLI::App& app, Context& ctx);  // to-transformers from-transformers

// The command groups, in the order `ckpt help` lists them, each with the
// names of the commands it registers (space-separated): `ckpt CMD` registers
// only CMD's group, found by name here (building every command's options
// costs more than scanning a small checkpoint, issue 25).
// tests/unit/cli_groups_test.cc checks the names against what each group
// registers; a name missing here only costs time (main falls back to
// registering the groups in turn).
struct CommandGroup {
  void (*add)(CLI::App&, Context&);
  std::string_view commands;
};
std::span<const CommandGroup> command_groups();
// The group whose list names `command`, or nullptr.
const CommandGroup* group_of(std::string_view command);

}  // namespace ckpt::cli
