// cfg: xp.cfg as OmegaConf.to_yaml prints it, or one key of it.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "audiocraft/operations.h"
#include "cli/commands.h"
#include "cli/session.h"
#include "omegaconf/dictconfig.h"
#include "omegaconf/yaml.h"
#include "util/error.h"

namespace ckpt::cli {

namespace {

int cmd_cfg(const std::string& file, const std::string& key) {
  Opened o = open_checkpoint(file);
  omegaconf::Value tree = audiocraft::config_tree(o.ck->root());
  if (key.empty()) {
    std::fputs(omegaconf::to_yaml(tree).c_str(), stdout);
    return 0;
  }
  const omegaconf::Value* v = omegaconf::select(tree, key);
  if (!v) throw UsageError(file + ": config key '" + key + "' not found");
  std::fputs(omegaconf::to_yaml(*v).c_str(), stdout);
  return 0;
}

}  // namespace

void register_config_commands(CLI::App& app, Context& ctx) {
  struct Args {
    std::string file, key;
  };
  auto a = std::make_shared<Args>();
  auto* cfg = app.add_subcommand("cfg", "print xp.cfg as OmegaConf.to_yaml does, or one KEY of it");
  cfg->add_option("FILE", a->file, "checkpoint")->required();
  cfg->add_option("KEY", a->key, "dotted key, e.g. optim.lr");
  cfg->callback([a, &ctx] { ctx.exit_code = cmd_cfg(a->file, a->key); });
}

}  // namespace ckpt::cli
