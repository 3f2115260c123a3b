// Sharded checkpoints without files: huggingface_hub's shard split and size
// parsing, and the chunk tiling check of DCP tensors (overlaps, gaps, runs).
#include <gtest/gtest.h>

#include "torch/dcp.h"
#include "torch/safetensors_shards.h"
#include "util/error.h"

namespace ckpt::torch {
namespace {

std::vector<std::vector<size_t>> groups(const ShardPlan& p) {
  std::vector<std::vector<size_t>> g;
  for (const auto& f : p.files) g.push_back(f.second);
  return g;
}

TEST(ShardPlan, FollowsHuggingFaceHubsDocstringExample) {
  // [6GB, 6GB, 2GB, 6GB, 2GB, 2GB] at 10GB -> [6], [6+2], [6+2+2]
  auto p = plan_shards({6, 6, 2, 6, 2, 2}, 10);
  EXPECT_EQ(groups(p), (std::vector<std::vector<size_t>>{{0}, {1, 2}, {3, 4, 5}}));
  EXPECT_EQ(p.total_size, 24u);
  EXPECT_EQ(p.files[0].first, "model-00001-of-00003.safetensors");
  EXPECT_EQ(p.files[2].first, "model-00003-of-00003.safetensors");
}

TEST(ShardPlan, ATensorOverTheLimitGetsItsOwnShardAheadOfTheCurrentOne) {
  auto p = plan_shards({240, 40, 336, 14, 48}, 300);
  EXPECT_EQ(groups(p), (std::vector<std::vector<size_t>>{{2}, {0, 1, 3}, {4}}));
}

TEST(ShardPlan, OneShardIsModelSafetensors) {
  auto p = plan_shards({1, 2, 3}, 100);
  ASSERT_EQ(p.files.size(), 1u);
  EXPECT_EQ(p.files[0].first, "model.safetensors");
  EXPECT_EQ(p.files[0].second, (std::vector<size_t>{0, 1, 2}));
  EXPECT_EQ(plan_shards({}, 100).files.size(), 1u);
}

TEST(ShardSize, ParsesAsHuggingFaceHub) {
  EXPECT_EQ(parse_shard_size("5GB"), 5'000'000'000u);
  EXPECT_EQ(parse_shard_size(" 500mb "), 500'000'000u);
  EXPECT_EQ(parse_shard_size("1.5KB"), 1500u);
  EXPECT_EQ(parse_shard_size("2TB"), 2'000'000'000'000u);
  EXPECT_EQ(parse_shard_size("1234"), 1234u);
  for (const char* bad : {"", "GB", "5XB", "-1GB", "0", "1e30GB", "nanGB"}) EXPECT_THROW(parse_shard_size(bad), UsageError) << bad;
}

DcpItem tensor(std::vector<int64_t> size, std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> chunks) {
  DcpItem it;
  it.fqn = "w";
  it.is_tensor = true;
  it.size = std::move(size);
  for (auto& [o, s] : chunks) it.chunks.push_back({o, s, {}});
  return it;
}

TEST(DcpRuns, RowShardsAreOneRunEach) {
  auto runs = DcpCheckpoint::runs_of(tensor({10, 6}, {{{5, 0}, {5, 6}}, {{0, 0}, {5, 6}}}), "t");
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].start, 0u);
  EXPECT_EQ(runs[0].chunk, 1u);
  EXPECT_EQ(runs[1].start, 30u);
}

TEST(DcpRuns, ColumnShardsInterleaveRowByRow) {
  auto runs = DcpCheckpoint::runs_of(tensor({3, 4}, {{{0, 0}, {3, 2}}, {{0, 2}, {3, 2}}}), "t");
  ASSERT_EQ(runs.size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(runs[i].start, 2 * i);
    EXPECT_EQ(runs[i].chunk, i % 2);
  }
}

TEST(DcpRuns, ScalarsAndEmptyTensors) {
  EXPECT_EQ(DcpCheckpoint::runs_of(tensor({}, {{{}, {}}}), "t").size(), 1u);
  EXPECT_TRUE(DcpCheckpoint::runs_of(tensor({0, 3}, {{{0, 0}, {0, 3}}}), "t").empty());
  EXPECT_TRUE(DcpCheckpoint::runs_of(tensor({0}, {}), "t").empty());
}

TEST(DcpRuns, OverlapsAndGapsAreErrors) {
  try {
    DcpCheckpoint::runs_of(tensor({10, 6}, {{{0, 0}, {5, 6}}, {{4, 0}, {5, 6}}}), "w");
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("overlap"), std::string::npos) << e.what();
  }
  try {
    DcpCheckpoint::runs_of(tensor({10, 6}, {{{0, 0}, {5, 6}}}), "w");
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("no chunk holds elements 30 to 59"), std::string::npos) << e.what();
  }
  EXPECT_THROW(DcpCheckpoint::runs_of(tensor({4}, {{{0}, {2}}, {{0}, {2}}}), "w"), FormatError);
  EXPECT_THROW(DcpCheckpoint::runs_of(tensor({}, {{{}, {}}, {{}, {}}}), "w"), FormatError);
}

}  // namespace
}  // namespace ckpt::torch
