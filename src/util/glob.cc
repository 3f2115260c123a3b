#include "util/glob.h"

#include <string_view>
#include <vector>

#include "util/utf8.h"

namespace ckpt {

namespace {

// One pattern item: each matches exactly one code point, except Star.
struct Item {
  enum Kind { Star, Any, Literal, Class } kind = Literal;
  char32_t c = 0;                                        // Literal
  bool negated = false;                                  // Class
  std::vector<std::pair<char32_t, char32_t>> ranges;     // Class: lo..hi, inclusive
  static Item of(Kind kind, char32_t c = 0) {
    Item i;
    i.kind = kind;
    i.c = c;
    return i;
  }
  bool matches(char32_t ch) const {
    switch (kind) {
      case Star:
      case Any: return true;
      case Literal: return ch == c;
      case Class: break;
    }
    bool in = false;
    for (const auto& [lo, hi] : ranges) in = in || (lo <= ch && ch <= hi);
    return in != negated;
  }
};

// The set that fnmatch.translate makes of pat[i:j] (the text between "["
// and "]"), item for item: its hyphen chunks, empty ranges removed, then
// the class as the regular expression module reads the result.
Item make_class(const std::u32string& pat, size_t i, size_t j) {
  Item item;
  item.kind = Item::Class;
  // The class as literal code points, with range hyphens (joins) marked.
  struct Tok {
    char32_t c;
    bool join;
  };
  std::vector<Tok> toks;
  const std::u32string_view stuff(pat.data() + i, j - i);
  if (stuff.find(U'-') == std::u32string_view::npos) {
    for (char32_t c : stuff) toks.push_back({c, false});
  } else {
    std::vector<std::u32string> chunks;
    size_t k = pat[i] == U'!' ? i + 2 : i + 1;
    for (;;) {
      size_t at = k < j ? pat.find(U'-', k) : std::u32string::npos;
      if (at == std::u32string::npos || at >= j) break;
      chunks.push_back(pat.substr(i, at - i));
      i = at + 1;
      k = at + 3;
    }
    std::u32string chunk = pat.substr(i, j - i);
    if (!chunk.empty())
      chunks.push_back(chunk);
    else
      chunks.back() += U'-';
    for (size_t m = chunks.size() - 1; m > 0; --m) {  // remove empty ranges
      if (chunks[m - 1].empty() || chunks[m].empty()) continue;  // (Python would fail; not reachable)
      if (chunks[m - 1].back() > chunks[m].front()) {
        chunks[m - 1] = chunks[m - 1].substr(0, chunks[m - 1].size() - 1) + chunks[m].substr(1);
        chunks.erase(chunks.begin() + static_cast<std::ptrdiff_t>(m));
      }
    }
    for (size_t m = 0; m < chunks.size(); ++m) {
      if (m) toks.push_back({U'-', true});
      for (char32_t c : chunks[m]) toks.push_back({c, false});
    }
  }
  if (toks.empty()) return item;  // an empty set: never matches
  if (toks.size() == 1 && toks[0].c == U'!' && !toks[0].join) {
    item.kind = Item::Any;  // "[!]" after removal: any character
    return item;
  }
  size_t t = 0;
  if (toks[0].c == U'!' && !toks[0].join) item.negated = true, t = 1;
  // A character, or a range "c-d" where a join stands between two characters.
  while (t < toks.size()) {
    char32_t lo = toks[t].c;
    if (t + 2 < toks.size() && toks[t + 1].join) {
      char32_t hi = toks[t + 2].c;
      if (lo <= hi) item.ranges.emplace_back(lo, hi);
      t += 3;
    } else {
      item.ranges.emplace_back(lo, lo);
      ++t;
    }
  }
  return item;
}

// fnmatch.translate's reading of a pattern.
std::vector<Item> parse(const std::u32string& pat) {
  std::vector<Item> items;
  const size_t n = pat.size();
  for (size_t i = 0; i < n;) {
    char32_t c = pat[i++];
    if (c == U'*') {
      if (items.empty() || items.back().kind != Item::Star) items.push_back(Item::of(Item::Star));
    } else if (c == U'?') {
      items.push_back(Item::of(Item::Any));
    } else if (c == U'[') {
      size_t j = i;
      if (j < n && pat[j] == U'!') ++j;
      if (j < n && pat[j] == U']') ++j;
      while (j < n && pat[j] != U']') ++j;
      if (j >= n) {
        items.push_back(Item::of(Item::Literal, U'['));  // unclosed: a literal "["
      } else {
        items.push_back(make_class(pat, i, j));
        i = j + 1;
      }
    } else {
      items.push_back(Item::of(Item::Literal, c));
    }
  }
  return items;
}

// A pattern's items, parsed once per thread for the last few patterns (a
// command matches every tensor name against the same one or two).
const std::vector<Item>& parsed(const std::string& pattern) {
  constexpr size_t kKept = 8;
  thread_local std::vector<std::pair<std::string, std::vector<Item>>> kept;
  for (const auto& [p, items] : kept)
    if (p == pattern) return items;
  if (kept.size() == kKept) kept.erase(kept.begin());
  kept.emplace_back(pattern, parse(decode_utf8(pattern)));
  return kept.back().second;
}

// Each item but Star matches one code point: the last star's position is
// the only one to return to (the leftmost match of what follows is best).
template <class Text>
bool match(const std::vector<Item>& items, const Text& s) {
  size_t p = 0, t = 0, star = std::u32string::npos, star_t = 0;
  while (t < s.size()) {
    if (p < items.size() && items[p].kind == Item::Star) {
      star = p++;
      star_t = t;
    } else if (p < items.size() && items[p].matches(s[t])) {
      ++p, ++t;
    } else if (star != std::u32string::npos) {
      p = star + 1;
      t = ++star_t;
    } else {
      return false;
    }
  }
  while (p < items.size() && items[p].kind == Item::Star) ++p;
  return p == items.size();
}

// An ASCII name as code points, without decoding it.
struct AsciiText {
  const std::string& s;
  size_t size() const { return s.size(); }
  char32_t operator[](size_t i) const { return static_cast<unsigned char>(s[i]); }
};

}  // namespace

bool glob_match(const std::string& pattern, const std::string& text) {
  const std::vector<Item>& items = parsed(pattern);
  for (char c : text)
    if (static_cast<unsigned char>(c) >= 0x80) return match(items, decode_utf8(text));
  return match(items, AsciiText{text});
}

}  // namespace ckpt
