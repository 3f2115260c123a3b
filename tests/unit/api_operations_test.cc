// The api functions on the shipped example checkpoint: what each result
// struct holds (the CLI prints these; tests/e2e checks the printed form with
// torch), output sinks, progress callbacks and refusals.
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <tuple>

#include "api/config.h"
#include "api_test_files.h"
#include "api/diff.h"
#include "api/operations.h"
#include "api/edit.h"
#include "api/inspect.h"
#include "api/shard.h"
#include "api/show.h"
#include "api/stats.h"
#include "api/write.h"
#include "util/error.h"
#include "util/fault_env.h"

namespace {

namespace fs = std::filesystem;
using namespace ckpt;

using ckpt_test::kExample;
using ckpt_test::slurp;

// A sink that keeps what is written, as a pipe's reader would see it.
class StringFile final : public WritableFile {
 public:
  void append(std::string_view data) override { bytes.append(data); }
  void copy_from(RandomAccessFile& src, uint64_t offset, uint64_t n) override {
    bytes += src.read_string(offset, n);
  }
  uint64_t offset() const override { return bytes.size(); }
  void sync() override { ++syncs; }
  void close() override {}
  std::string bytes;
  int syncs = 0;
};

class ApiTest : public ckpt_test::TestDir {
 protected:
  Env& env_ = Env::Default();
};

TEST_F(ApiTest, OpenAndInfo) {
  api::Opened o = api::open_checkpoint(env_, kExample);
  EXPECT_EQ(o.layout, audiocraft::Layout::Training);
  ASSERT_TRUE(o.best_state);
  EXPECT_EQ(*o.best_state, "best_state/model");
  EXPECT_EQ(o.tensors_of(o.state_dict(o.default_state_path())).size(), 36u);
  EXPECT_THROW(o.state_dict("no/such"), UsageError);

  api::InfoResult r = api::info(env_, kExample);
  EXPECT_EQ(r.dialect, "torch-1.6");
  EXPECT_EQ(r.records.size(), 218u);
  EXPECT_EQ(r.kind, "solver musicgen");
  ASSERT_FALSE(r.state_dicts.empty());
  const api::StateDictSummary* best = nullptr;
  for (const auto& s : r.state_dicts)
    if (s.path == "best_state/model") best = &s;
  ASSERT_NE(best, nullptr);
  EXPECT_EQ(best->tensors, 36u);
  EXPECT_EQ(best->parameters, 12784u);
}

TEST_F(ApiTest, LsVisitsInOrderAndStopsAtDepth) {
  std::vector<api::LsEntry> seen;
  api::ls(env_, kExample, {"best_state", 1}, [&](const api::LsEntry& e) { seen.push_back(e); });
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].key, "best_state");
  EXPECT_EQ(seen[0].depth, 0);
  EXPECT_EQ(seen[1].path, "best_state/model");
  EXPECT_EQ(seen[1].summary, "dict (36 keys)");
  EXPECT_THROW(api::ls(env_, kExample, {"nope", 1}, [](const api::LsEntry&) {}), UsageError);
}

TEST_F(ApiTest, TensorsGroupsAndVerify) {
  api::TensorsResult t = api::tensors(env_, kExample, {std::nullopt, {"emb.*"}, 0});
  EXPECT_EQ(t.state, "best_state/model");
  EXPECT_EQ(t.rows.size(), 4u);
  auto groups = api::group_tensors(t.rows, 1);
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0].name, "emb");
  EXPECT_EQ(groups[0].parameters, 2112u);

  api::VerifyResult v = api::verify(env_, kExample);
  EXPECT_TRUE(v.ok);
  EXPECT_EQ(v.records, 218u);
  EXPECT_EQ(v.tensors, 216u);
  // A copy with a flipped byte in a tensor's record: a problem (its CRC),
  // not an exception.
  std::string bytes = slurp(kExample);
  const auto records = api::info(env_, kExample).records;
  auto rec = std::find_if(records.begin(), records.end(),
                          [](const auto& r) { return r.name.find("/data/") != std::string::npos && r.size > 0; });
  ASSERT_NE(rec, records.end());
  bytes[rec->offset.value()] ^= 0x5a;
  std::ofstream(path("bad.th"), std::ios::binary) << bytes;
  api::VerifyResult bad = api::verify(env_, path("bad.th"));
  ASSERT_EQ(bad.problems.size(), 1u);
  EXPECT_NE(bad.problems[0].find("record '" + rec->name + "': CRC-32 is"), std::string::npos) << bad.problems[0];
}

TEST_F(ApiTest, EditResultAndDiffOfTheOutput) {
  api::EditOptions e;
  e.output.out = path("out.th");
  e.overrides = {"optim.lr=1e-5"};
  e.drop = {"condition_provider.*"};
  e.dtype = "float32";
  e.match = {"emb.*"};
  std::vector<std::string> progress_outputs;
  e.output.progress = [&](const std::string& out, uint64_t, uint64_t) { progress_outputs.push_back(out); };
  api::EditResult r = api::edit(env_, kExample, e);
  ASSERT_EQ(r.config_changes.size(), 1u);
  EXPECT_EQ(r.config_changes[0], "optim.lr: 1 -> 1e-05");
  ASSERT_EQ(r.states.size(), 1u);
  EXPECT_EQ(r.states[0].dropped.size(), 2u);
  ASSERT_TRUE(r.dtype);
  EXPECT_EQ(r.dtype->converted, 4u);
  EXPECT_EQ(r.bytes, fs::file_size(path("out.th")));
  ASSERT_FALSE(progress_outputs.empty());
  EXPECT_EQ(progress_outputs.front(), path("out.th"));

  api::DiffResult d = api::diff(env_, kExample, path("out.th"), {});
  EXPECT_FALSE(d.equal);
  EXPECT_EQ(d.tensors.only_in_a.size(), 2u);
  EXPECT_EQ(d.tensors.changed.size(), 4u);  // float16 -> float32
  EXPECT_NE(d.config.diff.find("+  lr: 1.0e-05"), std::string::npos) << d.config.diff;
  // Under a tolerance a dtype change alone is not a difference; the dropped
  // keys and the config still are.
  api::DiffOptions tol;
  tol.rtol = 1e-3;
  EXPECT_TRUE(api::diff(env_, kExample, path("out.th"), tol).tensors.values.empty());
  EXPECT_TRUE(api::diff(env_, kExample, kExample, {}).equal);
}

// The tolerance is checked by the operation, not a front end (Python's
// diff(atol=-1) was not refused): a finite number >= 0, named in the message.
TEST_F(ApiTest, DiffRefusesANegativeOrNonFiniteTolerance) {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  for (auto [atol, rtol, message] : std::initializer_list<std::tuple<double, double, const char*>>{
           {-1, 0, "`atol` -1.0: must be a number >= 0 (finite; e.g. 1e-3)"},
           {0, -1e-300, "`rtol` -1e-300: must be a number >= 0 (finite; e.g. 1e-3)"},
           {inf, 0, "`atol` inf: must be a number >= 0 (finite; e.g. 1e-3)"},
           {0, nan, "`rtol` nan: must be a number >= 0 (finite; e.g. 1e-3)"}}) {
    api::DiffOptions d;
    d.atol = atol;
    d.rtol = rtol;
    try {
      api::diff(env_, kExample, kExample, d);
      ADD_FAILURE() << message;
    } catch (const UsageError& e) {
      EXPECT_EQ(std::string(e.what()), message);
    }
  }
  // Through the JSON options Python sends: NaN and Inf as their repr.
  const api::Operation& op = api::operation("diff");
  EXPECT_THROW(op.call(env_, {kExample, kExample}, api::Json{{"atol", "inf"}}, nullptr), UsageError);
  EXPECT_THROW(op.call(env_, {kExample, kExample}, api::Json{{"rtol", -1}}, nullptr), UsageError);
  EXPECT_THROW(op.call(env_, {kExample, kExample}, api::Json{{"rtol", "1e-3"}}, nullptr), UsageError);
  api::DiffOptions zero;
  EXPECT_TRUE(api::diff(env_, kExample, kExample, zero).equal);
}

TEST_F(ApiTest, EditRefusalsWriteNothing) {
  api::EditOptions e;
  e.output.out = path("out.th");
  EXPECT_THROW(api::edit(env_, kExample, e), UsageError);  // nothing to do
  e.drop = {"no.such.*"};
  EXPECT_THROW(api::edit(env_, kExample, e), UsageError);  // matches no key
  e.drop = {"*"};
  EXPECT_THROW(api::edit(env_, kExample, e), UsageError);  // empties the state dict
  e.allow_empty = true;
  e.dry_run = true;
  api::EditResult r = api::edit(env_, kExample, e);
  EXPECT_EQ(r.states.at(0).dropped.size(), 36u);
  EXPECT_GT(r.bytes, 0u);
  EXPECT_FALSE(fs::exists(path("out.th")));
}

TEST_F(ApiTest, SinkGetsTheSameCheckpointAsAFile) {
  api::OutputOptions file;
  file.out = path("a.th");
  api::ExportResult r = api::export_checkpoint(env_, kExample, {file, ""});
  EXPECT_EQ(r.exported_from, "best_state/model");
  StringFile sink;
  api::OutputOptions streamed;
  streamed.out = "-";
  streamed.sink = &sink;
  api::export_checkpoint(env_, kExample, {streamed, ""});
  EXPECT_EQ(sink.syncs, 1);
  std::ofstream(path("b.th"), std::ios::binary) << sink.bytes;
  // The archive name differs ("archive" for a stream, as torch.save names it).
  EXPECT_TRUE(api::diff(env_, path("a.th"), path("b.th"), {}).equal);
  EXPECT_FALSE(fs::exists(dir_ / "-"));
}

TEST_F(ApiTest, ProgressCallbackCancelsAWrite) {
  struct Interrupted {};
  api::OutputOptions o;
  o.out = path("out.th");
  int calls = 0;
  o.progress = [&](const std::string&, uint64_t done, uint64_t total) {
    ++calls;
    if (done > 0 && done < total) throw Interrupted{};
  };
  EXPECT_THROW(api::rewrite(env_, kExample, o), Interrupted);
  EXPECT_GT(calls, 0);
  EXPECT_TRUE(fs::is_empty(dir_)) << "output or temporary file left behind";
}

TEST_F(ApiTest, BundleRefusesAFileAsFolder) {
  std::ofstream(path("f")) << "x";
  api::BundleOptions b;
  b.out = path("f");
  b.compression = "facebook/encodec_32khz";
  EXPECT_THROW(api::bundle(env_, kExample, b), UsageError);
  b.out = path("bundle");
  api::BundleResult r = api::bundle(env_, kExample, b);
  EXPECT_TRUE(r.compression_pretrained);
  EXPECT_TRUE(fs::exists(r.state_dict));
  EXPECT_TRUE(fs::exists(r.compression_state_dict));
  EXPECT_THROW(api::bundle(env_, kExample, b), UsageError);  // exists, no force
}

TEST_F(ApiTest, StatsAndDiffOfADcpFolderLeaveNoTemporary) {
  api::ToDcpOptions o;
  o.out = path("dcp");
  o.state = "best_state/model";
  o.ranks = 2;
  api::to_dcp(env_, kExample, o);
  const std::string tmp = path("tmp");
  fs::create_directories(tmp);
  const char* old_tmpdir = std::getenv("TMPDIR");
  std::string saved = old_tmpdir ? old_tmpdir : "";
  ::setenv("TMPDIR", tmp.c_str(), 1);
  std::vector<api::StatsRow> s = api::stats(env_, path("dcp"), {});
  EXPECT_EQ(s.size(), 36u);
  api::DiffOptions d;
  d.state = "";
  EXPECT_TRUE(api::diff(env_, path("dcp"), path("dcp"), d).equal);
  EXPECT_TRUE(fs::is_empty(tmp)) << "temporary consolidation left behind";
  // A failure to make the temporary folder is an error naming it.
  FaultInjectingEnv faulty(env_);
  faulty.fail_at(1, ENOSPC);
  EXPECT_THROW(api::stats(faulty, path("dcp"), {}), IoError);
  EXPECT_TRUE(fs::is_empty(tmp));
  if (old_tmpdir) ::setenv("TMPDIR", saved.c_str(), 1);
  else ::unsetenv("TMPDIR");
}

TEST_F(ApiTest, StatsShowAndConfig) {
  api::StatsOptions so;
  so.match = {"emb.0.weight"};
  std::vector<api::StatsRow> s = api::stats(env_, kExample, so);
  ASSERT_EQ(s.size(), 1u);
  ASSERT_TRUE(s[0].finite);
  EXPECT_EQ(s[0].numel, 528u);
  EXPECT_EQ(*s[0].finite, 528u);
  EXPECT_EQ(s[0].nan, 0u);

  api::TensorValues values(env_, kExample, "emb.0.weight", std::nullopt);
  EXPECT_EQ(values.info().numel(), 528u);
  std::vector<std::string> cells;
  EXPECT_EQ(values.next(cells, 3), 3u);
  EXPECT_EQ(cells[0], "0.23254");
  EXPECT_THROW(api::TensorValues(env_, kExample, "nope", std::nullopt), UsageError);

  EXPECT_EQ(api::config_text(env_, kExample, {"optim.lr", false, ""}), "1\n");
  EXPECT_THROW(api::config_text(env_, kExample, {"optim.nope", false, ""}), UsageError);
  auto keys = api::config_keys(env_, kExample);
  EXPECT_NE(std::find(keys.begin(), keys.end(), "optim.lr"), keys.end());
}

}  // namespace
