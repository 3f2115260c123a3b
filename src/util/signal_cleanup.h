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

// Holds SIGINT, SIGTERM and SIGHUP back in this thread while it lives (they
// wait, pending, and arrive when it ends): for steps a signal must not split,
// such as creating a folder whose name is known only once it exists and
// registering it.
class SignalHold {
 public:
  SignalHold();
  ~SignalHold();
  SignalHold(const SignalHold&) = delete;
  SignalHold& operator=(const SignalHold&) = delete;

 private:
  unsigned long long saved_[16];  // the previous mask (a sigset_t)
};

}  // namespace ckpt
