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
#include "api/schema.h"
#include "api/write.h"
#include "audiocraft/operations.h"

namespace ckpt::api {

struct EditOptions {
  static constexpr const char* kName = "EditOptions";
  static constexpr const char* kDoc = "what edit changes and where it writes";
  OutputOptions output;  // out empty with in_place
  std::vector<std::string> overrides;  // KEY=VALUE, +KEY=VALUE, ++KEY=VALUE, ~KEY
  std::vector<std::string> keep, drop;  // globs
  std::vector<std::string> rename;      // REGEX=REPLACEMENT
  std::vector<std::string> state;       // state dicts edited; default: the best state
  std::string dtype;                    // float16, bfloat16, float32; "": none
  std::vector<std::string> match;       // with dtype: only these tensors
  bool in_place = false, compact = false;
  bool for_finetune = false;  // remove audiocraft::kTrainingStateKeys (a fine-tune starts, not resumes)
  bool dry_run = false;                 // everything but the write (bytes counted)
  bool allow_no_match = false, allow_empty = false;
  template <class V>
  static void describe(V& v) {
    v.flatten(&EditOptions::output);
    v.field("overrides", &EditOptions::overrides,
            "Hydra overrides on xp.cfg: KEY=VALUE, +KEY=VALUE, ++KEY=VALUE, ~KEY (one string or a list)");
    v.field("keep", &EditOptions::keep, "keep only keys matching one of these globs");
    v.field("drop", &EditOptions::drop, "drop keys matching one of these globs");
    v.field("rename", &EditOptions::rename, "REGEX=REPLACEMENT on key names");
    v.field("state", &EditOptions::state, "the state dicts to edit ('/'-separated paths; default: the best state)");
    v.field("dtype", &EditOptions::dtype,
            "convert floating tensors to float16, bfloat16 or float32, bit for bit as torch's .to()");
    v.field("match", &EditOptions::match, "with dtype: only tensors whose names match one of these globs");
    v.field("in_place", &EditOptions::in_place,
            "update FILE in place (appends metadata when tensor bytes are unchanged; crash-safe)");
    v.field("compact", &EditOptions::compact, "with in_place: a full rewrite that reclaims dead bytes");
    v.field("dry_run", &EditOptions::dry_run, "work out the changes and the output's size; write nothing (out may be empty)");
    v.field("for_finetune", &EditOptions::for_finetune,
            "remove what AudioCraft restores besides the weights when it resumes from this file (optimizer, "
            "lr_scheduler, ema, scaler, history: the epoch), so a fine-tune starts at epoch 1");
    v.field("allow_no_match", &EditOptions::allow_no_match, "a keep/drop glob or rename regex may match no key");
    v.field("allow_empty", &EditOptions::allow_empty, "allow an edit that removes every key of a state dict");
  }
};

// What `edit --dtype` converts (see plan_dtype_conversion).
struct DtypePlan {
  static constexpr const char* kName = "DtypePlan";
  static constexpr const char* kDoc = "what a dtype conversion converts";
  std::string dtype;  // the target's name
  std::map<std::string, torch::StorageTransform> transforms;  // by storage key
  uint64_t converted = 0, kept = 0, storages = 0, bytes_before = 0, bytes_after = 0;
  uint64_t also_converted = 0;  // tensors outside the selection on a converted storage
  std::vector<std::string> not_dense;  // "'name' (dtype, form)": floating but not converted
  template <class V>
  static void describe(V& v) {
    v.field("dtype", &DtypePlan::dtype, "the target dtype");
    v.field("converted", &DtypePlan::converted, "tensors converted");
    v.field("kept", &DtypePlan::kept, "tensors left as they are (not floating, or already the target)");
    v.field("storages", &DtypePlan::storages, "storages converted");
    v.field("bytes_before", &DtypePlan::bytes_before, "bytes of the converted storages before");
    v.field("bytes_after", &DtypePlan::bytes_after, "and after");
    v.field("also_converted", &DtypePlan::also_converted,
            "tensors outside the selection converted with a storage they share");
    v.field("not_converted", &DtypePlan::not_dense, "floating tensors left as they are: not dense ('name' (dtype, form))");
  }
};

// The storages to convert so that the floating tensors of `states` (default:
// the best state) whose names match one of `match` (all when empty) become
// `dtype`. Conversion is per storage: a storage also viewed by a tensor
// outside the selection is converted too (a storage has one dtype).
DtypePlan plan_dtype_conversion(const Opened& o, const std::vector<std::string>& states, const std::string& dtype,
                                const std::vector<std::string>& match);

struct KeyRename {
  static constexpr const char* kName = "KeyRename";
  static constexpr const char* kDoc = "a key renamed";
  std::string old_name, new_name;
  template <class V>
  static void describe(V& v) {
    v.field("old", &KeyRename::old_name, "the key before");
    v.field("new", &KeyRename::new_name, "the key after");
  }
};

struct StateEdit {
  static constexpr const char* kName = "StateEdit";
  static constexpr const char* kDoc = "the keys an edit dropped and renamed in one state dict";
  std::string path;  // the state dict's
  uint64_t before = 0;
  std::vector<std::string> dropped;  // in file order
  std::vector<KeyRename> renamed;
  template <class V>
  static void describe(V& v) {
    v.field("path", &StateEdit::path, "the state dict's '/'-separated path");
    v.field("before", &StateEdit::before, "keys before the edit");
    v.field("dropped", &StateEdit::dropped, "keys dropped, in file order");
    v.field("renamed", &StateEdit::renamed, "keys renamed");
  }
};

struct InPlaceUpdate {
  static constexpr const char* kName = "InPlaceUpdate";
  static constexpr const char* kDoc = "how an in-place edit updated the file";
  bool appended = false;  // false: the file was rewritten in full
  std::string reason;     // why a full rewrite was needed (empty when appended)
  uint64_t bytes_written = 0;
  template <class V>
  static void describe(V& v) {
    v.field("appended", &InPlaceUpdate::appended, "metadata appended (else the file was rewritten in full)");
    v.field("reason", &InPlaceUpdate::reason, "why a full rewrite was needed (empty when appended)");
    v.field("bytes_written", &InPlaceUpdate::bytes_written, "bytes appended or rewritten");
  }
};

struct EditResult {
  static constexpr const char* kName = "EditResult";
  static constexpr const char* kDoc = "what an edit changed, and the bytes written";
  std::string out;                          // the file written (FILE for in_place)
  std::vector<std::string> config_changes;  // "key: old -> new", one per change
  bool overrides_given = false;
  std::vector<StateEdit> states;
  std::optional<DtypePlan> dtype;
  uint64_t changes = 0;  // config changes + keys dropped or renamed + storages converted
  // dry_run: the bytes the output would have. Otherwise the bytes of the
  // written file (0 when streamed to a sink).
  uint64_t bytes = 0;
  bool dry_run = false;
  bool output_exists = false;  // dry_run: out exists (the real run needs force)
  std::vector<std::string> training_state_removed;  // for_finetune: the top-level keys removed
  std::optional<InPlaceUpdate> in_place;  // set after an in-place update
  std::string state_note;  // Opened::state_note
  template <class V>
  static void describe(V& v) {
    v.field("out", &EditResult::out, "the file written (FILE itself in place)");
    v.field("config_changes", &EditResult::config_changes, "xp.cfg's changes, 'key: old -> new'");
    v.field("overrides_given", &EditResult::overrides_given, "overrides were given (they may change nothing)");
    v.field("states", &EditResult::states, "per state dict edited: keys dropped and renamed");
    v.field("dtype", &EditResult::dtype, "the dtype conversion, when asked for");
    v.field("changes", &EditResult::changes, "config changes + keys dropped or renamed + storages converted");
    v.field("bytes", &EditResult::bytes, "the output's size (with dry_run: the size it would have)");
    v.field("dry_run", &EditResult::dry_run, "nothing was written");
    v.field("output_exists", &EditResult::output_exists, "with dry_run: the output exists (the real run needs force)");
    v.field("training_state_removed", &EditResult::training_state_removed,
            "with for_finetune: the training-state keys removed");
    v.field("in_place", &EditResult::in_place, "in place: how the file was updated");
    v.field("state_note", &EditResult::state_note, "which state dict was picked, when none was named", Presence::OmitEmpty);
  }
};

// Throws UsageError for an edit that does nothing, a glob that matches no key
// (unless allow_no_match), an edit that empties a state dict (unless
// allow_empty); the input is never changed then.
EditResult edit(Env& env, const std::string& file, const EditOptions& options);

}  // namespace ckpt::api
