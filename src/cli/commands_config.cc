// cfg: xp.cfg as OmegaConf.to_yaml prints it, or one key of it.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "audiocraft/operations.h"
#include "cli/commands.h"
#include "cli/session.h"
#include "omegaconf/dictconfig.h"
#include "omegaconf/resolve.h"
#include "omegaconf/yaml.h"
#include "util/error.h"

namespace ckpt::cli {

namespace {

struct CfgArgs {
  std::string file, key, path;
  bool raw = false;
};

void print_value(const omegaconf::Value& v) {
  if (v.is_container()) {
    std::fputs(omegaconf::to_yaml(v).c_str(), stdout);
  } else {
    std::string text = omegaconf::scalar_text(v);
    text.push_back('\n');
    std::fputs(text.c_str(), stdout);
  }
}

int cmd_cfg(const CfgArgs& a) {
  Opened o = open_checkpoint(a.file);
  omegaconf::Value tree = audiocraft::config_tree_at(o.ck->root(), a.path);
  if (a.key.empty()) {
    std::fputs(omegaconf::to_yaml(tree).c_str(), stdout);
    return 0;
  }
  std::string where = a.path.empty() ? a.file : a.file + ": " + a.path;
  if (a.raw) {
    const omegaconf::Value* v = omegaconf::select(tree, a.key);
    if (!v) throw UsageError(where + ": config key '" + a.key + "' not found");
    print_value(*v);
    return 0;
  }
  std::optional<omegaconf::Value> v;
  try {
    v = omegaconf::select_resolved(tree, a.key);
  } catch (const UsageError& e) {
    throw UsageError(where + ": " + e.what());
  }
  if (!v) throw UsageError(where + ": config key '" + a.key + "' not found");
  print_value(*v);
  return 0;
}

}  // namespace

void register_config_commands(CLI::App& app, Context& ctx) {
  auto a = std::make_shared<CfgArgs>();
  auto* cfg = app.add_subcommand("cfg", "print xp.cfg as OmegaConf.to_yaml does, or one KEY of it (resolved)");
  cfg->add_option("FILE", a->file, "checkpoint")->required();
  cfg->add_option("KEY", a->key, "dotted key, e.g. optim.lr; a scalar prints bare, interpolations resolved");
  cfg->add_flag("--raw", a->raw, "print KEY's value unresolved (${...} as written)");
  cfg->add_option("--path", a->path, "the config at this object path instead of xp.cfg (e.g. 0/cfg)");
  cfg->callback([a, &ctx] { ctx.exit_code = cmd_cfg(*a); });
}

}  // namespace ckpt::cli
