// Names derived from remote names (util/http_file.h, util/env.h join_path /
// sibling_path / last_name): how DCP folders and safetensors indexes find
// their other files over HTTP, where a folder cannot be listed.
#include <gtest/gtest.h>

#include "util/env.h"
#include "util/http_file.h"

namespace ckpt {
namespace {

TEST(RemoteNames, JoinKeepsTheRevisionAndDropsTheQuery) {
  EXPECT_EQ(join_path("https://h:8/a/dcp", ".metadata"), "https://h:8/a/dcp/.metadata");
  EXPECT_EQ(join_path("https://h/a/dcp/", ".metadata"), "https://h/a/dcp/.metadata");
  EXPECT_EQ(join_path("https://h/a/dcp?x=1#f", "s"), "https://h/a/dcp/s");
  EXPECT_EQ(join_path("hf://org/repo/dcp", ".metadata"), "hf://org/repo/dcp/.metadata");
  EXPECT_EQ(join_path("hf://org/repo/dcp@v1", ".metadata"), "hf://org/repo/dcp/.metadata@v1");
  EXPECT_EQ(join_path("hf://org/repo@v1/dcp/", "x"), "hf://org/repo@v1/dcp/x");
  EXPECT_EQ(join_path("hf://org/repo", ".metadata"), "hf://org/repo/.metadata");
  EXPECT_EQ(join_path("hf://datasets/org/repo@refs/pr/3", "x"), "hf://datasets/org/repo@refs/pr/3/x");
  EXPECT_EQ(join_path("local/dir", "x"), "local/dir/x");
  EXPECT_EQ(join_path("local/dir/", "x"), "local/dir/x");
}

TEST(RemoteNames, SiblingReplacesTheLastSegment) {
  EXPECT_EQ(sibling_path("https://h/m/model.safetensors.index.json?download=1", "model-1.safetensors"),
            "https://h/m/model-1.safetensors");
  EXPECT_EQ(sibling_path("https://h/index.json", "a"), "https://h/a");
  EXPECT_EQ(sibling_path("https://h", "a"), "https://h/a");
  EXPECT_EQ(sibling_path("hf://org/repo/sub/index.json@abc", "s"), "hf://org/repo/sub/s@abc");
  EXPECT_EQ(sibling_path("hf://org/repo@abc/index.json", "s"), "hf://org/repo@abc/s");
  EXPECT_EQ(sibling_path("hf://spaces/org/repo/index.json", "s"), "hf://spaces/org/repo/s");
  EXPECT_EQ(sibling_path("hf://org/repo/dcp/.metadata", ""), "hf://org/repo/dcp/");
  EXPECT_EQ(sibling_path("d/index.json", "s"), "d/s");
  EXPECT_EQ(sibling_path("index.json", "s"), "./s");
}

TEST(RemoteNames, LastNameAndRevisionFirst) {
  EXPECT_EQ(last_name("hf://org/repo/sub/model.safetensors.index.json@v2"), "model.safetensors.index.json");
  EXPECT_EQ(last_name("https://h/a/b.json?sig=1"), "b.json");
  EXPECT_EQ(last_name("https://h"), "");
  EXPECT_EQ(last_name("hf://org/repo"), "");
  EXPECT_EQ(last_name("https://h/dcp/"), "");
  EXPECT_EQ(last_name("/x/y.th"), "y.th");
  EXPECT_EQ(http::revision_first("hf://org/repo/sub/i.json@v2"), "hf://org/repo@v2/sub/i.json");
  EXPECT_EQ(http::revision_first("hf://org/repo@v2/sub/i.json"), "hf://org/repo@v2/sub/i.json");
  EXPECT_EQ(http::revision_first("https://h/i.json"), "https://h/i.json");
  // Both spellings name the same file.
  EXPECT_EQ(http::resolve_url("hf://org/repo/sub/i.json@v2"), http::resolve_url("hf://org/repo@v2/sub/i.json"));
}

}  // namespace
}  // namespace ckpt
