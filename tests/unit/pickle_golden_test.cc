// Round trips against CPython's own pickles (tests/unit/data/pickle, made by
// make_golden.py): pickle(unpickle(b)) must equal CPython's protocol-2 bytes.
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "pickle/pickler.h"
#include "pickle/scan.h"
#include "pickle/unpickler.h"
#include "util/error.h"

using namespace ckpt::pickle;

namespace {

const std::string kDir = std::string(CKPT_SOURCE_DIR) + "/tests/unit/data/pickle/";

bool read_file(const std::string& path, std::string& out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::ostringstream ss;
  ss << f.rdbuf();
  out = ss.str();
  return true;
}

std::vector<std::string> case_names() {
  std::string text;
  EXPECT_TRUE(read_file(kDir + "cases.txt", text));
  std::vector<std::string> names;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) names.push_back(line);
  return names;
}

std::string hex_window(const std::string& s, size_t at) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  size_t from = at >= 8 ? at - 8 : 0;
  for (size_t i = from; i < s.size() && i < at + 16; ++i) {
    if (i == at) out += '[';
    out += hex[static_cast<uint8_t>(s[i]) >> 4];
    out += hex[static_cast<uint8_t>(s[i]) & 15];
    out += i == at ? "] " : " ";
  }
  return out;
}

// "" when equal, else where they first differ.
std::string compare(const std::string& got, const std::string& want) {
  if (got == want) return {};
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  return "first difference at offset " + std::to_string(i) + " (sizes " + std::to_string(got.size()) +
         " vs " + std::to_string(want.size()) + ")\n got:  " + hex_window(got, i) +
         "\n want: " + hex_window(want, i);
}

std::string repickle(const std::string& data, const std::string& source) {
  UnpickleOptions opt;
  opt.source = source;
  size_t end = 0;
  Graph g = unpickle(data, opt, &end);
  EXPECT_EQ(end, data.size()) << source;
  return pickle(g.root);
}

// Protocol N versions whose graph differs from protocol 2's, so re-pickling
// cannot give CPython's protocol-2 bytes.
const std::set<std::string> kKnownDifferent = {
    // Protocols 0 and 1 reduce class instances with copyreg._reconstructor,
    // protocol 2 with copyreg.__newobj__ (NEWOBJ).
    "instance.p0", "instance.p1", "newargs_ex.p0", "newargs_ex.p1",
};

}  // namespace

TEST(PickleGolden, Protocol2RoundTripsByteForByte) {
  auto names = case_names();
  ASSERT_GT(names.size(), 30u);
  for (const auto& name : names) {
    std::string p2;
    ASSERT_TRUE(read_file(kDir + name + ".p2.pkl", p2)) << name;
    std::string got;
    ASSERT_NO_THROW(got = repickle(p2, name + ".p2.pkl")) << name;
    EXPECT_EQ(compare(got, p2), "") << name;
  }
}

TEST(PickleGolden, OtherProtocolsRepickleToProtocol2) {
  int compared = 0;
  for (const auto& name : case_names()) {
    std::string p2;
    ASSERT_TRUE(read_file(kDir + name + ".p2.pkl", p2)) << name;
    for (int proto : {0, 1, 3, 4, 5}) {
      std::string file = name + ".p" + std::to_string(proto);
      std::string data;
      if (!read_file(kDir + file + ".pkl", data)) continue;
      std::string got;
      ASSERT_NO_THROW(got = repickle(data, file)) << file;
      ++compared;
      if (kKnownDifferent.count(file)) {
        EXPECT_NE(got, p2) << file << " now matches: remove it from kKnownDifferent";
        continue;
      }
      EXPECT_EQ(compare(got, p2), "") << file;
    }
  }
  EXPECT_GT(compared, 100);
}

TEST(PickleGolden, TorchDataPklRoundTripsWithWeightsOnlyOpcodes) {
  for (const char* name : {"torch_state_dict.pkl", "torch_with_cfg.pkl"}) {
    std::string data;
    ASSERT_TRUE(read_file(kDir + name, data)) << name;
    std::string got = repickle(data, name);
    EXPECT_EQ(compare(got, data), "") << name;
    for (uint8_t code : opcodes_used(got))
      EXPECT_TRUE(is_weights_only_opcode(code)) << name << ": " << opcode_display_name(code);
  }
}

TEST(PickleGolden, PersistentIdCallbackSeesEveryStorageInOrder) {
  std::string data;
  ASSERT_TRUE(read_file(kDir + "torch_state_dict.pkl", data));
  Graph g = unpickle(data);
  std::vector<std::string> keys;
  PickleOptions opt;
  opt.on_persistent_id = [&](Node* persid) {
    ASSERT_EQ(persid->pid->kind, Kind::Tuple);
    keys.push_back(persid->pid->items.at(2)->text);
  };
  EXPECT_EQ(pickle(g.root, opt), data);
  // w and w_view share storage "0"; every reference is reported.
  EXPECT_EQ(keys, (std::vector<std::string>{"0", "0", "1", "2", "3", "4"}));
}

TEST(PickleGolden, ScanFindsTorchGlobals) {
  std::string data;
  ASSERT_TRUE(read_file(kDir + "torch_with_cfg.pkl", data));
  auto uses = scan_globals(data, "torch_with_cfg.pkl");
  auto find = [&](const std::string& m, const std::string& n) -> const GlobalUse* {
    for (const auto& u : uses)
      if (u.module == m && u.name == n) return &u;
    return nullptr;
  };
  const GlobalUse* rebuild = find("torch._utils", "_rebuild_tensor_v2");
  ASSERT_NE(rebuild, nullptr);
  EXPECT_TRUE(rebuild->called);
  const GlobalUse* dc = find("omegaconf.dictconfig", "DictConfig");
  ASSERT_NE(dc, nullptr);
  EXPECT_TRUE(dc->instantiated);
  EXPECT_TRUE(dc->built);
  EXPECT_FALSE(dc->called);
  const GlobalUse* storage = find("torch", "FloatStorage");
  ASSERT_NE(storage, nullptr);
  EXPECT_FALSE(storage->called);
}

TEST(PickleGolden, ScanResolvesStackGlobalThroughMemo) {
  std::string data;
  ASSERT_TRUE(read_file(kDir + "instance.p4.pkl", data));
  auto uses = scan_globals(data);
  ASSERT_FALSE(uses.empty());
  EXPECT_EQ(uses[0].module, "__main__");
  EXPECT_EQ(uses[0].name, "Point");
  EXPECT_TRUE(uses[0].instantiated);
  EXPECT_TRUE(uses[0].built);
  // The second Point reuses the memoized class: still one entry.
  EXPECT_EQ(uses.size(), 1u);
}
