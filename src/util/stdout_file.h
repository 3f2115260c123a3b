// `-o -`: an output written to standard output, for pipes (`ckpt export
// in.th -o - | ssh host 'cat > out.th'`). Written in order, never seeked; a
// terminal is refused (a checkpoint is binary).
#pragma once
#include <memory>

#include "util/env.h"

namespace ckpt {

// Throws UsageError when standard output is a terminal.
std::unique_ptr<WritableFile> open_stdout_output();

}  // namespace ckpt
