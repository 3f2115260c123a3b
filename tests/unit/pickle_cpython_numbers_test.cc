// Issue 19: INT / LONG text read as CPython's _pickle.c reads it (load_int:
// strtol base 0, then PyLong_FromString base 0; load_long: PyLong_FromString
// base 0), and the work limits of the two opcode readers (stack items,
// global name length, hashing a memoised key once, frame ends).
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "pickle/marked_stack.h"
#include "pickle/scan.h"
#include "pickle/text.h"
#include "pickle/unpickler.h"
#include "util/error.h"

#include "fixed_bytes.h"

using namespace ckpt::pickle;
using ckpt::FormatError;
using ckpt_test::u32;
using namespace std::string_literals;

namespace {

// The value as decimal text, "True"/"False" for bools, or "error".
std::string read_int(const std::string& arg, bool long_op) {
  int64_t small = 0;
  std::string big;
  int as_bool = -1;
  if (!parse_int_opcode_text(arg, long_op, small, big, as_bool).empty()) return "error";
  if (as_bool >= 0) return as_bool ? "True" : "False";
  return big.empty() ? std::to_string(small) : long_to_decimal(big);
}

constexpr const char* kMagic = "119547037146038801333356";

TEST(CPythonNumbers, IntOpcode) {
  // Each value below is what pickle.loads(b"I" + arg + b"\n.") returns under CPython 3.11.
  EXPECT_EQ(read_int("42", false), "42");
  EXPECT_EQ(read_int("01", false), "True");
  EXPECT_EQ(read_int("00", false), "False");
  EXPECT_EQ(read_int("+1", false), "True");   // a 2-byte line holding 1
  EXPECT_EQ(read_int(" 1", false), "True");
  EXPECT_EQ(read_int("001", false), "1");     // 3 bytes: an int
  EXPECT_EQ(read_int("017", false), "15");    // strtol's C octal
  EXPECT_EQ(read_int("0x1f", false), "31");
  EXPECT_EQ(read_int("", false), "error");    // load_int: a line shorter than 2 bytes
  EXPECT_EQ(read_int(std::string("12\0zz", 5), false), "12");  // the line ends at a NUL for strtol
  EXPECT_EQ(read_int("1_000", false), "1000");  // strtol stops at '_'; Python's syntax takes it
  EXPECT_EQ(read_int("0x1950a86a20f9469cfc6c", false), kMagic);
  EXPECT_EQ(read_int("119_547_037_146_038_801_333_356", false), kMagic);
  EXPECT_EQ(read_int("0b1", false), "1");
  EXPECT_EQ(read_int("0x_1f", false), "31");
  EXPECT_EQ(read_int("1__0", false), "error");
  EXPECT_EQ(read_int("10_", false), "error");
  EXPECT_EQ(read_int("0" + std::string("31240650420762215171554154"), false), "error");  // Python: leading zero
  EXPECT_EQ(read_int("abc", false), "error");
  EXPECT_EQ(read_int(" ", false), "error");
}

TEST(CPythonNumbers, LongOpcode) {
  EXPECT_EQ(read_int("42L", true), "42");
  EXPECT_EQ(read_int("42", true), "42");
  EXPECT_EQ(read_int("0X1950A86A20F9469CFC6CL", true), kMagic);
  EXPECT_EQ(read_int(std::string(" ") + kMagic + " ", true), kMagic);
  EXPECT_EQ(read_int("017", true), "error");  // no strtol step for LONG
  EXPECT_EQ(read_int("00", true), "0");
  EXPECT_EQ(read_int("", true), "error");
}

TEST(CPythonNumbers, UnpicklerUsesThem) {
  Graph g = unpickle("I0x10\n.");
  ASSERT_TRUE(g.root);
  EXPECT_EQ(g.root->kind, Kind::Int);
  EXPECT_EQ(g.root->integer, 16);
  EXPECT_EQ(unpickle("I+1\n.").root->kind, Kind::Bool);
}

TEST(PickleWorkLimits, StackItemsAreCounted) {
  std::string nones = "\x80\x02" + std::string(kMaxStackItems + 1, 'N') + ".";
  try {
    unpickle(nones);
    FAIL() << "no error";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("stack limit"), std::string::npos) << e.what();
  }
  EXPECT_THROW(scan_globals(nones), FormatError);
  std::string marks = "\x80\x02" + std::string(kMaxStackItems + 1, '(') + ".";
  EXPECT_THROW(scan_globals(marks), FormatError);
}

TEST(PickleWorkLimits, LongGlobalNamesAreRefused) {
  std::string name(kMaxGlobalNameBytes + 1, 'a');
  std::string p = "\x80\x04X" + u32(static_cast<uint32_t>(name.size())) + name + "\x94h\x00h\x00\x93."s;
  for (auto run : {+[](const std::string& d) { unpickle(d); }, +[](const std::string& d) { scan_globals(d); }}) {
    try {
      run(p);
      FAIL() << "no error";
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find("byte limit"), std::string::npos) << e.what();
    }
  }
}

TEST(PickleWorkLimits, AMemoisedHugeKeyIsHashedOnce) {
  std::string key(16 << 20, 'k');
  std::string p = "\x80\x02}q\x00"s;
  for (int i = 0; i < 20; ++i) p += std::string("K") + static_cast<char>(i) + "Ns";
  p += "X" + u32(static_cast<uint32_t>(key.size())) + key + "q\x01Ns"s;
  for (int i = 0; i < 2000; ++i) p += "h\x01Ns"s;
  p += ".";
  auto start = std::chrono::steady_clock::now();
  Graph g = unpickle(p);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(g.root->entries.size(), 21u);
  EXPECT_LT(seconds, 5.0);  // 2000 hashes of 16 MiB took ~12 s before
}

TEST(PickleWorkLimits, FrameEndIsReported) {
  // FRAME of 12 bytes holding "K\x01." and 9 more bytes: the frame ends past STOP.
  std::string p = std::string("\x80\x04\x95", 3) + std::string("\x0c\0\0\0\0\0\0\0", 8) + "K\x01." + std::string(9, 'N');
  size_t end = 0, frame_end = 0;
  scan_globals(p, "p", &end, &frame_end);
  EXPECT_EQ(end, 14u);
  EXPECT_EQ(frame_end, 23u);
}

}  // namespace
