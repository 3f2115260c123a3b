// Reading a checkpoint from a stream: standard input ("-"), a pipe, a
// process substitution. Checkpoints are read at random offsets, so a stream
// is first copied (1 MiB at a time) into an unnamed temporary file in
// $TMPDIR (default /tmp), which the kernel deletes when ckpt exits, however
// it exits. Disk use is the stream's size; memory stays bounded.
#pragma once
#include <string>

namespace ckpt {

// `path` unchanged when it names a regular file (or does not exist: the
// caller reports that); otherwise the path of a spooled copy of the stream
// (/proc/self/fd/N). Throws UsageError for "-" on a terminal, IoError when
// the copy fails.
std::string spool_if_stream(const std::string& path);

}  // namespace ckpt
