#include "audiocraft/layout.h"

#include <gtest/gtest.h>

using ckpt::audiocraft::fsdp_rank_of;

TEST(AudiocraftLayout, FsdpRankFromTheFileName) {
  EXPECT_EQ(fsdp_rank_of("checkpoint.th.1"), 1);
  EXPECT_EQ(fsdp_rank_of("/xps/9f3a/checkpoint_200.th.15"), 15);
  EXPECT_EQ(fsdp_rank_of("dir.th.3/checkpoint.th"), std::nullopt);
  EXPECT_EQ(fsdp_rank_of("checkpoint.th"), std::nullopt);
  EXPECT_EQ(fsdp_rank_of("checkpoint.pt.1"), std::nullopt);
  EXPECT_EQ(fsdp_rank_of("checkpoint.th."), std::nullopt);
  EXPECT_EQ(fsdp_rank_of("checkpoint.th.x1"), std::nullopt);
  EXPECT_EQ(fsdp_rank_of("checkpoint.th.99999999999999999999"), std::nullopt);  // not a rank
  EXPECT_EQ(fsdp_rank_of(".th.2"), std::nullopt);
}
