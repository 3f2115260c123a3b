// The operations AudioCraft users do by hand with torch and OmegaConf, done
// on the pickle graph: config overrides, state-dict key surgery, export,
// wrap, the compression pointer, and the weights_only sanitizer. Each builds
// or edits nodes of the checkpoint's own graph; torch::save writes the result.
#pragma once
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "audiocraft/layout.h"
#include "omegaconf/override.h"
#include "omegaconf/value.h"
#include "pickle/value.h"

namespace ckpt::audiocraft {

// The AudioCraft version written when the input names none (README).
inline constexpr const char* kDefaultVersion = "1.4.0a2";

// xp.cfg as a plain tree, whether it is a pickled DictConfig or a YAML
// string. Throws UsageError when the checkpoint has no xp.cfg.
omegaconf::Value config_tree(const pickle::Node* root);
// The same for the config at a '/'-separated PATH of the object tree (e.g.
// "0/cfg" in a MultiBandDiffusion file); PATH "" is xp.cfg.
omegaconf::Value config_tree_at(pickle::Node* root, const std::string& path);
// OmegaConf.to_yaml(xp.cfg).
std::string config_yaml(const pickle::Node* root);

// Applies Hydra overrides to xp.cfg in order: on a DictConfig graph in place,
// on a YAML string by re-emitting it as to_yaml would.
void apply_overrides(pickle::Graph& g, pickle::Node* root, const std::vector<omegaconf::Override>& overrides);

struct KeySurgery {
  std::vector<std::string> keep, drop;                      // fnmatch globs
  std::vector<std::pair<std::string, std::string>> renames;  // Python re.sub pattern, replacement
  bool strict = false;  // a glob or regex that matches nothing is an error
  bool empty() const { return keep.empty() && drop.empty() && renames.empty(); }
};

// A --rename in Python's re.sub syntax turned into what std::regex runs:
// the pattern with (?P<name>...) groups made plain, the replacement with
// \1, \g<1>, \g<name> as $NN and '$' literal. Throws UsageError (naming
// `flag`) for a reference to a group the pattern lacks, for '$1', '${x}' or
// '$&' (ECMAScript/sed syntax: the hint says \1), and for an invalid regex.
struct CompiledRename {
  std::string pattern, replacement;  // std::regex ECMAScript pattern and format
  size_t groups = 0;
};
CompiledRename compile_python_rename(const std::string& pattern, const std::string& replacement,
                                     const char* flag = "--rename");

struct SurgeryReport {
  size_t before = 0, dropped = 0, renamed = 0;
  std::vector<std::string> dropped_keys;                           // in file order
  std::vector<std::pair<std::string, std::string>> renamed_keys;  // old, new
};

// --keep, then --drop, then --rename on one state dict (a mapping); its
// _metadata is left as it is. `where` names the state in messages.
SurgeryReport apply_surgery(pickle::Graph& g, pickle::Node* state_dict, const KeySurgery& s,
                            const std::string& where);

// export_lm / export_encodec: {best_state, xp.cfg (YAML), version, exported}.
pickle::Node* make_export(pickle::Graph& g, pickle::Node* root, Layout layout,
                          const std::optional<std::string>& version);

// The training layout around an exported checkpoint:
// {best_state: {model: sd}, fsdp_best_state: {}, xp.cfg: OmegaConf.create(yaml)}.
pickle::Node* make_wrap(pickle::Graph& g, pickle::Node* root, Layout layout);

// The compression model a language model's config names in
// compression_model_checkpoint, read as AudioCraft's
// CompressionSolver.model_from_checkpoint does: "//pretrained/NAME" is the
// pretrained NAME (what export_pretrained_compression_model takes), anything
// else a checkpoint path. Throws UsageError (asking for --compression) when
// the config has no such key or names one through AudioCraft's environment
// ("//sig/SIG", "//reference/...").
struct CompressionSource {
  bool pretrained = false;
  std::string name_or_path;
  std::string configured;  // the config's text, for messages
};
CompressionSource compression_from_config(const pickle::Node* root);

// {pretrained: name, exported: True, version: v}.
pickle::Node* make_pointer(pickle::Graph& g, const std::string& name, const std::string& version);

struct Sanitized {
  pickle::Node* root = nullptr;
  std::vector<std::string> refused;  // "module.name (at path)" for globals torch would refuse
};

// xp.cfg (DictConfig) becomes its YAML text, defaultdicts become dicts; any
// other global outside torch's weights_only allowlist is reported.
Sanitized make_sanitized(pickle::Graph& g, pickle::Node* root);

// What an AudioCraft solver restores, besides the weights, when it resumes
// from a training checkpoint (StandardSolver.load_checkpoints on the XP's own
// checkpoint.th; flashy's StateManager loads every key the file has): the
// optimizer's moments and step, the scheduler's position, the EMA weights, the
// GradScaler and the history, whose length is the epoch. From continue_from
// (a foreign checkpoint) AudioCraft takes only best_state/fsdp_best_state.
inline constexpr const char* kTrainingStateKeys[] = {"optimizer", "lr_scheduler", "ema", "scaler", "history"};

// The kTrainingStateKeys present at the root of a training checkpoint, in
// file order ("history (12 epochs)" for the history).
std::vector<std::string> training_state_present(const pickle::Node* root);
// Removes them (edit --for-finetune); returns the keys removed, in file order.
std::vector<std::string> strip_training_state(pickle::Node* root);

// The version string of the input, if it has one.
std::optional<std::string> version_of(const pickle::Node* root);

}  // namespace ckpt::audiocraft
