// The width of the terminal the CLI prints tables to.
#pragma once
#include <cstddef>
#include <string>

namespace ckpt::cli {

// COLUMNS when set to a number, else the terminal's width when standard
// output is one, else 0 (no limit: pipes get whole lines).
size_t output_columns();

// Colour: on a terminal only (fd is one), never with NO_COLOR set (any
// value) or TERM=dumb. colored(...) wraps text in an SGR code when allowed.
bool use_color(int fd);
std::string colored(int fd, const char* sgr, const std::string& text);
inline constexpr const char* kRed = "31";
inline constexpr const char* kGreen = "32";
inline constexpr const char* kYellow = "33";
inline constexpr const char* kBoldRed = "1;31";

}  // namespace ckpt::cli
