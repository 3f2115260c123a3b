#include "util/process_heap.h"

#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>

namespace ckpt {

void reserve_heap_for_short_process(size_t bytes) {
  constexpr uintptr_t kHugePage = uintptr_t{2} << 20;
  // Allocations up to twice `bytes` come from the heap (brk), not mmap; a
  // free no longer returns the heap's top to the kernel while it is under
  // twice that (at most that much more resident memory than glibc's default
  // would keep).
  mallopt(M_MMAP_THRESHOLD, static_cast<int>(2 * bytes));
  mallopt(M_TRIM_THRESHOLD, static_cast<int>(2 * bytes));
  constexpr uintptr_t kPage = 4096;
  auto brk_now = [] { return reinterpret_cast<uintptr_t>(sbrk(0)); };
  // A 2 MiB range gets a huge page only if nothing in it was touched before
  // the advice. So the break is first moved to one page below a 2 MiB
  // boundary: malloc takes the gap as another program's (a "foreign sbrk")
  // and starts its new top there, writing the top's header in that page,
  // outside the advised ranges. The block of bytes + a page ends past the
  // last whole range, where malloc writes the header of what remains. The
  // gap is address space only, never touched.
  uintptr_t before = brk_now();
  uintptr_t boundary = (before + kPage + kHugePage - 1) & ~(kHugePage - 1);
  if (sbrk(static_cast<intptr_t>(boundary - kPage - before)) == reinterpret_cast<void*>(-1)) return;
  // volatile: a malloc and free of an unused block may otherwise be elided.
  void* volatile block = std::malloc(bytes + kPage);
  std::free(block);
  uintptr_t after = brk_now();
  if (after > boundary)  // advice only: an error leaves small pages, as before
    madvise(reinterpret_cast<void*>(boundary), after - boundary, MADV_HUGEPAGE);
}

}  // namespace ckpt
