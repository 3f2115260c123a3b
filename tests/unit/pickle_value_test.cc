#include "pickle/value.h"
#include "util/error.h"

#include <gtest/gtest.h>

using namespace ckpt::pickle;

TEST(PickleValue, DictItemsKeepOrderAndReplace) {
  Graph g;
  Node* d = g.dict();
  set_item(g, d, "b", g.integer(1));
  set_item(g, d, "a", g.integer(2));
  set_item(g, d, "b", g.integer(3));
  ASSERT_EQ(d->entries.size(), 2u);
  EXPECT_EQ(d->entries[0].first->text, "b");
  EXPECT_EQ(get_item(d, "b")->integer, 3);
  EXPECT_TRUE(erase_item(d, "b"));
  EXPECT_FALSE(erase_item(d, "b"));
  EXPECT_EQ(get_item(d, "b"), nullptr);
}

TEST(PickleValue, KeyEqualityFollowsPython) {
  Graph g;
  EXPECT_TRUE(key_equal(g.integer(1), g.boolean(true)));
  EXPECT_TRUE(key_equal(g.integer(2), g.real(2.0)));
  EXPECT_FALSE(key_equal(g.integer(2), g.str("2")));
  EXPECT_EQ(key_hash(g.integer(2)), key_hash(g.real(2.0)));
  EXPECT_TRUE(key_equal(g.tuple({g.str("a"), g.integer(1)}), g.tuple({g.str("a"), g.integer(1)})));
}

TEST(PickleValue, NodeLimitIsAnError) {
  Graph g(GraphLimits{3});
  g.none();
  g.none();
  g.none();
  EXPECT_THROW(g.none(), ckpt::FormatError);
}
