// The helpers every layer shares, one of each: UTF-8, big integers, Python
// number syntax, fnmatch patterns.
#include <gtest/gtest.h>

#include "util/big_uint.h"
#include "util/glob.h"
#include "util/python_number.h"
#include "util/utf8.h"

namespace ckpt {
namespace {

TEST(Utf8, StrictAndSurrogatepass) {
  EXPECT_TRUE(valid_utf8("plain \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(valid_utf8("\xc0\x80"));          // overlong NUL
  EXPECT_FALSE(valid_utf8("\xe0\x80\xaf"));      // overlong '/'
  EXPECT_FALSE(valid_utf8("\xf4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(valid_utf8("\xc3"));              // truncated
  EXPECT_FALSE(valid_utf8("\x80"));              // lone continuation
  EXPECT_FALSE(valid_utf8("\xed\xa0\x80"));      // U+D800: strict refuses
  EXPECT_TRUE(valid_utf8("\xed\xa0\x80", true));  // surrogatepass takes it
}

TEST(Utf8, AppendAndDecodeRoundTrip) {
  std::string s;
  for (uint32_t cp : {0x41u, 0xE9u, 0x20ACu, 0x1F600u}) append_utf8(s, cp);
  EXPECT_EQ(s, "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
  EXPECT_EQ(decode_utf8(s), (std::u32string{0x41, 0xE9, 0x20AC, 0x1F600}));
  // An invalid byte decodes to U+DC00 + byte (surrogateescape), not dropped.
  EXPECT_EQ(decode_utf8("a\xff"), (std::u32string{'a', 0xDCFF}));
}

TEST(BigUint, DecimalBytesAndBases) {
  EXPECT_EQ(BigUint().decimal(), "0");
  EXPECT_EQ(BigUint().le_bytes(), "");
  // 2^64 = 18446744073709551616.
  BigUint two64 = BigUint::from_le_bytes(std::string("\0\0\0\0\0\0\0\0\x01", 9));
  EXPECT_EQ(two64.decimal(), "18446744073709551616");
  EXPECT_EQ(BigUint::from_digits("18446744073709551616", 10).le_bytes(), std::string("\0\0\0\0\0\0\0\0\x01", 9));
  EXPECT_EQ(BigUint::from_digits("ffffffffffffffffff", 16).decimal(), "4722366482869645213695");
  EXPECT_EQ(BigUint::from_digits("777", 8).decimal(), "511");
  EXPECT_EQ(BigUint::from_digits("101", 2).decimal(), "5");
  EXPECT_EQ(BigUint::from_digits("000", 10).decimal(), "0");
  std::string digits(200, '9');
  EXPECT_EQ(BigUint::from_digits(digits, 10).decimal(), digits);
  BigUint n = BigUint::from_digits("999999999", 10);
  n.mul_add(60, 1);
  n.add(BigUint::from_digits("1", 10));
  EXPECT_EQ(n.decimal(), "59999999942");
  EXPECT_EQ(digit_value('f'), 15);
  EXPECT_EQ(digit_value('g'), 99);
}

TEST(PythonNumber, Syntax) {
  EXPECT_TRUE(python_int_accepts(" 1_000 "));
  EXPECT_FALSE(python_int_accepts("1__0"));
  EXPECT_FALSE(python_int_accepts("0x10"));
  EXPECT_TRUE(python_float_accepts("1e5"));
  EXPECT_TRUE(python_float_accepts("-Infinity"));
  EXPECT_TRUE(python_float_accepts(".5"));
  EXPECT_FALSE(python_float_accepts("."));
  // ASCII text is read as it is, other text decoded first: both strip
  // Python's whitespace (U+00A0, U+3000 too) and take only what is between.
  EXPECT_TRUE(python_int_accepts("\xc2\xa0-1_0\xe3\x80\x80"));
  EXPECT_TRUE(python_int_accepts("\t7\n"));
  EXPECT_FALSE(python_int_accepts("1\xc2\xa0" "0"));
  EXPECT_FALSE(python_int_accepts("   "));
  EXPECT_TRUE(python_float_accepts("\xe2\x80\x83+iNf\xc2\x85"));
  EXPECT_TRUE(python_float_accepts(" 1.5E-3 "));
  EXPECT_FALSE(python_float_accepts("1.5e\xc2\xa0"  "3"));
  EXPECT_FALSE(python_float_accepts("inf\xc3\xa9"));
  EXPECT_EQ(python_float_repr(0.1), "0.1");
  EXPECT_EQ(python_float_repr(1e16), "1e+16");
}

TEST(Glob, AsPythonFnmatch) {
  EXPECT_TRUE(glob_match("model.*", "model.layers.0.weight"));  // "*" crosses "."
  EXPECT_TRUE(glob_match("*weight", "a/b/weight"));             // and "/"
  EXPECT_TRUE(glob_match("*", ".hidden"));                      // and a leading dot
  EXPECT_TRUE(glob_match("layer[0-2]", "layer1"));
  EXPECT_FALSE(glob_match("layer[!0-2]", "layer1"));
  EXPECT_TRUE(glob_match("a\\*", "a\\xyz"));  // no escapes: backslash is a character
  EXPECT_FALSE(glob_match("a\\*", "a*"));
  EXPECT_FALSE(glob_match("Model.*", "model.x"));  // case-sensitive
}

// Where libc's fnmatch (the matcher before) and Python's differ, Python's
// meaning: each case's expectation is fnmatch.fnmatchcase's.
TEST(Glob, AsPythonFnmatchWhereLibcDiffers) {
  EXPECT_TRUE(glob_match("[abc", "[abc"));  // an unclosed "[" is a literal
  EXPECT_FALSE(glob_match("[abc", "a"));
  EXPECT_TRUE(glob_match("*[", "x["));
  EXPECT_TRUE(glob_match("[^a]", "^"));  // "^" is no negation
  EXPECT_TRUE(glob_match("[^a]", "a"));
  EXPECT_FALSE(glob_match("[^a]", "b"));
  EXPECT_FALSE(glob_match("[[:alpha:]]", "a"));  // no POSIX classes: "[[:alph" then "]"
  EXPECT_TRUE(glob_match("[[:alpha:]]", ":]"));
  EXPECT_FALSE(glob_match("[[.a.]]", "a"));
  EXPECT_TRUE(glob_match("[a/b]", "/"));  // "/" in a class
  EXPECT_TRUE(glob_match("?", "\xc3\xa9"));  // "?" is one code point (é), not one byte
  EXPECT_TRUE(glob_match("[\xc3\xa9]x", "\xc3\xa9x"));
  EXPECT_FALSE(glob_match("??", "\xc3\xa9"));
  EXPECT_FALSE(glob_match("[z-a]", "z"));  // an empty range
  EXPECT_TRUE(glob_match("[!]", "[!]"));   // unclosed ("!" then "]" open the class): literal
  EXPECT_FALSE(glob_match("[!]", "!"));
  EXPECT_TRUE(glob_match("[]]", "]"));
  EXPECT_TRUE(glob_match("[!]]", "a"));
  EXPECT_TRUE(glob_match("[a-]", "-"));
  EXPECT_TRUE(glob_match("[a-c-e]", "-"));
  EXPECT_FALSE(glob_match("[a-c-e]", "d"));
  EXPECT_TRUE(glob_match("[!a-Z]", "q"));  // "a-Z" removed: "[!]", any character
  EXPECT_TRUE(glob_match("*a*b*c", "xxaxxbxxbxc"));
  EXPECT_FALSE(glob_match("*a*b*c", "xxaxxbxxbxcd"));
}

}  // namespace
}  // namespace ckpt
