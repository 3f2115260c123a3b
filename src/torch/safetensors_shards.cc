#include "torch/safetensors_shards.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <algorithm>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/http_file.h"
#include "util/folder_replace.h"

namespace ckpt::torch {

using OrderedJson = nlohmann::ordered_json;

namespace {

constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr uint64_t kMaxIndexBytes = uint64_t{64} << 20;

std::string shard_name(size_t index, size_t count) {
  char shard_suffix_buf[80];
  std::snprintf(shard_suffix_buf, sizeof shard_suffix_buf, "model-%05zu-of-%05zu.safetensors", index + 1, count);
  return shard_suffix_buf;
}

std::string join(const std::string& dir, const std::string& name) {
  return dir.empty() || dir.back() == '/' ? dir + name : dir + "/" + name;
}

}  // namespace

uint64_t parse_shard_size(const std::string& text) {
  std::string s = text;
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.erase(s.begin());
  double mult = 1;
  if (s.size() >= 2) {
    std::string unit = s.substr(s.size() - 2);
    for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    const std::map<std::string, double> units{{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}};
    if (auto it = units.find(unit); it != units.end()) {
      mult = it->second;
      s.resize(s.size() - 2);
    }
  }
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || !end || *end != '\0' || errno || !(v > 0) || v * mult > 1.8e19)
    throw UsageError(option_name("max_shard_size") + " '" + text + "': expected a size such as 5GB, 500MB or 1000000");
  return static_cast<uint64_t>(v * mult);  // int(value * multiplier), as huggingface_hub
}

ShardPlan plan_shards(const std::vector<uint64_t>& sizes, uint64_t max_shard_size) {
  std::vector<std::vector<size_t>> shards;
  std::vector<size_t> current;
  uint64_t current_size = 0;
  ShardPlan plan;
  for (size_t i = 0; i < sizes.size(); ++i) {
    uint64_t size = sizes[i];
    plan.total_size += size;
    if (size > max_shard_size) {
      shards.push_back({i});
      continue;
    }
    if (current_size + size > max_shard_size) {
      shards.push_back(std::move(current));
      current.clear();
      current_size = 0;
    }
    current.push_back(i);
    current_size += size;
  }
  if (!current.empty()) shards.push_back(std::move(current));
  if (shards.size() <= 1) {
    std::vector<size_t> all(sizes.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = i;
    plan.files.emplace_back("model.safetensors", std::move(all));
    return plan;
  }
  for (size_t i = 0; i < shards.size(); ++i) plan.files.emplace_back(shard_name(i, shards.size()), std::move(shards[i]));
  return plan;
}

ShardedWriteReport write_sharded_safetensors(Checkpoint& source,
                                             const std::vector<std::pair<std::string, TensorInfo>>& tensors,
                                             Env& env, const std::string& out_dir, uint64_t max_shard_size,
                                             const SafetensorsWriteOptions& options) {
  ShardedWriteReport report;
  std::vector<uint64_t> sizes;
  for (const auto& [n, t] : tensors) sizes.push_back(safetensors_written_nbytes(t, options));
  report.plan = plan_shards(sizes, max_shard_size);
  report.wrote_index = report.plan.files.size() > 1;

  // The new set is written whole into a temporary folder beside out_dir
  // and swapped in by one atomic exchange (util/folder_replace.h): a reader,
  // or a crash, sees the old set or the new one, never a mix (issue 24).
  FolderReplace folder(env, out_dir, is_shard_set_name, options.force);
  uint64_t done_before = 0;
  for (const auto& [name, idx] : report.plan.files) {
    std::vector<std::pair<std::string, TensorInfo>> part;
    uint64_t bytes = 0;
    for (size_t i : idx) {
      part.push_back(tensors[i]);
      bytes += sizes[i];
    }
    SafetensorsWriteOptions o = options;
    o.force = false;
    if (name != report.plan.files.back().first) o.check_source = nullptr;  // alongside the last shard's fsync
    if (options.progress)
      o.progress = [&, done_before](uint64_t d, uint64_t) { options.progress(done_before + d, report.plan.total_size); };
    write_safetensors(source, part, env, folder.path(name), o);
    done_before += bytes;
  }
  if (report.wrote_index) {
    OrderedJson index;
    index["metadata"]["total_size"] = report.plan.total_size;
    OrderedJson& map = index["weight_map"];
    map = OrderedJson::object();
    for (const auto& [name, idx] : report.plan.files)
      for (size_t i : idx) map[tensors[i].first] = name;
    AtomicOutput out(env, folder.path(kIndexName), false);
    out.file().append(index.dump(2, ' ', true));  // json.dumps(index, indent=2)
    out.commit();
  }
  folder.commit();
  return report;
}

bool is_shard_set_name(const std::string& name) {
  if (name == "model.safetensors" || name == kIndexName) return true;
  // model-NNNNN-of-NNNNN.safetensors
  if (name.size() != std::string("model-00001-of-00002.safetensors").size()) return false;
  if (name.compare(0, 6, "model-") != 0 || name.compare(11, 4, "-of-") != 0 ||
      name.compare(20, std::string::npos, ".safetensors") != 0)
    return false;
  for (size_t k : {6, 7, 8, 9, 10, 15, 16, 17, 18, 19})
    if (!std::isdigit(static_cast<unsigned char>(name[k]))) return false;
  return true;
}

void check_single_shard_set(Env& env, const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& n : env.list_directory(dir))
    if (is_shard_set_name(n)) names.push_back(n);
  const bool has_index = std::find(names.begin(), names.end(), kIndexName) != names.end();
  const bool has_single = std::find(names.begin(), names.end(), "model.safetensors") != names.end();
  std::vector<std::string> extra;
  if (has_index) {
    std::set<std::string> mapped;
    try {
      auto f = env.open_read(join(dir, kIndexName));
      if (f->size() <= kMaxIndexBytes) {
        OrderedJson index = OrderedJson::parse(f->read_string(0, static_cast<size_t>(f->size())));
        if (index.is_object() && index.contains("weight_map") && index["weight_map"].is_object())
          for (const auto& [k, v] : index["weight_map"].items())
            if (v.is_string()) mapped.insert(v.get<std::string>());
      }
    } catch (const std::exception&) {
      return;  // the index reader reports what is wrong with it
    }
    for (const auto& n : names)
      if (n != kIndexName && !mapped.count(n)) extra.push_back(n);
  } else if (has_single) {
    for (const auto& n : names)
      if (n != "model.safetensors") extra.push_back(n);
  }
  if (extra.empty()) return;
  std::string list;
  for (const auto& n : extra) list += (list.empty() ? "" : ", ") + n;
  throw FormatError(dir + " mixes safetensors shard sets: " +
                    (has_index ? std::string(kIndexName) + " does not name " : std::string("model.safetensors beside ")) +
                    list + " (left by an earlier write?); remove the files of the set that is not current");
}

std::string safetensors_index_of(Env& env, const std::string& path) {
  auto is_json = [](const std::string& name) {
    return name.size() > 5 && name.compare(name.size() - 5, 5, ".json") == 0;
  };
  if (http::is_remote(path))  // a remote folder cannot be listed: the index is named
    return is_json(last_name(path)) ? http::revision_first(path) : std::string();
  if (env.is_directory(path)) {
    check_single_shard_set(env, path);
    std::string p = join(path, kIndexName);
    return env.exists(p) && !env.is_directory(p) ? p : std::string();
  }
  return is_json(path) ? path : std::string();
}

std::string safetensors_index_of(const std::string& path) { return safetensors_index_of(Env::Default(), path); }

std::unique_ptr<Checkpoint> checkpoint_from_safetensors_index(Env& env, const std::string& index_path) {
  auto f = env.open_read(index_path);
  if (f->size() > kMaxIndexBytes) throw FormatError(index_path + ": index over " + std::to_string(kMaxIndexBytes) + " bytes");
  OrderedJson index;
  try {
    index = OrderedJson::parse(f->read_string(0, static_cast<size_t>(f->size())));
  } catch (const std::exception& e) {
    throw FormatError(index_path + ": not JSON: " + e.what());
  }
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    throw FormatError(index_path + ": no \"weight_map\" object: not a safetensors index");
  struct Shard {
    std::shared_ptr<RandomAccessFile> file;
    SafetensorsHeader header;
    std::map<std::string, size_t> by_name;
  };
  std::map<std::string, Shard> shards;
  SafetensorsStateDict made(index_path);
  for (const auto& [name, file_json] : index["weight_map"].items()) {
    if (!file_json.is_string()) throw FormatError(index_path + ": weight_map['" + name + "'] is not a file name");
    std::string file = file_json.get<std::string>();
    if (file.empty() || file == "." || file == ".." || file.find('/') != std::string::npos ||
        file.find('\\') != std::string::npos || file.find('\0') != std::string::npos)
      throw FormatError(index_path + ": weight_map['" + name + "'] names '" + file +
                        "', not a plain file name beside the index");
    auto it = shards.find(file);
    if (it == shards.end()) {
      std::string path = sibling_path(index_path, file);  // remote: the same revision
      if (!env.exists(path)) throw FormatError(index_path + ": shard " + path + " is missing");
      Shard s;
      s.file = env.open_read(path);
      s.header = read_safetensors(*s.file);
      for (size_t i = 0; i < s.header.tensors.size(); ++i) s.by_name[s.header.tensors[i].name] = i;
      it = shards.emplace(file, std::move(s)).first;
    }
    auto t_it = it->second.by_name.find(name);
    if (t_it == it->second.by_name.end())
      throw FormatError(index_path + ": '" + name + "' is not in its shard " + file);
    made.add(it->second.header.tensors[t_it->second], it->second.file, it->second.header.data_start, file);
  }
  for (const auto& [file, s] : shards)
    if (s.by_name.size() > 0) {
      size_t mapped = 0;
      for (const auto& [name, f] : index["weight_map"].items())
        if (f.is_string() && f.get<std::string>() == file) ++mapped;
      if (mapped != s.by_name.size())
        throw FormatError(index_path + ": shard " + file + " holds " + std::to_string(s.by_name.size()) +
                          " tensors, the index maps " + std::to_string(mapped) + " to it");
    }
  return made.finish();
}

}  // namespace ckpt::torch
