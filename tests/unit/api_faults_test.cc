// I/O faults on every writing operation, through the api functions the CLI
// calls: rewrite, edit (overrides + key surgery + dtype), export, wrap,
// sanitize, bundle (a folder of two files), safetensors out and in,
// consolidate and to-dcp, each run with a FaultInjectingEnv. One clean run
// counts the steps; then every step N is failed in turn, with ENOSPC, EIO
// and EFBIG rotating over the steps (and all three on the first and last
// steps), and each failure must leave the input byte-identical, no
// temporary file, an output only when it is complete (the one before a
// later output failed, or when only the directory fsync after the rename
// failed, AtomicOutput's contract), and a ckpt::Error naming the failure.
// In-place edits have their own fault tests (torch_in_place_test.cc).
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "api/edit.h"
#include "api_test_files.h"
#include "api/safetensors.h"
#include "api/shard.h"
#include "api/transformers.h"
#include "api/write.h"
#include "util/error.h"
#include "util/fault_env.h"

namespace {

namespace fs = std::filesystem;
using namespace ckpt;

using ckpt_test::kExample;
using ckpt_test::slurp;

// Every file below dir (relative path -> bytes); folders as "name/".
std::map<std::string, std::string> tree(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    std::string rel = fs::relative(e.path(), dir).string();
    if (e.is_directory()) out[rel + "/"] = "";
    else out[rel] = slurp(e.path());
  }
  return out;
}

class FaultsTest : public ckpt_test::TestDir {
 protected:
  void SetUp() override {
    TestDir::SetUp();
    input_ = path("in.th");
    fs::copy_file(kExample, input_);
  }

  // Runs op once cleanly, then fails each of its steps. After a failure the
  // tree must be the tree before, plus at most some of the outputs the clean
  // run wrote, each whole.
  void fail_every_step(const std::function<void(Env&)>& op) {
    FaultInjectingEnv env(Env::Default());
    const auto before = tree(dir_);
    env.reset();
    op(env);
    const uint64_t steps = env.steps();
    ASSERT_GT(steps, 3u);
    const auto good = tree(dir_);
    ASSERT_NE(good, before) << "the clean run wrote nothing";
    auto clear_outputs = [&] {
      for (const auto& [name, bytes] : tree(dir_))
        if (!before.count(name)) fs::remove_all(dir_ / name);
    };
    clear_outputs();

    const int errs[] = {ENOSPC, EIO, EFBIG};
    for (uint64_t n = 1; n <= steps; ++n) {
      bool edge = n <= 2 || n + 2 > steps;
      for (int k = 0; k < 3; ++k) {
        int err = errs[edge ? k : n % 3];
        SCOPED_TRACE("step " + std::to_string(n) + " of " + std::to_string(steps) + ", " + std::strerror(err));
        env.reset();
        env.fail_at(n, err);
        std::string message;
        try {
          op(env);
        } catch (const Error& e) {
          message = e.what();
        } catch (const std::exception& e) {
          ADD_FAILURE() << "not a ckpt::Error: " << e.what();
        }
        ASSERT_TRUE(env.fired());
        EXPECT_NE(message.find(std::strerror(err)), std::string::npos) << message;
        for (const auto& [name, bytes] : tree(dir_)) {
          if (before.count(name)) {
            EXPECT_EQ(bytes, before.at(name)) << name << " changed";
            continue;
          }
          auto it = good.find(name);
          if (it == good.end()) ADD_FAILURE() << "temporary file left behind: " << name;
          else EXPECT_EQ(bytes, it->second) << "partial output: " << name;
        }
        clear_outputs();
        if (!edge) break;
      }
    }
    // And the same operation still works afterwards, giving the same bytes.
    env.reset();
    op(env);
    EXPECT_EQ(tree(dir_), good);
    RecordProperty("steps", std::to_string(steps));
  }

  api::OutputOptions output(const std::string& name) const {
    api::OutputOptions o;
    o.out = path(name);
    return o;
  }

  std::string input_;
};

TEST_F(FaultsTest, Rewrite) {
  fail_every_step([&](Env& env) { api::rewrite(env, input_, output("out.th")); });
}

TEST_F(FaultsTest, Edit) {
  fail_every_step([&](Env& env) {
    api::EditOptions e;
    e.output = output("out.th");
    e.overrides = {"optim.lr=0.5", "+fault.test=[1, 2]"};
    e.drop = {"*.bias"};
    e.rename = {"^transformer\\.=lm."};
    e.dtype = "float16";
    api::EditResult r = api::edit(env, input_, e);
    EXPECT_EQ(r.config_changes.size(), 2u);
    ASSERT_EQ(r.states.size(), 1u);
    EXPECT_GT(r.states[0].dropped.size(), 0u);
    EXPECT_GT(r.bytes, 0u);
  });
}

TEST_F(FaultsTest, Export) {
  fail_every_step([&](Env& env) {
    api::ExportResult r = api::export_checkpoint(env, input_, {output("out.th"), ""});
    EXPECT_EQ(r.exported_from, "best_state/model");
  });
}

TEST_F(FaultsTest, Sanitize) {
  fail_every_step([&](Env& env) { EXPECT_TRUE(api::sanitize(env, input_, output("out.th")).written); });
}

TEST_F(FaultsTest, Wrap) {
  // wrap takes an exported checkpoint: make one (without faults) as the input.
  api::export_checkpoint(Env::Default(), input_, {output("exported.th"), ""});
  fs::rename(dir_ / "exported.th", input_);
  fail_every_step([&](Env& env) { api::wrap(env, input_, output("out.th")); });
}

TEST_F(FaultsTest, Bundle) {
  // A compression model from a file: the example exported (as its own model,
  // which bundle exports again), so the folder holds two written models.
  const std::string comp = path("comp.th");
  fs::copy_file(kExample, comp);
  fail_every_step([&](Env& env) {
    api::BundleOptions b;
    b.out = path("bundle");
    b.compression = comp;
    api::BundleResult r = api::bundle(env, input_, b);
    EXPECT_FALSE(r.compression_pretrained);
  });
}

TEST_F(FaultsTest, BundleIntoExistingFolder) {
  fs::create_directories(dir_ / "bundle");
  fail_every_step([&](Env& env) {
    api::BundleOptions b;
    b.out = path("bundle");
    b.compression = "facebook/encodec_32khz";
    EXPECT_TRUE(api::bundle(env, input_, b).compression_pretrained);
  });
}

TEST_F(FaultsTest, ToSafetensors) {
  fail_every_step([&](Env& env) {
    api::ToSafetensorsOptions o;
    o.out = path("out.safetensors");
    EXPECT_GT(api::to_safetensors(env, input_, o).tensors, 0u);
  });
}

TEST_F(FaultsTest, ToSafetensorsShards) {
  fail_every_step([&](Env& env) {
    api::ToSafetensorsOptions o;
    o.out = path("shards");
    o.max_shard_size = "20KB";
    EXPECT_GT(api::to_safetensors(env, input_, o).files, 1u);
  });
}

TEST_F(FaultsTest, FromSafetensorsInto) {
  api::ToSafetensorsOptions o;
  o.out = path("in.safetensors");
  api::to_safetensors(Env::Default(), input_, o);
  fail_every_step([&](Env& env) {
    api::FromSafetensorsOptions f;
    f.out = path("out.th");
    f.into = input_;
    EXPECT_GT(api::from_safetensors(env, path("in.safetensors"), f).replaced, 0u);
  });
}

TEST_F(FaultsTest, ToDcpAndConsolidate) {
  fail_every_step([&](Env& env) {
    api::ToDcpOptions o;
    o.out = path("dcp");
    o.state = "best_state/model";
    o.ranks = 2;
    EXPECT_EQ(api::to_dcp(env, input_, o).files, 2u);
  });
  // The last run's folder, made without faults, is consolidate's input.
  fail_every_step([&](Env& env) {
    api::ConsolidateResult r = api::consolidate(env, path("dcp"), {path("out.th"), false, {}});
    EXPECT_GT(r.tensors, 0u);
  });
}

// The shipped example's tensors are a tiny MusicGen LM under MusicGen-small's
// xp.cfg: set the sizes to its own, so that to-transformers takes it.
void make_tiny_lm(const std::string& in, const std::string& out) {
  api::EditOptions e;
  e.output.out = out;
  e.overrides = {"transformer_lm.dim=16", "transformer_lm.num_heads=2", "transformer_lm.num_layers=2",
                 "transformer_lm.card=32"};
  api::edit(Env::Default(), in, e);
}

TEST_F(FaultsTest, ToTransformersShardsReplacingAFolder) {
  make_tiny_lm(input_, path("lm.th"));
  fs::rename(dir_ / "lm.th", input_);
  fs::create_directories(dir_ / "hf");
  std::ofstream(dir_ / "hf" / "old.txt") << "old";
  fail_every_step([&](Env& env) {
    api::ToTransformersOptions o;
    o.out = path("hf");
    o.max_shard_size = "10KB";
    o.force = true;
    EXPECT_GT(api::to_transformers(env, input_, o).files, 1u);
  });
}

TEST_F(FaultsTest, FromTransformers) {
  make_tiny_lm(input_, path("lm.th"));
  api::ToTransformersOptions o;
  o.out = path("hf");
  api::to_transformers(Env::Default(), path("lm.th"), o);
  fail_every_step([&](Env& env) {
    api::FromTransformersOptions f;
    f.out = path("back");
    api::FromTransformersResult r = api::from_transformers(env, path("hf"), f);
    EXPECT_EQ(r.tensors, 36u);
  });
}

TEST_F(FaultsTest, FailedWriteLeavesExistingOutputWhenNotForced) {
  // Without force an existing output is refused before any write step.
  fs::copy_file(kExample, dir_ / "out.th");
  FaultInjectingEnv env(Env::Default());
  EXPECT_THROW(api::rewrite(env, input_, output("out.th")), UsageError);
  EXPECT_EQ(env.steps(), 0u);
  EXPECT_EQ(slurp(dir_ / "out.th"), slurp(kExample));
}

}  // namespace
