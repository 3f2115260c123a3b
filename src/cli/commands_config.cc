// cfg (api/config.h): xp.cfg as OmegaConf.to_yaml prints it, or one key of it.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "api/config.h"
#include "cli/commands.h"
#include "util/error.h"

namespace ckpt::cli {

void register_config_commands(CLI::App& app, Context& ctx) {
  auto a = std::make_shared<api::ConfigOptions>();
  auto file = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto* cfg = app.add_subcommand("cfg", "print xp.cfg as OmegaConf.to_yaml does, or one KEY of it (resolved)");
  cfg->add_option("FILE", *file, "checkpoint")->required();
  cfg->add_option("KEY", a->key, "dotted key, e.g. optim.lr; a scalar prints bare, interpolations resolved");
  cfg->add_flag("--raw", a->raw, "print KEY's value unresolved (${...} as written)");
  cfg->add_option("--path", a->path, "the config at this object path instead of xp.cfg (e.g. 0/cfg)");
  cfg->add_flag("--json", *json, "the config (or KEY's value) as JSON, scalars typed (the result's value)");
  cfg->callback([a, file, json, &ctx] {
    api::ConfigResult r = api::cfg(ctx.env, *file, *a);
    if (*json) print_json(r.value);
    else std::fputs(r.text.c_str(), stdout);
    ctx.exit_code = 0;
  });
}

}  // namespace ckpt::cli
