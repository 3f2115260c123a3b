#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

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
// The page size is sysconf(_SC_PAGESIZE)'s and the huge page's the kernel's
// (hpage_pmd_size); where they do not fit plan_huge_heap's arithmetic, only
// the malloc thresholds change.
void reserve_heap_for_short_process(size_t bytes);

// The arithmetic behind it, apart for tests: with the break at brk, pages
// of `page` bytes and huge pages of `huge` (powers of two, huge > page),
// move the break by `gap` to one page below `boundary` (a huge-page
// boundary), then malloc and free `block` bytes; nullopt (change nothing)
// for other sizes, or when `bytes` cannot cover one whole huge page.
struct HeapPlan {
  uint64_t gap = 0, boundary = 0, block = 0;
};
std::optional<HeapPlan> plan_huge_heap(uint64_t brk, uint64_t page, uint64_t huge, uint64_t bytes);

}  // namespace ckpt
