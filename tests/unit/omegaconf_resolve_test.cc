#include "omegaconf/resolve.h"

#include <gtest/gtest.h>

#include <cmath>

#include "omegaconf/yaml.h"
#include "util/error.h"

using namespace ckpt;
using namespace ckpt::omegaconf;

namespace {

const char* kConfig =
    "seed: 42\n"
    "key: lr\n"
    "name: run-${seed}-${optim.lr}\n"
    "optim:\n"
    "  lr: 0.0001\n"
    "  betas: [0.9, 0.95]\n"
    "  rel: ${.lr}\n"
    "  up: ${..seed}\n"
    "  nested: ${optim.${key}}\n"
    "chain: ${optim.rel}\n"
    "alias: ${optim}\n"
    "first: ${optim.betas[0]}\n"
    "escaped: \\${seed} is ${seed}\n"
    "env: ${oc.env:HOME}\n"
    "missing: ???\n"
    "to_missing: ${missing}\n"
    "dangling: ${no.such}\n"
    "loop: ${loop}\n"
    "too_high: ${...x}\n";

Value cfg() { return parse_yaml(kConfig); }

std::string text(std::string_view key) {
  auto v = select_resolved(cfg(), key);
  if (!v) return "<absent>";
  return v->is_container() ? to_yaml(*v) : scalar_text(*v);
}

std::string error(std::string_view key) {
  try {
    select_resolved(cfg(), key);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST(OmegaconfResolve, NodeInterpolations) {
  EXPECT_EQ(text("seed"), "42");
  EXPECT_EQ(text("name"), "run-42-0.0001");
  EXPECT_EQ(text("optim.rel"), "0.0001");
  EXPECT_EQ(text("optim.up"), "42");
  EXPECT_EQ(text("optim.nested"), "0.0001");
  EXPECT_EQ(text("chain"), "0.0001");
  EXPECT_EQ(text("first"), "0.9");
  EXPECT_EQ(text("alias.lr"), "0.0001");
  EXPECT_EQ(text("alias"), "lr: 0.0001\nbetas:\n- 0.9\n- 0.95\nrel: ${.lr}\nup: ${..seed}\nnested: ${optim.${key}}\n");
  EXPECT_EQ(text("escaped"), "${seed} is 42");
  EXPECT_EQ(text("optim.betas[1]"), "0.95");
  EXPECT_EQ(text("nope"), "<absent>");
}

TEST(OmegaconfResolve, TypedResultOfAFullInterpolation) {
  auto v = select_resolved(cfg(), "optim.rel");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->type, Value::Type::Float);
  v = select_resolved(cfg(), "name");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->type, Value::Type::Str);
}

TEST(OmegaconfResolve, Errors) {
  EXPECT_EQ(error("env"),
            "config key 'env': '${oc.env:HOME}' calls the resolver 'oc.env'; ckpt does not run resolvers (`raw=true` prints "
            "the text)");
  EXPECT_EQ(error("missing"), "config key 'missing' is missing ('?\?\?')");
  EXPECT_NE(error("to_missing").find("missing ('?\?\?')"), std::string::npos);
  EXPECT_EQ(error("dangling"), "config key 'dangling': interpolation '${no.such}' points at a key that does not exist");
  EXPECT_NE(error("loop").find("interpolation loop"), std::string::npos);
  EXPECT_NE(error("too_high").find("climbs above the root"), std::string::npos);
}

TEST(OmegaconfResolve, DeepNestingIsBounded) {
  std::string deep = "x: ";
  for (int i = 0; i < 100000; ++i) deep += "${";
  deep += "a";
  for (int i = 0; i < 100000; ++i) deep += "}";
  deep = "x: '" + deep.substr(3) + "'\n";
  EXPECT_THROW(select_resolved(parse_yaml(deep), "x"), UsageError);
}

TEST(OmegaconfResolve, ScalarText) {
  EXPECT_EQ(scalar_text(Value::of_float(1e-5)), "1.0e-05");
  EXPECT_EQ(scalar_text(Value::of_bool(true)), "true");
  EXPECT_EQ(scalar_text(Value::null()), "null");
  EXPECT_EQ(scalar_text(Value::of_str("yes")), "yes");
  EXPECT_EQ(scalar_text(Value::of_float(-std::nan(""))), ".nan");
}
