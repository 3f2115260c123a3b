// Removing temporaries when the process is interrupted. AtomicOutput
// registers each temporary file it creates, FolderReplace and a consolidated
// DCP input each temporary folder; a SIGINT, SIGTERM or SIGHUP then unlinks
// every registered file, empties and removes every registered folder, and
// exits 128 + the signal number, as a shell reports a process killed by it.
// The handler only reads a fixed table of paths and calls open(),
// getdents64(), unlinkat(), rmdir(), close() and _exit(): system calls, safe
// in a signal handler.
#pragma once
#include <string>

namespace ckpt {

// Installs the handlers (idempotent). The CLI calls it once at start.
void install_cleanup_signal_handlers();

// Registers path for removal on a signal; returns a slot for unregister_temp,
// or -1 when the path is too long or the table is full (the path is then
// simply not cleaned up on a signal).
int register_temp(const std::string& path);
// A temporary folder: on a signal, the files in it (and empty folders) are
// removed, then the folder itself, after every registered file. Its slot is
// released with unregister_temp.
int register_temp_directory(const std::string& path);
void unregister_temp(int slot);

}  // namespace ckpt
