#include "audiocraft/diff.h"

#include <algorithm>
#include <vector>

namespace ckpt::audiocraft {

namespace {

// Past this many edits the middle is shown as one replacement: Myers' trace
// costs O(D^2) memory.
constexpr int kMaxEdits = 2000;

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) nl = text.size();
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

enum class Tag { Equal, Replace, Delete, Insert };
struct Opcode {
  Tag tag;
  int i1, i2, j1, j2;
};

// Per-line script for a[lo_a, hi_a) vs b[lo_b, hi_b): 'e' equal, 'd' delete, 'i' insert.
std::string myers_script(const std::vector<std::string_view>& a, const std::vector<std::string_view>& b, int lo_a,
                         int hi_a, int lo_b, int hi_b) {
  const int n = hi_a - lo_a, m = hi_b - lo_b;
  auto eq = [&](int x, int y) { return a[lo_a + x] == b[lo_b + y]; };
  std::vector<std::vector<int>> trace;  // trace[d][k + d]: furthest x on diagonal k after d edits
  std::vector<int> prev;
  int found = -1;
  for (int d = 0; d <= std::min(n + m, kMaxEdits) && found < 0; ++d) {
    std::vector<int> v(2 * d + 1);
    for (int k = -d; k <= d; k += 2) {
      int x;
      if (d == 0) x = 0;
      else if (k == -d || (k != d && prev[k - 1 + d - 1] < prev[k + 1 + d - 1])) x = prev[k + 1 + d - 1];
      else x = prev[k - 1 + d - 1] + 1;
      int y = x - k;
      while (x < n && y < m && eq(x, y)) ++x, ++y;
      v[k + d] = x;
      if (x >= n && y >= m) found = d;
    }
    trace.push_back(v);
    prev = std::move(v);
  }
  if (found < 0) return std::string(n, 'd') + std::string(m, 'i');
  std::string rev;  // built backwards
  int x = n, y = m;
  for (int d = found; d > 0; --d) {
    const std::vector<int>& pv = trace[d - 1];
    const int k = x - y;
    const bool down = k == -d || (k != d && pv[k - 1 + d - 1] < pv[k + 1 + d - 1]);
    const int pk = down ? k + 1 : k - 1;
    const int px = pv[pk + d - 1], py = px - pk;
    const int mid_x = down ? px : px + 1;
    rev.append(static_cast<size_t>(x - mid_x), 'e');
    rev.push_back(down ? 'i' : 'd');
    x = px;
    y = py;
  }
  rev.append(static_cast<size_t>(x), 'e');
  return std::string(rev.rbegin(), rev.rend());
}

std::vector<Opcode> opcodes(const std::vector<std::string_view>& a, const std::vector<std::string_view>& b) {
  const int na = static_cast<int>(a.size()), nb = static_cast<int>(b.size());
  int pre = 0;
  while (pre < na && pre < nb && a[pre] == b[pre]) ++pre;
  int suf = 0;
  while (suf < na - pre && suf < nb - pre && a[na - 1 - suf] == b[nb - 1 - suf]) ++suf;
  std::string script = std::string(pre, 'e') + myers_script(a, b, pre, na - suf, pre, nb - suf) + std::string(suf, 'e');
  std::vector<Opcode> ops;
  int i = 0, j = 0;
  for (size_t p = 0; p < script.size();) {
    const int i1 = i, j1 = j;
    if (script[p] == 'e') {
      while (p < script.size() && script[p] == 'e') ++p, ++i, ++j;
      ops.push_back({Tag::Equal, i1, i, j1, j});
      continue;
    }
    while (p < script.size() && script[p] != 'e') (script[p++] == 'd' ? i : j)++;
    ops.push_back({i > i1 && j > j1 ? Tag::Replace : i > i1 ? Tag::Delete : Tag::Insert, i1, i, j1, j});
  }
  return ops;
}

// difflib.SequenceMatcher.get_grouped_opcodes.
std::vector<std::vector<Opcode>> grouped(std::vector<Opcode> codes, int n) {
  std::vector<std::vector<Opcode>> groups;
  if (codes.empty()) codes.push_back({Tag::Equal, 0, 1, 0, 1});
  if (codes.front().tag == Tag::Equal) {
    Opcode& c = codes.front();
    c.i1 = std::max(c.i1, c.i2 - n);
    c.j1 = std::max(c.j1, c.j2 - n);
  }
  if (codes.back().tag == Tag::Equal) {
    Opcode& c = codes.back();
    c.i2 = std::min(c.i2, c.i1 + n);
    c.j2 = std::min(c.j2, c.j1 + n);
  }
  std::vector<Opcode> group;
  for (Opcode c : codes) {
    if (c.tag == Tag::Equal && c.i2 - c.i1 > 2 * n) {
      group.push_back({Tag::Equal, c.i1, std::min(c.i2, c.i1 + n), c.j1, std::min(c.j2, c.j1 + n)});
      groups.push_back(std::move(group));
      group.clear();
      c.i1 = std::max(c.i1, c.i2 - n);
      c.j1 = std::max(c.j1, c.j2 - n);
    }
    group.push_back(c);
  }
  if (!group.empty() && !(group.size() == 1 && group[0].tag == Tag::Equal)) groups.push_back(std::move(group));
  return groups;
}

// difflib's _format_range_unified.
std::string range_text(int start, int stop) {
  int beginning = start + 1, length = stop - start;
  if (length == 1) return std::to_string(beginning);
  if (length == 0) --beginning;
  return std::to_string(beginning) + "," + std::to_string(length);
}

}  // namespace

std::string unified_diff(std::string_view a_text, std::string_view b_text, const std::string& from_name,
                         const std::string& to_name, int context) {
  if (a_text == b_text) return {};
  auto a = split_lines(a_text), b = split_lines(b_text);
  auto groups = grouped(opcodes(a, b), context);
  if (groups.empty()) return {};  // differ only in a final newline
  std::string out = "--- " + from_name + "\n+++ " + to_name + "\n";
  for (const auto& g : groups) {
    out += "@@ -" + range_text(g.front().i1, g.back().i2) + " +" + range_text(g.front().j1, g.back().j2) + " @@\n";
    for (const Opcode& c : g) {
      if (c.tag == Tag::Equal) {
        for (int i = c.i1; i < c.i2; ++i) (out += ' ').append(a[i]) += '\n';
        continue;
      }
      if (c.tag != Tag::Insert)
        for (int i = c.i1; i < c.i2; ++i) (out += '-').append(a[i]) += '\n';
      if (c.tag != Tag::Delete)
        for (int j = c.j1; j < c.j2; ++j) (out += '+').append(b[j]) += '\n';
    }
  }
  return out;
}

}  // namespace ckpt::audiocraft
