// `edit`: Hydra overrides on xp.cfg, key surgery on state dicts and dtype
// conversion, written to a new file or in place. The summary comes back as
// data; nothing is printed.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "api/checkpoint.h"
#include "api/write.h"
#include "audiocraft/operations.h"
#include "torch/in_place.h"

namespace ckpt::api {

struct EditOptions {
  OutputOptions output;  // out empty with in_place
  bool in_place = false, compact = false;
  std::vector<std::string> overrides;       // KEY=VALUE, +KEY=VALUE, ++KEY=VALUE, ~KEY
  std::vector<std::string> keep, drop;      // globs
  std::vector<std::string> renames;         // REGEX=REPLACEMENT
  std::vector<std::string> states;          // state dicts edited; default: the best state
  std::string dtype;                        // float16, bfloat16, float32; "": none
  std::vector<std::string> dtype_match;     // with dtype: only these tensors
  bool for_finetune = false;                // remove audiocraft::kTrainingStateKeys (a fine-tune starts, not resumes)
  bool dry_run = false;                     // everything but the write (bytes counted)
  bool allow_no_match = false, allow_empty = false;
};

// What `edit --dtype` converts (see plan_dtype_conversion).
struct DtypePlan {
  std::string dtype;  // the target's name
  std::map<std::string, torch::StorageTransform> transforms;  // by storage key
  uint64_t converted = 0, kept = 0, bytes_before = 0, bytes_after = 0;
  uint64_t also_converted = 0;  // tensors outside the selection on a converted storage
  std::vector<std::string> not_dense;  // "'name' (dtype, form)": floating but not converted
};

// The storages to convert so that the floating tensors of `states` (default:
// the best state) whose names match one of `match` (all when empty) become
// `dtype`. Conversion is per storage: a storage also viewed by a tensor
// outside the selection is converted too (a storage has one dtype).
DtypePlan plan_dtype_conversion(const Opened& o, const std::vector<std::string>& states, const std::string& dtype,
                                const std::vector<std::string>& match);

struct StateEdit {
  std::string path;  // the state dict's
  audiocraft::SurgeryReport report;
};

struct EditResult {
  std::vector<std::string> config_changes;  // "key: old -> new", one per change
  bool overrides_given = false;
  std::vector<StateEdit> states;
  std::optional<DtypePlan> dtype;
  std::vector<std::string> training_state_removed;  // for_finetune: the top-level keys removed
  size_t changes = 0;  // config changes + keys dropped or renamed + storages converted
  // dry_run: the bytes the output would have. Otherwise the bytes of the
  // written file (0 when streamed to a sink).
  uint64_t bytes = 0;
  bool output_exists = false;  // dry_run: out exists (the real run needs --force)
  std::optional<torch::InPlaceResult> in_place;  // set after an in-place update
  std::string state_note;  // Opened::state_note
};

// Throws UsageError for an edit that does nothing, a glob that matches no key
// (unless allow_no_match), an edit that empties a state dict (unless
// allow_empty); the input is never changed then.
EditResult edit(Env& env, const std::string& file, const EditOptions& options);

}  // namespace ckpt::api
