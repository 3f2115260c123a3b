#include "api/config.h"

#include <optional>

#include "api/checkpoint.h"
#include "audiocraft/operations.h"
#include "omegaconf/dictconfig.h"
#include "omegaconf/resolve.h"
#include "omegaconf/yaml.h"
#include "util/error.h"
#include "util/suggest.h"

namespace ckpt::api {

namespace {

std::string value_text(const omegaconf::Value& v) {
  if (v.is_container()) return omegaconf::to_yaml(v);
  return omegaconf::scalar_text(v) + "\n";
}

}  // namespace

namespace {

std::vector<std::string> keys_of(const omegaconf::Value& cfg) {
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

// The config (a.key empty) or a.key's value; nullopt only for the whole tree.
omegaconf::Value selected(Env& env, const std::string& file, const ConfigOptions& a) {
  Opened o = open_checkpoint(env, file);
  omegaconf::Value tree = audiocraft::config_tree_at(o.ck->root(), a.path);
  if (a.key.empty()) return tree;
  std::string where = a.path.empty() ? file : file + ": " + a.path;
  auto not_found = [&] {
    return UsageError(where + ": config key '" + a.key + "' not found" + did_you_mean(a.key, keys_of(tree)));
  };
  if (a.raw) {
    const omegaconf::Value* v = omegaconf::select(tree, a.key);
    if (!v) throw not_found();
    return *v;
  }
  std::optional<omegaconf::Value> v;
  try {
    v = omegaconf::select_resolved(tree, a.key);
  } catch (const UsageError& e) {
    throw UsageError(where + ": " + e.what());
  }
  if (!v) throw not_found();
  return *v;
}

}  // namespace

std::string config_text(Env& env, const std::string& file, const ConfigOptions& a) {
  omegaconf::Value v = selected(env, file, a);
  if (a.key.empty()) return omegaconf::to_yaml(v);
  return value_text(v);
}

omegaconf::Value config_value(Env& env, const std::string& file, const ConfigOptions& a) {
  return selected(env, file, a);
}

std::vector<std::string> config_keys(Env& env, const std::string& file) {
  Opened o = open_checkpoint(env, file);
  return keys_of(audiocraft::config_tree(o.ck->root()));
}

}  // namespace ckpt::api
