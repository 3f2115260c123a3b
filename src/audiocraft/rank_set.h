// AudioCraft's FSDP rank files: with FSDP each rank saves its own file,
// `checkpoint[_<name>].th` for rank 0 and `checkpoint[_<name>].th.<rank>`
// for the others (AudioCraft's checkpoint_name; the regex `\.th\.\d+$`).
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace ckpt::audiocraft {

struct RankFile {
  std::string set;  // the rank-0 file name: "checkpoint.th", "checkpoint_best.th"
  int rank = 0;
};

// The set and rank a file name (without folder) belongs to; nullopt for
// names that are not AudioCraft checkpoint names.
std::optional<RankFile> parse_rank_file(const std::string& name);

struct RankSet {
  std::string name;          // the rank-0 file name
  std::vector<int> ranks;    // present, ascending
  std::vector<int> missing;  // gaps below the highest rank present (rank 0 included)
};

// The rank sets in a folder, by name (sets with a single rank-0 file included).
std::vector<RankSet> list_rank_sets(const std::string& dir);

}  // namespace ckpt::audiocraft
