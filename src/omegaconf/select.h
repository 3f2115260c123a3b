// OmegaConf.select's key language ("a.b", "a[0].b", "a.0") over a plain
// config tree: what the resolver and the DictConfig editor both walk.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "omegaconf/value.h"

namespace ckpt::omegaconf {

// OmegaConf.select(cfg, key) unresolved, on a plain tree; nullptr if absent.
const Value* select(const Value& tree, std::string_view key);

// Splits an OmegaConf.select key ("a.b", "a[0].b", "a.0"); {} when malformed.
std::vector<std::string> split_select_key(std::string_view key);

// The child of a Map (string key, or an int key with that decimal value) or
// of a Seq (index); nullptr if absent.
const Value* child_of(const Value& v, const std::string& element);

}  // namespace ckpt::omegaconf
