#pragma once

#include <cstddef>

namespace ckpt {

// For a process that runs one short command and exits (the CLI): grows the
// heap once by `bytes` now, keeps it (free no longer trims it below that),
// and asks for transparent huge pages on its 2 MiB-aligned part. A
// checkpoint's object graph (~1.5 MiB of nodes for a 10,000-node data.pkl)
// then lands in memory that faults in a 2 MiB page at a time rather than
// 4 KiB, one page fault where there were ~300 (each ~0.8 us on a VM). Pages
// never touched cost nothing; where the kernel has no huge page to give, or
// under a sanitizer's allocator, it changes nothing but the trim threshold.
// Call it once, right before the allocations it is meant for (Graph's
// before_large_graph does). Not for a library's host process (the Python
// module): it changes malloc's settings process-wide.
void reserve_heap_for_short_process(size_t bytes);

}  // namespace ckpt
