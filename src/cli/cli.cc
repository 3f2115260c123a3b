#include "cli/cli.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <vector>

#include "api/operations.h"
#include "cli/commands.h"
#include "cli/completion_shells.h"
#include "cli/docs.h"
#include "cli/terminal.h"
#include "util/error.h"
#include "util/http_file.h"
#include "util/signal_cleanup.h"
#include "util/suggest.h"
#include "util/stdout_file.h"

namespace ckpt::cli {

namespace {


int fail(const std::string& message) {
  std::fprintf(stderr, "%s %s\n", colored(2, kBoldRed, "ckpt: error:").c_str(), cli_message(message).c_str());
  return 2;
}

// "ckpt infoo x": name the command that was probably meant, as git does.
std::string unknown_command_message(CLI::App& app, const std::string& word) {
  std::vector<std::string> names;
  for (CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) names.push_back(sub->get_name());
  return "unknown command '" + word + "'" + did_you_mean(word, names) + " (see 'ckpt --help')";
}

CLI::App* command_of(CLI::App& app, const std::string& word) {
  for (CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    if (sub->check_name(word)) return sub;
  return nullptr;
}

// The names of sub's options (positionals aside): its "--long" ones, or its
// "-s" short ones.
std::vector<std::string> option_names(CLI::App& sub, bool long_names) {
  std::vector<std::string> names;
  for (const CLI::Option* o : sub.get_options([](const CLI::Option* o) { return !o->get_positional(); }))
    for (const auto& n : long_names ? o->get_lnames() : o->get_snames()) names.push_back((long_names ? "--" : "-") + n);
  return names;
}

// A parse error inside a command: a mistyped option names the closest one,
// and every message points at that command's help.
std::string parse_error_message(CLI::App& app, int argc, char** argv, const CLI::ParseError& e) {
  CLI::App* sub = argc > 1 ? command_of(app, argv[1]) : nullptr;
  if (!sub) return std::string(e.what()) + " (see 'ckpt --help')";
  std::string help = " (see 'ckpt help " + sub->get_name() + "')";
  const std::vector<std::string> names = option_names(*sub, true);
  for (int i = 2; i < argc; ++i) {
    std::string w = argv[i];
    if (w == "--") break;
    if (w.rfind("--", 0) != 0 || w.size() < 3) continue;
    std::string name = w.substr(0, w.find('='));
    if (std::find(names.begin(), names.end(), name) != names.end()) continue;
    std::string hint = did_you_mean(name, names);
    // '--optim.lr=1e-5' (argparse habits): a config override takes no dashes.
    if (hint.empty() && sub->get_name() == "edit" && name.find('.') != std::string::npos)
      hint = "; config overrides take no dashes: '" + w.substr(2) + "'";
    return "unknown option '" + name + "' for '" + sub->get_name() + "'" + hint + help;
  }
  const std::string what = e.what();
  // CLI11's "--output is required": 'ckpt export in.th out.bin' left -o out.
  if (dynamic_cast<const CLI::RequiredError*>(&e) && what == "--output is required") {
    std::vector<std::string> extra = sub->remaining();
    return "-o OUT is required (the output)" +
           (extra.size() == 1 && extra[0].find('=') == std::string::npos && extra[0].rfind('-', 0) != 0
                ? "; did you mean -o " + extra[0] + "?"
                : std::string()) +
           help;
  }
  // CLI11's "--state: 1 required TEXT missing": an option given without its value.
  if (dynamic_cast<const CLI::ArgumentMismatch*>(&e)) {
    const size_t colon = what.find(": "), required = what.find(" required ");
    const std::string missing = " missing";
    if (colon != std::string::npos && required != std::string::npos && what.size() > required + 10 + missing.size() &&
        what.compare(what.size() - missing.size(), missing.size(), missing) == 0) {
      std::string name = what.substr(0, colon);
      const std::string type = what.substr(required + 10, what.size() - missing.size() - required - 10);
      if (name == "--output") name = "-o";
      std::string kind;
      if (type.rfind("INT", 0) == 0) kind = type.find(">=0") != std::string::npos ? " (a whole number >= 0)" : " (a whole number)";
      else if (type.rfind("FLOAT", 0) == 0) kind = " (a number)";
      return name + " needs a value" + kind + help;
    }
  }
  // CLI11's "The following argument was not expected: x": a short option the
  // command lacks (-n where there is no dry run), or one argument too many.
  if (dynamic_cast<const CLI::ExtrasError*>(&e)) {
    const std::vector<std::string> shorts = option_names(*sub, false);
    for (int i = 2; i < argc; ++i) {
      std::string w = argv[i];
      if (w == "--") break;
      if (w.size() < 2 || w[0] != '-' || w[1] == '-' || !std::isalpha(static_cast<unsigned char>(w[1]))) continue;
      if (std::find(shorts.begin(), shorts.end(), w.substr(0, 2)) != shorts.end()) continue;
      return "unknown option '" + w + "' for '" + sub->get_name() + "'" + help;
    }
    std::string extra;
    for (const auto& w : sub->remaining()) extra += (extra.empty() ? "'" : ", '") + w + "'";
    std::string usage;
    const std::string text = sub->help();
    const size_t at = text.find("Usage: ");
    if (at != std::string::npos) usage = " (usage: ckpt " + text.substr(at + 7, text.find('\n', at) - at - 7) + ")";
    if (!extra.empty())
      return "unexpected argument" + std::string(sub->remaining_size() > 1 ? "s " : " ") + extra + " for '" +
             sub->get_name() + "'" + usage + help;
  }
  return what + help;
}

bool has_command(CLI::App& app, const std::string& word) { return command_of(app, word) != nullptr; }

// Every option takes one value per occurrence (repeat the flag for more), so
// that "--drop 'a.*' optim.lr=1e-4" leaves the override to the positionals
// instead of taking it as a second glob.
void one_value_per_flag(CLI::App& app) {
  for (CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    for (CLI::Option* opt : sub->get_options([](const CLI::Option* o) { return !o->get_positional(); }))
      if (opt->get_expected_max() > 1) opt->allow_extra_args(false);
}

// Every command that reads a file also reads remote ones (docs/REMOTE.md):
// --token, --no-cache, --cache-dir and --cache-max set the HTTP reader's settings.
void remote_options(CLI::App& app) {
  for (CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    if (sub->get_group().empty()) continue;  // hidden helpers
    const std::string& name = sub->get_name();
    if (name == "help" || name == "completion" || name == "man") continue;  // they read no file
    sub->add_option("--token", http::settings().token,
                    "Hugging Face token for hf:// and Hub URLs (default: HF_TOKEN, then the huggingface token file); "
                    "sent to the Hub host only")
        ->group("Remote inputs");
    sub->add_flag("--no-cache", http::settings().no_cache, "Do not read or keep fetched byte ranges on disk")
        ->group("Remote inputs");
    sub->add_option("--cache-dir", http::settings().cache_dir,
                    "Folder for fetched byte ranges (default: CKPT_CACHE_DIR, else ~/.cache/ckpt/http)")
        ->group("Remote inputs");
    sub->add_option("--cache-max", http::settings().cache_max,
                    "Size limit of that folder, least recently used ranges removed first (e.g. 512M, 4G; 0: none; "
                    "default: CKPT_CACHE_MAX, else 2G)")
        ->group("Remote inputs");
  }
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

void warn_if_nothing_matched(const std::vector<std::string>& match, size_t selected, const std::string& where) {
  if (match.empty() || selected) return;
  std::string globs;
  for (const auto& m : match) globs += (globs.empty() ? "'" : ", '") + m + "'";
  std::fprintf(stderr, "ckpt: warning: --match %s selects no tensor%s (globs match whole names: 'emb.*', '*.weight')\n",
               globs.c_str(), where.empty() ? "" : (" of '" + where + "'").c_str());
}

std::unique_ptr<WritableFile> stdout_sink(const std::string& out) {
  return out == "-" ? open_stdout_output() : nullptr;
}

std::string output_name(const std::string& out) { return out == "-" ? "standard output" : out; }

std::span<const CommandGroup> command_groups() {
  static constexpr CommandGroup kGroups[] = {
      {register_inspect_commands, "info ls tensors verify"},
      {register_config_commands, "cfg"},
      {register_write_commands, "rewrite edit compact export wrap bundle sanitize"},
      {register_tools_commands, "stats diff"},
      {register_scan_commands, "scan"},
      {register_safetensors_commands, "safetensors from-safetensors"},
      {register_shard_commands, "consolidate to-dcp"},
      {register_show_commands, "show"},
      {register_transformers_commands, "to-transformers from-transformers"},
  };
  return kGroups;
}

const CommandGroup* group_of(std::string_view command) {
  if (command.empty()) return nullptr;
  for (const CommandGroup& group : command_groups()) {
    std::string_view rest = group.commands;
    while (!rest.empty()) {
      size_t space = rest.find(' ');
      if (rest.substr(0, space) == command) return &group;
      rest = space == std::string_view::npos ? std::string_view() : rest.substr(space + 1);
    }
  }
  return nullptr;
}

int main(int argc, char** argv) {
  api::prepare_one_command_process();  // one command, then exit
  // `ckpt --version` alone: what CLI11's version flag prints, without
  // building every command first (that was 3/4 of its time).
  if (argc == 2 && (std::strcmp(argv[1], "--version") == 0 || std::strcmp(argv[1], "-V") == 0)) {
    std::cout << "ckpt " << api::version() << std::endl;
    return 0;
  }
  CLI::App app{"ckpt: inspect and edit PyTorch checkpoints without Python, torch or running pickles", "ckpt"};
  app.require_subcommand(1);
  app.set_version_flag("-V,--version", std::string("ckpt ") + api::version());
  Context ctx{Env::Default()};  // the one place the CLI picks its Env
  // Only the group of the command argv[1] names: building every command's
  // options costs a tenth of `ckpt info` and half of `ckpt scan` on a small
  // file (issue 25), and a command's parse needs only its own. A first word
  // the table does not name (an option, a mistyped or docs command) gets
  // every group in turn, stopping at the one that registers it; the docs
  // group (help, completion, man) and the hidden completion helper come last
  // and are never cut short, so they see every command; so do a first word
  // that is an option or no command at all (the usage, the closest command's
  // hint).
  const std::string first = argc > 1 && argv[1][0] != '-' ? argv[1] : "";
  const CommandGroup* named = group_of(first);
  bool all = true;
  if (named) {
    named->add(app, ctx);
    all = !has_command(app, first);
  }
  if (all)
    for (const CommandGroup& group : command_groups()) {
      if (&group == named) continue;
      group.add(app, ctx);
      if (!first.empty() && has_command(app, first)) {
        all = false;
        break;
      }
    }
  if (all) {
    register_docs_commands(app, ctx);        // last: it documents every command above
    register_config_keys_command(app, ctx);  // hidden, for completion
  } else {
    add_example_footers(app);  // `ckpt CMD --help` shows CMD's example as before
  }
  remote_options(app);
  one_value_per_flag(app);
  install_cleanup_signal_handlers();

  if (argc == 1) {  // 'ckpt' alone: the usage and the version, as a missing command
    std::fputs(app.help().c_str(), stdout);
    std::printf("\nckpt %s; 'ckpt help COMMAND' shows a command's options and an example\n", api::version());
    return 2;
  }
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
    return fail(parse_error_message(app, argc, argv, e));
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
