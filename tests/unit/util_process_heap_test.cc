// reserve_heap_for_short_process: the heap grows once, its huge-page ranges are
// advised for huge pages, and malloc keeps working over it. Each case runs in
// a child process (a death-test fork): the call changes malloc's settings
// for the whole process.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "util/process_heap.h"

namespace ckpt {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kGlibcMalloc = false;  // ASan's allocator: sbrk and the advice change nothing it uses
#else
constexpr bool kGlibcMalloc = true;
#endif

// The VmFlags of the mapping holding `address`, from /proc/self/smaps.
std::string vm_flags_at(uintptr_t address) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    unsigned long start = 0, end = 0;
    char dash = 0;
    if (std::sscanf(line.c_str(), "%lx%c%lx", &start, &dash, &end) == 3 && dash == '-' &&
        line.find(':') > line.find(' ')) {  // a mapping's first line, not "Key: value"
      inside = start <= address && address < end;
    } else if (inside && line.rfind("VmFlags:", 0) == 0) {
      return line;
    }
  }
  return "";
}

// Many blocks of many sizes, filled, checked, half freed, made again.
bool malloc_still_works() {
  std::vector<unsigned char*> blocks;
  for (size_t i = 0; i < 20'000; ++i) {
    size_t size = 16 + (i * 37) % 3000;
    auto* b = static_cast<unsigned char*>(std::malloc(size));
    if (!b) return false;
    std::memset(b, static_cast<int>(i & 0xff), size);
    blocks.push_back(b);
  }
  for (size_t i = 0; i < blocks.size(); i += 2) std::free(blocks[i]), blocks[i] = nullptr;
  for (size_t i = 0; i < blocks.size(); i += 2) {
    blocks[i] = static_cast<unsigned char*>(std::malloc(64));
    if (!blocks[i]) return false;
    std::memset(blocks[i], static_cast<int>(i & 0xff), 64);
  }
  for (size_t i = 0; i < blocks.size(); ++i) {
    size_t size = i % 2 == 0 ? 64 : 16 + (i * 37) % 3000;
    for (size_t j = 0; j < size; ++j)
      if (blocks[i][j] != (i & 0xff)) return false;
    std::free(blocks[i]);
  }
  return true;
}

void reserve_then_check() {
  auto brk_now = [] { return reinterpret_cast<uintptr_t>(sbrk(0)); };
  uintptr_t before = brk_now();
  reserve_heap_for_short_process(size_t{4} << 20);
  uintptr_t after = brk_now();
  if (kGlibcMalloc) {
    if (after < before + (size_t{4} << 20)) std::exit(3);  // the heap did not grow
    // From the grown top, which starts a page below a 2 MiB boundary: the
    // block's end is past it, in the advised range.
    void* first = std::malloc(100'000);
    uintptr_t last = reinterpret_cast<uintptr_t>(first) + 100'000 - 1;
    if (reinterpret_cast<uintptr_t>(first) < before || last >= after) std::exit(4);
    if (vm_flags_at(last).find(" hg") == std::string::npos) std::exit(5);  // not advised
    std::free(first);
  }
  std::exit(malloc_still_works() ? 0 : 6);
}

TEST(ProcessHeap, GrowsOnceAdvisesHugePagesAndMallocKeepsWorking) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(reserve_then_check(), ::testing::ExitedWithCode(0), "");
}

// The arithmetic with the page size and huge page size as given, not
// assumed 4 KiB and 2 MiB.
TEST(ProcessHeap, PlanSitsOnePageBelowAHugePageBoundaryOfTheGivenSizes) {
  constexpr uint64_t kMiB = uint64_t{1} << 20;
  // 4 KiB pages, 2 MiB huge pages (x86-64).
  auto p = plan_huge_heap(0x5000'0123'4000, 4096, 2 * kMiB, 4 * kMiB);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->boundary % (2 * kMiB), 0u);
  EXPECT_EQ(0x5000'0123'4000 + p->gap, p->boundary - 4096);
  EXPECT_EQ(p->block, 4 * kMiB + 4096);
  // 16 KiB pages, 32 MiB huge pages (arm64): a 16 KiB page below 32 MiB.
  p = plan_huge_heap(0x5000'0123'4000, 16384, 32 * kMiB, 64 * kMiB);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->boundary % (32 * kMiB), 0u);
  EXPECT_EQ(0x5000'0123'4000 + p->gap, p->boundary - 16384);
  EXPECT_EQ(p->block, 64 * kMiB + 16384);
  // A break already a page below a boundary: no gap.
  p = plan_huge_heap(2 * kMiB - 4096, 4096, 2 * kMiB, 2 * kMiB);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->gap, 0u);
  // 64 KiB pages, 512 MiB huge pages: a 4 MiB heap holds no huge page: nothing.
  EXPECT_FALSE(plan_huge_heap(0x5000'0123'0000, 65536, 512 * kMiB, 4 * kMiB));
  // Sizes the arithmetic does not hold for: nothing.
  EXPECT_FALSE(plan_huge_heap(0x1000, 0, 2 * kMiB, 4 * kMiB));
  EXPECT_FALSE(plan_huge_heap(0x1000, 12288, 2 * kMiB, 4 * kMiB));
  EXPECT_FALSE(plan_huge_heap(0x1000, 4096, 3 * kMiB, 4 * kMiB));
  EXPECT_FALSE(plan_huge_heap(0x1000, 2 * kMiB, 2 * kMiB, 4 * kMiB));
  EXPECT_FALSE(plan_huge_heap(~uint64_t{0} - 4096, 4096, 2 * kMiB, 4 * kMiB));  // past the address space
}

}  // namespace
}  // namespace ckpt
