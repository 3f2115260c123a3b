// Crash states of a recorded write (util/recording_env.h), as CrashMonkey
// and ALICE build them: from the folder as it was before the operation and
// the log of its steps, every state a power loss after step k may leave on a
// file system that keeps only what fsync made durable:
//  - a write is durable once its file is fsync'd; a name operation (create,
//    rename, exchange, link, unlink, mkdir, rmdir) once its folder is;
//  - any subset of the steps not yet durable may have reached the disk (all
//    subsets up to `full_subsets_up_to` pending steps, else every prefix,
//    every one-step omission and a random sample): prefixes, reorderings of
//    unsynced writes, lost directory entries;
//  - a pending write may be torn at 4 KiB boundaries of the file, the file's
//    size grown to its end and the blocks not written reading as zeros.
// Each state is materialised under a scratch folder (only the paths below
// `watch`, the output being checked) and handed to a checker.
#pragma once
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <algorithm>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "util/recording_env.h"

namespace ckpt_test {

struct CrashOptions {
  size_t full_subsets_up_to = 10;  // pending steps whose 2^n subsets are all tried
  size_t samples = 64;             // random subsets when there are more
  size_t torn_blocks_max = 4;      // torn variants per pending write (block prefixes)
  uint64_t seed = 1;
  // true: a torn write that extends a file may persist the new size before
  // the data (ext4 data=writeback, XFS): the unwritten blocks read as zeros.
  // false: the size covers only data that reached the disk (ext4's default
  // data=ordered): a torn extension is cut at its first unwritten block.
  bool writeback = true;
};

struct CrashReport {
  size_t crash_points = 0;
  size_t states = 0;    // distinct crash states of the whole folder
  size_t checked = 0;   // distinct states of the watched output among them, each materialised and checked
  size_t failures = 0;  // states the checker refused
  std::vector<std::string> first_failures;
};

class CrashStates {
 public:
  using Files = std::map<std::string, std::string>;  // path -> bytes (files only)

  // `before`: every file and folder under root before the operation (paths
  // absolute, folders with a trailing '/').
  // Consecutive appends to one file (a writer's many small writes) are one
  // write here; its torn versions stand for the crash states inside it.
  CrashStates(Files before, const std::vector<ckpt::RecordedOp>& ops) : before_(std::move(before)) {
    using K = ckpt::RecordedOp::Kind;
    for (const auto& op : ops) {
      if (!ops_.empty() && op.kind == K::Write && ops_.back().kind == K::Write && ops_.back().path == op.path &&
          ops_.back().offset + ops_.back().data.size() == op.offset) {
        ops_.back().data += op.data;
        continue;
      }
      ops_.push_back(op);
    }
    assign_inodes();
  }
  size_t steps() const { return ops_.size(); }

  static Files snapshot(const std::string& root) {
    Files out;
    for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
      if (e.is_symlink()) continue;
      if (e.is_directory()) {
        out[e.path().string() + "/"] = "";
      } else {
        std::ifstream f(e.path(), std::ios::binary);
        out[e.path().string()] = std::string(std::istreambuf_iterator<char>(f), {});
      }
    }
    return out;
  }

  // Checks every crash state: check(scratch_path_of_watch) returns "" when
  // the state is acceptable, else what is wrong.
  CrashReport run(const std::string& root, const std::string& watch, const std::string& scratch,
                  const std::function<std::string(const std::string&)>& check, const CrashOptions& o = {}) {
    CrashReport r;
    std::set<size_t> seen, seen_all;
    std::mt19937_64 rng(o.seed);
    for (size_t k = 0; k <= ops_.size(); ++k) {
      ++r.crash_points;
      std::vector<bool> forced(k, false);
      std::vector<size_t> pending;
      for (size_t i = 0; i < k; ++i) {
        forced[i] = is_forced(i, k);
        if (!forced[i] && changes_disk(ops_[i])) pending.push_back(i);
      }
      std::vector<std::vector<bool>> subsets;
      const size_t n = pending.size();
      if (n <= o.full_subsets_up_to) {
        for (uint64_t m = 0; m < (uint64_t{1} << n); ++m) {
          std::vector<bool> s(n);
          for (size_t b = 0; b < n; ++b) s[b] = (m >> b) & 1;
          subsets.push_back(s);
        }
      } else {
        for (size_t p = 0; p <= n; ++p) {
          std::vector<bool> s(n, false);
          for (size_t b = 0; b < p; ++b) s[b] = true;
          subsets.push_back(s);
        }
        for (size_t d = 0; d < n; ++d) {
          std::vector<bool> s(n, true);
          s[d] = false;
          subsets.push_back(s);
        }
        for (size_t t = 0; t < o.samples; ++t) {
          std::vector<bool> s(n);
          for (size_t b = 0; b < n; ++b) s[b] = rng() & 1;
          subsets.push_back(s);
        }
      }
      for (const auto& s : subsets) {
        std::vector<int> apply(k, 0);  // 0 no, 1 whole, -j torn to its first j blocks
        for (size_t i = 0; i < k; ++i) apply[i] = forced[i] ? 1 : 0;
        for (size_t b = 0; b < n; ++b) apply[pending[b]] = s[b] ? 1 : 0;
        check_state(apply, root, watch, scratch, check, seen, seen_all, r, o.writeback);
        // Torn versions of each pending write that this subset persists.
        for (size_t b = 0; b < n; ++b) {
          const auto& op = ops_[pending[b]];
          if (!s[b] || op.kind != ckpt::RecordedOp::Kind::Write) continue;
          const uint64_t first = op.offset / kBlock, last = (op.offset + op.data.size() + kBlock - 1) / kBlock;
          const uint64_t blocks = last - first;
          // Only the first j blocks reached the disk (the size grown all the same).
          for (uint64_t j = 0; j < blocks && j < o.torn_blocks_max; ++j) {
            apply[pending[b]] = -static_cast<int>(j) - 1;
            check_state(apply, root, watch, scratch, check, seen, seen_all, r, o.writeback);
          }
          // Every block but one (a later block reordered before it).
          for (uint64_t j = 0; j < blocks && blocks > 1 && j < o.torn_blocks_max; ++j) {
            const uint64_t hole = j + 1 < o.torn_blocks_max ? j : blocks - 1;
            apply[pending[b]] = kHoleBase - static_cast<int>(hole);
            check_state(apply, root, watch, scratch, check, seen, seen_all, r, o.writeback);
          }
          apply[pending[b]] = 1;
        }
      }
    }
    return r;
  }

 private:
  static constexpr uint64_t kBlock = 4096;
  static constexpr int kHoleBase = -(1 << 20);  // apply value for "all blocks but one"

  static bool changes_disk(const ckpt::RecordedOp& op) {
    using K = ckpt::RecordedOp::Kind;
    return op.kind != K::Sync && op.kind != K::SyncDir;
  }

  static std::string parent(const std::string& p) {
    size_t s = p.rfind('/');
    return s == std::string::npos ? "." : p.substr(0, s);
  }

  std::vector<std::string> dirs_of(const ckpt::RecordedOp& op) const {
    using K = ckpt::RecordedOp::Kind;
    switch (op.kind) {
      case K::Rename:
      case K::Exchange: return {parent(op.path), parent(op.path2)};
      case K::Link: return {parent(op.path2)};
      case K::Write:
      case K::Sync:
      case K::SyncDir: return {};
      default: return {parent(op.path)};
    }
  }

  // Whether a step before k is durable at k: a later fsync of its file (a
  // write) or of every folder it changes (a name operation).
  bool is_forced(size_t i, size_t k) const {
    using K = ckpt::RecordedOp::Kind;
    const auto& op = ops_[i];
    if (op.kind == K::Write) {
      for (size_t j = i + 1; j < k; ++j)
        if (ops_[j].kind == K::Sync && inode_[j] == inode_[i]) return true;
      return false;
    }
    if (!changes_disk(op)) return true;
    for (const auto& d : dirs_of(op)) {
      bool synced = false;
      for (size_t j = i + 1; j < k && !synced; ++j)
        synced = ops_[j].kind == K::SyncDir && ops_[j].path == d;
      if (!synced) return false;
    }
    return true;
  }

  struct Fs {
    std::map<std::string, int> names;  // file path -> inode
    std::set<std::string> dirs;
    std::vector<std::string> inodes;
  };

  Fs initial() const {
    Fs fs;
    for (const auto& [p, bytes] : before_) {
      if (!p.empty() && p.back() == '/') {
        fs.dirs.insert(p.substr(0, p.size() - 1));
      } else {
        fs.names[p] = static_cast<int>(fs.inodes.size());
        fs.inodes.push_back(bytes);
      }
    }
    return fs;
  }

  static void move_tree(Fs& fs, const std::string& from, const std::string& to) {
    std::map<std::string, int> moved;
    for (auto it = fs.names.begin(); it != fs.names.end();) {
      if (it->first.rfind(from + "/", 0) == 0) {
        moved[to + it->first.substr(from.size())] = it->second;
        it = fs.names.erase(it);
      } else {
        ++it;
      }
    }
    std::set<std::string> dmoved;
    for (auto it = fs.dirs.begin(); it != fs.dirs.end();) {
      if (*it == from || it->rfind(from + "/", 0) == 0) {
        dmoved.insert(to + it->substr(from.size()));
        it = fs.dirs.erase(it);
      } else {
        ++it;
      }
    }
    fs.names.insert(moved.begin(), moved.end());
    fs.dirs.insert(dmoved.begin(), dmoved.end());
  }

  // Applies a name step to fs (the file's inode as the full run had it).
  void apply_name(Fs& fs, size_t i) const {
    using K = ckpt::RecordedOp::Kind;
    const auto& op = ops_[i];
    switch (op.kind) {
      case K::Create: fs.names[op.path] = inode_[i]; break;
      case K::Unlink: fs.names.erase(op.path); break;
      case K::Mkdir: fs.dirs.insert(op.path); break;
      case K::Rmdir: fs.dirs.erase(op.path); break;
      case K::Link:
        if (auto it = fs.names.find(op.path); it != fs.names.end()) fs.names[op.path2] = it->second;
        break;
      case K::Rename:
        if (fs.dirs.count(op.path)) {
          move_tree(fs, op.path, op.path2);
        } else if (auto it = fs.names.find(op.path); it != fs.names.end()) {
          int ino = it->second;
          fs.names.erase(it);
          fs.names[op.path2] = ino;
        } else if (inode_[i] >= 0) {
          fs.names[op.path2] = inode_[i];
        }
        break;
      case K::Exchange: {
        const std::string tmp = op.path + "\x01swap";
        move_tree(fs, op.path, tmp);
        move_tree(fs, op.path2, op.path);
        move_tree(fs, tmp, op.path2);
        break;
      }
      default: break;
    }
  }

  // The inode each step acts on, from a replay of the whole log.
  void assign_inodes() {
    using K = ckpt::RecordedOp::Kind;
    Fs fs = initial();
    base_inodes_ = fs.inodes.size();
    inode_.assign(ops_.size(), -1);
    created_.clear();
    for (size_t i = 0; i < ops_.size(); ++i) {
      const auto& op = ops_[i];
      if (op.kind == K::Create) {
        inode_[i] = static_cast<int>(fs.inodes.size());
        fs.inodes.emplace_back();
        created_.push_back(i);
      } else if (op.kind == K::Write || op.kind == K::Sync) {
        auto it = fs.names.find(op.path);
        inode_[i] = it == fs.names.end() ? -1 : it->second;
      } else if (op.kind == K::Rename) {
        auto it = fs.names.find(op.path);
        inode_[i] = it == fs.names.end() ? -1 : it->second;
      }
      apply_name(fs, i);
    }
  }

  void check_state(const std::vector<int>& apply, const std::string& root, const std::string& watch,
                   const std::string& scratch, const std::function<std::string(const std::string&)>& check,
                   std::set<size_t>& seen, std::set<size_t>& seen_all, CrashReport& r, bool writeback) const {
    using K = ckpt::RecordedOp::Kind;
    Fs fs = initial();
    fs.inodes.resize(base_inodes_ + created_.size());
    for (size_t i = 0; i < apply.size(); ++i) {
      const auto& op = ops_[i];
      if (apply[i] == 0) continue;
      if (op.kind == K::Write) {
        if (inode_[i] < 0) continue;
        std::string& data = fs.inodes[static_cast<size_t>(inode_[i])];
        const uint64_t end = op.offset + op.data.size();
        uint64_t upto = end;
        const bool hole = apply[i] <= kHoleBase;
        if (apply[i] < 0 && !hole) {  // torn: only the first j of the file's 4 KiB blocks it touches
          uint64_t j = static_cast<uint64_t>(-apply[i] - 1);
          upto = std::max(op.offset, std::min(end, (op.offset / kBlock + j) * kBlock));
        }
        const std::string prior = hole ? data : std::string();
        const uint64_t prior_size = data.size();
        if (data.size() < end) data.resize(end, '\0');
        if (upto > op.offset) data.replace(op.offset, upto - op.offset, op.data.substr(0, upto - op.offset));
        if (hole) {  // block `h` of the write not written: zeros past the old end, the old bytes before it
          const uint64_t h = static_cast<uint64_t>(kHoleBase - apply[i]);
          const uint64_t a = std::max(op.offset, (op.offset / kBlock + h) * kBlock);
          const uint64_t z = std::min(end, a + kBlock);
          for (uint64_t x = a; x < z; ++x) data[x] = x < prior.size() ? prior[x] : '\0';
          if (!writeback && a >= prior.size()) data.resize(a);
        }
        if (!writeback && !hole && upto < end) data.resize(upto > op.offset ? std::max<uint64_t>(prior_size, upto) : prior_size);
      } else {
        apply_name(fs, i);
      }
    }
    std::string all;
    for (const auto& [p, ino] : fs.names)
      all += p + '\0' + std::to_string(std::hash<std::string>{}(fs.inodes[static_cast<size_t>(ino)])) + '\0';
    for (const auto& d : fs.dirs) all += d + "/\0";
    if (!seen_all.insert(std::hash<std::string>{}(all)).second) return;
    ++r.states;
    // The watched part of the state, as one value to deduplicate checks.
    std::string key;
    std::vector<std::pair<std::string, const std::string*>> files;
    for (const auto& [p, ino] : fs.names)
      if (p == watch || p.rfind(watch + "/", 0) == 0) {
        files.emplace_back(p, &fs.inodes[static_cast<size_t>(ino)]);
        key += p + '\0' + std::to_string(std::hash<std::string>{}(*files.back().second)) + '\0';
      }
    for (const auto& d : fs.dirs)
      if (d == watch || d.rfind(watch + "/", 0) == 0) key += d + "/\0";
    if (!seen.insert(std::hash<std::string>{}(key)).second) return;
    ++r.checked;
    std::filesystem::remove_all(scratch);
    std::filesystem::create_directories(scratch);
    auto map_path = [&](const std::string& p) { return scratch + p.substr(root.size()); };
    for (const auto& d : fs.dirs)
      if (d == watch || d.rfind(watch + "/", 0) == 0) std::filesystem::create_directories(map_path(d));
    for (const auto& [p, bytes] : files) {
      std::filesystem::create_directories(parent(map_path(p)));
      std::ofstream(map_path(p), std::ios::binary) << *bytes;
    }
    std::string problem = check(map_path(watch));
    if (!problem.empty()) {
      ++r.failures;
      if (r.first_failures.size() < 5) {
        std::string how = "steps applied:";
        for (size_t i = 0; i < apply.size(); ++i)
          how += " " + std::to_string(i) + (apply[i] == 1 ? "" : apply[i] == 0 ? "(no)" : apply[i] <= kHoleBase ? "(hole)" : "(torn)");
        r.first_failures.push_back(how + ": " + problem);
      }
    }
  }

  Files before_;
  std::vector<ckpt::RecordedOp> ops_;
  std::vector<int> inode_;
  std::vector<size_t> created_;
  size_t base_inodes_ = 0;
};

}  // namespace ckpt_test
