#include "util/signal_cleanup.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

namespace ckpt {
namespace {

constexpr int kSlots = 32;
constexpr size_t kMaxPath = 4096;

// A slot is claimed (compare-exchange 0 -> 1), filled, then published (2: a
// file, 3: a folder). The handler removes published slots only, so it never
// reads a half-written path; a slot unregistered while the handler runs costs
// at most one removal of a path that no longer exists.
constexpr int kFile = 2, kFolder = 3;
std::atomic<int> slot_state[kSlots];
char slot_path[kSlots][kMaxPath];

// The entries of a folder (files, links as themselves, empty folders), then
// the folder. Passes until one removes nothing: unlinking while reading a
// folder may make the kernel skip an entry.
void remove_folder(const char* path) {
  int fd = ::open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return;
  alignas(8) char buf[8192];
  for (int pass = 0; pass < 16; ++pass) {
    bool removed = false;
    ::lseek(fd, 0, SEEK_SET);
    for (;;) {
      ssize_t n = ::getdents64(fd, buf, sizeof buf);
      if (n <= 0) break;
      for (ssize_t off = 0; off < n;) {
        auto* d = reinterpret_cast<struct dirent64*>(buf + off);
        off += d->d_reclen;
        const char* name = d->d_name;
        if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0))) continue;
        if (::unlinkat(fd, name, 0) == 0 || ::unlinkat(fd, name, AT_REMOVEDIR) == 0) removed = true;
      }
    }
    if (!removed) break;
  }
  ::close(fd);
  ::rmdir(path);
}

extern "C" void remove_temps_and_exit(int sig) {
  for (int i = 0; i < kSlots; ++i)
    if (slot_state[i].load(std::memory_order_acquire) == kFile) ::unlink(slot_path[i]);
  for (int i = 0; i < kSlots; ++i)
    if (slot_state[i].load(std::memory_order_acquire) == kFolder) remove_folder(slot_path[i]);
  ::_exit(128 + sig);
}

int register_slot(const std::string& path, int kind) {
  if (path.size() >= kMaxPath) return -1;
  for (int i = 0; i < kSlots; ++i) {
    int expected = 0;
    if (!slot_state[i].compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) continue;
    std::memcpy(slot_path[i], path.c_str(), path.size() + 1);
    slot_state[i].store(kind, std::memory_order_release);
    return i;
  }
  return -1;
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

int register_temp(const std::string& path) { return register_slot(path, kFile); }

int register_temp_directory(const std::string& path) { return register_slot(path, kFolder); }

SignalHold::SignalHold() {
  static_assert(sizeof(saved_) >= sizeof(sigset_t));
  sigset_t held;
  sigemptyset(&held);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&held, sig);
  ::pthread_sigmask(SIG_BLOCK, &held, reinterpret_cast<sigset_t*>(saved_));
}

SignalHold::~SignalHold() { ::pthread_sigmask(SIG_SETMASK, reinterpret_cast<sigset_t*>(saved_), nullptr); }

void unregister_temp(int slot) {
  if (slot >= 0 && slot < kSlots) slot_state[slot].store(0, std::memory_order_release);
}

}  // namespace ckpt
