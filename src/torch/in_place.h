// In-place updates of a checkpoint whose tensor bytes do not change (config
// edits, key drops and renames): only a new data.pkl and a new central
// directory are appended, so the cost is O(metadata) whatever the file size,
// and at every instant the file is the complete old or the complete new
// checkpoint. The design and its crash argument are in in_place.cc.
#pragma once
#include <cstdint>
#include <string>

#include "torch/checkpoint.h"

namespace ckpt::torch {

struct InPlaceOptions {
  // Reclaim dead bytes (old data.pkl copies, old central directories,
  // dropped tensors) with a full streaming rewrite instead of appending.
  bool compact = false;
  // As for save(); transforms (storage bytes change) force a full rewrite.
  SaveOptions save;
};

struct InPlaceResult {
  bool appended = false;  // false: the file was rewritten in full
  std::string reason;     // why a full rewrite was needed (empty when appended)
  uint64_t bytes_written = 0;
};

// Writes `root` (a node of ck's graph, possibly edited) over ck's own file.
// Appends when it can: storage keys are kept (not renumbered, so they keep
// naming the existing records), storages no longer referenced are left out
// of the new central directory. Otherwise (legacy input, storage bytes that
// change, an archive not laid out as torch writes it) it falls back to a
// full atomic rewrite, as save() with force. Either way ck must not be used
// to read storage bytes afterwards: reopen the file.
InPlaceResult update_in_place(Checkpoint& ck, const pickle::Node* root, Env& env,
                              const InPlaceOptions& options = {});

}  // namespace ckpt::torch
