// Unpickler, pickler and scanner details not covered by the golden files.
#include <cmath>
#include <string>

#include <gtest/gtest.h>

#include "pickle/pickler.h"
#include "pickle/scan.h"
#include "pickle/unpickler.h"
#include "util/error.h"

#include "fixed_bytes.h"

using namespace ckpt::pickle;
using ckpt_test::u32;
using namespace std::string_literals;

namespace {
const std::string P2 = "\x80\x02";
}

TEST(PickleVm, MemoGetReturnsTheSameNode) {
  Graph g = unpickle(P2 + "]q\x00(h\x00h\x00" "e."s);
  ASSERT_EQ(g.root->items.size(), 2u);
  EXPECT_EQ(g.root->items[0], g.root);  // a list holding itself, twice
  EXPECT_EQ(g.root->items[1], g.root);
}

TEST(PickleVm, NoneAndBoolsAreSharedPerGraph) {
  Graph g = unpickle(P2 + "(NN\x88\x88\x89\x89I01\nI00\nl.");
  auto& it = g.root->items;
  ASSERT_EQ(it.size(), 8u);
  EXPECT_EQ(it[0], it[1]);
  EXPECT_EQ(it[2], it[3]);
  EXPECT_EQ(it[2], it[6]);
  EXPECT_EQ(it[4], it[7]);
  EXPECT_TRUE(it[6]->boolean);
  EXPECT_EQ(it[7]->kind, Kind::Bool);
}

TEST(PickleVm, DuplicateKeysKeepFirstPositionAndLastValue) {
  Graph g = unpickle(P2 + "(X\x01\x00\x00\x00" "aK\x01X\x01\x00\x00\x00" "bK\x02X\x01\x00\x00\x00" "aK\x03" "d."s);
  ASSERT_EQ(g.root->entries.size(), 2u);
  EXPECT_EQ(g.root->entries[0].first->text, "a");
  EXPECT_EQ(g.root->entries[0].second->integer, 3);
  // 1, True and 1.0 are one key.
  Graph h = unpickle(P2 + "}(K\x01K\x01\x88K\x02G?\xf0\x00\x00\x00\x00\x00\x00K\x03u."s);
  ASSERT_EQ(h.root->entries.size(), 1u);
  EXPECT_EQ(h.root->entries[0].first->kind, Kind::Int);
  EXPECT_EQ(h.root->entries[0].second->integer, 3);
}

TEST(PickleVm, LargeDictsUseTheIndexWithTheSameSemantics) {
  std::string data = P2 + "}(";
  for (int i = 0; i < 100; ++i) data += "K" + std::string(1, static_cast<char>(i)) + "N";
  data += "K\x05\x88\x88\x88u.";  // key 5 again, and True (== 1) again
  Graph g = unpickle(data);
  ASSERT_EQ(g.root->entries.size(), 100u);
  EXPECT_EQ(g.root->entries[5].second->kind, Kind::Bool);
  EXPECT_EQ(g.root->entries[1].second->kind, Kind::Bool);
  EXPECT_EQ(g.root->entries[1].first->kind, Kind::Int);
}

TEST(PickleVm, Protocol0TextForms) {
  Graph g = unpickle(
      "(I42\nI-7\nL123456789012345678901234567890L\nL-5L\nF-0.0\nFnan\nF1e300\n"
      "S'a\\'b\\n\\x41\\101'\nVcaf\\u00e9 \\U0001f600\\\\u\nI01\nl.");
  auto& it = g.root->items;
  ASSERT_EQ(it.size(), 10u);
  EXPECT_EQ(it[0]->integer, 42);
  EXPECT_EQ(it[1]->integer, -7);
  EXPECT_TRUE(it[2]->is_big_int());
  EXPECT_EQ(it[3]->integer, -5);
  EXPECT_TRUE(std::signbit(it[4]->real));
  EXPECT_TRUE(std::isnan(it[5]->real));
  EXPECT_EQ(it[6]->real, 1e300);
  EXPECT_EQ(it[7]->text, "a'b\nAA");
  EXPECT_EQ(it[8]->text, "caf\xc3\xa9 \xf0\x9f\x98\x80\\\\u");
  EXPECT_EQ(it[9]->kind, Kind::Bool);
  // The big int is written back as CPython would: LONG1, minimal bytes.
  std::string out = pickle(it[2]);
  EXPECT_EQ(out, "\x80\x02\x8a\x0d\xd2\x0a\x3f\x4e\xee\xe0\x73\xc3\xf6\x0f\xe9\x8e\x01.")
      << "LONG1 of 123456789012345678901234567890";
}

TEST(PickleVm, LongNormalizesToSmallInts) {
  // LONG1 with redundant bytes for 5 and -1: small ints, written as BININT1 / BININT.
  Graph g = unpickle(P2 + "(\x8a\x03\x05\x00\x00\x8a\x02\xff\xff\x8a\x00l."s);
  EXPECT_EQ(g.root->items[0]->integer, 5);
  EXPECT_FALSE(g.root->items[0]->is_big_int());
  EXPECT_EQ(g.root->items[1]->integer, -1);
  EXPECT_EQ(g.root->items[2]->integer, 0);
}

TEST(PickleVm, PopAfterMarkDropsTheMark) {
  Graph g = unpickle(P2 + "K\x01(0.");
  EXPECT_EQ(g.root->integer, 1);
  Graph d = unpickle(P2 + "]2a.");  // DUP: a list appended to itself
  EXPECT_EQ(d.root->items.at(0), d.root);
}

TEST(PickleVm, InstObjAndNewObjExBecomeObjects) {
  Graph g = unpickle(P2 + "(K\x01imod\nCls\n.");
  EXPECT_TRUE(g.root->is_instance_of("mod", "Cls"));
  EXPECT_EQ(g.root->how, How::Reduce);
  EXPECT_EQ(g.root->args->items.size(), 1u);
  Graph o = unpickle(P2 + "(cmod\nCls\nK\x02o.");
  EXPECT_TRUE(o.root->is_instance_of("mod", "Cls"));
  EXPECT_EQ(o.root->args->items.at(0)->integer, 2);
  Graph x = unpickle(P2 + "cmod\nCls\n)}\x92.");
  EXPECT_EQ(x.root->how, How::NewObjEx);
  EXPECT_EQ(x.root->kwargs->kind, Kind::Dict);
}

TEST(PickleVm, EndOffsetAllowsBackToBackPickles) {
  std::string two = P2 + "K\x01." + P2 + "K\x02.";
  size_t end = 0;
  Graph a = unpickle(two, {}, &end);
  EXPECT_EQ(end, 5u);
  Graph b = unpickle(std::string_view(two).substr(end));
  EXPECT_EQ(b.root->integer, 2);
  size_t scan_end = 0;
  scan_globals(two, "x", &scan_end);
  EXPECT_EQ(scan_end, 5u);
}

TEST(PickleWriter, IntSizeClasses) {
  Graph g;
  auto w = [&](int64_t v) { return pickle(g.integer(v)).substr(2); };
  EXPECT_EQ(w(0), std::string("K\x00.", 3));
  EXPECT_EQ(w(255), "K\xff.");
  EXPECT_EQ(w(256), std::string("M\x00\x01.", 4));
  EXPECT_EQ(w(65536), std::string("J\x00\x00\x01\x00.", 6));
  EXPECT_EQ(w(-1), "J\xff\xff\xff\xff.");
  EXPECT_EQ(w(INT64_C(2147483648)), std::string("\x8a\x05\x00\x00\x00\x80\x00.", 8));
  EXPECT_EQ(w(INT64_MIN), std::string("\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80.", 11));
}

TEST(PickleWriter, MemoPastByte255UsesLongForms) {
  Graph g;
  Node* list = g.list();
  Node* shared = g.str("s");
  for (int i = 0; i < 300; ++i) list->items.push_back(g.str(std::to_string(i)));
  list->items.push_back(shared);
  list->items.push_back(shared);
  std::string out = pickle(list);
  // shared is memo 301: LONG_BINPUT then LONG_BINGET.
  EXPECT_NE(out.find(std::string("r\x2d\x01\x00\x00", 5)), std::string::npos);
  EXPECT_NE(out.find(std::string("j\x2d\x01\x00\x00", 5)), std::string::npos);
  Graph back = unpickle(out);
  EXPECT_EQ(back.root->items[300], back.root->items[301]);
  EXPECT_EQ(pickle(back.root), out);
}

TEST(PickleWriter, BuiltGraphsUseProtocol2Spellings) {
  Graph g;
  Node* t = g.tuple({g.bytes("a\xff"), g.bytes(""), g.global("builtins", "int"),
                     g.global("collections", "OrderedDict"), g.make(Kind::Set)});
  std::string out = pickle(t);
  EXPECT_NE(out.find("c_codecs\nencode\n"), std::string::npos);
  EXPECT_NE(out.find("c__builtin__\nbytes\n"), std::string::npos);
  EXPECT_NE(out.find("c__builtin__\nlong\n"), std::string::npos);
  EXPECT_NE(out.find("c__builtin__\nset\n"), std::string::npos);
  EXPECT_NE(out.find(std::string("X\x03\x00\x00\x00" "a\xc3\xbf", 8)), std::string::npos);  // latin-1 as UTF-8
  for (uint8_t code : opcodes_used(out)) EXPECT_TRUE(is_weights_only_opcode(code)) << opcode_display_name(code);
}

TEST(PickleWriter, CycleThroughConstructorArgumentsIsAnError) {
  // set S = {X}, X = f(S): CPython would recurse forever.
  Graph g;
  Node* s = g.make(Kind::Set);
  Node* x = g.object(How::Reduce, g.global("m", "f"), g.tuple({s}));
  s->items.push_back(x);
  EXPECT_THROW(pickle(s), ckpt::FormatError);
  // Through a list it is fine (the list is memoized first).
  Graph h;
  Node* l = h.list();
  Node* y = h.object(How::Reduce, h.global("m", "f"), h.tuple({l}));
  l->items.push_back(y);
  std::string out = pickle(y);
  Graph back = unpickle(out);
  EXPECT_EQ(pickle(back.root), out);
}

TEST(PickleWriter, PersistentIdCallbackMayRewriteTheId) {
  Graph g;
  Node* pid = g.tuple({g.str("storage"), g.str("7")});
  Node* root = g.list({g.persid(pid)});
  PickleOptions opt;
  opt.on_persistent_id = [&](Node* p) { p->pid->items[1] = g.str("0"); };
  std::string out = pickle(root, opt);
  Graph back = unpickle(out);
  EXPECT_EQ(back.root->items[0]->kind, Kind::PersId);
  EXPECT_EQ(back.root->items[0]->pid->items[1]->text, "0");
}

TEST(PickleScan, StackGlobalOperands) {
  // module and name strings memoized, then fetched back for STACK_GLOBAL.
  std::string data = "\x80\x04\x8c\x02osq\x00\x8c\x06systemq\x01h\x00h\x01\x93)R."s;
  auto uses = scan_globals(data);
  ASSERT_EQ(uses.size(), 1u);
  EXPECT_EQ(uses[0].module, "os");
  EXPECT_EQ(uses[0].name, "system");
  EXPECT_TRUE(uses[0].called);
  EXPECT_EQ(uses[0].first_offset, 22u);
  // Non-str operands: unresolvable, reported as "?".
  auto unknown = scan_globals("\x80\x04K\x01K\x02\x93N\x85R.");
  ASSERT_EQ(unknown.size(), 1u);
  EXPECT_EQ(unknown[0].module, "?");
  EXPECT_TRUE(unknown[0].called);
  EXPECT_THROW(scan_globals("\x80\x04\x93."), ckpt::FormatError);
  // INST calls its class (protocol 0 payloads use it on functions).
  auto inst = scan_globals("(S'ls'\nios\nsystem\n.");
  ASSERT_EQ(inst.size(), 1u);
  EXPECT_TRUE(inst[0].called);
  EXPECT_TRUE(inst[0].instantiated);
}

TEST(PickleScan, WeightsOnlyOpcodes) {
  EXPECT_TRUE(is_weights_only_opcode('c'));
  EXPECT_TRUE(is_weights_only_opcode(0x8a));  // LONG1
  EXPECT_FALSE(is_weights_only_opcode(0x93));  // STACK_GLOBAL
  EXPECT_FALSE(is_weights_only_opcode('i'));   // INST
  EXPECT_EQ(opcode_display_name(0x80), "PROTO");
  EXPECT_EQ(opcode_display_name(0xff), "?");
}

// The memo keeps dense indexes in a vector and far ones in a map: both read
// back, an index moved from the map to the vector counts once, and MEMOIZE
// takes the number of distinct indexes, as CPython's len(memo).
TEST(PickleVm, MemoDenseSparseAndMemoizeCount) {
  std::string p = "\x80\x04"s;
  p += "K\x05r" + u32(3000) + "0";        // far past the entries so far: the map
  p += "K\x06r" + u32(4000000000u) + "0"; // hostile index: the map, no 32 GB vector
  for (uint32_t i = 0; i < 1001; ++i) p += "K\x01r" + u32(i) + "0";
  // 1003 distinct indexes; 3000 is now within the vector's reach: moved, not counted again.
  p += "K\x07r" + u32(3000) + "0";
  p += "K\x08\x94" "0"s;                     // MEMOIZE: index 1003
  p += "(j" + u32(3000) + "j" + u32(4000000000u) + "j" + u32(1003) + "j" + u32(1000) + "l.";
  Graph g = unpickle(p);
  ASSERT_EQ(g.root->items.size(), 4u);
  EXPECT_EQ(g.root->items[0]->integer, 7);
  EXPECT_EQ(g.root->items[1]->integer, 6);
  EXPECT_EQ(g.root->items[2]->integer, 8);
  EXPECT_EQ(g.root->items[3]->integer, 1);
  EXPECT_THROW(unpickle(p.substr(0, p.size() - 7) + "j" + u32(1004) + "l."), ckpt::FormatError);
}
