// Hydra's command-line override grammar: key=value, +key=value,
// ++key=value, ~key[=value]. Values are parsed as Hydra does: int, float
// (1e-5, inf, nan), bool, null, quoted and unquoted strings, interpolations,
// lists [a,b] and dicts {a: 1}.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "omegaconf/value.h"

namespace ckpt::omegaconf {

struct Override {
  enum class Op { Set, Add, ForceAdd, Delete };
  Op op = Op::Set;
  std::string key;                 // dotted path, e.g. "dataset.train.path"
  std::vector<std::string> path;   // the key split at dots
  std::optional<Value> value;      // absent for "~key"
  std::string text;                // the override as given, for messages
};

// Throws UsageError naming the override on malformed input
// ("override 'optim..lr=1': empty key element").
Override parse_override(std::string_view text);

}  // namespace ckpt::omegaconf
