#include "api/config.h"

#include <optional>

#include "api/checkpoint.h"
#include "audiocraft/operations.h"
#include "omegaconf/dictconfig.h"
#include "omegaconf/resolve.h"
#include "omegaconf/yaml.h"
#include "util/error.h"

namespace ckpt::api {

namespace {

std::string value_text(const omegaconf::Value& v) {
  if (v.is_container()) return omegaconf::to_yaml(v);
  return omegaconf::scalar_text(v) + "\n";
}

}  // namespace

std::string config_text(Env& env, const std::string& file, const ConfigOptions& a) {
  Opened o = open_checkpoint(env, file);
  omegaconf::Value tree = audiocraft::config_tree_at(o.ck->root(), a.path);
  if (a.key.empty()) return omegaconf::to_yaml(tree);
  std::string where = a.path.empty() ? file : file + ": " + a.path;
  if (a.raw) {
    const omegaconf::Value* v = omegaconf::select(tree, a.key);
    if (!v) throw UsageError(where + ": config key '" + a.key + "' not found");
    return value_text(*v);
  }
  std::optional<omegaconf::Value> v;
  try {
    v = omegaconf::select_resolved(tree, a.key);
  } catch (const UsageError& e) {
    throw UsageError(where + ": " + e.what());
  }
  if (!v) throw UsageError(where + ": config key '" + a.key + "' not found");
  return value_text(*v);
}

std::vector<std::string> config_keys(Env& env, const std::string& file) {
  Opened o = open_checkpoint(env, file);
  omegaconf::Value cfg = audiocraft::config_tree(o.ck->root());
  std::vector<std::string> keys;
  struct Item { const omegaconf::Value* v; std::string key; };
  std::vector<Item> stack{{&cfg, ""}};
  while (!stack.empty()) {
    Item it = stack.back();
    stack.pop_back();
    if (!it.key.empty()) keys.push_back(it.key);
    if (it.v->type != omegaconf::Value::Type::Map) continue;
    for (auto i = it.v->map.rbegin(); i != it.v->map.rend(); ++i)
      if (i->first.type == omegaconf::Value::Type::Str)
        stack.push_back({&i->second, it.key.empty() ? i->first.str : it.key + "." + i->first.str});
  }
  return keys;
}

}  // namespace ckpt::api
