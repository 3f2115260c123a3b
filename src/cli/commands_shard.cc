// Sharded checkpoints: torch distributed checkpoint (DCP) folders seen by
// info / tensors / verify, and `ckpt consolidate` (DCP folder -> one
// torch.save file).
#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "audiocraft/rank_set.h"
#include "cli/commands.h"
#include "cli/format.h"
#include "cli/progress.h"
#include "cli/shard.h"
#include "pickle/value.h"
#include "torch/dcp.h"
#include "util/error.h"

namespace ckpt::cli {

using json = nlohmann::ordered_json;

namespace {

std::string chunk_text(const torch::DcpItem& item) {
  if (!item.is_tensor) return "";
  std::string s = std::to_string(item.chunks.size()) + " chunk" + (item.chunks.size() == 1 ? "" : "s");
  std::string files;
  for (const auto& c : item.chunks)
    if (files.find(c.where.file) == std::string::npos) files += (files.empty() ? "" : ",") + c.where.file;
  return s + " in " + files;
}

json path_json(const torch::DcpItem& item) {
  json p = json::array();
  for (const auto& s : item.path) p.push_back(s.is_index ? json(s.index) : json(s.key));
  return p;
}

}  // namespace

bool is_dcp_folder(const std::string& path) { return torch::DcpCheckpoint::is_dcp_folder(path); }

int dcp_info(const std::string& dir, const Common& c) {
  auto dcp = torch::DcpCheckpoint::open(Env::Default(), dir);
  uint64_t tensors = 0, bytes = 0, elements = 0, byte_items = 0, file_bytes = 0;
  std::map<std::string, uint64_t> by_dtype;
  for (const auto& it : dcp->items()) {
    if (!it.is_tensor) {
      ++byte_items;
      continue;
    }
    ++tensors;
    bytes += it.nbytes();
    elements += it.numel();
    by_dtype[it.dtype->name] += it.nbytes();
  }
  for (const auto& [n, s] : dcp->files()) file_bytes += s;
  if (c.json) {
    json j;
    j["file"] = dir;
    j["format"] = "dcp";
    j["version"] = dcp->version();
    json files = json::array();
    for (const auto& [n, s] : dcp->files()) files.push_back({{"name", n}, {"size", s}});
    j["files"] = files;
    j["tensors"] = tensors;
    j["parameters"] = elements;
    j["bytes"] = bytes;
    json by = json::object();
    for (const auto& [d, b] : by_dtype) by[d] = b;
    j["bytes_by_dtype"] = by;
    json bi = json::array();
    for (const auto& it : dcp->items())
      if (!it.is_tensor) bi.push_back({{"fqn", it.fqn}, {"path", path_json(it)}, {"file", it.where.file}});
    j["byte_items"] = bi;
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::printf("folder      %s (%s in %zu files)\n", dir.c_str(), human_bytes(file_bytes).c_str(),
              dcp->files().size());
  std::printf("format      torch distributed checkpoint (DCP)%s%s\n", dcp->version().empty() ? "" : ", version ",
              dcp->version().c_str());
  std::printf("files      ");
  for (const auto& [n, s] : dcp->files()) std::printf(" %s (%s)", n.c_str(), human_bytes(s).c_str());
  std::printf("\n");
  std::printf("tensors     %s, %s elements, %s\n", with_commas(tensors).c_str(), with_commas(elements).c_str(),
              human_bytes(bytes).c_str());
  for (const auto& [d, b] : by_dtype) std::printf("  %-10s %s\n", d.c_str(), human_bytes(b).c_str());
  std::printf("byte items  %s\n", with_commas(byte_items).c_str());
  for (const auto& it : dcp->items())
    if (!it.is_tensor) std::printf("  %s (in %s)\n", it.fqn.c_str(), it.where.file.c_str());
  return 0;
}

int dcp_tensors(const std::string& dir, const std::vector<std::string>& match, const Common& c) {
  auto dcp = torch::DcpCheckpoint::open(Env::Default(), dir);
  json rows = json::array();
  uint64_t total = 0, elements = 0;
  size_t count = 0;
  for (const auto& it : dcp->items()) {
    if (!it.is_tensor) continue;
    bool hit = match.empty();
    for (const auto& m : match) hit = hit || glob_match(m, it.fqn);
    if (!hit) continue;
    ++count;
    total += it.nbytes();
    elements += it.numel();
    if (c.json) {
      json chunks = json::array();
      for (const auto& ch : it.chunks)
        chunks.push_back({{"offsets", ch.offsets}, {"sizes", ch.sizes}, {"file", ch.where.file},
                          {"offset", ch.where.offset}, {"length", ch.where.length}});
      rows.push_back({{"name", it.fqn}, {"dtype", it.dtype->name}, {"shape", it.size}, {"numel", it.numel()},
                      {"bytes", it.nbytes()}, {"chunks", chunks}});
    } else {
      std::printf("%-40s %-9s %-16s %14s %10s  %s\n", it.fqn.c_str(), it.dtype->name, shape_text(it.size).c_str(),
                  with_commas(it.numel()).c_str(), human_bytes(it.nbytes()).c_str(), chunk_text(it).c_str());
    }
  }
  if (c.json) {
    std::cout << rows.dump(2) << "\n";
    return 0;
  }
  std::printf("%zu tensors, %s elements, %s (global shapes)\n", count, with_commas(elements).c_str(),
              human_bytes(total).c_str());
  return 0;
}

int dcp_verify(const std::string& dir, const Common& c) {
  std::vector<std::string> problems;
  std::unique_ptr<torch::DcpCheckpoint> dcp;
  try {
    dcp = torch::DcpCheckpoint::open(Env::Default(), dir);
  } catch (const FormatError& e) {
    problems.push_back(e.what());
  }
  size_t chunks = 0, items = 0;
  if (dcp) {
    problems = torch::verify_dcp(*dcp);
    for (const auto& it : dcp->items()) {
      ++items;
      chunks += it.chunks.size();
    }
  }
  if (c.json) {
    json j = {{"file", dir}, {"ok", problems.empty()}, {"items", items}, {"chunks", chunks}, {"problems", problems}};
    std::cout << j.dump(2) << "\n";
  } else if (problems.empty()) {
    std::printf("%s: ok (%zu items, %zu tensor chunks checked)\n", dir.c_str(), items, chunks);
  } else {
    for (const auto& p : problems) std::printf("%s\n", p.c_str());
    std::printf("%s: %zu problem%s found\n", dir.c_str(), problems.size(), problems.size() == 1 ? "" : "s");
  }
  return problems.empty() ? 0 : 1;
}

std::optional<RankSetInfo> rank_set_of(const std::string& file) {
  auto r = audiocraft::parse_rank_file(basename_of(file));
  if (!r) return std::nullopt;
  for (const auto& set : audiocraft::list_rank_sets(dirname_of(file))) {
    if (set.name != r->set) continue;
    if (r->rank == 0 && set.ranks.size() == 1 && set.missing.empty()) return std::nullopt;  // a lone checkpoint.th
    return RankSetInfo{set.name, r->rank, set.ranks, set.missing};
  }
  return std::nullopt;
}

namespace {

std::string int_list(const std::vector<int>& v) {
  std::string s;
  for (int i : v) s += (s.empty() ? "" : ", ") + std::to_string(i);
  return s;
}

}  // namespace

std::string rank_set_text(const RankSetInfo& r) {
  std::string s = "AudioCraft FSDP rank " + std::to_string(r.rank) + " of set " + r.set + " (ranks " +
                  int_list(r.ranks) + ")";
  if (!r.missing.empty()) s += "; missing ranks " + int_list(r.missing);
  return s;
}

bool is_folder(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_directory(path, ec);
}

int folder_info(const std::string& dir, const Common& c) {
  auto sets = audiocraft::list_rank_sets(dir);
  if (c.json) {
    json arr = json::array();
    for (const auto& s : sets) arr.push_back({{"set", s.name}, {"ranks", s.ranks}, {"missing", s.missing}});
    std::cout << json{{"file", dir}, {"format", "folder"}, {"rank_sets", arr}}.dump(2) << "\n";
    return 0;
  }
  if (sets.empty())
    throw UsageError(dir + " is a folder with neither a DCP .metadata nor AudioCraft checkpoint files");
  std::printf("folder      %s\n", dir.c_str());
  for (const auto& s : sets) {
    std::printf("rank set    %s: %zu file%s (ranks %s)%s\n", s.name.c_str(), s.ranks.size(),
                s.ranks.size() == 1 ? "" : "s", int_list(s.ranks).c_str(),
                s.missing.empty() ? "" : ("; missing ranks " + int_list(s.missing)).c_str());
  }
  return 0;
}

ReadableCheckpoint::ReadableCheckpoint(const std::string& path) : path_(path) {
  if (!is_dcp_folder(path)) return;
  auto dcp = torch::DcpCheckpoint::open(Env::Default(), path);
  std::error_code ec;
  std::string base = std::filesystem::temp_directory_path(ec).string();
  if (ec || base.empty()) base = "/tmp";
  std::string tmpl = base + "/ckpt-dcp-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data())) throw IoError("cannot create a temporary folder in " + base, errno);
  temp_dir_ = buf.data();
  std::string trimmed = path;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
  std::string name = basename_of(trimmed);
  path_ = temp_dir_ + "/" + (name.empty() || name == "." ? std::string("dcp") : name) + ".consolidated.pt";
  torch::consolidate_dcp(*dcp, Env::Default(), path_);
}

ReadableCheckpoint::~ReadableCheckpoint() {
  if (temp_dir_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(temp_dir_, ec);
}

namespace {

struct Args {
  Common common;
  std::string in, out, state;
  int ranks = 1;
};

int cmd_consolidate(const Args& a) {
  Env& env = Env::Default();
  if (!is_dcp_folder(a.in)) throw UsageError(a.in + ": not a torch distributed checkpoint folder (no .metadata)");
  auto dcp = torch::DcpCheckpoint::open(env, a.in);
  Progress bar("writing " + basename_of(a.out), a.common.quiet);
  torch::ConsolidateOptions opts;
  opts.force = a.common.force;
  opts.progress = bar.callback();
  auto r = torch::consolidate_dcp(*dcp, env, a.out, opts);
  bar.finish();
  if (!a.common.quiet)
    std::fprintf(stderr, "wrote %s: %zu tensor%s (%s), %zu other item%s, from %zu file%s\n", a.out.c_str(), r.tensors,
                 r.tensors == 1 ? "" : "s", human_bytes(r.tensor_bytes).c_str(), r.byte_items,
                 r.byte_items == 1 ? "" : "s", dcp->files().size(), dcp->files().size() == 1 ? "" : "s");
  return 0;
}

int cmd_to_dcp(const Args& a) {
  Env& env = Env::Default();
  auto ck = torch::Checkpoint::open(env, a.in);
  const pickle::Node* root = ck->root();
  if (!a.state.empty()) {
    for (size_t pos = 0; root && pos <= a.state.size();) {
      size_t end = a.state.find('/', pos);
      if (end == std::string::npos) end = a.state.size();
      root = pickle::get_item(root, a.state.substr(pos, end - pos));
      pos = end + 1;
    }
    if (!root) throw UsageError(a.in + ": no state dict at '" + a.state + "'");
  }
  Progress bar("writing " + basename_of(a.out), a.common.quiet);
  torch::ToDcpOptions opts;
  opts.force = a.common.force;
  opts.ranks = a.ranks;
  opts.progress = bar.callback();
  auto r = torch::write_dcp(*ck, root, env, a.out, opts);
  bar.finish();
  if (!a.common.quiet)
    std::fprintf(stderr, "wrote %s: %zu tensor%s (%s) in %zu rank file%s, %zu other item%s\n", a.out.c_str(), r.tensors,
                 r.tensors == 1 ? "" : "s", human_bytes(r.tensor_bytes).c_str(), r.files, r.files == 1 ? "" : "s",
                 r.byte_items, r.byte_items == 1 ? "" : "s");
  return 0;
}

}  // namespace

void register_shard_commands(CLI::App& app, Context& ctx) {
  auto a = std::make_shared<Args>();
  auto* cons = app.add_subcommand(
      "consolidate", "a torch distributed checkpoint folder as one torch.save file (as dcp_to_torch_save)");
  cons->add_option("DIR", a->in, "DCP folder (.metadata + *.distcp)")->required();
  cons->add_option("-o,--output", a->out, "output file")->required();
  cons->add_flag("--force", a->common.force, "overwrite an existing output");
  cons->add_flag("-q,--quiet", a->common.quiet, "no progress or summary on stderr");
  cons->callback([a, &ctx] { ctx.exit_code = cmd_consolidate(*a); });

  auto* to = app.add_subcommand("to-dcp", "a torch.save file as a torch distributed checkpoint folder");
  to->add_option("FILE", a->in, "input checkpoint")->required();
  to->add_option("-o,--output", a->out, "output folder")->required();
  to->add_option("--ranks", a->ranks, "split tensors along dimension 0 over this many rank files (default 1)")
      ->check(CLI::Range(1, 4096));
  to->add_option("--state", a->state, "'/'-separated path of the state dict to write (default: the whole object)");
  to->add_flag("--force", a->common.force, "replace an existing DCP folder");
  to->add_flag("-q,--quiet", a->common.quiet, "no progress or summary on stderr");
  to->callback([a, &ctx] { ctx.exit_code = cmd_to_dcp(*a); });
}

}  // namespace ckpt::cli
