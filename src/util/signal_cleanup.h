// Removing temporaries when the process is interrupted. AtomicOutput
// registers each temporary it creates; a SIGINT, SIGTERM or SIGHUP then
// unlinks every registered path and exits 128 + the signal number, as a shell
// reports a process killed by it. The handler only reads a fixed table of
// paths and calls unlink() and _exit(), both async-signal-safe.
#pragma once
#include <string>

namespace ckpt {

// Installs the handlers (idempotent). The CLI calls it once at start.
void install_cleanup_signal_handlers();

// Registers path for removal on a signal; returns a slot for unregister_temp,
// or -1 when the path is too long or the table is full (the path is then
// simply not cleaned up on a signal).
int register_temp(const std::string& path);
void unregister_temp(int slot);

}  // namespace ckpt
