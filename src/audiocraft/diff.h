// Text differences for `ckpt diff`: a unified diff of two texts by lines,
// shaped as Python's difflib.unified_diff prints it (---/+++ headers, @@
// hunks with n lines of context, difflib's hunk grouping).
#pragma once
#include <string>
#include <string_view>

namespace ckpt::audiocraft {

// Empty when the texts are equal. Lines are split at '\n'; every output line
// ends with '\n'. The edit script is a shortest one (Myers) after the common
// prefix and suffix are taken off; when the differing middle needs more than
// a few thousand edits it is shown as one replacement, still a correct diff.
std::string unified_diff(std::string_view a, std::string_view b, const std::string& from_name,
                         const std::string& to_name, int context = 3);

}  // namespace ckpt::audiocraft
