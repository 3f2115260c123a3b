// OmegaConf.select with interpolations resolved, on a plain config tree.
// Node interpolations are resolved as OmegaConf 2.1-2.3 does: absolute
// ${a.b} / ${a[0]}, relative ${.x} (a sibling) and ${..x} (one level up),
// string interpolation "lr=${optim.lr}", nested ${a.${b}}, and the escape
// \${...}. Resolver calls (${oc.env:HOME}, ${oc.decode:...}, any ${name:...})
// are never evaluated: ckpt reads a file, it does not look at the environment
// or run code; selecting such a value is an error that says so.
#pragma once
#include <optional>
#include <string>
#include <string_view>

#include "omegaconf/value.h"

namespace ckpt::omegaconf {

// The value at `key` (empty: the whole tree) with the interpolations on the
// way and in the value itself resolved (a dict or list comes back as it is
// stored, unresolved inside, as OmegaConf.select returns a node). nullopt when
// the key is absent. Throws UsageError naming the key on an interpolation
// that cannot be resolved, a resolver call, a missing value ('???') or a cycle.
std::optional<Value> select_resolved(const Value& tree, std::string_view key);

// How `ckpt cfg FILE KEY` prints a scalar: a string bare (as Python's print),
// anything else as OmegaConf.to_yaml writes it in a config (1.0e-05, true,
// null, .nan), without YAML's document end marker.
std::string scalar_text(const Value& v);

}  // namespace ckpt::omegaconf
