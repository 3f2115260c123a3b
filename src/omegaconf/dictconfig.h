// A view of a pickled OmegaConf DictConfig inside a pickle Graph: read it as
// a plain tree, edit it the way OmegaConf would (setting a value node's _val,
// adding nodes with complete metadata and _parent links, deleting), and
// build a new DictConfig graph from a tree exactly as OmegaConf.create does.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "omegaconf/override.h"
#include "omegaconf/value.h"
#include "pickle/value.h"

namespace ckpt::omegaconf {

// True if n is a DictConfig or ListConfig object.
bool is_config_node(const pickle::Node* n);

// OmegaConf.to_container(cfg, resolve=False, enum_to_str=True).
Value to_value(const pickle::Node* config);

// Builds the graph of OmegaConf.create(v) (v a Map) inside g and returns the
// root DictConfig node; flags {} everywhere, parents linked.
pickle::Node* build_dictconfig(pickle::Graph& g, const Value& v);

// Applies one Hydra override to the DictConfig graph. Struct mode does not
// block + and ++ (Hydra's behaviour). Throws UsageError naming the key on an
// unknown key (Set), an existing key (Add), a missing key (Delete), or a value
// a typed node cannot hold.
void apply_override(pickle::Graph& g, pickle::Node* config, const Override& o);

// The same on a plain tree (for a YAML-string xp.cfg).
void apply_override(Value& tree, const Override& o);

}  // namespace ckpt::omegaconf
