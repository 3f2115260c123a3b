// Malformed and hostile pickles: every one must end in FormatError (or a
// small, correct graph), never a crash, a deep recursion or a huge allocation.
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "pickle/pickler.h"
#include "pickle/scan.h"
#include "pickle/unpickler.h"
#include "util/error.h"

#include "fixed_bytes.h"

using namespace ckpt::pickle;
using ckpt::FormatError;
using ckpt_test::u32;
using ckpt_test::u64;

namespace {


const std::string P2 = "\x80\x02";

// The FormatError message of unpickling `data`, or "" if it parsed.
std::string error_of(const std::string& data) {
  try {
    unpickle(data, {GraphLimits{}, "t.pkl"});
  } catch (const FormatError& e) {
    return e.what();
  }
  return {};
}

std::string golden(const std::string& name) {
  std::ifstream f(std::string(CKPT_SOURCE_DIR) + "/tests/unit/data/pickle/" + name, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The default object limit (GraphLimits) is below these tests' million
// levels; they check iteration, not the limit.
const UnpickleOptions kLarge{GraphLimits{4'000'000}, "t"};

}  // namespace

TEST(PickleHostile, MillionNestedListsNeedNoRecursion) {
  const size_t depth = 1'000'000;
  std::string data = P2;
  data.append(depth, ']');
  data.append(depth - 1, 'a');
  data += '.';
  Graph g = unpickle(data, kLarge);
  const Node* n = g.root;
  size_t levels = 1;
  while (!n->items.empty()) {
    n = n->items[0];
    ++levels;
  }
  EXPECT_EQ(levels, depth);
  // The writer is iterative too, and what it writes reads back the same.
  std::string out = pickle(g.root);
  Graph again = unpickle(out, kLarge);
  EXPECT_EQ(pickle(again.root), out);
  // So is the scanner.
  EXPECT_TRUE(scan_globals(data).empty());
}

TEST(PickleHostile, MillionNestedTuplesAsDictKeys) {
  const size_t depth = 1'000'000;
  std::string tower = "K\x01";
  for (size_t i = 0; i < depth; ++i) tower += '\x85';  // TUPLE1
  // {tower: 1, equal_tower: 2} -> one key, Python semantics.
  std::string data = P2 + "}" + tower + "K\x01s" + tower + "K\x02s.";
  Graph g = unpickle(data, kLarge);
  ASSERT_EQ(g.root->entries.size(), 1u);
  EXPECT_EQ(g.root->entries[0].second->integer, 2);
  std::string out = pickle(g.root);
  EXPECT_EQ(pickle(unpickle(out, kLarge).root), out);
}

TEST(PickleHostile, BillionLaughsStaySmall) {
  // L0 = []; L(i) = [L(i-1)] * 10, 40 levels: 10^40 leaves if expanded.
  std::string data = P2 + "]q" + std::string(1, '\0');
  for (int i = 1; i <= 40; ++i) {
    data += '(';
    for (int k = 0; k < 10; ++k) data += "h" + std::string(1, static_cast<char>(i - 1));
    data += "lq" + std::string(1, static_cast<char>(i));
  }
  data += '.';
  Graph g = unpickle(data);
  EXPECT_LT(g.size(), 100u);
  std::string out = pickle(g.root);
  EXPECT_LT(out.size(), 2000u);

  // The same with tuples, two structurally equal towers used as dict keys:
  // comparing them must not take 2^60 steps.
  auto tower = [](char first_memo) {
    std::string t = "K\x07";
    for (int i = 0; i < 60; ++i) {
      t += "q";
      t += static_cast<char>(first_memo + i);
      t += "h";
      t += static_cast<char>(first_memo + i);
      t += '\x86';  // TUPLE2 (x, x)
    }
    return t;
  };
  std::string keys = P2 + "}" + tower(0) + "K\x01s" + tower(64) + "K\x02s.";
  auto start = std::chrono::steady_clock::now();
  Graph kg = unpickle(keys);
  EXPECT_EQ(kg.root->entries.size(), 1u);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(PickleHostile, HugeDeclaredLengthsFailBeforeAllocating) {
  EXPECT_NE(error_of(P2 + "\x8d" + u64(uint64_t{1} << 60) + "ab."), "");  // BINUNICODE8
  EXPECT_NE(error_of(P2 + "\x8e" + u64(~uint64_t{0}) + "."), "");         // BINBYTES8
  EXPECT_NE(error_of(P2 + "\x96" + u64(uint64_t{1} << 62) + "."), "");    // BYTEARRAY8
  EXPECT_NE(error_of(P2 + "X" + u32(0xFFFFFFFF) + "."), "");              // BINUNICODE
  EXPECT_NE(error_of(P2 + "\x8b" + u32(0x7FFFFFFF) + "."), "");           // LONG4
  EXPECT_NE(error_of(P2 + "\x8b" + u32(0xFFFFFFFF) + "."), "");           // LONG4 negative
  EXPECT_NE(error_of(P2 + "T" + u32(0x80000000) + "."), "");              // BINSTRING negative
  std::string msg = error_of(P2 + "\x8d" + u64(uint64_t{1} << 60) + "ab.");
  EXPECT_NE(msg.find("t.pkl: offset 2: BINUNICODE8"), std::string::npos) << msg;
}

TEST(PickleHostile, Utf8FollowsSurrogatePass) {
  auto str = [](const std::string& bytes) { return P2 + "X" + u32(static_cast<uint32_t>(bytes.size())) + bytes + "."; };
  EXPECT_EQ(error_of(str("\xed\xa0\x80")), "");         // lone surrogate: accepted
  EXPECT_EQ(error_of(str("\xf0\x9f\x98\x80")), "");     // astral
  EXPECT_NE(error_of(str("\xff")), "");
  EXPECT_NE(error_of(str("\xc0\x80")), "");             // overlong
  EXPECT_NE(error_of(str("\xe2\x82")), "");             // truncated sequence
  EXPECT_NE(error_of(str("\xf4\x90\x80\x80")), "");     // above U+10FFFF
  EXPECT_NE(error_of(str("\x80")), "");                 // lone continuation
  // The legacy string opcodes decode as UTF-8 (torch.load's encoding), no surrogates.
  EXPECT_NE(error_of(P2 + "U\x03\xed\xa0\x80."), "");
  EXPECT_EQ(error_of(P2 + "U\x02\xc3\xa9."), "");
}

TEST(PickleHostile, StructuralErrorsNameTheProblem) {
  auto has = [](const std::string& data, const std::string& what) {
    std::string msg = error_of(data);
    EXPECT_NE(msg.find(what), std::string::npos) << "message: '" << msg << "' lacks '" << what << "'";
  };
  has(P2 + "a.", "offset 2: stack underflow");
  has(P2 + "]a.", "stack underflow");
  has(P2 + ".", "stack underflow");
  has(P2 + "0.", "stack underflow");
  has(P2 + "]K\x01" "e.", "MARK missing");
  has(P2 + "]t.", "MARK missing");
  has(P2 + "(]a.", "stack underflow");  // APPEND cannot reach below the MARK
  has(P2 + "h\x05.", "memo index 5 undefined");
  has(P2 + "j" + u32(70000) + ".", "memo index 70000 undefined");
  has(P2 + "\xff.", "offset 2: unknown opcode 0xff");
  has(P2 + "N", "truncated");
  has("", "truncated");
  has(P2 + "]]K\x01s.", "SETITEM onto a list");
  has(P2 + "}K\x01" "a.", "APPEND onto a dict");
  has(P2 + "]}b.", "BUILD onto a list");
  has(P2 + "}]K\x01s.", "unhashable list");
  has(P2 + "}]\x85K\x01s.", "unhashable list");  // a tuple holding a list
  has(P2 + "\x8f]\x91.", "MARK missing");
  has(P2 + "\x8f(]\x90.", "unhashable");
  has(P2 + "\x82\x01.", "EXT1");
  has(P2 + "\x97.", "NEXT_BUFFER");
  has("\x80\x06N.", "unsupported pickle protocol 6");
  has(P2 + "K\x01K\x02\x93.", "STACK_GLOBAL requires str");
  has(P2 + "cmod\nname\nK\x01R.", "REDUCE argument must be a tuple");
  has(P2 + "cmod\nname\n)\x81}b}b.", "BUILD applied twice");
  has(P2 + "cmod\nname.", "no end of line");
  has(P2 + "(K\x01K\x02K\x03" "d.", "odd number");
}

TEST(PickleHostile, EveryTruncationIsAFormatError) {
  for (const char* name : {"torch_state_dict.pkl", "instance.p4.pkl", "unicode.p0.pkl", "ints.p1.pkl"}) {
    std::string data = golden(name);
    ASSERT_FALSE(data.empty()) << name;
    for (size_t n = 0; n < data.size(); ++n) {
      std::string cut = data.substr(0, n);
      EXPECT_THROW(unpickle(cut), FormatError) << name << " cut at " << n;
      EXPECT_THROW(scan_globals(cut), FormatError) << name << " cut at " << n;
    }
  }
}

TEST(PickleHostile, ByteFlipsNeverCrash) {
  std::string data = golden("torch_with_cfg.pkl");
  ASSERT_FALSE(data.empty());
  size_t parsed = 0;
  for (size_t i = 0; i < data.size(); ++i) {
    for (uint8_t v : {uint8_t{0xff}, static_cast<uint8_t>(data[i] ^ 0x01)}) {
      std::string m = data;
      m[i] = static_cast<char>(v);
      try {
        Graph g = unpickle(m);
        std::string out = pickle(g.root);  // whatever parsed must also write
        EXPECT_EQ(pickle(unpickle(out).root), out);
        ++parsed;
      } catch (const ckpt::Error&) {
      }
      try {
        scan_globals(m);
      } catch (const FormatError&) {
      }
    }
  }
  EXPECT_GT(parsed, 0u);
}

TEST(PickleHostile, NodeLimitStopsWideInputs) {
  std::string data = P2 + "(";
  data.append(1000, 'N');  // None is shared: no new nodes
  data.append(1000, ']');
  data += "l.";
  EXPECT_NO_THROW(unpickle(data, {GraphLimits{1010}, "t"}));
  EXPECT_THROW(unpickle(data, {GraphLimits{500}, "t"}), FormatError);
}

TEST(PickleHostile, ManySetItemsAreLinear) {
  // 300,000 distinct keys then 300,000 repeats: must not be quadratic.
  const int n = 300'000;
  std::string data = P2 + "}(";
  for (int rep = 0; rep < 2; ++rep)
    for (int i = 0; i < n; ++i) data += "J" + u32(static_cast<uint32_t>(i)) + "J" + u32(static_cast<uint32_t>(rep));
  data += "u.";
  auto start = std::chrono::steady_clock::now();
  Graph g = unpickle(data, kLarge);
  ASSERT_EQ(g.root->entries.size(), static_cast<size_t>(n));
  EXPECT_EQ(g.root->entries[5].first->integer, 5);
  EXPECT_EQ(g.root->entries[5].second->integer, 1);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
}

// The inline decoder of fixed-width opcodes (OpReader::next_fast) takes an
// opcode only with its whole argument there; a cut argument near the end
// goes through next() and reads as before, naming the opcode and the bytes.
TEST(PickleHostile, CutFixedArgumentsNameTheOpcodeAndTheBytesLeft) {
  auto has = [](const std::string& data, const std::string& what) {
    std::string msg = error_of(data);
    EXPECT_NE(msg.find(what), std::string::npos) << "message: '" << msg << "' lacks '" << what << "'";
  };
  using namespace std::string_literals;  // the arguments hold NUL bytes
  has(P2 + "]j\x01\x00"s, "offset 3: LONG_BINGET argument of 4 bytes runs past the end of the data (2 left)");
  has(P2 + "]r\x01", "offset 3: LONG_BINPUT argument of 4 bytes runs past the end of the data (1 left)");
  has(P2 + "]J\x01\x02\x03", "offset 3: BININT argument of 4 bytes runs past the end of the data (3 left)");
  has(P2 + "]h", "offset 3: BINGET argument of 1 bytes runs past the end of the data (0 left)");
  has(P2 + "]M\x01", "offset 3: BININT2 argument of 2 bytes runs past the end of the data (1 left)");
  // With the bytes there, the memo opcodes decoded inline report as step did.
  has(P2 + "]r" + u32(2) + "j" + u32(3) + ".", "offset 8: memo index 3 undefined");
  has(P2 + "]q\x07h\x07h\x08.", "offset 7: memo index 8 undefined");
}

TEST(PickleHostile, MemoOpcodesReadTheirIndexesLittleEndian) {
  // LONG_BINPUT 0x01020304 then LONG_BINGET of it: past the dense memo's
  // reach (twice the entries plus slack), so the sparse map answers.
  std::string data = P2 + "]r" + u32(0x01020304) + "0j\x04\x03\x02\x01.";
  Graph g = unpickle(data);
  ASSERT_NE(g.root, nullptr);
  EXPECT_EQ(g.root->kind, Kind::List);
  // BINPUT / BINGET of index 200 and LONG_BINGET of the same slot.
  Graph h = unpickle(P2 + "]q\xc8" "0h\xc8j" + u32(200) + "\x86.");
  ASSERT_EQ(h.root->kind, Kind::Tuple);
  ASSERT_EQ(h.root->items.size(), 2u);
  EXPECT_EQ(h.root->items[0], h.root->items[1]);
  EXPECT_EQ(h.root->items[0]->kind, Kind::List);
}
