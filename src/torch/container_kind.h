// Which reader torch.load uses for a file, decided as torch decides it:
// the zip reader when the first four bytes are a zip local header; else the
// tar reader (torch < 0.4's form) when the first 512 bytes are a header that
// Python's tarfile accepts; else a stream of pickles, the legacy format
// when its first pickle is torch's magic number (any pickle protocol, any
// encoding of the number). `scan` and the loaders share this one decision.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

#include "util/env.h"

namespace ckpt::torch {

enum class ContainerKind {
  Zip,     // torch >= 1.6 (torch.save's default)
  Tar,     // torch < 0.4: members 'storages', 'tensors', 'pickle'
  Legacy,  // torch < 1.6: magic, protocol, sys_info, object, storage keys, storages
  Pickle,  // anything else: torch.load unpickles its first pickle (then refuses it)
};
const char* to_string(ContainerKind k);

struct ContainerGuess {
  ContainerKind kind = ContainerKind::Pickle;
  // Legacy: bytes of the magic pickle.
  size_t magic_size = 0;
};

// Reads at most the first 4096 bytes: a magic pickle padded beyond that is
// taken for a bare pickle here (scan checks the whole first pickle again).
ContainerGuess detect_container(RandomAccessFile& f);

// True when `block` (512 bytes) has a checksum field Python's tarfile would
// accept (unsigned or signed sum, the field counted as spaces). Loose on the
// number's spelling so that ckpt never misses a header tarfile takes.
bool tar_checksum_matches(std::string_view block);

// When `data` starts with a pickle whose value is torch's legacy magic number
// 0x1950a86a20f9469cfc6c, the bytes it takes; 0 otherwise.
size_t legacy_magic_pickle_size(std::string_view data);

}  // namespace ckpt::torch
