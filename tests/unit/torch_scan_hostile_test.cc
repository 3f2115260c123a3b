// torch::scan_file on bare pickles, zips and non-pickles: the verdict, what it
// names, and that an unreadable file is never called safe.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "torch/safety_scan.h"

namespace {

namespace fs = std::filesystem;
using ckpt::Env;
using ckpt::torch::scan_file;
using ckpt::torch::Verdict;

class ScanFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ckpt_scan_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& bytes) {
    std::string p = (dir_ / name).string();
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
  }
  fs::path dir_;
};

const std::string P2 = "\x80\x02";

TEST_F(ScanFile, AllowedGlobalsAreSafe) {
  auto s = scan_file(Env::Default(), write("ok.pkl", P2 + "ccollections\nOrderedDict\n)R."));
  EXPECT_EQ(s.verdict(), Verdict::Safe);
  EXPECT_EQ(s.container, "pickle");
  ASSERT_EQ(s.globals.size(), 1u);
  EXPECT_TRUE(s.globals[0].use.called);
  EXPECT_TRUE(s.globals[0].allowed);
}

TEST_F(ScanFile, StackGlobalThroughTheMemoIsNamed) {
  // protocol 4: 'posix' 'system' memoized, fetched back, STACK_GLOBAL, called.
  static const char kData[] = "\x80\x04\x8c\x05posix\x94\x8c\x06system\x94h\x00h\x01\x93\x8c\x02id\x85R.";
  std::string data(kData, sizeof kData - 1);  // holds NULs
  auto s = scan_file(Env::Default(), write("evil.pkl", data));
  EXPECT_EQ(s.verdict(), Verdict::Unsafe);
  ASSERT_EQ(s.globals.size(), 1u);
  EXPECT_EQ(s.globals[0].use.module, "posix");
  EXPECT_EQ(s.globals[0].use.name, "system");
  EXPECT_TRUE(s.globals[0].use.called);
  EXPECT_FALSE(s.globals[0].allowed);
}

TEST_F(ScanFile, BytesAfterStopAreCountedNotScanned) {
  auto s = scan_file(Env::Default(), write("t.pkl", P2 + "}." + "cos\nsystem\n."));
  EXPECT_EQ(s.verdict(), Verdict::Safe);
  ASSERT_EQ(s.pickles.size(), 1u);
  EXPECT_EQ(s.pickles[0].trailing_bytes, 12u);
}

TEST_F(ScanFile, UnreadableIsNeverSafe) {
  for (const std::string& bytes : {std::string(), P2 + "}", P2 + "\xff.", P2 + "h\x05.", std::string("PK\x03\x04"),
                                   std::string("version https://git-lfs.github.com/spec/v1\noid x\n")}) {
    auto s = scan_file(Env::Default(), write("bad.pkl", bytes));
    EXPECT_EQ(s.verdict(), Verdict::Unreadable) << bytes;
    EXPECT_FALSE(s.problem.empty());
  }
  auto lfs = scan_file(Env::Default(), write("lfs.pt", "version https://git-lfs.github.com/spec/v1\noid x\n"));
  EXPECT_NE(lfs.problem.find("git lfs pull"), std::string::npos) << lfs.problem;
}

TEST_F(ScanFile, UnreadableWinsOverUnsafe) {
  // A refused global, then damage: listed, but the verdict is unreadable.
  auto s = scan_file(Env::Default(), write("mixed.pkl", P2 + "cos\nsystem\n\xff"));
  EXPECT_EQ(s.verdict(), Verdict::Unreadable);
}

}  // namespace
