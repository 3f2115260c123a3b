// cfg (api/config.h): xp.cfg as OmegaConf.to_yaml prints it, or one key of it.
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "api/config.h"
#include "cli/commands.h"
#include "omegaconf/resolve.h"
#include "util/error.h"

namespace ckpt::cli {

namespace {

using json = nlohmann::ordered_json;

// A config value as JSON (scalars typed: 4.8, 160, true, null), built without
// recursion; keys that are not strings become their text, as json.dumps does.
json to_json(const omegaconf::Value& root) {
  using T = omegaconf::Value::Type;
  constexpr size_t kMaxDepth = 512;  // json's dump recurses: the YAML parser's own bound
  json out;
  struct Item {
    const omegaconf::Value* v;
    json* slot;
    size_t depth;
  };
  std::vector<Item> stack{{&root, &out, 0}};
  while (!stack.empty()) {
    Item it = stack.back();
    stack.pop_back();
    if (it.depth > kMaxDepth) throw UsageError("cfg --json: the config nests deeper than 512 levels");
    const omegaconf::Value& v = *it.v;
    switch (v.type) {
      case T::Null: *it.slot = nullptr; break;
      case T::Bool: *it.slot = v.boolean; break;
      case T::Int:
        if (v.big_int.empty()) *it.slot = v.integer;
        else *it.slot = json::parse(v.big_int, nullptr, false).is_discarded() ? json(v.big_int) : json::parse(v.big_int);
        break;
      case T::Float:
        if (std::isfinite(v.real)) *it.slot = v.real;
        else *it.slot = omegaconf::scalar_text(v);  // JSON has no nan/inf: as text
        break;
      case T::Str: *it.slot = v.str; break;
      case T::Map:
        *it.slot = json::object();
        // Every key first: the ordered object is a vector, so a reference
        // taken before a later insertion would dangle.
        for (const auto& kv : v.map) (*it.slot)[kv.first.type == T::Str ? kv.first.str : omegaconf::scalar_text(kv.first)];
        for (const auto& [k, x] : v.map)
          stack.push_back({&x, &(*it.slot)[k.type == T::Str ? k.str : omegaconf::scalar_text(k)], it.depth + 1});
        break;
      case T::Seq:
        *it.slot = json::array();
        for (size_t i = 0; i < v.seq.size(); ++i) it.slot->push_back(nullptr);
        for (size_t i = 0; i < v.seq.size(); ++i) stack.push_back({&v.seq[i], &(*it.slot)[i], it.depth + 1});
        break;
    }
  }
  return out;
}

}  // namespace

void register_config_commands(CLI::App& app, Context& ctx) {
  auto a = std::make_shared<api::ConfigOptions>();
  auto file = std::make_shared<std::string>();
  auto* cfg = app.add_subcommand("cfg", "print xp.cfg as OmegaConf.to_yaml does, or one KEY of it (resolved)");
  cfg->add_option("FILE", *file, "checkpoint")->required();
  cfg->add_option("KEY", a->key, "dotted key, e.g. optim.lr; a scalar prints bare, interpolations resolved");
  cfg->add_flag("--raw", a->raw, "print KEY's value unresolved (${...} as written)");
  cfg->add_option("--path", a->path, "the config at this object path instead of xp.cfg (e.g. 0/cfg)");
  auto as_json = std::make_shared<bool>(false);
  cfg->add_flag("--json", *as_json, "the config (or KEY's value) as JSON, scalars typed");
  cfg->callback([a, file, as_json, &ctx] {
    if (*as_json)
      std::cout << to_json(api::config_value(ctx.env, *file, *a)).dump(2) << "\n";
    else
      std::fputs(api::config_text(ctx.env, *file, *a).c_str(), stdout);
    ctx.exit_code = 0;
  });
}

}  // namespace ckpt::cli
