// Writes protocol 2 exactly as CPython's pickle.Pickler does for the
// equivalent Python objects (as torch.save uses it): memo numbering,
// batches of 1000, a lone item as SETITEM / APPEND, LONG_BINPUT past 255,
// BINFLOAT, LONG1. Only opcodes that torch's weights_only unpickler accepts
// (except LONG4 for ints over 255 bytes, and POP / POP_MARK, which CPython
// writes only for an object reached again while its constructor arguments
// are being written).
//
// Nodes read from protocol 3+ pickles are written as protocol 2 spells them:
// Bytes as _codecs.encode(latin-1 text, 'latin1') (or bytes()), ByteArray as
// bytearray(bytes), Set / FrozenSet as set(list) / frozenset(list), a dotted
// global as getattr(parent, name), NEWOBJ_EX as
// functools.partial(object.__new__, cls, *args, **kwargs)() (assumes the class
// does not define __new__), and global names through CPython's fix_imports
// table (builtins -> __builtin__, ...), which leaves Python 2 names unchanged
// except module 'dbm'. Iterative. Throws FormatError for a graph Python could
// not pickle either (a cycle through tuples / constructor arguments only, a
// non-ASCII global name).
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
