#include "util/signal_cleanup.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

namespace ckpt {
namespace {

constexpr int kSlots = 32;
constexpr size_t kMaxPath = 4096;

// A slot is claimed (compare-exchange 0 -> 1), filled, then published (2).
// The handler unlinks published slots only, so it never reads a half-written
// path; a slot unregistered while the handler runs costs at most one unlink
// of a path that no longer exists.
std::atomic<int> slot_state[kSlots];
char slot_path[kSlots][kMaxPath];

extern "C" void remove_temps_and_exit(int sig) {
  for (int i = 0; i < kSlots; ++i)
    if (slot_state[i].load(std::memory_order_acquire) == 2) ::unlink(slot_path[i]);
  ::_exit(128 + sig);
}

}  // namespace

void install_cleanup_signal_handlers() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = remove_temps_and_exit;
  sigfillset(&sa.sa_mask);  // one handler at a time
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction old;
    // A signal the parent set to be ignored (nohup, a background job) stays ignored.
    if (::sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) continue;
    ::sigaction(sig, &sa, nullptr);
  }
}

int register_temp(const std::string& path) {
  if (path.size() >= kMaxPath) return -1;
  for (int i = 0; i < kSlots; ++i) {
    int expected = 0;
    if (!slot_state[i].compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) continue;
    std::memcpy(slot_path[i], path.c_str(), path.size() + 1);
    slot_state[i].store(2, std::memory_order_release);
    return i;
  }
  return -1;
}

void unregister_temp(int slot) {
  if (slot >= 0 && slot < kSlots) slot_state[slot].store(0, std::memory_order_release);
}

}  // namespace ckpt
