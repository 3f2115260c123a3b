// unified_diff against Python's difflib.unified_diff (expectations printed by
// difflib with lineterm="" and '\n' appended), and patch round trips.
#include <gtest/gtest.h>

#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "audiocraft/diff.h"

namespace ckpt::audiocraft {
namespace {

std::string diff(const std::string& a, const std::string& b) { return unified_diff(a, b, "a/xp.cfg", "b/xp.cfg"); }

TEST(UnifiedDiff, EqualTextsGiveNothing) {
  EXPECT_EQ(diff("", ""), "");
  EXPECT_EQ(diff("a: 1\n", "a: 1\n"), "");
}

TEST(UnifiedDiff, MatchesDifflib) {
  std::string a, b;
  for (int i = 0; i < 20; ++i) a += "line" + std::to_string(i) + ": " + std::to_string(i) + "\n";
  b = a;
  b.replace(b.find("line5: 5\n"), 9, "line5: 50\n");
  b.erase(b.find("line15: 15\n"), 11);
  EXPECT_EQ(diff(a, b),
            "--- a/xp.cfg\n+++ b/xp.cfg\n@@ -3,7 +3,7 @@\n line2: 2\n line3: 3\n line4: 4\n-line5: 5\n+line5: 50\n"
            " line6: 6\n line7: 7\n line8: 8\n@@ -13,7 +13,6 @@\n line12: 12\n line13: 13\n line14: 14\n-line15: 15\n"
            " line16: 16\n line17: 17\n line18: 18\n");
  EXPECT_EQ(diff("x\n", "y\n"), "--- a/xp.cfg\n+++ b/xp.cfg\n@@ -1 +1 @@\n-x\n+y\n");
  EXPECT_EQ(diff("", "a: 1\nb: 2\n"), "--- a/xp.cfg\n+++ b/xp.cfg\n@@ -0,0 +1,2 @@\n+a: 1\n+b: 2\n");
  EXPECT_EQ(diff("a: 1\nb: 2\n", ""), "--- a/xp.cfg\n+++ b/xp.cfg\n@@ -1,2 +0,0 @@\n-a: 1\n-b: 2\n");
  std::string c;
  for (int i = 0; i < 12; ++i) c += "k" + std::to_string(i) + ": v\n";
  EXPECT_EQ(diff(c, "top: 1\n" + c + "end: 2\n"),
            "--- a/xp.cfg\n+++ b/xp.cfg\n@@ -1,3 +1,4 @@\n+top: 1\n k0: v\n k1: v\n k2: v\n@@ -10,3 +11,4 @@\n"
            " k9: v\n k10: v\n k11: v\n+end: 2\n");
}

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string l;
  while (std::getline(in, l)) out.push_back(l);
  return out;
}

// Applies a unified diff to a's lines; fails the test on a context mismatch.
std::vector<std::string> apply_patch(const std::vector<std::string>& a, const std::string& d) {
  std::vector<std::string> out;
  auto dl = lines_of(d);
  size_t pos = 0;  // next line of a not yet copied
  for (size_t i = 2; i < dl.size(); ++i) {
    const std::string& l = dl[i];
    if (l.rfind("@@ -", 0) == 0) {
      int start = std::stoi(l.substr(4));
      size_t comma = l.find(',', 4), space = l.find(' ', 4);
      int len = comma != std::string::npos && comma < space ? std::stoi(l.substr(comma + 1)) : 1;
      size_t begin = len == 0 ? static_cast<size_t>(start) : static_cast<size_t>(start - 1);
      while (pos < begin) out.push_back(a[pos++]);
      continue;
    }
    if (l[0] == ' ' || l[0] == '-') {
      EXPECT_LT(pos, a.size());
      if (pos >= a.size()) return out;
      EXPECT_EQ(a[pos], l.substr(1));
      if (l[0] == ' ') out.push_back(a[pos]);
      ++pos;
    } else {
      out.push_back(l.substr(1));
    }
  }
  while (pos < a.size()) out.push_back(a[pos++]);
  return out;
}

TEST(UnifiedDiff, RandomEditsPatchBack) {
  std::mt19937 rng(7);
  for (int round = 0; round < 300; ++round) {
    std::vector<std::string> a;
    int n = static_cast<int>(rng() % 40);
    for (int i = 0; i < n; ++i) a.push_back("v" + std::to_string(rng() % 6));
    std::vector<std::string> b = a;
    int edits = static_cast<int>(rng() % 8);
    for (int e = 0; e < edits; ++e) {
      int op = static_cast<int>(rng() % 3);
      size_t at = b.empty() ? 0 : rng() % (b.size() + (op == 0 ? 1 : 0));
      if (op == 0) b.insert(b.begin() + static_cast<long>(at), "n" + std::to_string(rng() % 4));
      else if (!b.empty() && at < b.size() && op == 1) b.erase(b.begin() + static_cast<long>(at));
      else if (!b.empty() && at < b.size()) b[at] = "r" + std::to_string(rng() % 4);
    }
    std::string ta, tb;
    for (auto& l : a) ta += l + "\n";
    for (auto& l : b) tb += l + "\n";
    std::string d = diff(ta, tb);
    if (ta == tb) {
      EXPECT_EQ(d, "");
      continue;
    }
    EXPECT_EQ(apply_patch(a, d), b) << "round " << round << "\n" << d;
  }
}

}  // namespace
}  // namespace ckpt::audiocraft
