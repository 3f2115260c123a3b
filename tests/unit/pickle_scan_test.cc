// scan_globals' own bookkeeping (scan.cc): the memo's dense and sparse
// indexes, MEMOIZE's numbering, tuples' globals reaching a persistent id,
// decoded strings resolved by STACK_GLOBAL, and which error comes first.
// Each pickle resolves a global only if that bookkeeping is right.
#include <string>

#include <gtest/gtest.h>

#include "pickle/scan.h"
#include "util/error.h"

#include "fixed_bytes.h"

using namespace ckpt::pickle;
using ckpt::FormatError;
using ckpt_test::u32;

namespace {

std::string str(const std::string& s) { return "\x8c" + std::string(1, static_cast<char>(s.size())) + s; }

const std::string P4 = "\x80\x04";
const std::string kZero(1, '\0');  // a memo index byte of 0
const std::string kCallOsSystem = "\x93)R.";  // STACK_GLOBAL, EMPTY_TUPLE, REDUCE, STOP

std::string error_of(const std::string& data) {
  try {
    scan_globals(data, "t.pkl");
  } catch (const FormatError& e) {
    return e.what();
  }
  return {};
}

void expect_os_system_called(const std::string& data) {
  std::vector<GlobalUse> uses = scan_globals(data, "t.pkl");
  ASSERT_EQ(uses.size(), 1u);
  EXPECT_EQ(uses[0].module, "os");
  EXPECT_EQ(uses[0].name, "system");
  EXPECT_TRUE(uses[0].called);
}

TEST(PickleScan, SparseMemoEntryFoundOnceTheDenseMemoSpansIt) {
  // `module` at 1030 (past 2 * 0 entries + the slack: the map), then
  // MEMOIZE 1..1029, which grows the vector past 1030 with that slot unset.
  auto with_sparse = [](const std::string& module) {
    std::string p = P4 + str(module) + "r" + u32(1030) + "0";
    for (int i = 0; i < 1029; ++i) p += "N\x94" "0";
    return p;
  };
  expect_os_system_called(with_sparse("os") + "j" + u32(1030) + str("system") + kCallOsSystem);
  // Redefined there, it moves into the vector and the new value is the one read.
  expect_os_system_called(with_sparse("nt") + str("os") + "r" + u32(1030) + "0" + "j" + u32(1030) + str("system") +
                          kCallOsSystem);
}

TEST(PickleScan, MemoizeNumbersAfterEveryDistinctIndex) {
  // A sparse entry counts: MEMOIZE then uses 1 and 2, not 0 and 1.
  expect_os_system_called(P4 + str("a") + "r" + u32(5000) + "0" + str("os") + "\x94" "0" + str("system") +
                          "\x94" "0" + "h\x01h\x02" + kCallOsSystem);
  // A redefined index adds no entry: "a" at 0 twice, then "os" at 1.
  expect_os_system_called(P4 + str("a") + "\x94" + "q" + kZero + "0" + str("os") + "\x94" "0" + "h\x01" + str("system") +
                          kCallOsSystem);
  EXPECT_NE(error_of(P4 + str("a") + "r" + u32(5000) + "0" + str("os") + "\x94" "0" + "h" + kZero + "."), "");
}

TEST(PickleScan, GlobalsInNestedTuplesReachThePersistentId) {
  // ((a.b, c.d), e.f) as a persistent id: all three are in it; g.h is not.
  std::string p = "\x80\x02" "cg\nh\n" "ca\nb\n" "cc\nd\n" "\x86" "ce\nf\n" "\x86" "Q" "0.";
  std::vector<GlobalUse> uses = scan_globals(p);
  ASSERT_EQ(uses.size(), 4u);
  EXPECT_FALSE(uses[0].in_persistent_id);
  for (size_t i = 1; i < 4; ++i) EXPECT_TRUE(uses[i].in_persistent_id) << uses[i].module;
  // At most 16 per tuple, nested ones included, first come first.
  std::string many = "\x80\x02" "(";
  for (int i = 0; i < 10; ++i) many += "cm\ng" + std::to_string(i) + "\n";
  many += "t";  // 10 globals
  many += "(";
  for (int i = 10; i < 20; ++i) many += "cm\ng" + std::to_string(i) + "\n";
  many += "t";  // 10 more
  many += "\x86" "Q.";  // (first 10, next 10): the first 16 in the id
  uses = scan_globals(many);
  ASSERT_EQ(uses.size(), 20u);
  for (size_t i = 0; i < 20; ++i) EXPECT_EQ(uses[i].in_persistent_id, i < 16) << i;
}

TEST(PickleScan, DecodedStringsResolveStackGlobal) {
  std::string p = "\x80\x04";
  for (int i = 0; i < 300; ++i) p += "Vx" + std::to_string(i) + "\n0";  // decoded and dropped
  expect_os_system_called(p + "S'os'\n" "Vsystem\n" + kCallOsSystem);
  expect_os_system_called(p + "S'os'\np7\n0Vsystem\np8\n0g7\ng8\n" + kCallOsSystem);
}

TEST(PickleScan, ErrorsComeInTheirOrder) {
  EXPECT_NE(error_of("\x80\x02p\n.").find("stack underflow"), std::string::npos);  // the value before the index
  EXPECT_NE(error_of("\x80\x02Np\n.").find("memo index missing"), std::string::npos);
  EXPECT_NE(error_of("\x80\x02Npx\n.").find("memo index is not a number"), std::string::npos);
  EXPECT_NE(error_of("\x80\x04\x94.").find("stack underflow"), std::string::npos);
  EXPECT_NE(error_of("\x80\x02N(N\x86.").find("stack underflow"), std::string::npos);  // TUPLE2 across a mark
  EXPECT_NE(error_of("\x80\x02N(Ns.").find("stack underflow"), std::string::npos);
  EXPECT_NE(error_of("\x80\x02Nt.").find("MARK missing"), std::string::npos);
  EXPECT_NE(error_of("\x80\x02(o.").find("OBJ without a class"), std::string::npos);
  EXPECT_NE(error_of("\x80\x02h\x03.").find("memo index 3 undefined"), std::string::npos);
  EXPECT_NE(error_of("\x80\x02j" + u32(1u << 30) + ".").find("memo index 1073741824 undefined"), std::string::npos);
}

}  // namespace
