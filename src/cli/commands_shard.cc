// Sharded checkpoints: torch distributed checkpoint (DCP) folders seen by
// info / tensors / verify, `ckpt consolidate` (DCP folder -> one torch.save
// file) and `ckpt to-dcp` (api/shard.h).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "api/format.h"
#include "cli/commands.h"
#include "cli/progress.h"
#include "cli/shard.h"
#include "util/error.h"

namespace ckpt::cli {

using json = nlohmann::ordered_json;
using namespace api;

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

std::string int_list(const std::vector<int>& v) {
  std::string s;
  for (int i : v) s += (s.empty() ? "" : ", ") + std::to_string(i);
  return s;
}

json dcp_info_json(const std::string& dir, const DcpInfoResult& r) {
  const auto& dcp = *r.dcp;
  json j;
  j["file"] = dir;
  j["format"] = "dcp";
  j["version"] = dcp.version();
  json files = json::array();
  for (const auto& [n, s] : dcp.files()) files.push_back({{"name", n}, {"size", s}});
  j["files"] = files;
  j["tensors"] = r.tensors;
  j["parameters"] = r.parameters;
  j["bytes"] = r.bytes;
  json by = json::object();
  for (const auto& [d, b] : r.bytes_by_dtype) by[d] = b;
  j["bytes_by_dtype"] = by;
  json bi = json::array();
  for (const auto& it : dcp.items())
    if (!it.is_tensor) bi.push_back({{"fqn", it.fqn}, {"path", path_json(it)}, {"file", it.where.file}});
  j["byte_items"] = bi;
  return j;
}

}  // namespace

int print_dcp_info(Env& env, const std::string& dir, const Common& c) {
  DcpInfoResult r = dcp_info(env, dir);
  if (c.json) {
    std::cout << dcp_info_json(dir, r).dump(2) << "\n";
    return 0;
  }
  const auto& dcp = *r.dcp;
  std::printf("folder      %s (%s in %zu files)\n", dir.c_str(), human_bytes(r.file_bytes).c_str(), dcp.files().size());
  std::printf("format      torch distributed checkpoint (DCP)%s%s\n", dcp.version().empty() ? "" : ", version ",
              dcp.version().c_str());
  std::printf("files      ");
  for (const auto& [n, s] : dcp.files()) std::printf(" %s (%s)", n.c_str(), human_bytes(s).c_str());
  std::printf("\n");
  std::printf("tensors     %s, %s elements, %s\n", with_commas(r.tensors).c_str(), with_commas(r.parameters).c_str(),
              human_bytes(r.bytes).c_str());
  for (const auto& [d, b] : r.bytes_by_dtype) std::printf("  %-10s %s\n", d.c_str(), human_bytes(b).c_str());
  std::printf("byte items  %s\n", with_commas(r.byte_items).c_str());
  for (const auto& it : dcp.items())
    if (!it.is_tensor) std::printf("  %s (in %s)\n", it.fqn.c_str(), it.where.file.c_str());
  return 0;
}

int print_dcp_tensors(Env& env, const std::string& dir, const std::vector<std::string>& match, const Common& c) {
  DcpTensorsResult r = dcp_tensors(env, dir, match);
  if (c.json) {
    json rows = json::array();
    for (const torch::DcpItem* it : r.rows) {
      json chunks = json::array();
      for (const auto& ch : it->chunks)
        chunks.push_back({{"offsets", ch.offsets}, {"sizes", ch.sizes}, {"file", ch.where.file},
                          {"offset", ch.where.offset}, {"length", ch.where.length}});
      rows.push_back({{"name", it->fqn}, {"dtype", it->dtype->name}, {"shape", it->size}, {"numel", it->numel()},
                      {"bytes", it->nbytes()}, {"chunks", chunks}});
    }
    std::cout << rows.dump(2) << "\n";
    return 0;
  }
  for (const torch::DcpItem* it : r.rows)
    std::printf("%-40s %-9s %-16s %14s %10s  %s\n", it->fqn.c_str(), it->dtype->name, shape_text(it->size).c_str(),
                with_commas(it->numel()).c_str(), human_bytes(it->nbytes()).c_str(), chunk_text(*it).c_str());
  std::printf("%zu tensors, %s elements, %s (global shapes)\n", r.rows.size(), with_commas(r.parameters).c_str(),
              human_bytes(r.bytes).c_str());
  return 0;
}

int print_verify(const Common& c, const std::string& what, const std::vector<std::pair<std::string, size_t>>& counts,
                 const std::string& detail, const std::vector<std::string>& problems) {
  if (c.json) {
    json j = {{"file", what}, {"ok", problems.empty()}};
    for (const auto& [key, n] : counts) j[key] = n;
    j["problems"] = problems;
    std::cout << j.dump(2) << "\n";
  } else if (problems.empty()) {
    std::printf("%s: ok (%s)\n", what.c_str(), detail.c_str());
  } else {
    for (const auto& p : problems) std::printf("%s\n", p.c_str());
    std::printf("%s: %zu problem%s found\n", what.c_str(), problems.size(), problems.size() == 1 ? "" : "s");
  }
  return problems.empty() ? 0 : 1;
}

int print_dcp_verify(Env& env, const std::string& dir, const Common& c) {
  DcpVerifyResult r = dcp_verify(env, dir);
  return print_verify(c, dir, {{"items", r.items}, {"chunks", r.chunks}},
                      std::to_string(r.items) + " items, " + std::to_string(r.chunks) + " tensor chunks checked",
                      r.problems);
}

std::string rank_set_text(const RankSetInfo& r) {
  std::string s = "AudioCraft FSDP rank " + std::to_string(r.rank) + " of set " + r.set + " (ranks " +
                  int_list(r.ranks) + ")";
  if (!r.missing.empty()) s += "; missing ranks " + int_list(r.missing);
  return s;
}

int print_folder_info(Env& env, const std::string& dir, const Common& c) {
  auto sets = folder_rank_sets(env, dir);
  if (c.json) {
    json arr = json::array();
    for (const auto& s : sets) arr.push_back({{"set", s.set}, {"ranks", s.ranks}, {"missing", s.missing}});
    std::cout << json{{"file", dir}, {"format", "folder"}, {"rank_sets", arr}}.dump(2) << "\n";
    return 0;
  }
  if (sets.empty())
    throw UsageError(dir + " is a folder with neither a DCP .metadata nor AudioCraft checkpoint files");
  std::printf("folder      %s\n", dir.c_str());
  for (const auto& s : sets) {
    std::printf("rank set    %s: %zu file%s (ranks %s)%s\n", s.set.c_str(), s.ranks.size(),
                s.ranks.size() == 1 ? "" : "s", int_list(s.ranks).c_str(),
                s.missing.empty() ? "" : ("; missing ranks " + int_list(s.missing)).c_str());
  }
  return 0;
}

namespace {

struct Args {
  Common common;
  std::string in, out, state;
  int ranks = 1;
};

std::string plural(size_t n, const char* word) { return std::to_string(n) + " " + word + (n == 1 ? "" : "s"); }

int cmd_consolidate(Env& env, const Args& a) {
  ProgressBars bars(a.common.quiet);
  ConsolidateResult r = consolidate(env, a.in, {a.out, a.common.force, bars.callback()});
  bars.finish();
  say(a.common, "wrote " + a.out + ": " + plural(r.report.tensors, "tensor") + " (" +
                    human_bytes(r.report.tensor_bytes) + "), " + plural(r.report.byte_items, "other item") +
                    ", from " + plural(r.source_files, "file"));
  return 0;
}

int cmd_to_dcp(Env& env, const Args& a) {
  ProgressBars bars(a.common.quiet);
  torch::ToDcpReport r = to_dcp(env, a.in, {a.out, a.state, a.ranks, a.common.force, bars.callback()});
  bars.finish();
  say(a.common, "wrote " + a.out + ": " + plural(r.tensors, "tensor") + " (" + human_bytes(r.tensor_bytes) + ") in " +
                    plural(r.files, "rank file") + ", " + plural(r.byte_items, "other item"));
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
  cons->callback([a, &ctx] { ctx.exit_code = cmd_consolidate(ctx.env, *a); });

  auto* to = app.add_subcommand("to-dcp", "a torch.save file as a torch distributed checkpoint folder");
  to->add_option("FILE", a->in, "input checkpoint")->required();
  to->add_option("-o,--output", a->out, "output folder")->required();
  to->add_option("--ranks", a->ranks, "split tensors along dimension 0 over this many rank files (default 1)")
      ->check(CLI::Range(1, 4096));
  to->add_option("--state", a->state, "'/'-separated path of the state dict to write (default: the whole object)");
  to->add_flag("--force", a->common.force, "replace an existing DCP folder");
  to->add_flag("-q,--quiet", a->common.quiet, "no progress or summary on stderr");
  to->callback([a, &ctx] { ctx.exit_code = cmd_to_dcp(ctx.env, *a); });
}

}  // namespace ckpt::cli
