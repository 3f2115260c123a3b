#include "util/process_heap.h"

#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace ckpt {

namespace {

bool power_of_two(uint64_t n) { return n != 0 && (n & (n - 1)) == 0; }

// The size of a transparent huge page (a PMD's range): the kernel's figure,
// else what a PMD maps with 8-byte entries (4 KiB pages: 2 MiB; 16 KiB:
// 32 MiB; 64 KiB: 512 MiB). 0 when unknown.
uint64_t huge_page_size(uint64_t page) {
  if (FILE* f = std::fopen("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", "r")) {
    unsigned long long n = 0;
    const bool read = std::fscanf(f, "%llu", &n) == 1;
    std::fclose(f);
    if (read) return n;
  }
  return page / 8 * page;
}

}  // namespace

std::optional<HeapPlan> plan_huge_heap(uint64_t brk, uint64_t page, uint64_t huge, uint64_t bytes) {
  // Sizes this arithmetic does not hold for: leave the heap as it is.
  if (!power_of_two(page) || !power_of_two(huge) || huge <= page) return std::nullopt;
  // Too small to hold one whole huge range past the boundary: no page to gain.
  if (bytes < huge) return std::nullopt;
  const uint64_t boundary = (brk + page + huge - 1) & ~(huge - 1);
  if (boundary < brk) return std::nullopt;  // wrapped
  return HeapPlan{boundary - page - brk, boundary, bytes + page};
}

void reserve_heap_for_short_process(size_t bytes) {
  // Allocations up to twice `bytes` come from the heap (brk), not mmap; a
  // free no longer returns the heap's top to the kernel while it is under
  // twice that (at most that much more resident memory than glibc's default
  // would keep).
  mallopt(M_MMAP_THRESHOLD, static_cast<int>(2 * bytes));
  mallopt(M_TRIM_THRESHOLD, static_cast<int>(2 * bytes));
  const long page_size = sysconf(_SC_PAGESIZE);
  if (page_size <= 0) return;
  const uint64_t page = static_cast<uint64_t>(page_size);
  auto brk_now = [] { return reinterpret_cast<uintptr_t>(sbrk(0)); };
  // A huge range gets a huge page only if nothing in it was touched before
  // the advice. So the break is first moved to one page below a huge-page
  // boundary: malloc takes the gap as another program's (a "foreign sbrk")
  // and starts its new top there, writing the top's header in that page,
  // outside the advised ranges. The block of bytes + a page ends past the
  // last whole range, where malloc writes the header of what remains. The
  // gap is address space only, never touched.
  std::optional<HeapPlan> plan = plan_huge_heap(brk_now(), page, huge_page_size(page), bytes);
  if (!plan) return;
  if (sbrk(static_cast<intptr_t>(plan->gap)) == reinterpret_cast<void*>(-1)) return;
  // volatile: a malloc and free of an unused block may otherwise be elided.
  void* volatile block = std::malloc(plan->block);
  std::free(block);
  uintptr_t after = brk_now();
  if (after > plan->boundary)  // advice only: an error leaves small pages, as before
    madvise(reinterpret_cast<void*>(plan->boundary), after - plan->boundary, MADV_HUGEPAGE);
}

}  // namespace ckpt
