// I/O faults on every writing operation: rewrite (torch::save of the graph as
// read), edit (overrides + key surgery), export, wrap and sanitize (the
// audiocraft::make_* roots), each written by torch::save through a
// FaultInjectingEnv. One clean run counts the steps; then every step N is
// failed in turn, with ENOSPC, EIO and EFBIG rotating over the steps (and all
// three on the first and last steps), and each failure must leave the input
// byte-identical, no output or temporary file, and a ckpt::Error naming the
// failure. The one exception is AtomicOutput's: when only the directory fsync
// after the rename fails, the complete output is in place (and the error is
// still reported). In-place edits have their own fault tests.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "audiocraft/operations.h"
#include "cli/session.h"
#include "omegaconf/override.h"
#include "torch/checkpoint.h"
#include "util/error.h"
#include "util/fault_env.h"

namespace {

namespace fs = std::filesystem;
using namespace ckpt;

const std::string kExample = std::string(CKPT_SOURCE_DIR) + "/examples/musicgen_tiny_training.th";

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::set<std::string> listing(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

class FaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ckpt_faults_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    input_ = (dir_ / "in.th").string();
    fs::copy_file(kExample, input_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A root to save, built from the checkpoint (may edit its graph).
  using MakeRoot = std::function<const pickle::Node*(torch::Checkpoint&)>;

  // Runs the save once cleanly, then fails each of its steps.
  void fail_every_step(const MakeRoot& make_root) {
    FaultInjectingEnv env(Env::Default());
    auto ck = torch::Checkpoint::open(env, input_);
    const pickle::Node* root = make_root(*ck);
    const std::string out = (dir_ / "out.th").string();
    const std::string before = slurp(input_);
    const std::set<std::string> files_before = listing(dir_);

    env.reset();
    torch::save(*ck, root, env, out);
    const uint64_t steps = env.steps();
    ASSERT_GT(steps, 3u);
    ASSERT_TRUE(fs::exists(out));
    const std::string good = slurp(out);
    fs::remove(out);

    const int errs[] = {ENOSPC, EIO, EFBIG};
    size_t failures = 0;
    for (uint64_t n = 1; n <= steps; ++n) {
      bool edge = n <= 2 || n + 2 > steps;
      for (int k = 0; k < 3; ++k) {
        int err = errs[edge ? k : n % 3];
        SCOPED_TRACE("step " + std::to_string(n) + " of " + std::to_string(steps) + ", " + std::strerror(err));
        env.reset();
        env.fail_at(n, err);
        std::string message;
        try {
          torch::save(*ck, root, env, out);
        } catch (const Error& e) {
          message = e.what();
        } catch (const std::exception& e) {
          ADD_FAILURE() << "not a ckpt::Error: " << e.what();
        }
        ASSERT_TRUE(env.fired());
        EXPECT_NE(message.find(std::strerror(err)), std::string::npos) << message;
        if (n == steps) {
          // Only the directory fsync after the rename failed: the output is
          // complete and fsync'd (AtomicOutput's contract), the error reported.
          EXPECT_EQ(slurp(out), good);
          fs::remove(out);
        }
        EXPECT_EQ(listing(dir_), files_before) << "output or temporary file left behind";
        ++failures;
        if (!edge) break;
      }
    }
    EXPECT_EQ(slurp(input_), before) << "the input changed";
    // And the same save still works afterwards, giving the same bytes.
    env.reset();
    torch::save(*ck, root, env, out);
    EXPECT_EQ(slurp(out), good);
    RecordProperty("steps", std::to_string(steps));
    RecordProperty("failures", std::to_string(failures));
  }

  fs::path dir_;
  std::string input_;
};

audiocraft::Layout layout_of(const torch::Checkpoint& ck) {
  return audiocraft::detect_layout(ck.root(), cli::CheckpointTensorTest(ck));
}

TEST_F(FaultsTest, Rewrite) {
  fail_every_step([](torch::Checkpoint& ck) { return ck.root(); });
}

TEST_F(FaultsTest, Edit) {
  fail_every_step([](torch::Checkpoint& ck) {
    pickle::Graph& g = ck.graph();
    audiocraft::apply_overrides(g, ck.root(), {omegaconf::parse_override("optim.lr=0.5"),
                                               omegaconf::parse_override("+fault.test=[1, 2]")});
    audiocraft::KeySurgery s;
    s.drop = {"*.bias"};
    s.renames = {{"^transformer\\.", "lm."}};
    auto path = audiocraft::best_state_path(ck.root(), layout_of(ck));
    EXPECT_TRUE(path.has_value());
    audiocraft::apply_surgery(g, audiocraft::resolve_path(ck.root(), *path), s, *path);
    return ck.root();
  });
}

TEST_F(FaultsTest, Export) {
  fail_every_step([](torch::Checkpoint& ck) {
    return audiocraft::make_export(ck.graph(), ck.root(), layout_of(ck), std::nullopt);
  });
}

TEST_F(FaultsTest, Sanitize) {
  fail_every_step([](torch::Checkpoint& ck) {
    auto result = audiocraft::make_sanitized(ck.graph(), ck.root());
    EXPECT_TRUE(result.refused.empty());
    return result.root;
  });
}

TEST_F(FaultsTest, Wrap) {
  // wrap takes an exported checkpoint: make one (without faults) as the input.
  {
    auto ck = torch::Checkpoint::open(Env::Default(), input_);
    auto* root = audiocraft::make_export(ck->graph(), ck->root(), layout_of(*ck), std::nullopt);
    torch::save(*ck, root, Env::Default(), (dir_ / "exported.th").string());
  }
  fs::remove(input_);
  fs::rename(dir_ / "exported.th", input_);
  fail_every_step([](torch::Checkpoint& ck) {
    EXPECT_EQ(layout_of(ck), audiocraft::Layout::Exported);
    return audiocraft::make_wrap(ck.graph(), ck.root(), layout_of(ck));
  });
}

}  // namespace
