#include "api/format.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <random>
#include <string>

// human_bytes prints with std::to_chars; printf's "%.2f" was the definition.
namespace {

std::string printf_human_bytes(uint64_t n) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1000 && u < 4) {
    v /= 1000;
    ++u;
  }
  char buf[64];
  if (u == 0) std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  else std::snprintf(buf, sizeof buf, "%.2f %s", v, units[u]);
  return buf;
}

}  // namespace

TEST(ApiFormat, HumanBytesPrintsAsPrintfDid) {
  EXPECT_EQ(ckpt::api::human_bytes(0), "0 B");
  EXPECT_EQ(ckpt::api::human_bytes(999), "999 B");
  EXPECT_EQ(ckpt::api::human_bytes(1000), "1.00 KB");
  EXPECT_EQ(ckpt::api::human_bytes(1681646325), "1.68 GB");
  EXPECT_EQ(ckpt::api::human_bytes(999995), "1000.00 KB");  // rounds up past the unit, as printf does
  EXPECT_EQ(ckpt::api::human_bytes(UINT64_MAX), printf_human_bytes(UINT64_MAX));
  // Halfway cases (x.xx5) and every size near them, where a rounding that
  // differs from printf's (exact, to nearest even) would show.
  for (uint64_t n = 1000; n < 200000; ++n) ASSERT_EQ(ckpt::api::human_bytes(n), printf_human_bytes(n)) << n;
  std::mt19937_64 rng(25);
  for (int i = 0; i < 200000; ++i) {
    uint64_t n = rng() >> (rng() % 64);
    ASSERT_EQ(ckpt::api::human_bytes(n), printf_human_bytes(n)) << n;
  }
}
