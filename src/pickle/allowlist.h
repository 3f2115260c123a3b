// Which globals a pickle may name and still be loaded without running
// arbitrary code: torch's weights_only allowlist (torch/_weights_only_unpickler.py,
// torch 2.6), and that list plus what AudioCraft checkpoints need.
#pragma once
#include <string_view>

namespace ckpt::pickle {

// Module names as protocol 2 writes them are accepted too ("__builtin__").
bool torch_weights_only_allows(std::string_view module, std::string_view name);

// torch's list plus OmegaConf containers, nodes and metadata, typing.Any,
// collections.defaultdict and the builtins dict, list, int/long, set,
// frozenset: what `ckpt scan` calls safe.
bool audiocraft_allows(std::string_view module, std::string_view name);

// audiocraft_allows plus the dataclasses a torch distributed checkpoint's
// `.metadata` pickle names (torch.distributed.checkpoint reads it with a
// plain pickle.load): allowed in that pickle only.
bool dcp_metadata_allows(std::string_view module, std::string_view name);

}  // namespace ckpt::pickle
