// What an edit changed in xp.cfg, for the summary `ckpt edit` prints and for
// `edit --dry-run`: one line per changed leaf, as
//   optim.epochs: 500 -> 'abc'     dataset.train.path: (absent) -> '/data/ft'
#pragma once
#include <string>
#include <vector>

#include "omegaconf/value.h"

namespace ckpt::audiocraft {

struct ConfigChange {
  std::string key;           // dotted; list items as [i]
  std::string before, after;  // Python repr, or "(absent)"
  std::string text() const { return key + ": " + before + " -> " + after; }
};

// Leaf-by-leaf differences between two config trees, in the order of `after`
// (keys only in `before` last). A container that appears or disappears is one
// change; it is not expanded.
std::vector<ConfigChange> config_changes(const omegaconf::Value& before, const omegaconf::Value& after);

// A short Python repr of a config value: None, True, 500, 1e-05, 'abc',
// {2 keys}, [3 items].
std::string value_repr(const omegaconf::Value& v);

}  // namespace ckpt::audiocraft
