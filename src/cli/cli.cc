#include "cli/cli.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "cli/docs.h"
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
  Context ctx;
  register_inspect_commands(app, ctx);
  register_config_commands(app, ctx);
  register_write_commands(app, ctx);
  register_tools_commands(app, ctx);
  register_scan_commands(app, ctx);
  register_safetensors_commands(app, ctx);
  register_shard_commands(app, ctx);
  register_docs_commands(app, ctx);  // last: it documents every command above

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
