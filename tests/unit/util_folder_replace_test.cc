// util/folder_replace.h: a set of files replaced inside a folder of files,
// and (Whole, the transformers converters' output) a folder replaced as a
// whole, sub-folders and all; both by one exchange of names.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <optional>
#include <fstream>
#include <set>

#include "temp_dir.h"
#include "util/error.h"
#include "util/fault_env.h"
#include "util/folder_replace.h"
#include "util/signal_cleanup.h"

namespace ckpt {
namespace {

namespace fs = std::filesystem;

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The names in dir, sub-folders' as "sub/name"; links as "name@".
std::set<std::string> tree(const std::string& dir) {
  std::set<std::string> out;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator(); ++it)
    out.insert(it->path().lexically_relative(fs::path(dir)).string() + (it->is_symlink() ? "@" : ""));
  return out;
}

void write_new(FolderReplace& f, const std::string& name, const std::string& text) {
  std::ofstream(f.path(name), std::ios::binary) << text;
}

// Runs body in a child process with the CLI's signal handlers; returns its
// exit status (128 + the signal when a handler ended it).
template <typename Body>
int in_child(Body body) {
  pid_t pid = ::fork();
  if (pid == 0) {
    install_cleanup_signal_handlers();
    body();
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(FolderReplace, ASignalBeforeCommitRemovesTheTemporaryFolder) {
  // Ctrl-C during `ckpt safetensors --max-shard-size` left .out.ckpt-tmp-XXXX
  // with the shards written so far: the handler removes the folder too.
  ckpt_test::TempDir t;
  t.write("elsewhere", "keep");
  const std::string out = t.file("out");
  int status = in_child([&] {
    FolderReplace f(Env::Default(), out, FolderReplace::Whole{}, false);
    write_new(f, "model-00001-of-00002.safetensors", "shard");
    fs::create_symlink(t.file("elsewhere"), f.path("link"));  // removed as itself
    ::raise(SIGTERM);
  });
  EXPECT_EQ(status, 128 + SIGTERM);
  EXPECT_EQ(tree(t.file("")), (std::set<std::string>{"elsewhere"}));
  EXPECT_EQ(read(t.file("elsewhere")), "keep");
}

TEST(FolderReplace, ASignalHeldBackArrivesOnceTheFolderIsRegistered) {
  // The folder's name is known only once it exists: a signal between making
  // and registering it left it behind (seen when Ctrl-C came as soon as it
  // appeared). SignalHold keeps the signal pending until both are done.
  ckpt_test::TempDir t;
  const std::string out = t.file("out");
  int status = in_child([&] {
    std::optional<FolderReplace> f;
    {
      SignalHold hold;
      ::raise(SIGTERM);  // pending, not delivered
      f.emplace(Env::Default(), out, FolderReplace::Whole{}, false);
      write_new(*f, "model.safetensors", "shard");
      if (tree(t.file("")).size() != 2) ::_exit(3);  // the temporary folder and its file exist
    }
    ::_exit(4);  // not reached: the signal arrives when hold ends
  });
  EXPECT_EQ(status, 128 + SIGTERM);
  EXPECT_EQ(tree(t.file("")), (std::set<std::string>{}));
}

TEST(FolderReplace, ASignalBeforeCommitKeepsTheOldSetAndTheOtherFiles) {
  // The temporary folder holds hard links to the files kept: removing it
  // leaves them, and the old set, as they were.
  ckpt_test::TempDir t;
  fs::create_directories(t.file("dir"));
  t.write("dir/notes.txt", "notes");
  t.write("dir/model.safetensors", "old");
  const std::string dir = t.file("dir");
  int status = in_child([&] {
    FolderReplace f(
        Env::Default(), dir, [](const std::string& n) { return n.find(".safetensors") != std::string::npos; }, true);
    write_new(f, "model-00001-of-00002.safetensors", "new");
    ::raise(SIGINT);
  });
  EXPECT_EQ(status, 128 + SIGINT);
  EXPECT_EQ(tree(t.file("")), (std::set<std::string>{"dir", "dir/model.safetensors", "dir/notes.txt"}));
  EXPECT_EQ(read(dir + "/model.safetensors"), "old");
  EXPECT_EQ(read(dir + "/notes.txt"), "notes");
}

TEST(FolderReplace, WholeMakesANewFolder) {
  ckpt_test::TempDir t;
  Env& env = Env::Default();
  const std::string out = t.file("out");
  {
    FolderReplace f(env, out + "/", FolderReplace::Whole{}, false);
    write_new(f, "config.json", "{}");
    f.commit();
  }
  EXPECT_EQ(tree(out), (std::set<std::string>{"config.json"}));
  EXPECT_EQ(tree(t.file("")), (std::set<std::string>{"out", "out/config.json"}));  // no temporary folder left
}

TEST(FolderReplace, WholeReplacesSubFoldersAndNeverFollowsALinkInside) {
  ckpt_test::TempDir t;
  Env& env = Env::Default();
  const std::string out = t.file("out");
  fs::create_directories(out + "/sub/deeper");
  t.write("out/old.txt", "old");
  t.write("out/sub/deeper/x", "x");
  fs::create_directories(t.file("elsewhere"));
  t.write("elsewhere/keep", "keep");
  fs::create_directory_symlink(t.file("elsewhere"), out + "/link");

  // An existing folder needs force; nothing changes.
  try {
    FolderReplace f(env, out, FolderReplace::Whole{}, false);
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()), out + " exists (use `force=true` to replace it)");
  }
  // Not committed: the old folder as it was, the temporary one gone.
  {
    FolderReplace f(env, out, FolderReplace::Whole{}, true);
    write_new(f, "new.txt", "new");
  }
  const std::set<std::string> old_tree{"link@", "old.txt", "sub", "sub/deeper", "sub/deeper/x"};
  EXPECT_EQ(tree(out), old_tree);
  {
    FolderReplace f(env, out, FolderReplace::Whole{}, true);
    EXPECT_EQ(f.old_set(), (std::vector<std::string>{"link", "old.txt", "sub"}));
    write_new(f, "new.txt", "new");
    f.commit();
  }
  EXPECT_EQ(tree(out), (std::set<std::string>{"new.txt"}));
  EXPECT_EQ(read(out + "/new.txt"), "new");
  // The old folder removed, its sub-folders too; the link removed as itself.
  EXPECT_EQ(tree(t.file("")), (std::set<std::string>{"elsewhere", "elsewhere/keep", "out", "out/new.txt"}));
}

TEST(FolderReplace, WholeThroughALinkReplacesItsTarget) {
  ckpt_test::TempDir t;
  Env& env = Env::Default();
  fs::create_directories(t.file("real"));
  t.write("real/old.txt", "old");
  fs::create_directory_symlink("real", t.file("out"));
  {
    FolderReplace f(env, t.file("out"), FolderReplace::Whole{}, true);
    write_new(f, "new.txt", "new");
    f.commit();
  }
  EXPECT_TRUE(fs::is_symlink(t.file("out")));
  EXPECT_EQ(tree(t.file("")), (std::set<std::string>{"out@", "real", "real/new.txt"}));
}

TEST(FolderReplace, WholeRefusesAFile) {
  ckpt_test::TempDir t;
  t.write("out", "a file");
  EXPECT_THROW(FolderReplace(Env::Default(), t.file("out"), FolderReplace::Whole{}, true), UsageError);
  EXPECT_EQ(read(t.file("out")), "a file");
  EXPECT_EQ(tree(t.file("")), (std::set<std::string>{"out"}));
}

// A set of files keeps the folder's other files and refuses a sub-folder.
TEST(FolderReplace, SetKeepsOtherFilesAndRefusesSubFolders) {
  ckpt_test::TempDir t;
  Env& env = Env::Default();
  const std::string out = t.file("out");
  fs::create_directories(out);
  t.write("out/a.bin", "old a");
  t.write("out/config.json", "{}");
  auto in_set = [](const std::string& n) { return n == "a.bin" || n == "b.bin"; };
  EXPECT_THROW(FolderReplace(env, out, in_set, false), UsageError);
  {
    FolderReplace f(env, out, in_set, true);
    write_new(f, "b.bin", "new b");
    f.commit();
  }
  EXPECT_EQ(tree(out), (std::set<std::string>{"b.bin", "config.json"}));
  fs::create_directories(out + "/sub");
  EXPECT_THROW(FolderReplace(env, out, in_set, true), UsageError);
}

// Every failing step leaves the old folder whole (or, past the exchange, the
// new one) and no temporary folder.
TEST(FolderReplace, WholeUnderInjectedFaults) {
  ckpt_test::TempDir t;
  const std::string out = t.file("out");
  fs::create_directories(out + "/sub");
  t.write("out/sub/old", "old");
  for (int k = 1;; ++k) {
    FaultInjectingEnv env(Env::Default());
    env.fail_at(k, EIO);
    try {
      FolderReplace f(env, out, FolderReplace::Whole{}, true);
      write_new(f, "new", "new");
      f.commit();
    } catch (const IoError&) {
      // The old folder, or (the parent's fsync failed after the exchange) the new one.
      const std::set<std::string> now = tree(t.file(""));
      EXPECT_TRUE(now == (std::set<std::string>{"out", "out/sub", "out/sub/old"}) ||
                  now == (std::set<std::string>{"out", "out/new"}))
          << "step " << k;
      if (now.count("out/new")) {  // the old folder again, for the next step
        fs::remove_all(out);
        fs::create_directories(out + "/sub");
        t.write("out/sub/old", "old");
      }
      continue;
    }
    EXPECT_EQ(tree(t.file("")), (std::set<std::string>{"out", "out/new"})) << "step " << k;
    break;
  }
}

}  // namespace
}  // namespace ckpt
