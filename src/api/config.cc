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

Json json_of(const omegaconf::Value& v) {
  using T = omegaconf::Value::Type;
  switch (v.type) {
    case T::Null: return nullptr;
    case T::Bool: return v.boolean;
    case T::Int: return v.big_int.empty() ? Json(v.integer) : Json(v.big_int);  // beyond 64 bits: its digits
    case T::Float: return to_json(v.real);
    case T::Str: return v.str;
    case T::Map: {
      Json out = Json::object();
      for (const auto& [k, val] : v.map)
        out[k.type == T::Str ? k.str : omegaconf::scalar_text(k)] = json_of(val);
      return out;
    }
    case T::Seq: {
      Json out = Json::array();
      for (const auto& item : v.seq) out.push_back(json_of(item));
      return out;
    }
  }
  return nullptr;
}

ConfigResult result_of(const omegaconf::Value& v, bool whole) {
  return {whole || v.is_container() ? omegaconf::to_yaml(v) : omegaconf::scalar_text(v) + "\n", json_of(v)};
}

}  // namespace

omegaconf::Value config_tree(const Opened& opened, const std::string& path) {
  return audiocraft::config_tree_at(opened.ck->root(), path);
}

std::string config_yaml(const Opened& opened, const std::string& path) {
  return omegaconf::to_yaml(config_tree(opened, path));
}

ConfigResult cfg(Env& env, const std::string& file, const ConfigOptions& a) {
  Opened o = open_checkpoint(env, file);
  omegaconf::Value tree = config_tree(o, a.path);
  if (a.key.empty()) return result_of(tree, true);
  std::string where = a.path.empty() ? file : file + ": " + a.path;
  if (a.raw) {
    const omegaconf::Value* v = omegaconf::select(tree, a.key);
    if (!v) throw UsageError(where + ": config key '" + a.key + "' not found");
    return result_of(*v, false);
  }
  std::optional<omegaconf::Value> v;
  try {
    v = omegaconf::select_resolved(tree, a.key);
  } catch (const UsageError& e) {
    throw UsageError(where + ": " + e.what());
  }
  if (!v) throw UsageError(where + ": config key '" + a.key + "' not found");
  return result_of(*v, false);
}

std::string config_text(Env& env, const std::string& file, const ConfigOptions& options) {
  return cfg(env, file, options).text;
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
