#include "api/config.h"

#include <cmath>
#include <optional>

#include "api/checkpoint.h"
#include "audiocraft/operations.h"
#include "omegaconf/dictconfig.h"
#include "omegaconf/select.h"
#include "omegaconf/resolve.h"
#include "omegaconf/yaml.h"
#include "util/error.h"
#include "util/suggest.h"

namespace ckpt::api {

namespace {

// A config value as JSON (scalars typed: 4.8, 160, true, null), built without
// recursion; keys that are not strings become their text, as json.dumps does.
// A float JSON cannot hold (nan, inf) is its YAML text.
Json json_of(const omegaconf::Value& root) {
  using T = omegaconf::Value::Type;
  constexpr size_t kMaxDepth = 512;  // json's dump recurses: the YAML parser's own bound
  Json out;
  struct Item {
    const omegaconf::Value* v;
    Json* slot;
    size_t depth;
  };
  std::vector<Item> stack{{&root, &out, 0}};
  while (!stack.empty()) {
    Item it = stack.back();
    stack.pop_back();
    if (it.depth > kMaxDepth) throw UsageError("cfg: the config nests deeper than 512 levels");
    const omegaconf::Value& v = *it.v;
    switch (v.type) {
      case T::Null: *it.slot = nullptr; break;
      case T::Bool: *it.slot = v.boolean; break;
      case T::Int:
        if (v.big_int.empty()) *it.slot = v.integer;
        else *it.slot = Json::parse(v.big_int, nullptr, false).is_discarded() ? Json(v.big_int) : Json::parse(v.big_int);
        break;
      case T::Float:
        if (std::isfinite(v.real)) *it.slot = v.real;
        else *it.slot = omegaconf::scalar_text(v);  // JSON has no nan/inf: as text
        break;
      case T::Str: *it.slot = v.str; break;
      case T::Map:
        *it.slot = Json::object();
        // Every key first: the ordered object is a vector, so a reference
        // taken before a later insertion would dangle.
        for (const auto& kv : v.map) (*it.slot)[kv.first.type == T::Str ? kv.first.str : omegaconf::scalar_text(kv.first)];
        for (const auto& [k, x] : v.map)
          stack.push_back({&x, &(*it.slot)[k.type == T::Str ? k.str : omegaconf::scalar_text(k)], it.depth + 1});
        break;
      case T::Seq:
        *it.slot = Json::array();
        for (size_t i = 0; i < v.seq.size(); ++i) it.slot->push_back(nullptr);
        for (size_t i = 0; i < v.seq.size(); ++i) stack.push_back({&v.seq[i], &(*it.slot)[i], it.depth + 1});
        break;
    }
  }
  return out;
}

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

// The config (a.key empty) or a.key's value.
omegaconf::Value selected(Env& env, const std::string& file, const ConfigOptions& a) {
  Opened o = open_checkpoint(env, file);
  if (!a.path.empty() && !audiocraft::resolve_path(o.ck->root(), a.path))
    throw UsageError(file + ": no object at '" + a.path + "'" + path_hint(o.ck->root(), a.path) +
                     " (--path names the config object: 'xp.cfg' in AudioCraft's files)");
  if (a.path.empty()) require_config(o, file);
  omegaconf::Value tree = audiocraft::config_tree_at(o.ck->root(), a.path);
  if (a.key.empty()) return tree;
  std::string where = a.path.empty() ? file : file + ": " + a.path;
  auto not_found = [&] {
    // 'ckpt cfg FILE optim.lr=1e-5': cfg reads; edit sets.
    const size_t eq = a.key.find('=');
    if (eq != std::string::npos)
      return UsageError(where + ": config key '" + a.key + "' not found: cfg prints a key's value; to set it, 'ckpt edit " +
                        file + " -o OUT " + a.key + "' (or " + option_set("in_place") + ")");
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

omegaconf::Value config_tree(const Opened& opened, const std::string& path) {
  return audiocraft::config_tree_at(opened.ck->root(), path);
}

std::string config_yaml(const Opened& opened, const std::string& path) {
  return omegaconf::to_yaml(config_tree(opened, path));
}

ConfigResult cfg(Env& env, const std::string& file, const ConfigOptions& a) {
  omegaconf::Value v = selected(env, file, a);
  ConfigResult r;
  r.text = a.key.empty() || v.is_container() ? omegaconf::to_yaml(v) : omegaconf::scalar_text(v) + "\n";
  r.value = json_of(v);
  return r;
}

std::string config_text(Env& env, const std::string& file, const ConfigOptions& options) {
  return cfg(env, file, options).text;
}

omegaconf::Value config_value(Env& env, const std::string& file, const ConfigOptions& a) {
  return selected(env, file, a);
}

std::vector<std::string> config_keys(Env& env, const std::string& file) {
  Opened o = open_checkpoint(env, file);
  return keys_of(audiocraft::config_tree(o.ck->root()));
}

}  // namespace ckpt::api
