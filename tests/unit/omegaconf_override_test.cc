#include "omegaconf/override.h"

#include <gtest/gtest.h>

#include <cmath>

#include "util/error.h"

using namespace ckpt::omegaconf;
using Op = Override::Op;

namespace {
Value value_of(const std::string& text) { return *parse_override("k=" + text).value; }
Value list(std::vector<Value> items) {
  Value v = Value::empty_seq();
  v.seq = std::move(items);
  return v;
}
}  // namespace

TEST(OmegaconfOverride, Operators) {
  Override o = parse_override("optim.lr=0.1");
  EXPECT_EQ(o.op, Op::Set);
  EXPECT_EQ(o.key, "optim.lr");
  EXPECT_EQ(o.path, (std::vector<std::string>{"optim", "lr"}));
  EXPECT_TRUE(*o.value == Value::of_float(0.1));
  EXPECT_EQ(parse_override("+a=1").op, Op::Add);
  EXPECT_EQ(parse_override("++a=1").op, Op::ForceAdd);
  Override d = parse_override("~a.b");
  EXPECT_EQ(d.op, Op::Delete);
  EXPECT_FALSE(d.value.has_value());
  Override dv = parse_override("~a.b=3");
  EXPECT_EQ(dv.op, Op::Delete);
  EXPECT_TRUE(*dv.value == Value::of_int(3));
  EXPECT_EQ(parse_override("a.0=1").path, (std::vector<std::string>{"a", "0"}));
}

TEST(OmegaconfOverride, Primitives) {
  EXPECT_TRUE(value_of("null") == Value::null());
  EXPECT_TRUE(value_of("NULL") == Value::null());
  EXPECT_TRUE(value_of("true") == Value::of_bool(true));
  EXPECT_TRUE(value_of("False") == Value::of_bool(false));
  EXPECT_TRUE(value_of("42") == Value::of_int(42));
  EXPECT_TRUE(value_of("-7") == Value::of_int(-7));
  EXPECT_TRUE(value_of("+7") == Value::of_int(7));
  EXPECT_TRUE(value_of("1_000") == Value::of_int(1000));
  EXPECT_EQ(value_of("123456789012345678901234567890").big_int, "123456789012345678901234567890");
  EXPECT_TRUE(value_of("1e-5") == Value::of_float(1e-5));
  EXPECT_TRUE(value_of("1.5") == Value::of_float(1.5));
  EXPECT_TRUE(value_of(".5") == Value::of_float(0.5));
  EXPECT_TRUE(value_of("5.") == Value::of_float(5.0));
  EXPECT_TRUE(value_of("inf") == Value::of_float(INFINITY));
  EXPECT_TRUE(value_of("-inf") == Value::of_float(-INFINITY));
  EXPECT_TRUE(std::isnan(value_of("nan").real));
  EXPECT_TRUE(value_of("") == Value::of_str(""));
  EXPECT_TRUE(value_of("abc") == Value::of_str("abc"));
  EXPECT_TRUE(value_of("007") == Value::of_str("007"));
  EXPECT_TRUE(value_of("0x1F") == Value::of_str("0x1F"));
  EXPECT_TRUE(value_of("1.5abc") == Value::of_str("1.5abc"));
  EXPECT_TRUE(value_of("trueish") == Value::of_str("trueish"));
  EXPECT_TRUE(value_of("Infinity") == Value::of_str("Infinity"));
  EXPECT_TRUE(value_of("  hello world  ") == Value::of_str("hello world"));
  EXPECT_TRUE(value_of("/path/to/file-1.pt") == Value::of_str("/path/to/file-1.pt"));
  EXPECT_TRUE(value_of("2023-01-01") == Value::of_str("2023-01-01"));
  EXPECT_TRUE(value_of("a:b") == Value::of_str("a:b"));
  EXPECT_TRUE(value_of("${optim.lr}") == Value::of_str("${optim.lr}"));
  EXPECT_TRUE(value_of("${oc.env:USER,${x}}/out") == Value::of_str("${oc.env:USER,${x}}/out"));
  EXPECT_TRUE(value_of("'123'") == Value::of_str("123"));
  EXPECT_TRUE(value_of("\"a, b\"") == Value::of_str("a, b"));
  EXPECT_TRUE(value_of("'it\\'s'") == Value::of_str("it's"));
  EXPECT_TRUE(value_of("a\\,b") == Value::of_str("a,b"));
  EXPECT_TRUE(value_of("\\ 5") == Value::of_str(" 5"));
}

TEST(OmegaconfOverride, Containers) {
  EXPECT_TRUE(value_of("[]") == Value::empty_seq());
  EXPECT_TRUE(value_of("{}") == Value::empty_map());
  EXPECT_TRUE(value_of("[1, a, [2, 'x']]") ==
              list({Value::of_int(1), Value::of_str("a"), list({Value::of_int(2), Value::of_str("x")})}));
  Value d = value_of("{a: 1, b: [2], c: {d: null}}");
  ASSERT_EQ(d.type, Value::Type::Map);
  ASSERT_EQ(d.map.size(), 3u);
  EXPECT_TRUE(*d.find("a") == Value::of_int(1));
  EXPECT_TRUE(*d.find("b") == list({Value::of_int(2)}));
  EXPECT_TRUE(*d.find("c")->find("d") == Value::null());
}

TEST(OmegaconfOverride, Malformed) {
  auto msg = [](const std::string& text) {
    try {
      parse_override(text);
    } catch (const ckpt::UsageError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(msg("optim..lr=1"), "override 'optim..lr=1': empty key element");
  EXPECT_EQ(msg("=1"), "override '=1': empty key");
  EXPECT_EQ(msg("+=1"), "override '+=1': empty key");
  EXPECT_EQ(msg(".a=1"), "override '.a=1': empty key element");
  EXPECT_EQ(msg("optim.lr"), "override 'optim.lr': missing '=' (use key=value, +key=value, ++key=value or ~key)");
  EXPECT_NE(msg("optim.lr=[1,2").find("override 'optim.lr=[1,2': missing ']'"), std::string::npos);
  EXPECT_NE(msg("a={b: 1").find("missing '}'"), std::string::npos);
  EXPECT_NE(msg("a=1,2").find("sweeps"), std::string::npos);
  EXPECT_NE(msg("a=choice(1,2)").find("functions"), std::string::npos);
  EXPECT_NE(msg("a=[1,,2]").find("missing value"), std::string::npos);
  EXPECT_NE(msg("a='x").find("unterminated"), std::string::npos);
  EXPECT_NE(msg("a=${x").find("unterminated interpolation"), std::string::npos);
  EXPECT_NE(msg("a=x]").find("unexpected ']'"), std::string::npos);
  EXPECT_NE(msg("a=b=c").find("unexpected character '='"), std::string::npos);
  EXPECT_NE(msg("a b=1").find("invalid character ' ' in key"), std::string::npos);
  EXPECT_NE(msg("a=   ").find("whitespace"), std::string::npos);
  EXPECT_NE(msg("a=" + std::string(1000, '[')).find("nested deeper"), std::string::npos);
}
