// --dialect for commands that write a checkpoint: which torch's zip layout
// (torch/checkpoint.h, docs/dialects.md) the output follows.
#pragma once
#include <string>


namespace CLI {
class App;
}

namespace ckpt::cli {

// Binds --dialect to an options struct's `dialect` (api/write.h: dialect_of).
void add_dialect_option(CLI::App* sub, std::string& target);

}  // namespace ckpt::cli
