// Power loss on every write path (issue 19): each operation runs once
// through a RecordingEnv, then every crash state its log allows
// (tests/unit/crash_states.h: prefixes after the last durable point, subsets
// of the unsynced steps, torn 4 KiB writes, directory entries lost without a
// directory fsync) is materialised and must read as the old result or the
// new one, never a third thing. CKPT_CRASH_FULL=1 enumerates more (all
// subsets of up to 14 pending steps, 8 torn variants per write) for the
// figures in docs/CRASH_SAFETY.md; CI runs the short setting.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include "api/edit.h"
#include "api/safetensors.h"
#include "api/shard.h"
#include "api/transformers.h"
#include "api/write.h"
#include "api_test_files.h"
#include "crash_states.h"
#include "pickle/pickler.h"
#include "torch/open_any.h"
#include "util/error.h"
#include "util/recording_env.h"

namespace {

namespace fs = std::filesystem;
using namespace ckpt;
using ckpt_test::kExample;
using ckpt_test::slurp;

bool full() {
  const char* v = std::getenv("CKPT_CRASH_FULL");
  return v && std::string(v) == "1";
}

ckpt_test::CrashOptions options() {
  ckpt_test::CrashOptions o;
  if (full()) {
    o.full_subsets_up_to = 14;
    o.samples = 512;
    o.torn_blocks_max = 8;
  } else {
    o.full_subsets_up_to = 6;
    o.samples = 16;
    o.torn_blocks_max = 2;
  }
  return o;
}

// What a checkpoint file reads as: its pickle and every storage's bytes.
std::string meaning(const std::string& path) {
  auto any = torch::open_any(Env::Default(), path);
  std::string out = pickle::pickle(any.ck->root());
  for (const auto& [key, s] : any.ck->storages()) {
    torch::StorageLocation loc = torch::locate_storage(*any.ck, s);
    out += "\n" + key + ":";
    if (loc.file) out += loc.file->read_string(loc.offset, static_cast<size_t>(loc.size));
  }
  return out;
}

std::map<std::string, std::string> tree(const fs::path& dir) {
  std::map<std::string, std::string> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    std::string rel = fs::relative(e.path(), dir).string();
    if (e.is_directory()) out[rel + "/"] = "";
    else out[rel] = slurp(e.path());
  }
  return out;
}

class CrashTest : public ckpt_test::TestDir {
 protected:
  void SetUp() override {
    TestDir::SetUp();
    root_ = path("root");
    scratch_ = path("scratch");
    fs::create_directories(root_);
    input_ = root_ + "/in.th";
    fs::copy_file(kExample, input_);
  }

  // Runs op through a RecordingEnv, then checks every crash state of the
  // watched path with check(state_path, before_run_value, after_run_value).
  enum class Compare { Bytes, Meaning, Tree };
  // writeback: also check the states of a file system that may persist a
  // grown size before the data (ext4 data=writeback); false for the in-place
  // append, whose design assumes ordered data (docs/CRASH_SAFETY.md), where
  // those states are only counted.
  void crash_check(const std::string& name, const std::string& watch, Compare how,
                   const std::function<void(Env&)>& op, bool writeback = true) {
    auto value = [&](const std::string& p) -> std::string {
      if (how == Compare::Tree) {
        if (!fs::exists(p)) return "(absent)";
        std::string v;
        for (const auto& [n, b] : tree(p)) v += n + '\0' + b + '\0';
        return v;
      }
      if (!fs::exists(p)) return "(absent)";
      if (how == Compare::Bytes) return "=" + slurp(p);
      try {
        return "=" + meaning(p);
      } catch (const Error& e) {
        return std::string("error: ") + e.what();
      }
    };
    const std::string old_value = value(watch);
    auto before = ckpt_test::CrashStates::snapshot(root_);
    RecordingEnv env(Env::Default());
    op(env);
    const std::string new_value = value(watch);
    ASSERT_NE(old_value, new_value) << name << ": the operation changed nothing";
    ASSERT_EQ(new_value.rfind("error", 0), std::string::npos) << new_value.substr(0, 200);
    ckpt_test::CrashStates states(before, env.ops());
    const std::string mapped_watch_suffix = watch.substr(root_.size());
    auto check = [&](const std::string& p) -> std::string {
      std::string v = value(p);
      if (v == old_value || v == new_value) return "";
      return v.substr(0, 160);
    };
    ckpt_test::CrashOptions o = options();
    o.writeback = writeback;
    auto report = states.run(root_, watch, scratch_, check, o);
    if (!writeback) {
      o.writeback = true;
      auto wb = states.run(root_, watch, scratch_, check, o);
      std::printf("crash states: %-32s data=writeback: %zu states, %zu read as neither (not asserted)\n", name.c_str(),
                  wb.states, wb.failures);
    }
    std::string ops;
    for (const auto& o : env.ops())
      ops += std::string(op_name(o.kind)) + " " + o.path.substr(root_.size()) +
             (o.path2.empty() ? "" : " -> " + o.path2.substr(root_.size())) +
             (o.kind == RecordedOp::Kind::Write ? " @" + std::to_string(o.offset) + "+" + std::to_string(o.data.size()) : "") + "\n";
    EXPECT_EQ(report.failures, 0u) << name << ": " << report.failures << " of " << report.states
                                   << " crash states read as neither the old nor the new result; first: "
                                   << (report.first_failures.empty() ? "" : report.first_failures[0]) << "\nsteps:\n" << ops;
    EXPECT_GT(report.states, 2u);
    std::printf("crash states: %-32s %6zu states (%zu distinct outputs checked), %3zu crash points, %4zu steps (%zu recorded), %zu failures\n",
                name.c_str(), report.states, report.checked, report.crash_points, states.steps(), env.ops().size(),
                report.failures);
    RecordProperty("crash_states", std::to_string(report.states));
  }

  api::EditOptions edit_override(const std::string& value) {
    api::EditOptions e;
    e.overrides = {"optim.lr=" + value};
    return e;
  }

  std::string root_, scratch_, input_;
};

TEST_F(CrashTest, AtomicOutputNew) {
  const std::string out = root_ + "/out.th";
  crash_check("atomic output (new)", out, Compare::Bytes, [&](Env& env) {
    api::EditOptions e = edit_override("0.25");
    e.output.out = out;
    api::edit(env, input_, e);
  });
}

TEST_F(CrashTest, AtomicOutputReplace) {
  const std::string out = root_ + "/out.th";
  fs::copy_file(kExample, out);
  crash_check("atomic output (--force)", out, Compare::Bytes, [&](Env& env) {
    api::EditOptions e = edit_override("0.25");
    e.output.out = out;
    e.output.force = true;
    api::edit(env, input_, e);
  });
}

TEST_F(CrashTest, InPlaceAppend) {
  crash_check("edit --in-place (append)", input_, Compare::Meaning, [&](Env& env) {
    api::EditOptions e = edit_override("0.125");
    e.in_place = true;
    api::EditResult r = api::edit(env, input_, e);
    ASSERT_TRUE(r.in_place && r.in_place->appended);
  }, /*writeback=*/false);
}

TEST_F(CrashTest, InPlaceDtypeRewrite) {
  crash_check("edit --in-place --dtype", input_, Compare::Bytes, [&](Env& env) {
    api::EditOptions e;
    e.in_place = true;
    e.dtype = "float32";  // the example's tensors are float16
    api::edit(env, input_, e);
  });
}

TEST_F(CrashTest, Compact) {
  {
    api::EditOptions e = edit_override("0.5");
    e.in_place = true;
    api::edit(Env::Default(), input_, e);
  }
  crash_check("compact", input_, Compare::Bytes, [&](Env& env) { api::compact(env, input_); });
}

TEST_F(CrashTest, SafetensorsShardFolderReplace) {
  const std::string dir = root_ + "/hf";
  fs::create_directories(dir);
  std::ofstream(dir + "/config.json") << "{\"model_type\": \"musicgen\"}";
  api::ToSafetensorsOptions one;
  one.out = dir;
  one.max_shard_size = "1GB";
  api::to_safetensors(Env::Default(), input_, one);
  ASSERT_TRUE(fs::exists(dir + "/model.safetensors"));
  crash_check("safetensors folder 1 -> shards", dir, Compare::Tree, [&](Env& env) {
    api::ToSafetensorsOptions o;
    o.out = dir;
    o.max_shard_size = "20KB";
    o.force = true;
    EXPECT_TRUE(api::to_safetensors(env, input_, o).sharded);
  });
  ASSERT_FALSE(fs::exists(dir + "/model.safetensors"));
  ASSERT_TRUE(fs::exists(dir + "/config.json"));
  crash_check("safetensors folder shards -> 1", dir, Compare::Tree, [&](Env& env) {
    api::ToSafetensorsOptions o;
    o.out = dir;
    o.max_shard_size = "1GB";
    o.force = true;
    api::to_safetensors(env, input_, o);
  });
  ASSERT_TRUE(fs::exists(dir + "/model.safetensors"));
  ASSERT_FALSE(fs::exists(dir + "/model.safetensors.index.json"));
}

TEST_F(CrashTest, DcpFolderReplace) {
  const std::string dir = root_ + "/dcp";
  api::ToDcpOptions o;
  o.out = dir;
  o.state = "best_state/model";
  api::to_dcp(Env::Default(), input_, o);
  crash_check("to-dcp folder (--force)", dir, Compare::Tree, [&](Env& env) {
    api::ToDcpOptions p = o;
    p.ranks = 2;
    p.force = true;
    api::to_dcp(env, input_, p);
  });
}

TEST_F(CrashTest, BundleFolderReplace) {
  const std::string dir = root_ + "/bundle";
  const std::string comp = root_ + "/comp.th";
  fs::copy_file(kExample, comp);
  api::BundleOptions b;
  b.out = dir;
  b.compression = comp;
  api::bundle(Env::Default(), input_, b);
  {
    api::EditOptions e = edit_override("0.75");
    e.in_place = true;
    api::edit(Env::Default(), input_, e);
  }
  crash_check("bundle folder (--force)", dir, Compare::Tree, [&](Env& env) {
    api::BundleOptions c = b;
    c.force = true;
    c.version = "1.1";
    api::bundle(env, input_, c);
  });
}

// to-transformers --force: the output folder replaced as a whole
// (util/folder_replace.h, Whole), a sub-folder of the old one included.
TEST_F(CrashTest, TransformersFolderReplace) {
  {
    api::EditOptions e;  // the example's tensors under a config of their sizes (as api_faults_test's)
    e.output.out = root_ + "/lm.th";
    e.overrides = {"transformer_lm.dim=16", "transformer_lm.num_heads=2", "transformer_lm.num_layers=2",
                   "transformer_lm.card=32"};
    api::edit(Env::Default(), input_, e);
  }
  const std::string dir = root_ + "/hf";
  api::ToTransformersOptions o;
  o.out = dir;
  api::to_transformers(Env::Default(), root_ + "/lm.th", o);
  fs::create_directories(dir + "/extra");
  std::ofstream(dir + "/extra/notes.txt") << "old";
  crash_check("transformers folder (to-transformers --force)", dir, Compare::Tree, [&](Env& env) {
    api::ToTransformersOptions p = o;
    p.force = true;
    p.dtype = "float16";
    api::to_transformers(env, root_ + "/lm.th", p);
  });
  EXPECT_FALSE(fs::exists(dir + "/extra"));
}

}  // namespace
