#include "audiocraft/rank_set.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>

namespace ckpt::audiocraft {

std::optional<RankFile> parse_rank_file(const std::string& name) {
  // checkpoint.th, checkpoint_<word>.th, optionally followed by .<digits>
  const std::string head = "checkpoint";
  if (name.rfind(head, 0) != 0) return std::nullopt;
  size_t th = name.find(".th", head.size());
  if (th == std::string::npos) return std::nullopt;
  std::string middle = name.substr(head.size(), th - head.size());
  if (!middle.empty()) {
    if (middle[0] != '_' || middle.size() == 1) return std::nullopt;
    for (size_t i = 1; i < middle.size(); ++i)
      if (!(std::isalnum(static_cast<unsigned char>(middle[i])) || middle[i] == '_')) return std::nullopt;
  }
  RankFile r;
  r.set = name.substr(0, th + 3);
  std::string tail = name.substr(th + 3);
  if (tail.empty()) return r;
  if (tail[0] != '.' || tail.size() == 1 || tail.size() > 7) return std::nullopt;
  for (size_t i = 1; i < tail.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(tail[i]))) return std::nullopt;
  r.rank = std::stoi(tail.substr(1));
  return r;
}

std::vector<RankSet> list_rank_sets(const std::string& dir) {
  std::map<std::string, std::vector<int>> sets;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    if (auto r = parse_rank_file(it->path().filename().string())) sets[r->set].push_back(r->rank);
  }
  std::vector<RankSet> out;
  for (auto& [name, ranks] : sets) {
    RankSet s;
    s.name = name;
    std::sort(ranks.begin(), ranks.end());
    s.ranks = ranks;
    for (int i = 0, j = 0; i <= ranks.back(); ++i) {
      while (j < static_cast<int>(ranks.size()) && ranks[j] < i) ++j;
      if (j >= static_cast<int>(ranks.size()) || ranks[j] != i) s.missing.push_back(i);
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace ckpt::audiocraft
