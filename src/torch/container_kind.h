// Which reader torch.load uses for a file, decided as torch decides it:
// the zip reader when the first four bytes are a zip local header; else the
// tar reader (torch < 0.4's form) when the first 512 bytes are a header that
// Python's tarfile accepts; else a stream of pickles, the legacy format
// when its first pickle is torch's magic number (any pickle protocol, any
// encoding of the number). `scan` and the loaders share this one decision.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>
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

// A member of a tar archive as Python's tarfile (3.11, Lib/tarfile.py) lists
// it: TarInfo.frombuf's name (the ustar prefix joined whenever it is set and
// the type is not a GNU one, ustar magic or not; an old-style regular file
// whose name ends in '/' is a directory, a directory's trailing slashes
// dropped) and _proc_builtin's data offset.
struct TarMember {
  std::string name;
  char type = '0';
  uint64_t offset = 0, size = 0;  // data
  // tarfile's isreg(): REGTYPE '0', AREGTYPE NUL, CONTTYPE '7', GNU sparse 'S'.
  bool regular() const { return type == '0' || type == '\0' || type == '7' || type == 'S'; }
};

// The members tarfile.open(fileobj=f, mode="r:") and getmembers() find, or
// nullopt when they raise tarfile.TarError, on which torch's _legacy_load
// falls back to reading the file as pickles from offset 0: the first header
// invalid (checksum, or a number field int(s, 8) refuses: mode, uid, gid,
// size, mtime, devmajor, devminor), empty or cut short, or a member's data
// running past the end of the file. A later invalid, all-zero or cut header
// ends the list as tarfile's next() does. PAX and GNU extended headers
// ('x', 'g', 'X', 'L', 'K') and GNU sparse members are not modelled:
// `unmodelled` receives the reason and the list stops there.
std::optional<std::vector<TarMember>> python_tarfile_members(RandomAccessFile& f, std::string* unmodelled = nullptr);

// When `data` starts with a pickle whose value is torch's legacy magic number
// 0x1950a86a20f9469cfc6c, the bytes it takes; 0 otherwise.
size_t legacy_magic_pickle_size(std::string_view data);

}  // namespace ckpt::torch
