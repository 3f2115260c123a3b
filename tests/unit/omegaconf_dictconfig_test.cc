#include "omegaconf/dictconfig.h"
#include "omegaconf/select.h"

#include <gtest/gtest.h>

#include "data/omegaconf/golden.h"
#include "omegaconf/yaml.h"
#include "pickle/pickler.h"
#include "pickle/unpickler.h"
#include "util/error.h"

using namespace ckpt;
using namespace ckpt::omegaconf;
using namespace ckpt::omegaconf::testing;
using ckpt::pickle::Node;

namespace {

std::string hex(const std::string& s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(d[c >> 4]);
    out.push_back(d[c & 15]);
  }
  return out;
}

// First differing byte, for readable failures.
std::string first_difference(const std::string& a, const std::string& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return "sizes " + std::to_string(a.size()) + " vs " + std::to_string(b.size()) + ", first difference at " +
         std::to_string(i) + ": " + hex(a.substr(i, 24)) + " vs " + hex(b.substr(i, 24));
}

const char* kExample =
    "optim:\n  lr: 0.0001\n  betas:\n  - 0.9\n  - 0.95\nname: ${optim.lr}\nmissing: ???\nnothing: null\n";

}  // namespace

TEST(OmegaconfDictConfig, BuildPicklesLikeOmegaConfCreate) {
  int n = 0;
  for (const auto& row : read_golden("dictconfig_golden.txt")) {
    if (row[0].starts_with("edit:")) continue;
    ++n;
    Value tree = parse_yaml(unhex(row[1]));
    pickle::Graph g;
    g.root = build_dictconfig(g, tree);
    std::string got = pickle::pickle(g.root);
    std::string want = unhex(row[2]);
    EXPECT_TRUE(got == want) << row[0] << ": " << first_difference(got, want);
  }
  EXPECT_GE(n, 8);
}

TEST(OmegaconfDictConfig, ToValueReadsPythonPickles) {
  for (const auto& row : read_golden("dictconfig_golden.txt")) {
    if (row[0].starts_with("edit:")) continue;
    pickle::Graph g = pickle::unpickle(unhex(row[2]));
    ASSERT_TRUE(is_config_node(g.root)) << row[0];
    Value got = to_value(g.root);
    EXPECT_TRUE(got == parse_yaml(unhex(row[1]))) << row[0] << "\n" << to_yaml(got);
    // Unpickle + pickle of an unedited config is byte-identical too.
    EXPECT_EQ(hex(pickle::pickle(g.root)), row[2]) << row[0];
  }
}

TEST(OmegaconfDictConfig, OverridesPickleLikePythonEdits) {
  int n = 0;
  for (const auto& row : read_golden("dictconfig_golden.txt")) {
    if (!row[0].starts_with("edit:")) continue;
    ++n;
    pickle::Graph g = pickle::unpickle(unhex(row[2]));  // the edited Python result, for its tree
    Value want_tree = to_value(g.root);
    // Edit the graph of the unedited config with the override.
    pickle::Graph h;
    h.root = build_dictconfig(h, parse_yaml(unhex(row[1])));
    Override o = parse_override(unhex(row[3]));
    apply_override(h, h.root, o);
    EXPECT_TRUE(to_value(h.root) == want_tree) << row[0] << "\n" << to_yaml(to_value(h.root));
    std::string got = pickle::pickle(h.root);
    std::string want = unhex(row[2]);
    EXPECT_TRUE(got == want) << row[0] << ": " << first_difference(got, want);
    // The same override on the plain tree.
    Value tree = parse_yaml(unhex(row[1]));
    apply_override(tree, o);
    EXPECT_TRUE(tree == want_tree) << row[0] << "\n" << to_yaml(tree);
  }
  EXPECT_GE(n, 8);
}

namespace {

// OmegaConf.set_struct / set_readonly on the root of a built config.
void set_root_flag(pickle::Graph& g, Node* root, const char* flag) {
  Node* meta = pickle::get_item(root->state, "_metadata");
  pickle::set_item(g, pickle::get_item(meta->state, "flags"), flag, g.boolean(true));
}

// The error an override gives on a fresh kExample config, or "no error".
std::string override_error(const std::string& text, const char* flag = nullptr) {
  pickle::Graph g;
  g.root = build_dictconfig(g, parse_yaml(kExample));
  if (flag) set_root_flag(g, g.root, flag);
  try {
    apply_override(g, g.root, parse_override(text));
  } catch (const UsageError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST(OmegaconfDictConfig, OverrideErrorsInStructMode) {
  auto msg = [](const std::string& text) { return override_error(text, "struct"); };
  EXPECT_EQ(msg("optim.nope=1"), "config key 'optim.nope' not found in a struct config (use +optim.nope=... to add)");
  EXPECT_EQ(msg("nope.x=1"), "config key 'nope.x' not found (use +nope.x=... to add)");
  EXPECT_EQ(msg("optim={nope: 1}"),
            "config key 'optim.nope' not found in a struct config (use +optim=... or ++optim=... to add keys)");
  EXPECT_EQ(msg("+optim={nope: 1}"), "no error");  // + and ++ lift struct mode, dicts merge
  EXPECT_EQ(msg("++nope.x=1"), "no error");
  EXPECT_EQ(msg("~optim.lr"), "no error");  // Hydra deletes under open_dict
}

TEST(OmegaconfDictConfig, OverrideErrorsReadOnly) {
  auto msg = [](const std::string& text) { return override_error(text, "readonly"); };
  const std::string ro = "': the config is read-only (OmegaConf.set_readonly); OmegaConf and Hydra refuse to change it";
  EXPECT_EQ(msg("optim.lr=1"), "config key 'optim.lr" + ro);
  EXPECT_EQ(msg("++optim.lr=1"), "config key 'optim.lr" + ro);
  EXPECT_EQ(msg("~optim.lr"), "config key 'optim.lr" + ro);
  EXPECT_EQ(msg("optim={lr: 1}"), "config key 'optim.lr" + ro);
  EXPECT_EQ(msg("optim={}"), "no error");  // merging nothing changes nothing
}

TEST(OmegaconfDictConfig, OverrideErrors) {
  auto msg = [](const std::string& text) { return override_error(text); };
  EXPECT_EQ(msg("optim.nope=1"), "no error");  // not in struct mode: key= adds, as OmegaConf.update does
  EXPECT_EQ(msg("+optim.lr=1"), "config key 'optim.lr' already exists (use ++optim.lr=... to override)");
  EXPECT_EQ(msg("~optim.nope"), "config key 'optim.nope' not found");
  EXPECT_EQ(msg("~nothing"), "config key 'nothing' not found");  // Hydra: a None value does not exist
  EXPECT_EQ(msg("~optim.lr=5"), "config key 'optim.lr' is 0.0001, not 5");
  EXPECT_EQ(msg("optim=3"), "no error");  // an untyped dict becomes a value
  EXPECT_EQ(msg("optim.betas={a: 1}"), "config key 'optim.betas': cannot merge a dict into a list");
  EXPECT_EQ(msg("optim.betas.5=1"),
            "config key 'optim.betas.5': list index out of range (lists cannot grow by override)");
  EXPECT_EQ(msg("+optim.betas.5=1"),
            "config key 'optim.betas.5': list index out of range (lists cannot grow by override)");
  pickle::Graph g;
  g.root = build_dictconfig(g, parse_yaml(kExample));
  apply_override(g, g.root, parse_override("+nothing=1"));  // Hydra: + may fill a None value
  Value tree = to_value(g.root);
  EXPECT_TRUE(*select(tree, "nothing") == Value::of_int(1));
}

TEST(OmegaconfDictConfig, TypedNodesConvertLikeOmegaConf) {
  // Retype value nodes as a structured config would have them.
  pickle::Graph g;
  g.root = build_dictconfig(g, parse_yaml("i: 1\nf: 1.5\nb: true\ns: x\n"));
  Node* content = pickle::get_item(g.root->state, "_content");
  auto retype = [&](const char* key, const char* cls) {
    pickle::get_item(content, key)->callable = g.global("omegaconf.nodes", cls);
  };
  retype("i", "IntegerNode");
  retype("f", "FloatNode");
  retype("b", "BooleanNode");
  retype("s", "StringNode");
  auto set = [&](const std::string& text) { apply_override(g, g.root, parse_override(text)); };
  set("i='42'");
  set("f=3");
  set("b=off");
  set("s=1.5");
  Value v = to_value(g.root);
  EXPECT_TRUE(*v.find("i") == Value::of_int(42));
  EXPECT_TRUE(*v.find("f") == Value::of_float(3.0));
  EXPECT_TRUE(*v.find("b") == Value::of_bool(false));
  EXPECT_TRUE(*v.find("s") == Value::of_str("1.5"));
  set("b='1'");
  EXPECT_TRUE(*to_value(g.root).find("b") == Value::of_bool(true));
  set("i=${f}");  // interpolations skip conversion
  EXPECT_TRUE(*to_value(g.root).find("i") == Value::of_str("${f}"));
  try {
    set("i=abc");
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()), "config key 'i': cannot assign 'abc' to IntegerNode");
  }
  EXPECT_THROW(set("i=1.5"), UsageError);
  EXPECT_THROW(set("f=true"), UsageError);
  EXPECT_THROW(set("b=maybe"), UsageError);
  EXPECT_NO_THROW(set("s=[1]"));  // a container value replaces the node
}

TEST(OmegaconfDictConfig, ToValueRefusesCycles) {
  pickle::Graph g;
  g.root = build_dictconfig(g, parse_yaml("a: {b: 1}\n"));
  Node* content = pickle::get_item(g.root->state, "_content");
  content->entries.emplace_back(g.str("loop"), g.root);
  EXPECT_THROW(to_value(g.root), FormatError);
}

TEST(OmegaconfDictConfig, ToValueRefusesDeepNesting) {
  pickle::Graph g;
  g.root = build_dictconfig(g, parse_yaml("a: 1\n"));
  Node* cur = g.root;
  for (int i = 0; i < 2000; ++i) {
    Node* child = build_dictconfig(g, parse_yaml("a: 1\n"));
    pickle::get_item(cur->state, "_content")->entries.emplace_back(g.str("n"), child);
    cur = child;
  }
  EXPECT_THROW(to_value(g.root), FormatError);
}

TEST(OmegaconfDictConfig, Select) {
  Value tree = parse_yaml("a:\n  b: [10, {c: 3}]\n1: one\n");
  EXPECT_TRUE(*select(tree, "a.b.0") == Value::of_int(10));
  EXPECT_TRUE(*select(tree, "a.b[1].c") == Value::of_int(3));
  EXPECT_TRUE(*select(tree, "a.b.1.c") == Value::of_int(3));
  EXPECT_TRUE(*select(tree, "1") == Value::of_str("one"));
  EXPECT_EQ(select(tree, "a.x"), nullptr);
  EXPECT_EQ(select(tree, "a.b.5"), nullptr);
  EXPECT_EQ(select(tree, "a..b"), nullptr);
  EXPECT_EQ(select(tree, ""), &tree);
}
