// `cfg`: a checkpoint's config (xp.cfg, or one at an object path) as
// OmegaConf.to_yaml prints it, or one key of it.
#pragma once
#include <string>
#include <vector>

#include "omegaconf/value.h"
#include "util/env.h"

namespace ckpt::api {

struct ConfigOptions {
  std::string path;  // object path of the config ("0/cfg"); "": xp.cfg
  std::string key;   // dotted key; "": the whole config
  bool raw = false;  // the key's value unresolved (${...} as written)
};
// The text to print, ending in a newline: YAML for a container, the bare
// scalar for a scalar. Throws UsageError naming a missing key.
std::string config_text(Env& env, const std::string& file, const ConfigOptions& options);
// The same value as data (cfg --json): the whole config, or KEY's value
// (resolved unless options.raw).
omegaconf::Value config_value(Env& env, const std::string& file, const ConfigOptions& options);

// Every dotted key of xp.cfg's mappings, depth first (for shell completion).
std::vector<std::string> config_keys(Env& env, const std::string& file);

}  // namespace ckpt::api
