#include "cli/cli.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "util/error.h"

namespace ckpt::cli {

namespace {

int fail(const std::string& message) {
  std::fprintf(stderr, "ckpt: error: %s\n", message.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ckpt: inspect and edit PyTorch checkpoints without Python, torch or running pickles", "ckpt"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("ckpt ") + "0.1.0");
  Common common;
  int rc = 0;
  std::string file, out, path, state, match;
  int depth = 2;

  auto add_json = [&](CLI::App* sub) { sub->add_flag("--json", common.json, "machine-readable JSON output"); };

  auto* info = app.add_subcommand("info", "format, layout, top-level keys and state-dict totals");
  info->add_option("FILE", file, "checkpoint")->required();
  add_json(info);
  info->callback([&] { rc = cmd_info(file, common); });

  auto* ls = app.add_subcommand("ls", "the object tree; PATH is '/'-separated keys and indexes");
  ls->add_option("FILE", file, "checkpoint")->required();
  ls->add_option("PATH", path, "e.g. best_state/model or history/3/train");
  ls->add_option("--depth", depth, "levels to expand (default 2)")->check(CLI::NonNegativeNumber);
  add_json(ls);
  ls->callback([&] { rc = cmd_ls(file, path, depth, common); });

  auto* tensors = app.add_subcommand("tensors", "one row per tensor of a state dict (default: the best state)");
  tensors->add_option("FILE", file, "checkpoint")->required();
  tensors->add_option("--state", state, "path of the state dict");
  tensors->add_option("--match", match, "fnmatch glob on tensor names");
  add_json(tensors);
  tensors->callback([&] { rc = cmd_tensors(file, state, match, common); });

  auto* rewrite = app.add_subcommand("rewrite", "load and save unchanged, as torch.save would");
  rewrite->add_option("FILE", file, "checkpoint")->required();
  rewrite->add_option("-o,--output", out, "output file")->required();
  rewrite->add_flag("--force", common.force, "overwrite an existing output");
  rewrite->add_flag("-q,--quiet", common.quiet, "no progress or summary on stderr");
  rewrite->callback([&] { rc = cmd_rewrite(file, out, common); });

  auto* verify = app.add_subcommand("verify", "check CRCs, storage sizes and tensor views; exit 1 on a problem");
  verify->add_option("FILE", file, "checkpoint")->required();
  add_json(verify);
  verify->callback([&] { rc = cmd_verify(file, common); });

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
  return rc;
}

}  // namespace ckpt::cli
