// Replays every input kept in tests/fuzz/regressions/<target>/ (crashes the
// fuzzers found, and seeds worth keeping) through the fuzz target bodies, in
// every build: a regression fails here without clang or libFuzzer.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "../fuzz/fuzz_targets.h"

namespace {

namespace fs = std::filesystem;

size_t replay(const std::string& target, void (*one)(std::string_view)) {
  fs::path dir = fs::path(CKPT_SOURCE_DIR) / "tests" / "fuzz" / "regressions" / target;
  size_t n = 0;
  if (!fs::exists(dir)) return 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream f(entry.path(), std::ios::binary);
    std::ostringstream ss;
    ss << f.rdbuf();
    SCOPED_TRACE(entry.path().string());
    one(ss.str());
    ++n;
  }
  return n;
}

TEST(FuzzRegressions, Zip) { replay("zip", ckpt::fuzz::zip_one); }
TEST(FuzzRegressions, Unpickle) { replay("unpickle", ckpt::fuzz::unpickle_one); }
TEST(FuzzRegressions, Yaml) { replay("yaml", ckpt::fuzz::yaml_one); }
TEST(FuzzRegressions, Override) { replay("override", ckpt::fuzz::override_one); }
TEST(FuzzRegressions, Legacy) { replay("legacy", ckpt::fuzz::legacy_one); }
TEST(FuzzRegressions, Safetensors) { replay("safetensors", ckpt::fuzz::safetensors_one); }

// The targets' own inputs of note, so each body runs in every build.
TEST(FuzzRegressions, BodiesTakeAnyBytes) {
  for (std::string_view s : {std::string_view(""), std::string_view("PK\x05\x06", 4), std::string_view("\x80\x02}.", 4),
                             std::string_view("a: [1, {b: c}]\n"), std::string_view("+a.b=[1,{c: d}]"),
                             std::string_view("\x80\x02]q\x00(h\x00h\x00lq\x00.", 13)}) {
    ckpt::fuzz::zip_one(s);
    ckpt::fuzz::unpickle_one(s);
    ckpt::fuzz::yaml_one(s);
    ckpt::fuzz::override_one(s);
  }
}

}  // namespace
