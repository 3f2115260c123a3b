#pragma once

namespace ckpt::cli {
// Parses arguments, runs the command, prints results and errors
// ("ckpt: error: ..."). Returns the exit code: 0 success, 1 a check found
// something, 2 bad usage or bad input.
int main(int argc, char** argv);
}  // namespace ckpt::cli
