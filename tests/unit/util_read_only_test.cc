// refuse_read_only: the one policy of every output that replaces or updates
// an existing file (AtomicOutput with force, FolderReplace's files).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include "util/env.h"
#include "util/error.h"
#include "util/folder_replace.h"
#include "temp_dir.h"

namespace ckpt {
namespace {

void write_file(const std::string& path, const std::string& data, mode_t mode) {
  std::ofstream(path, std::ios::binary) << data;
  ::chmod(path.c_str(), mode);
}
std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
std::string usage_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

TEST(ReadOnly, PosixEnvSaysWhichFilesAreProtected) {
  ckpt_test::TempDir d;
  Env& env = Env::Default();
  write_file(d.file("ro"), "x", 0444);
  write_file(d.file("owner-ro"), "x", 0400);
  write_file(d.file("rw"), "x", 0644);
  write_file(d.file("group-w"), "x", 0464);
  EXPECT_TRUE(env.read_only(d.file("ro")));  // even to root: no write bit at all
  EXPECT_TRUE(env.read_only(d.file("owner-ro")));
  EXPECT_FALSE(env.read_only(d.file("rw")));
  EXPECT_EQ(env.read_only(d.file("group-w")), ::geteuid() != 0);  // the owner may not write it
  EXPECT_FALSE(env.read_only(d.file("missing")));
  EXPECT_FALSE(env.read_only(d.file("")));  // a folder is not a file
}

TEST(ReadOnly, AtomicOutputWithForceRefusesAReadOnlyFileAndLeavesIt) {
  ckpt_test::TempDir d;
  Env& env = Env::Default();
  const std::string target = d.file("out.th");
  write_file(target, "keep me", 0444);
  std::string msg = usage_error([&] { AtomicOutput out(env, target, true); });
  EXPECT_NE(msg.find(target + " is read-only"), std::string::npos) << msg;
  EXPECT_NE(msg.find("(chmod u+w " + target + ")"), std::string::npos) << msg;
  EXPECT_EQ(read_file(target), "keep me");
  // Through a link: the file it names is the one refused.
  ASSERT_EQ(::symlink("out.th", d.file("link.th").c_str()), 0);
  msg = usage_error([&] { AtomicOutput out(env, d.file("link.th"), true); });
  EXPECT_NE(msg.find(target + " is read-only"), std::string::npos) << msg;
  // Nothing left beside it.
  EXPECT_EQ(std::system(("test $(ls -A " + d.file("") + " | wc -l) -eq 2").c_str()), 0);
  // Writable again: replaced.
  ::chmod(target.c_str(), 0644);
  AtomicOutput out(env, target, true);
  out.file().append("new");
  out.commit();
  EXPECT_EQ(read_file(target), "new");
}

TEST(ReadOnly, FolderReplaceRefusesAReadOnlyFileOfTheSet) {
  ckpt_test::TempDir d;
  Env& env = Env::Default();
  const std::string dir = d.file("set");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  write_file(dir + "/a.safetensors", "a", 0644);
  write_file(dir + "/b.safetensors", "b", 0444);
  write_file(dir + "/notes.txt", "n", 0444);  // not of the set: kept as it is, not refused
  auto is_set = [](const std::string& n) { return n.size() > 12 && n.substr(n.size() - 12) == ".safetensors"; };
  std::string msg = usage_error([&] { FolderReplace r(env, dir, is_set, true); });
  EXPECT_NE(msg.find(dir + "/b.safetensors is read-only"), std::string::npos) << msg;
  msg = usage_error([&] { FolderReplace r(env, dir, FolderReplace::Whole{}, true); });
  EXPECT_NE(msg.find(" is read-only"), std::string::npos) << msg;
  ::chmod((dir + "/b.safetensors").c_str(), 0644);
  EXPECT_EQ(usage_error([&] { FolderReplace r(env, dir, is_set, true); }), "");
  EXPECT_EQ(read_file(dir + "/b.safetensors"), "b");
}

}  // namespace
}  // namespace ckpt
