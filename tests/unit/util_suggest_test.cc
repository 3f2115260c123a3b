#include "util/suggest.h"

#include <gtest/gtest.h>

using ckpt::closest_match;
using ckpt::did_you_mean;

TEST(UtilSuggest, ClosestWithinAFewEdits) {
  std::vector<std::string> keys{"lr", "epochs", "adam", "optimizer"};
  EXPECT_EQ(closest_match("lrr", keys), "lr");
  EXPECT_EQ(closest_match("epoch", keys), "epochs");
  EXPECT_EQ(closest_match("optim", keys), "optimizer");  // a prefix
  EXPECT_EQ(closest_match("zzzzzz", keys), "");
  EXPECT_EQ(closest_match("lr", keys), "");  // the word itself is no suggestion
  EXPECT_EQ(did_you_mean("edti", {"edit", "export"}), "; did you mean 'edit'?");
  EXPECT_EQ(did_you_mean("", {"edit"}), "");
  EXPECT_EQ(closest_match("nope", {"name"}), "");  // two edits of four letters: no suggestion
  EXPECT_EQ(closest_match("weigth", {"weight"}), "weight");  // a swap is one edit
}

TEST(UtilSuggest, LongNamesAllowMoreEdits) {
  EXPECT_EQ(closest_match("transformer.layers.0.linear1.weigth", {"transformer.layers.0.linear1.weight",
                                                                  "transformer.layers.0.linear2.bias"}),
            "transformer.layers.0.linear1.weight");
}
