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

namespace ckpt {
namespace {

struct Dir {
  std::string path;
  Dir() {
    char t[] = "/tmp/ckpt-read-only-test-XXXXXX";
    if (!mkdtemp(t)) throw std::runtime_error("mkdtemp failed");
    path = t;
  }
  ~Dir() { (void)std::system(("chmod -R u+w " + path + " && rm -rf " + path).c_str()); }
};

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
  Dir d;
  Env& env = Env::Default();
  write_file(d.path + "/ro", "x", 0444);
  write_file(d.path + "/owner-ro", "x", 0400);
  write_file(d.path + "/rw", "x", 0644);
  write_file(d.path + "/group-w", "x", 0464);
  EXPECT_TRUE(env.read_only(d.path + "/ro"));  // even to root: no write bit at all
  EXPECT_TRUE(env.read_only(d.path + "/owner-ro"));
  EXPECT_FALSE(env.read_only(d.path + "/rw"));
  EXPECT_EQ(env.read_only(d.path + "/group-w"), ::geteuid() != 0);  // the owner may not write it
  EXPECT_FALSE(env.read_only(d.path + "/missing"));
  EXPECT_FALSE(env.read_only(d.path));  // a folder is not a file
}

TEST(ReadOnly, AtomicOutputWithForceRefusesAReadOnlyFileAndLeavesIt) {
  Dir d;
  Env& env = Env::Default();
  const std::string target = d.path + "/out.th";
  write_file(target, "keep me", 0444);
  std::string msg = usage_error([&] { AtomicOutput out(env, target, true); });
  EXPECT_NE(msg.find(target + " is read-only"), std::string::npos) << msg;
  EXPECT_NE(msg.find("(chmod u+w " + target + ")"), std::string::npos) << msg;
  EXPECT_EQ(read_file(target), "keep me");
  // Through a link: the file it names is the one refused.
  ASSERT_EQ(::symlink("out.th", (d.path + "/link.th").c_str()), 0);
  msg = usage_error([&] { AtomicOutput out(env, d.path + "/link.th", true); });
  EXPECT_NE(msg.find(target + " is read-only"), std::string::npos) << msg;
  // Nothing left beside it.
  EXPECT_EQ(std::system(("test $(ls -A " + d.path + " | wc -l) -eq 2").c_str()), 0);
  // Writable again: replaced.
  ::chmod(target.c_str(), 0644);
  AtomicOutput out(env, target, true);
  out.file().append("new");
  out.commit();
  EXPECT_EQ(read_file(target), "new");
}

TEST(ReadOnly, FolderReplaceRefusesAReadOnlyFileOfTheSet) {
  Dir d;
  Env& env = Env::Default();
  const std::string dir = d.path + "/set";
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
