// Sharded checkpoints: torch distributed checkpoint (DCP) folders seen by
// info / tensors / verify, `ckpt consolidate` (DCP folder -> one torch.save
// file) and `ckpt to-dcp` (api/shard.h).
#include <CLI/CLI.hpp>
#include <cstdio>

#include "api/format.h"
#include "api/text_width.h"
#include "cli/commands.h"
#include "cli/progress.h"
#include "cli/shard.h"
#include "util/error.h"

namespace ckpt::cli {

using namespace api;

namespace {

std::string chunk_text(const DcpTensorEntry& item) {
  std::string s = std::to_string(item.chunks.size()) + " chunk" + (item.chunks.size() == 1 ? "" : "s");
  std::string files;
  for (const auto& c : item.chunks)
    if (files.find(c.file) == std::string::npos) files += (files.empty() ? "" : ",") + c.file;
  return s + " in " + files;
}

std::string int_list(const std::vector<int>& v) {
  std::string s;
  for (int i : v) s += (s.empty() ? "" : ", ") + std::to_string(i);
  return s;
}

void print_problems(const std::string& what, const std::vector<std::string>& problems, const std::string& detail) {
  if (problems.empty()) {
    std::printf("%s: ok (%s)\n", what.c_str(), detail.c_str());
    return;
  }
  for (const auto& p : problems) std::printf("%s\n", p.c_str());
  std::printf("%s: %zu problem%s found\n", what.c_str(), problems.size(), problems.size() == 1 ? "" : "s");
}

}  // namespace

void print_text(const DcpInfoResult& r) {
  uint64_t file_bytes = 0;
  for (const auto& f : r.files) file_bytes += f.size;
  std::printf("folder      %s (%s in %zu files)\n", r.file.c_str(), human_bytes(file_bytes).c_str(), r.files.size());
  std::printf("format      torch distributed checkpoint (DCP)%s%s\n", r.version.empty() ? "" : ", version ",
              r.version.c_str());
  std::printf("files      ");
  for (const auto& f : r.files) std::printf(" %s (%s)", f.name.c_str(), human_bytes(f.size).c_str());
  std::printf("\n");
  std::printf("tensors     %s, %s elements, %s\n", with_commas(r.tensors).c_str(), with_commas(r.parameters).c_str(),
              human_bytes(r.bytes).c_str());
  for (const auto& [d, b] : r.bytes_by_dtype) std::printf("  %-10s %s\n", d.c_str(), human_bytes(b).c_str());
  std::printf("byte items  %s\n", with_commas(r.byte_items.size()).c_str());
  for (const auto& it : r.byte_items) std::printf("  %s (in %s)\n", it.fqn.c_str(), it.file.c_str());
}

void print_dcp_tensors(const std::vector<DcpTensorEntry>& rows) {
  uint64_t parameters = 0, bytes = 0;
  for (const DcpTensorEntry& it : rows) {
    std::printf("%-40s %-9s %-16s %14s %10s  %s\n", it.name.c_str(), it.dtype.c_str(), shape_text(it.shape).c_str(),
                with_commas(it.numel).c_str(), human_bytes(it.bytes).c_str(), chunk_text(it).c_str());
    parameters += it.numel;
    bytes += it.bytes;
  }
  std::printf("%zu tensors, %s elements, %s (global shapes)\n", rows.size(), with_commas(parameters).c_str(),
              human_bytes(bytes).c_str());
}

void print_text(const VerifyResult& r) {
  print_problems(r.file, r.problems,
                 count_of(r.records, "record", "records") + ", " + count_of(r.tensors, "tensor", "tensors") + " checked");
}

void print_text(const DcpVerifyResult& r) {
  print_problems(r.file, r.problems,
                 std::to_string(r.items) + " items, " + std::to_string(r.chunks) + " tensor chunks checked");
}

std::string rank_set_text(const RankSetInfo& r) {
  std::string s = "AudioCraft FSDP rank " + std::to_string(r.rank) + " of set " + r.set + " (ranks " +
                  int_list(r.ranks) + ")";
  if (!r.missing.empty()) s += "; missing ranks " + int_list(r.missing);
  return s;
}

void print_text(const FolderInfoResult& r) {
  std::printf("folder      %s\n", r.file.c_str());
  for (const auto& s : r.rank_sets) {
    std::printf("rank set    %s: %zu file%s (ranks %s)%s\n", s.set.c_str(), s.ranks.size(),
                s.ranks.size() == 1 ? "" : "s", int_list(s.ranks).c_str(),
                s.missing.empty() ? "" : ("; missing ranks " + int_list(s.missing)).c_str());
  }
}

namespace {

struct Args {
  Common common;
  std::string in;
  ConsolidateOptions consolidate;
  ToDcpOptions to_dcp;
};

std::string plural(size_t n, const char* word) { return std::to_string(n) + " " + word + (n == 1 ? "" : "s"); }

int cmd_consolidate(Env& env, const Args& a) {
  ProgressBars bars(a.common.quiet);
  ConsolidateOptions o = a.consolidate;
  o.progress = bars.callback();
  ConsolidateResult r = consolidate(env, a.in, o);
  bars.finish();
  if (a.common.json) print_json(r);
  say(a.common, "wrote " + r.out + ": " + plural(r.tensors, "tensor") + " (" + human_bytes(r.tensor_bytes) + "), " +
                    plural(r.byte_items, "other item") + ", from " + plural(r.source_files, "file"));
  return 0;
}

int cmd_to_dcp(Env& env, const Args& a) {
  ProgressBars bars(a.common.quiet);
  ToDcpOptions o = a.to_dcp;
  o.progress = bars.callback();
  ToDcpResult r = to_dcp(env, a.in, o);
  bars.finish();
  if (a.common.json) print_json(r);
  say(a.common, "wrote " + r.out + ": " + plural(r.tensors, "tensor") + " (" + human_bytes(r.tensor_bytes) + ") in " +
                    plural(r.files, "rank file") + ", " + plural(r.byte_items, "other item"));
  return 0;
}

}  // namespace

void register_shard_commands(CLI::App& app, Context& ctx) {
  auto a = std::make_shared<Args>();
  auto* cons = app.add_subcommand(
      "consolidate", "a torch distributed checkpoint folder as one torch.save file (as dcp_to_torch_save)");
  cons->add_option("DIR", a->in, "DCP folder (.metadata + *.distcp)")->required();
  cons->add_option("-o,--output", a->consolidate.out, "output file")->required();
  cons->add_flag("--force", a->consolidate.force, "overwrite an existing output");
  cons->add_flag("--json", a->common.json, "the result as JSON on standard output");
  cons->add_flag("-q,--quiet", a->common.quiet, "no progress or summary on stderr");
  cons->callback([a, &ctx] { ctx.exit_code = cmd_consolidate(ctx.env, *a); });

  auto* to = app.add_subcommand("to-dcp", "a torch.save file as a torch distributed checkpoint folder");
  to->add_option("FILE", a->in, "input checkpoint")->required();
  to->add_option("-o,--output", a->to_dcp.out, "output folder")->required();
  to->add_option("--ranks", a->to_dcp.ranks, "split tensors along dimension 0 over this many rank files (default 1)")
      ->check(CLI::Range(1, 4096));
  to->add_option("--state", a->to_dcp.state, "'/'-separated path of the state dict to write (default: the whole object)");
  to->add_flag("--force", a->to_dcp.force, "replace an existing DCP folder");
  to->add_flag("--json", a->common.json, "the result as JSON on standard output");
  to->add_flag("-q,--quiet", a->common.quiet, "no progress or summary on stderr");
  to->callback([a, &ctx] { ctx.exit_code = cmd_to_dcp(ctx.env, *a); });
}

}  // namespace ckpt::cli
