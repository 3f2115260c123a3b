// Writes protocol 2 exactly as CPython's pickle.Pickler does for the
// equivalent Python objects (as torch.save uses it): memo numbering,
// batches of 1000, a lone item as SETITEM / APPEND, LONG_BINPUT past 255,
// BINFLOAT, LONG1. Only opcodes that torch's weights_only unpickler accepts.
#pragma once
#include <functional>
#include <string>

#include "pickle/value.h"

namespace ckpt::pickle {

struct PickleOptions {
  // Called for each PersId node just before its id object is written, in
  // pickling order, once per occurrence; it may modify the id object (torch
  // renumbers storage keys this way).
  std::function<void(Node* persid)> on_persistent_id;
};

std::string pickle(const Node* root, const PickleOptions& options = {});

}  // namespace ckpt::pickle
