#include "api/text_width.h"

#include <algorithm>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace ckpt::api {
namespace {

// Decodes one UTF-8 sequence at s[i]; returns the code point and advances i
// (an invalid byte is returned as itself, one byte long, with ok = false).
uint32_t next_code_point(std::string_view s, size_t& i, bool& ok) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  ok = len > 0 && i + len <= s.size();
  uint32_t cp = len == 1 ? c : len == 2 ? c & 0x1f : len == 3 ? c & 0x0f : c & 0x07;
  for (int k = 1; ok && k < len; ++k) {
    unsigned char d = static_cast<unsigned char>(s[i + k]);
    if ((d >> 6) != 2) ok = false;
    cp = (cp << 6) | (d & 0x3f);
  }
  if (!ok) {
    ++i;
    return c;
  }
  i += len;
  return cp;
}

bool is_combining(uint32_t cp) {
  return (cp >= 0x0300 && cp <= 0x036f) || (cp >= 0x1ab0 && cp <= 0x1aff) || (cp >= 0x1dc0 && cp <= 0x1dff) ||
         (cp >= 0x20d0 && cp <= 0x20ff) || (cp >= 0xfe20 && cp <= 0xfe2f) || cp == 0x200b || cp == 0x200c ||
         cp == 0x200d || (cp >= 0xfe00 && cp <= 0xfe0f);
}

// East Asian Wide and Fullwidth ranges (Unicode's EastAsianWidth W/F), and emoji.
bool is_wide(uint32_t cp) {
  return (cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0x303e) || (cp >= 0x3041 && cp <= 0x33ff) ||
         (cp >= 0x3400 && cp <= 0x4dbf) || (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0xa000 && cp <= 0xa4cf) ||
         (cp >= 0xac00 && cp <= 0xd7a3) || (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0xfe30 && cp <= 0xfe4f) ||
         (cp >= 0xff00 && cp <= 0xff60) || (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x1f300 && cp <= 0x1f64f) ||
         (cp >= 0x1f900 && cp <= 0x1f9ff) || (cp >= 0x20000 && cp <= 0x3fffd);
}

}  // namespace

size_t display_width(std::string_view s) {
  size_t w = 0;
  for (size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {  // ASCII: one column (tensor names, mostly)
      ++w, ++i;
      continue;
    }
    bool ok;
    uint32_t cp = next_code_point(s, i, ok);
    if (!ok) w += 1;
    else if (is_combining(cp)) continue;
    else w += is_wide(cp) ? 2 : 1;
  }
  return w;
}

std::string printable(std::string_view s) {
  // Most names need no escape: copied whole rather than byte by byte.
  if (std::none_of(s.begin(), s.end(), [](char ch) {
        auto c = static_cast<unsigned char>(ch);
        return c < 0x20 || c == 0x7f;
      }))
    return std::string(s);
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (c == '\t') out += "\\t";
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string pad_right(const std::string& s, size_t width) {
  size_t w = display_width(s);
  return w >= width ? s : s + std::string(width - w, ' ');
}

std::string fit_width(const std::string& s, size_t width) {
  if (width < 8) width = 8;
  if (display_width(s) <= width) return s;
  // Keep whole code points from both ends: head gets the extra column.
  size_t keep = width - 3, head_cols = (keep + 1) / 2, tail_cols = keep - head_cols;
  std::string head, tail;
  size_t w = 0;
  for (size_t i = 0; i < s.size();) {
    size_t start = i;
    bool ok;
    uint32_t cp = next_code_point(s, i, ok);
    size_t cw = !ok ? 1 : is_combining(cp) ? 0 : is_wide(cp) ? 2 : 1;
    if (w + cw > head_cols) break;
    w += cw;
    head.append(s, start, i - start);
  }
  // The tail: walk back over whole sequences (continuation bytes are 10xxxxxx).
  size_t end = s.size(), tw = 0;
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) >> 6) == 2) --start;
    size_t cw = display_width(std::string_view(s).substr(start, end - start));
    if (tw + cw > tail_cols) break;
    tw += cw;
    end = start;
  }
  tail = s.substr(end);
  return head + "..." + tail;
}

std::string count_of(size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

bool natural_less(const std::string& a, const std::string& b) {
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  // Equal bytes compare equal token by token, so start at the first
  // difference, backed up to the start of a digit run it falls in (that run
  // compares as a number): "model/data/12" against "model/data/13" reads
  // the shared "model/data/" once with memcmp-like speed, not char by char.
  size_t p = std::mismatch(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(std::min(a.size(), b.size())), b.begin()).first -
             a.begin();
  while (p > 0 && digit(a[p - 1])) --p;
  size_t i = p, j = p;
  while (i < a.size() && j < b.size()) {
    if (digit(a[i]) && digit(b[j])) {
      size_t i0 = i, j0 = j;
      while (i0 < a.size() && a[i0] == '0') ++i0;
      while (j0 < b.size() && b[j0] == '0') ++j0;
      size_t i1 = i0, j1 = j0;
      while (i1 < a.size() && digit(a[i1])) ++i1;
      while (j1 < b.size() && digit(b[j1])) ++j1;
      if (i1 - i0 != j1 - j0) return i1 - i0 < j1 - j0;
      int c = a.compare(i0, i1 - i0, b, j0, j1 - j0);
      if (c != 0) return c < 0;
      i = i1, j = j1;
      continue;
    }
    if (a[i] != b[j]) return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[j]);
    ++i, ++j;
  }
  return a.size() - i < b.size() - j;
}

}  // namespace ckpt::api
