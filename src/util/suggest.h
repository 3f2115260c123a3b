// "Did you mean": the candidate closest to a mistyped word, as git and
// Python's difflib suggest. One definition for commands, options, config
// keys, tensor names and state paths.
#pragma once
#include <string>
#include <vector>

namespace ckpt {

// Edit distance: insert, delete, substitute, swap two neighbours (1 each).
size_t edit_distance(const std::string& a, const std::string& b);

// The candidate within a few edits of `word` (one for up to 4 characters,
// two up to 8, a quarter of its length beyond), or one that starts with it
// (3 characters or more); "" when none is close. Ties go to the first.
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

// "; did you mean 'X'?" for closest_match, or "".
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace ckpt
