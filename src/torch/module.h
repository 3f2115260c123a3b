// A whole pickled torch.nn.Module (torch.save(model)) seen as the state dict
// module.state_dict() returns, without running its code.
#pragma once
#include "pickle/value.h"

namespace ckpt::torch {

// An object whose BUILD state is a mapping with the mappings `_parameters`,
// `_buffers` and `_modules` (what nn.Module.__init__ sets; any subclass,
// torch's or the user's).
bool is_module(const pickle::Node* n);

// A dict node made in g: name -> tensor node, in module.state_dict()'s order
// (torch/nn/modules/module.py): for each module, depth first, its
// `_parameters` that are not None, then its `_buffers` that are not None and
// not in `_non_persistent_buffers_set`, then its `_modules` (not None) with
// "name." prefixes. A module reached twice is listed under both names, as
// torch does. Throws FormatError on a cycle or past 1,000,000 entries.
pickle::Node* module_state_dict(pickle::Graph& g, const pickle::Node* module);

}  // namespace ckpt::torch
