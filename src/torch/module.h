// A whole pickled torch.nn.Module (torch.save(model)) seen as the state dict
// module.state_dict() returns, without running its code.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

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
// torch does. Throws FormatError past 1,000 levels of submodules (a cycle
// included) or 1,000,000 entries.
pickle::Node* module_state_dict(pickle::Graph& g, const pickle::Node* module);

// TorchScript (torch.jit.save): the archive's data.pkl is the module tree as
// `__torch__.<qualname>` objects whose BUILD state holds every attribute;
// which attributes are parameters and buffers is declared in the class's
// compiled source, code/__torch__/<module path>.py:
//   class Linear(Module):
//     __parameters__ = ["weight", "bias", ]
//     __buffers__ = []
struct ScriptClass {
  std::vector<std::string> parameters, buffers;
};
// The class `name` (unqualified) in one code/ source file; nullopt when the
// file does not define it with __parameters__.
std::optional<ScriptClass> parse_script_class(std::string_view source, std::string_view name);

// A script module's state dict, as RecursiveScriptModule.state_dict() names
// it: per module, depth first, its parameters (attribute order), then its
// buffers, then its submodule attributes (objects whose class is a module).
// class_of(module, qualname) gives a class's declaration (nullopt: not a
// module). Throws FormatError on a cycle or past 1,000,000 entries.
using ScriptClassLookup = std::function<std::optional<ScriptClass>(const std::string& module, const std::string& qualname)>;
pickle::Node* script_module_state_dict(pickle::Graph& g, const pickle::Node* root, const ScriptClassLookup& class_of);

}  // namespace ckpt::torch
