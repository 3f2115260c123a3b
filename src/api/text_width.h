// Table cells as a terminal shows them: widths in columns, not bytes (CJK
// is two columns, combining accents none), control characters escaped, and
// names sorted as people count (data/2 before data/10). The terminal's width
// is the CLI's concern (cli/terminal.h).
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace ckpt::api {

// Columns the UTF-8 text takes on a terminal (invalid bytes count 1 each).
size_t display_width(std::string_view s);
// The text with tabs, newlines and other control characters escaped
// (\t, \n, \r, \xNN), so that one cell stays on one line.
std::string printable(std::string_view s);
// s padded with spaces to `width` columns (left-aligned).
std::string pad_right(const std::string& s, size_t width);
// s cut in the middle with "..." to at most `width` columns (at least 8).
std::string fit_width(const std::string& s, size_t width);
// "1 key", "2 keys".
std::string count_of(size_t n, const char* one, const char* many);
// Natural order: runs of digits compare as numbers.
bool natural_less(const std::string& a, const std::string& b);

}  // namespace ckpt::api
