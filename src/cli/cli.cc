#include "cli/cli.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <vector>

#include "api/operations.h"
#include "cli/commands.h"
#include "cli/completion_shells.h"
#include "cli/docs.h"
#include "util/error.h"
#include "util/signal_cleanup.h"
#include "util/stdout_file.h"

namespace ckpt::cli {

namespace {

int fail(const std::string& message) {
  std::fprintf(stderr, "ckpt: error: %s\n", cli_message(message).c_str());
  return 2;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// "ckpt infoo x": name the command that was probably meant, as git does.
std::string unknown_command_message(CLI::App& app, const std::string& word) {
  std::string best;
  size_t best_d = 3;  // at most two edits away, or a prefix
  for (CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    const std::string& name = sub->get_name();
    size_t d = edit_distance(word, name);
    if (name.rfind(word, 0) == 0 || word.rfind(name, 0) == 0) d = std::min<size_t>(d, 2);
    if (d < best_d) best_d = d, best = name;
  }
  std::string m = "unknown command '" + word + "'";
  if (!best.empty()) m += "; did you mean '" + best + "'?";
  return m + " (see 'ckpt --help')";
}

bool has_command(CLI::App& app, const std::string& word) {
  for (CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    if (sub->check_name(word)) return true;
  return false;
}

// Every option takes one value per occurrence (repeat the flag for more), so
// that "--drop 'a.*' optim.lr=1e-4" leaves the override to the positionals
// instead of taking it as a second glob.
void one_value_per_flag(CLI::App& app) {
  for (CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    for (CLI::Option* opt : sub->get_options([](const CLI::Option* o) { return !o->get_positional(); }))
      if (opt->get_expected_max() > 1) opt->allow_extra_args(false);
}

}  // namespace

std::string cli_message(const std::string& message) {
  return spell_options(message, [](const std::string& field, const std::string& value, bool set) {
    std::string flag = field == "out" ? "-o" : "--" + field;
    std::replace(flag.begin(), flag.end(), '_', '-');
    return set && value != "true" ? flag + " " + value : flag;
  });
}

void say(const Common& c, const std::string& line) {
  if (!c.quiet) std::fprintf(stderr, "%s\n", line.c_str());
}

std::unique_ptr<WritableFile> stdout_sink(const std::string& out) {
  return out == "-" ? open_stdout_output() : nullptr;
}

std::string output_name(const std::string& out) { return out == "-" ? "standard output" : out; }

int main(int argc, char** argv) {
  CLI::App app{"ckpt: inspect and edit PyTorch checkpoints without Python, torch or running pickles", "ckpt"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("ckpt ") + api::version());
  Context ctx{Env::Default()};  // the one place the CLI picks its Env
  register_inspect_commands(app, ctx);
  register_config_commands(app, ctx);
  register_write_commands(app, ctx);
  register_tools_commands(app, ctx);
  register_scan_commands(app, ctx);
  register_safetensors_commands(app, ctx);
  register_shard_commands(app, ctx);
  register_show_commands(app, ctx);
  register_docs_commands(app, ctx);  // last: it documents every command above
  register_config_keys_command(app, ctx);  // hidden, for completion
  one_value_per_flag(app);
  install_cleanup_signal_handlers();

  if (argc > 1 && argv[1][0] != '-' && !has_command(app, argv[1]))
    return fail(unknown_command_message(app, argv[1]));

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return fail(std::string(e.what()) + " (see 'ckpt --help')");
  } catch (const Error& e) {
    return fail(e.what());
  } catch (const std::bad_alloc&) {
    return fail("out of memory");
  } catch (const std::exception& e) {
    return fail(std::string("internal error: ") + e.what());
  }
  std::cout.flush();
  return ctx.exit_code;
}

}  // namespace ckpt::cli
