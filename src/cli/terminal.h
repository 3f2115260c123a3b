// The width of the terminal the CLI prints tables to.
#pragma once
#include <cstddef>

namespace ckpt::cli {

// COLUMNS when set to a number, else the terminal's width when standard
// output is one, else 0 (no limit: pipes get whole lines).
size_t output_columns();

}  // namespace ckpt::cli
