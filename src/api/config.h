// `cfg`: a checkpoint's config (xp.cfg, or one at an object path) as
// OmegaConf.to_yaml prints it, or one key of it.
#pragma once
#include <string>
#include <vector>

#include "api/checkpoint.h"
#include "api/schema.h"
#include "omegaconf/value.h"
#include "util/env.h"

namespace ckpt::api {

struct ConfigOptions {
  static constexpr const char* kName = "ConfigOptions";
  static constexpr const char* kDoc = "which config, and which key of it";
  std::string key;   // dotted key; "": the whole config
  bool raw = false;  // the key's value unresolved (${...} as written)
  std::string path;  // object path of the config ("0/cfg"); "": xp.cfg
  template <class V>
  static void describe(V& v) {
    v.field("key", &ConfigOptions::key, "dotted key (optim.lr); empty: the whole config");
    v.field("raw", &ConfigOptions::raw, "the key's value unresolved (${...} as written)");
    v.field("path", &ConfigOptions::path, "the config at this object path instead of xp.cfg (0/cfg)");
  }
};
struct ConfigResult {
  static constexpr const char* kName = "ConfigResult";
  static constexpr const char* kDoc = "a config, or one key of it, as YAML text and as plain data";
  std::string text;  // YAML for a container, the bare scalar for a scalar; ends in a newline
  Json value;        // the same as plain data (nan and inf as their YAML text)
  template <class V>
  static void describe(V& v) {
    v.field("text", &ConfigResult::text,
            "as OmegaConf.to_yaml prints it, or a scalar bare, ending in a newline");
    v.field("value", &ConfigResult::value, "the same as plain data: dicts, lists and scalars (what cfg --json prints; nan/inf as their YAML text)");
  }
};
// Throws UsageError naming a missing key.
ConfigResult cfg(Env& env, const std::string& file, const ConfigOptions& options);
// cfg(...).text.
std::string config_text(Env& env, const std::string& file, const ConfigOptions& options);
// The same value as data (cfg --json): the whole config, or KEY's value
// (resolved unless options.raw).
omegaconf::Value config_value(Env& env, const std::string& file, const ConfigOptions& options);

// The config at an object path of an opened checkpoint ("": xp.cfg) as a
// plain tree (what the Python handle's cfg_dict and cfg give).
omegaconf::Value config_tree(const Opened& opened, const std::string& path);

// The same as OmegaConf.to_yaml prints it.
std::string config_yaml(const Opened& opened, const std::string& path);

// Every dotted key of xp.cfg's mappings, depth first (for shell completion).
std::vector<std::string> config_keys(Env& env, const std::string& file);

}  // namespace ckpt::api
