// The opened checkpoint most operations start from: the file (a torch zip or
// legacy checkpoint, or a .safetensors file seen as a plain state dict), its
// AudioCraft layout, its best state, and the tensors of its state dicts.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "audiocraft/layout.h"
#include "torch/checkpoint.h"
#include "util/env.h"
#include "util/error.h"

namespace ckpt::api {

// Progress of a long write, for the options of writing operations: the
// output being written, bytes done and the total. Called often: it should
// only record or redraw. It may throw to cancel the write (an interrupt):
// the exception propagates and the output's temporary file is removed.
using ProgressFn = std::function<void(const std::string& output, uint64_t done, uint64_t total)>;

// Binds a ProgressFn to one output, as torch's write options take it.
std::function<void(uint64_t, uint64_t)> progress_for(const ProgressFn& progress, const std::string& output);

// One tensor value of a state dict. `node` and `info` point into the
// checkpoint they came from: valid while its Opened lives.
struct TensorRow {
  std::string name;
  const pickle::Node* node;
  torch::TensorInfo info;
};

struct Opened {
  std::unique_ptr<torch::Checkpoint> ck;
  audiocraft::Layout layout;
  std::optional<std::string> best_state;  // '/'-separated path; "" is the root
  // Why best_state is the state dict used when no --state is given, when it
  // is not AudioCraft's best state nor a file that is a state dict itself:
  // "Lightning's state_dict", "the pickled nn.Module's state_dict()",
  // "'model_state_dict'", "the only state dict in the file". Commands say it
  // on stderr.
  std::string state_source;
  // Without a best state: every state dict found (their paths), for the
  // error asking for --state.
  std::vector<std::string> state_candidates;
  bool safetensors = false;  // a .safetensors file, seen as a plain state dict
  uint64_t file_size = 0;

  // The state dict at path ("" or "/": the root); throws UsageError naming
  // the path when it is missing or not a mapping.
  pickle::Node* state_dict(const std::string& path) const;
  // The best state's path; throws UsageError (asking for --state) when the
  // layout has none.
  std::string default_state_path() const;
  // The path a `state` option names: the best state's for nullopt, "" for
  // "/" (the root), else itself.
  std::string state_path_or_best(const std::optional<std::string>& path) const;
  // One row per tensor value of a mapping (or of a pickled nn.Module's
  // state dict), in file order (non-tensors skipped).
  std::vector<TensorRow> tensors_of(const pickle::Node* mapping) const;
  // The state dict a node stands for: a mapping itself, a pickled
  // nn.Module's module.state_dict() (made once, in the checkpoint's graph);
  // nullptr for anything else.
  pickle::Node* mapping_of(const pickle::Node* n) const;
  // State dicts within a few levels of the root: mappings of string keys to
  // tensors and pickled nn.Modules (not under an optimizer, whose per-param
  // states look alike), in file order.
  std::vector<std::string> find_state_dict_paths() const;

  mutable std::vector<std::pair<const pickle::Node*, pickle::Node*>> module_state_dicts;

  // What a command says on stderr when it used the picked state dict
  // (requested empty and state_source set): "using the state dict at
  // 'state_dict' (Lightning's state_dict)"; "" otherwise.
  std::string state_note(const std::optional<std::string>& requested) const;
};

// Opens path ('-': standard input, spooled) through env and finds its layout
// (a rank file `checkpoint.th.N` of the training layout is an FSDP shard).
Opened open_checkpoint(Env& env, const std::string& path);

// What a folder or index path is read as (torch::folder_checkpoint): a
// Hugging Face index or the one checkpoint file a folder holds; "" for a
// file or another folder.
std::string folder_checkpoint(Env& env, const std::string& path);

// Whether a node is a tensor of the checkpoint (a malformed one is not).
class CheckpointTensorTest : public audiocraft::TensorTest {
 public:
  explicit CheckpointTensorTest(const torch::Checkpoint& ck) : ck_(ck) {}
  bool is_tensor(const pickle::Node* n) const override;

 private:
  const torch::Checkpoint& ck_;
};

// The FormatError of a zip record of ck whose bytes fail its CRC-32 (crc,
// computed), with the ways to proceed (ignore_crc): for a writer (the output
// would carry the damage on) or, reading, for a reader of values (stats,
// show: the values would be wrong).
[[noreturn]] void throw_crc_mismatch(const torch::Checkpoint& ck, const container::ZipRecord& rec, uint32_t crc,
                                     bool reading = false);

// The CRC policy of the commands that read tensor values (stats, show):
// unless ignore_crc, while it lives, the readers of ck's storages check the
// CRC-32 of each record they read, over the bytes as they read them
// (torch::ReadCrcCheck), throwing throw_crc_mismatch's error (reading).
class ValueCrcCheck {
 public:
  ValueCrcCheck(torch::Checkpoint& ck, bool ignore_crc);
  ~ValueCrcCheck();
  ValueCrcCheck(const ValueCrcCheck&) = delete;
  ValueCrcCheck& operator=(const ValueCrcCheck&) = delete;

 private:
  torch::Checkpoint& ck_;
  torch::ReadCrcCheck check_;
};

// True when globs is empty or one of them matches name (fnmatch, as Python's).
bool matches_any(const std::vector<std::string>& globs, const std::string& name);

// "; did you mean 'best_state/model'?" for a '/'-separated PATH that does not
// resolve: the closest key where it stops; "" when none is close.
std::string path_hint(pickle::Node* root, const std::string& path);
// Throws UsageError naming `file` when its root has no 'xp.cfg' (what `cfg`
// and config overrides read): its layout, and where to look instead.
void require_config(const Opened& o, const std::string& file);
// For a folder given where a file was expected: "name a checkpoint file in
// it (DIR/a.th, DIR/b.pt)", from the names with a checkpoint's extension.
std::string checkpoint_files_hint(Env& env, const std::string& dir);
// The error for a folder opened as a file (EISDIR): "DIR is a folder: " and
// checkpoint_files_hint.
IoError folder_given_error(Env& env, const std::string& dir);

}  // namespace ckpt::api
