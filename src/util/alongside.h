// Two jobs at once: a second thread runs `side` while this one runs `main`.
// Writers use it to check what they copied (CRC-32s of the source) while
// the output's fsync waits on the disk, so the check costs no wall time.
#pragma once
#include <functional>

namespace ckpt {

// Runs main here and side (when set) on a second thread, waits for both,
// then rethrows main's exception if it threw, else side's.
void run_alongside(const std::function<void()>& main, const std::function<void()>& side);

}  // namespace ckpt
