// diff and stats: commands that read tensor values (api/diff.h,
// api/stats.h), printed as text or JSON.
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <iostream>

#include "api/diff.h"
#include "api/format.h"
#include "api/stats.h"
#include "cli/commands.h"
#include "cli/terminal.h"

namespace ckpt::cli {

using namespace api;

namespace {

std::string num_text(double v) {
  if (std::isnan(v)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

// ------------------------------------------------------------------ stats

struct StatsArgs {
  std::string file;
  StatsOptions options;
  bool json = false, check_finite = false;
};

void print_stats_table(const Json& rows) {
  size_t w = 4, dw = 8;
  for (auto& r : rows) {
    w = std::max(w, r["name"].get<std::string>().size());
    dw = std::max(dw, r["dtype"].get<std::string>().size());
  }
  std::printf("%-*s  %-*s %12s %6s %6s %12s %12s %12s %12s %12s\n", static_cast<int>(w), "name",
              static_cast<int>(dw), "dtype", "numel", "nan", "inf", "min", "max", "mean", "std", "norm");
  auto cell = [](const Json& v) { return v.is_null() ? std::string("-") : num_text(v.get<double>()); };
  auto count = [](const Json& v) { return v.is_null() ? std::string("-") : std::to_string(v.get<uint64_t>()); };
  for (auto& r : rows) {
    std::string note;
    if (r.contains("form")) note += "  " + r["form"].get<std::string>();
    if (r.contains("note")) note += " (" + r["note"].get<std::string>() + ")";
    std::printf("%-*s  %-*s %12s %6s %6s %12s %12s %12s %12s %12s%s\n", static_cast<int>(w),
                r["name"].get<std::string>().c_str(), static_cast<int>(dw), r["dtype"].get<std::string>().c_str(),
                with_commas(r["numel"].get<uint64_t>()).c_str(), count(r["nan"]).c_str(), count(r["inf"]).c_str(),
                cell(r["min"]).c_str(), cell(r["max"]).c_str(), cell(r["mean"]).c_str(), cell(r["std"]).c_str(),
                cell(r["norm"]).c_str(), note.c_str());
  }
}

int cmd_stats(Env& env, const StatsArgs& a) {
  std::vector<StatsRow> rows = stats(env, a.file, a.options);
  warn_if_nothing_matched(a.options.match, rows.size(), a.options.state.value_or(""));
  if (a.json) print_json(rows);
  else print_stats_table(to_json(rows));
  std::vector<std::string> nonfinite;
  for (const StatsRow& r : rows)
    if (r.nan.value_or(0) || r.inf.value_or(0)) nonfinite.push_back(r.name);
  if (a.check_finite && !nonfinite.empty()) {
    std::string list;
    for (size_t i = 0; i < nonfinite.size() && i < 5; ++i) list += (i ? ", " : "") + nonfinite[i];
    if (nonfinite.size() > 5) list += ", ...";
    std::fprintf(stderr, "ckpt: %s: %zu tensor(s) hold NaN or Inf: %s\n", a.file.c_str(), nonfinite.size(),
                 list.c_str());
    return 1;
  }
  return 0;
}

// ------------------------------------------------------------------- diff

struct DiffArgs {
  std::string a, b;
  DiffOptions options;
  bool json = false;
};

std::string change_text(const TensorChange& c) {
  std::string what = c.dtype_a != c.dtype_b ? c.dtype_a + " -> " + c.dtype_b : "";
  if (c.shape_a != c.shape_b) what += (what.empty() ? "" : ", ") + shape_text(c.shape_a) + " -> " + shape_text(c.shape_b);
  for (auto& f : c.form) what += (what.empty() ? "" : "; ") + f;
  return what;
}

void print_value_change(const ValueChange& v) {
  std::string extra;
  if (v.nonfinite_differing) extra = " (" + std::to_string(v.nonfinite_differing) + " with NaN/Inf)";
  if (v.beyond_tolerance) extra += " (" + with_commas(*v.beyond_tolerance) + " beyond the tolerance)";
  std::string label = v.name;
  if (!v.part.empty()) label += " (" + v.part + ")";
  std::printf("  values     %s: %s of %s elements differ, max abs diff %s%s\n", label.c_str(),
              with_commas(v.differing).c_str(), with_commas(v.numel).c_str(), num_text(v.max_abs_diff).c_str(),
              extra.c_str());
}

void print_diff(const DiffResult& r) {
  auto state_name = [](const std::string& p) { return p.empty() ? std::string("(root)") : p; };
  const DiffTensors& t = r.tensors;
  const DiffTopLevel& top = r.top_level;
  std::printf("a: %s [%s]\nb: %s [%s]\n", r.a.file.c_str(), state_name(r.a.state).c_str(), r.b.file.c_str(),
              state_name(r.b.state).c_str());
  std::printf("tensors: %llu in both, %zu only in a, %zu only in b, %zu dtype/shape changes, %zu with other values\n",
              static_cast<unsigned long long>(t.compared), t.only_in_a.size(), t.only_in_b.size(), t.changed.size(),
              t.values.size());
  for (auto& n : t.only_in_a) std::printf("  %s  %s\n", colored(1, kRed, "only in a").c_str(), n.c_str());
  for (auto& n : t.only_in_b) std::printf("  %s  %s\n", colored(1, kGreen, "only in b").c_str(), n.c_str());
  for (auto& c : t.changed)
    std::printf("  %s    %s: %s\n", colored(1, kYellow, "changed").c_str(), c.name.c_str(), change_text(c).c_str());
  for (auto& v : t.values) print_value_change(v);
  if (!top.only_in_a.empty() || !top.only_in_b.empty() || !top.changed.empty()) {
    std::printf("top level:\n");
    for (auto& k : top.only_in_a) std::printf("  %s  %s\n", colored(1, kRed, "only in a").c_str(), k.c_str());
    for (auto& k : top.only_in_b) std::printf("  %s  %s\n", colored(1, kGreen, "only in b").c_str(), k.c_str());
    for (auto& c : top.changed)
      std::printf("  %s    %s: %s -> %s\n", colored(1, kYellow, "changed").c_str(), c.key.c_str(), c.a.c_str(),
                  c.b.c_str());
  }
  if (!r.config.changes.empty()) {
    for (const auto& c : r.config.changes) std::printf("%s %s\n", colored(1, kYellow, "xp.cfg:").c_str(), c.c_str());
  } else if (!r.config.diff.empty()) {
    std::printf("xp.cfg:\n%s", r.config.diff.c_str());
  }
  if (r.tensors_only) std::printf("(a safetensors file holds tensors only: top level and xp.cfg not compared)\n");
  std::printf("%s\n", r.equal ? colored(1, kGreen, "no differences").c_str() : colored(1, kRed, "different").c_str());
}

int cmd_diff(Env& env, const DiffArgs& d) {
  DiffResult r = diff(env, d.a, d.b, d.options);
  for (const auto* side : {&r.a, &r.b})
    if (!side->state_note.empty()) std::fprintf(stderr, "ckpt: note: %s: %s\n", side->file.c_str(), side->state_note.c_str());
  if (d.json) print_json(r);
  else print_diff(r);
  return r.equal ? 0 : 1;
}

}  // namespace

void register_tools_commands(CLI::App& app, Context& ctx) {
  auto s = std::make_shared<StatsArgs>();
  auto* stats = app.add_subcommand(
      "stats",
      "per-tensor numel, NaN, Inf, min, max, mean, std, L2 norm (float64; over finite values; std unbiased as "
      "torch.std(), std_population in --json)");
  stats->add_option("FILE", s->file, "checkpoint or .safetensors file ('-': standard input)")->required();
  stats->add_option("--state", s->options.state, "state dict path (default: the best state)");
  stats->add_option("--match", s->options.match, "only tensors whose names match this glob (repeatable)");
  stats->add_flag("--json", s->json, "JSON array of {name, dtype, shape, numel, nan, inf, finite, min, max, mean, "
                                     "std, std_population, norm}");
  stats->add_flag("--check-finite", s->check_finite, "exit 1 if any tensor holds NaN or Inf");
  stats->add_flag("--ignore-crc", s->options.ignore_crc,
                  "read a file whose records fail their CRC-32 (damaged), with the bytes as they are");
  stats->callback([s, &ctx] { ctx.exit_code = cmd_stats(ctx.env, *s); });

  auto d = std::make_shared<DiffArgs>();
  auto* diff = app.add_subcommand(
      "diff", "compare two checkpoints: tensors (keys, dtypes, shapes, values), top-level keys and xp.cfg; exit 1 "
              "when different");
  diff->add_option("A", d->a, "first checkpoint or .safetensors file")->required();
  diff->add_option("B", d->b, "second checkpoint or .safetensors file")->required();
  diff->add_option("--state", d->options.state, "state dict path in both (default: each one's best state)");
  diff->add_flag("--json", d->json, "one JSON object");
  diff->add_flag("--ignore-crc", d->options.ignore_crc,
                 "compare files whose records fail their CRC-32 (damaged), with the bytes as they are");
  diff->add_option("--atol", d->options.atol, "values equal when |a - b| <= atol + rtol * |b| (as torch.allclose; default 0)")
      ->check(number());
  diff->add_option("--rtol", d->options.rtol, "relative tolerance (default 0: values compared exactly); with a tolerance a dtype change alone is not a difference")
      ->check(number());
  diff->callback([d, &ctx] { ctx.exit_code = cmd_diff(ctx.env, *d); });
}

}  // namespace ckpt::cli
