#include "omegaconf/yaml.h"

#include <gtest/gtest.h>

#include <cmath>

#include "data/omegaconf/golden.h"
#include "util/error.h"

using namespace ckpt::omegaconf;
using namespace ckpt::omegaconf::testing;

TEST(OmegaconfYaml, EmitMatchesOmegaConfToYaml) {
  int n = 0;
  for (const auto& row : read_golden("yaml_golden.txt")) {
    if (row[0] != "emit" && row[0] != "scalar") continue;
    ++n;
    Value tree = decode_tree(row[2]);
    std::string want = unhex(row[3]);
    EXPECT_EQ(to_yaml(tree), want) << row[1];
    if (row[0] == "emit" && row[4] == "1") {
      Value back;
      // libyaml's parser rejects "\uD800"-style escapes of lone surrogates,
      // which PyYAML reads back; a known difference.
      if (want.find("\\uD8") != std::string::npos) {
        EXPECT_THROW(parse_yaml(want), ckpt::FormatError);
        continue;
      }
      try {
        back = parse_yaml(want);
      } catch (const ckpt::FormatError& e) {
        ADD_FAILURE() << row[1] << ": " << e.what();
        continue;
      }
      EXPECT_TRUE(back == tree) << row[1] << "\n" << want << "\n---\n" << to_yaml(back);
    }
  }
  EXPECT_GT(n, 300);
}

TEST(OmegaconfYaml, ParseMatchesOmegaConfCreate) {
  int n = 0;
  for (const auto& row : read_golden("yaml_golden.txt")) {
    if (row[0] != "parse") continue;
    ++n;
    Value got;
    ASSERT_NO_THROW(got = parse_yaml(unhex(row[2]))) << row[1];
    Value want = decode_tree(row[3]);
    EXPECT_TRUE(got == want) << row[1] << "\n" << to_yaml(got) << "---\n" << to_yaml(want);
    EXPECT_EQ(to_yaml(got), unhex(row[4])) << row[1];
  }
  EXPECT_GT(n, 15);
}

TEST(OmegaconfYaml, ParseErrorsWhereOmegaConfFails) {
  for (const auto& row : read_golden("yaml_golden.txt")) {
    if (row[0] != "error") continue;
    EXPECT_THROW(parse_yaml(unhex(row[2])), ckpt::FormatError) << row[1];
  }
}

TEST(OmegaconfYaml, ErrorMessagesNameLineAndColumn) {
  try {
    parse_yaml("a: 1\nb:\n  c: 1\n  c: 2\n");
    FAIL();
  } catch (const ckpt::FormatError& e) {
    EXPECT_EQ(std::string(e.what()), "yaml: line 4, column 3: found duplicate key c");
  }
}

TEST(OmegaconfYaml, BillionLaughsIsCapped) {
  std::string text = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  std::string prev = "a";
  for (int i = 0; i < 9; ++i) {
    std::string name = "l" + std::to_string(i);
    text += name + ": &" + name + " [";
    for (int k = 0; k < 10; ++k) text += (k ? ", *" : "*") + prev;
    text += "]\n";
    prev = name;
  }
  EXPECT_THROW(parse_yaml(text), ckpt::FormatError);
}

TEST(OmegaconfYaml, DepthIsCapped) {
  std::string deep(100000, '[');
  EXPECT_THROW(parse_yaml("a: " + deep), ckpt::FormatError);
}

TEST(OmegaconfYaml, ResolvePlainScalar) {
  EXPECT_TRUE(resolve_plain_scalar("1e-5") == Value::of_float(1e-5));
  EXPECT_TRUE(resolve_plain_scalar("0x1F") == Value::of_int(31));
  EXPECT_TRUE(resolve_plain_scalar("1_000") == Value::of_int(1000));
  EXPECT_TRUE(resolve_plain_scalar("1:30") == Value::of_int(90));
  EXPECT_TRUE(resolve_plain_scalar("017") == Value::of_int(15));
  EXPECT_TRUE(resolve_plain_scalar("0b101") == Value::of_int(5));
  EXPECT_TRUE(resolve_plain_scalar("yes") == Value::of_bool(true));
  EXPECT_TRUE(resolve_plain_scalar("~") == Value::null());
  EXPECT_TRUE(resolve_plain_scalar("") == Value::null());
  EXPECT_TRUE(resolve_plain_scalar("2023-01-01") == Value::of_str("2023-01-01"));
  EXPECT_TRUE(resolve_plain_scalar("0o17") == Value::of_str("0o17"));
  EXPECT_TRUE(std::isinf(resolve_plain_scalar("-.inf").real));
  Value big = resolve_plain_scalar("-0x10000000000000000");
  EXPECT_EQ(big.big_int, "-18446744073709551616");
}

TEST(OmegaconfYaml, PythonFloatRepr) {
  using detail::python_float_repr;
  EXPECT_EQ(python_float_repr(1e-5), "1e-05");
  EXPECT_EQ(python_float_repr(1e-4), "0.0001");
  EXPECT_EQ(python_float_repr(1e16), "1e+16");
  EXPECT_EQ(python_float_repr(1234567890123456.0), "1234567890123456.0");
  EXPECT_EQ(python_float_repr(0.1), "0.1");
  EXPECT_EQ(python_float_repr(-0.0), "-0.0");
  EXPECT_EQ(python_float_repr(1.0 / 3), "0.3333333333333333");
  EXPECT_EQ(python_float_repr(5e-324), "5e-324");
  EXPECT_EQ(python_float_repr(1.5e300), "1.5e+300");
}
