#include <gtest/gtest.h>

#include <regex>

#include "audiocraft/operations.h"
#include "util/error.h"

using ckpt::audiocraft::compile_python_rename;

namespace {

// What re.sub(pattern, repl, name) gives, through the translation.
std::string sub(const std::string& pattern, const std::string& repl, const std::string& name) {
  auto c = compile_python_rename(pattern, repl);
  return std::regex_replace(name, std::regex(c.pattern, std::regex::ECMAScript), c.replacement);
}

std::string error_of(const std::string& pattern, const std::string& repl) {
  try {
    compile_python_rename(pattern, repl);
  } catch (const ckpt::UsageError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(AudiocraftRename, PythonGroupReferences) {
  EXPECT_EQ(sub(R"(^emb\.(\d+)\.)", R"(embedding.\1.)", "emb.3.weight"), "embedding.3.weight");
  EXPECT_EQ(sub(R"(^emb\.(\d+)\.)", R"(embedding.\g<1>0.)", "emb.3.weight"), "embedding.30.weight");
  EXPECT_EQ(sub(R"(^(?P<head>\w+)\.(?P<i>\d+))", R"(\g<i>.\g<head>)", "emb.3.weight"), "3.emb.weight");
  EXPECT_EQ(sub(R"(layers\.)", "blocks.", "a.layers.1.layers.2"), "a.blocks.1.blocks.2");  // every match
  EXPECT_EQ(sub("a", "$x", "a.b"), "$x.b");       // '$' is literal, as in Python
  EXPECT_EQ(sub("a", R"(\\)", "a.b"), "\\.b");    // '\\' is one backslash
  EXPECT_EQ(sub("([]x])", R"(<\1>)", "]"), "<]>");  // Python's ']' first in a class
}

TEST(AudiocraftRename, RefusesOtherSyntaxAndMissingGroups) {
  EXPECT_NE(error_of("^(emb)", "$1x").find("write \\1 for $1"), std::string::npos);
  EXPECT_NE(error_of("^(emb)", "${1}").find("Python's re.sub syntax"), std::string::npos);
  EXPECT_NE(error_of("^(emb)", R"(\2)").find("invalid group reference 2: the regex has 1 group(s)"),
            std::string::npos);
  EXPECT_NE(error_of("^emb", R"(\g<name>)").find("unknown group name 'name'"), std::string::npos);
  EXPECT_NE(error_of("^emb", R"(\q)").find("bad escape \\q"), std::string::npos);
  EXPECT_NE(error_of("^emb", "x\\").find("trailing backslash"), std::string::npos);
}
