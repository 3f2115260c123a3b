#include "util/suggest.h"

#include <algorithm>

namespace ckpt {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  if (word.empty()) return "";
  const size_t limit = std::max<size_t>(2, word.size() / 3);
  std::string best;
  size_t best_d = limit + 1;
  for (const auto& c : candidates) {
    if (c == word) continue;
    // Long names differ far from each other's length: skip the quadratic work.
    if ((c.size() > word.size() ? c.size() - word.size() : word.size() - c.size()) > limit &&
        c.rfind(word, 0) != 0)
      continue;
    size_t d = edit_distance(word, c);
    if (c.rfind(word, 0) == 0) d = std::min(d, limit);
    if (d < best_d) best_d = d, best = c;
  }
  return best;
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  std::string m = closest_match(word, candidates);
  return m.empty() ? "" : "; did you mean '" + m + "'?";
}

}  // namespace ckpt
