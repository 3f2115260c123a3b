// AudioCraft's checkpoint layouts and the rule for "the best state".
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pickle/value.h"

namespace ckpt::audiocraft {

enum class Layout {
  Training, Exported, ExportedPointer, StateDict,
  FsdpShard,           // checkpoint.th.N: rank N's part of an FSDP run (set from the file name)
  MultiBandDiffusion,  // {sample_rate, n_bands, 0: {cfg, model_state, processor_state}, ...}
  AudioSeal,           // {'model': state dict}, the config in a separate YAML file
  Lightning,           // a Lightning Trainer checkpoint: state_dict, epoch, global_step, ...
  Module,              // a whole pickled torch.nn.Module (torch.save(model))
  TorchScript,         // a torch.jit.save archive (set by api::open_checkpoint: code/ records)
  Other
};
const char* to_string(Layout l);  // "audiocraft-training", ...

struct TensorTest {
  // Whether a node is a tensor (the torch layer knows); lets this header stay
  // independent of how tensors are recognised.
  virtual bool is_tensor(const pickle::Node* n) const = 0;
  virtual ~TensorTest() = default;
};

Layout detect_layout(const pickle::Node* root, const TensorTest& tensors);

// N when the file name ends in ".th.N", as AudioCraft names the checkpoint
// of FSDP rank N > 0 (checkpoint_name(..., rank=N)).
std::optional<int> fsdp_rank_of(std::string_view file_name);
// The file rank 0 of the same FSDP run writes: the name without ".N"; it holds
// the full state in fsdp_best_state.
std::string fsdp_rank0_file(std::string_view file_name);

// One line on what the file is beyond its layout: the solver its xp.cfg
// names (musicgen, audiogen, magnet, jasco, compression, diffusion, ...), the
// bands of a MultiBandDiffusion file, where an FSDP shard's full state is.
// "" when there is nothing to add.
std::string describe_kind(const pickle::Node* root, Layout layout, std::string_view file_name);

// The path of the best state: "fsdp_best_state/model" when that is a
// non-empty mapping, else "best_state/model" (training); "best_state"
// (exported); "" (a plain state dict, or a pickled nn.Module, is the root);
// "state_dict" (Lightning). nullopt when there is none.
std::optional<std::string> best_state_path(const pickle::Node* root, Layout layout);

// The children a path steps into, named as `ls` prints them (the one path
// language of every command): a mapping's entries (keys as key_text), the
// items of a list / tuple / set by index, a DictConfig's or ListConfig's
// content, a pickled object's attributes (its BUILD state's entries: an
// nn.Module's `_modules`, an argparse.Namespace's fields) and then its
// APPENDed items by index. OmegaConf value nodes and other leaves have none.
std::vector<std::pair<std::string, pickle::Node*>> path_children(const pickle::Node* n);

// Resolves a '/'-separated path of path_children names. nullptr if absent.
pickle::Node* resolve_path(pickle::Node* root, std::string_view path);

// Splits "a/b/3" into its elements ("" gives none).
std::vector<std::string> split_path(std::string_view path);

}  // namespace ckpt::audiocraft
