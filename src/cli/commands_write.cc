// Commands that write checkpoints: rewrite, edit, compact, export, wrap,
// bundle, sanitize (api/write.h, api/edit.h); this file parses and prints.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "api/edit.h"
#include "api/format.h"
#include "api/write.h"
#include "cli/commands.h"
#include "cli/dialect_option.h"
#include "cli/progress.h"
#include "util/error.h"

namespace ckpt::cli {

using namespace api;

namespace {

struct WriteArgs {
  Common common;
  std::string file;
  OutputOptions output;  // rewrite, wrap, sanitize
  EditOptions edit;
  ExportOptions exp;
  BundleOptions bundle;
  CompactOptions compact;
  bool strict = false;  // edit --strict: the default now; kept as a no-op
};

// Runs a write to -o (a file, or standard output for '-'), with progress bars.
template <typename Fn>
auto with_output(const WriteArgs& a, OutputOptions o, bool dry_run, Fn&& write) {
  if (a.common.json && o.out == "-")
    throw UsageError("--json prints the result on standard output; -o - cannot share it");
  auto sink = dry_run ? nullptr : stdout_sink(o.out);  // a dry run writes nothing
  ProgressBars bars(a.common.quiet);
  o.sink = sink.get();
  o.progress = bars.callback();
  auto r = write(o);
  if (a.common.json) print_json(r);
  return r;
}

int cmd_rewrite(Env& env, const WriteArgs& a) {
  with_output(a, a.output, false, [&](const OutputOptions& o) { return rewrite(env, a.file, o); });
  say(a.common, "wrote " + output_name(a.output.out));
  return 0;
}

std::string plural(size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// Long key lists are cut in the normal summary (--dry-run lists all).
void add_list(std::vector<std::string>& lines, const std::string& head, const std::vector<std::string>& items,
              bool all) {
  constexpr size_t kShown = 20;
  for (size_t i = 0; i < items.size(); ++i) {
    if (!all && i == kShown && items.size() > kShown + 1) {
      lines.push_back(head + "... " + std::to_string(items.size() - kShown) + " more (--dry-run lists all)");
      break;
    }
    lines.push_back(head + items[i]);
  }
}

void add_dtype_lines(std::vector<std::string>& lines, const DtypePlan& p) {
  for (const auto& t : p.not_dense)
    lines.push_back("note: " + t + " left as it is: --dtype converts dense tensors only");
  lines.push_back("--dtype " + p.dtype + ": " + std::to_string(p.converted) + " tensor(s) in " +
                  std::to_string(p.storages) + " storage(s), " + human_bytes(p.bytes_before) + " -> " +
                  human_bytes(p.bytes_after) + "; " + std::to_string(p.kept) +
                  " left as they are (not floating or already " + p.dtype + ")");
  if (p.also_converted)
    lines.push_back("note: " + std::to_string(p.also_converted) +
                    " tensor(s) outside the selection share a converted storage and are converted with it");
}

// The changes `edit` made, one per line.
std::vector<std::string> edit_summary(const EditResult& r, bool all) {
  std::vector<std::string> lines;
  for (const auto& c : r.config_changes) lines.push_back("xp.cfg: " + c);
  if (r.overrides_given && r.config_changes.empty())
    lines.push_back("xp.cfg: unchanged (the overrides set the values it had)");
  for (const auto& s : r.states) {
    std::string where = s.path.empty() ? std::string("(root)") : s.path;
    std::vector<std::string> renamed;
    for (const auto& k : s.renamed) renamed.push_back(k.old_name + " -> " + k.new_name);
    add_list(lines, where + ": dropped ", s.dropped, all);
    add_list(lines, where + ": renamed ", renamed, all);
    lines.push_back(where + ": " + plural(s.before, "key", "keys") + ", " + std::to_string(s.dropped.size()) +
                    " dropped, " + std::to_string(s.renamed.size()) + " renamed, " +
                    std::to_string(s.before - s.dropped.size()) + " left");
  }
  if (r.dtype) add_dtype_lines(lines, *r.dtype);
  if (!r.training_state_removed.empty()) {
    std::string keys;
    for (const auto& k : r.training_state_removed) keys += (keys.empty() ? "" : ", ") + k;
    lines.push_back("removed " + keys + ": a run resuming from this file starts at epoch 1 with a fresh optimizer, "
                    "scheduler and EMA (weights and xp.cfg kept)");
  }
  return lines;
}

int cmd_edit(Env& env, const WriteArgs& a) {
  const EditOptions& e = a.edit;
  EditResult r = with_output(a, e.output, e.dry_run, [&](const OutputOptions& o) {
    EditOptions with = e;
    with.output = o;
    return edit(env, a.file, with);
  });
  if (!r.state_note.empty()) say(a.common, "note: " + r.state_note);
  auto print_summary = [&](const std::string& prefix) {
    for (const auto& l : edit_summary(r, e.dry_run)) say(a.common, prefix + l);
  };
  if (e.dry_run) {
    print_summary("would change ");
    if (a.common.json) return 0;
    if (e.in_place)
      std::printf("dry run: %s not updated\n", a.file.c_str());
    else if (e.output.out.empty())
      std::printf("dry run: the output would have %s bytes; nothing written (give -o OUT or --in-place to write)\n",
                  with_commas(r.bytes).c_str());
    else
      std::printf("dry run: would write %s (%s bytes)%s; nothing written\n", e.output.out.c_str(),
                  with_commas(r.bytes).c_str(),
                  r.output_exists && !e.output.force ? ", which exists: the real run needs --force" : "");
    return 0;
  }
  if (r.changes == 0 && !e.compact)
    std::fprintf(stderr, "ckpt: warning: the edit changes nothing; %s is written as it was read\n",
                 e.in_place ? a.file.c_str() : e.output.out.c_str());
  print_summary("");
  if (r.in_place)
    say(a.common, "updated " + a.file +
                      (r.in_place->appended ? " in place (" + with_commas(r.in_place->bytes_written) + " bytes appended)"
                                            : " (full rewrite: " + r.in_place->reason + ")"));
  else if (e.output.out == "-")
    say(a.common, "wrote standard output");
  else
    say(a.common, "wrote " + e.output.out + " (" + with_commas(r.bytes) + " bytes)");
  return 0;
}

int cmd_compact(Env& env, const WriteArgs& a) {
  CompactResult r = compact(env, a.file, a.compact);
  if (a.common.json) print_json(r);
  say(a.common, "compacted " + a.file + ": " + with_commas(r.bytes_before) + " -> " + with_commas(r.bytes_after) +
                    " bytes");
  return 0;
}

int cmd_export(Env& env, const WriteArgs& a) {
  ExportResult r = with_output(a, a.exp.output, false, [&](const OutputOptions& o) {
    ExportOptions with = a.exp;
    with.output = o;
    return export_checkpoint(env, a.file, with);
  });
  say(a.common, "wrote " + output_name(a.exp.output.out) + " (exported from " + r.exported_from + ")");
  return 0;
}

int cmd_wrap(Env& env, const WriteArgs& a) {
  with_output(a, a.output, false, [&](const OutputOptions& o) { return wrap(env, a.file, o); });
  say(a.common, "wrote " + output_name(a.output.out));
  return 0;
}

int cmd_bundle(Env& env, const WriteArgs& a) {
  ProgressBars bars(a.common.quiet);
  BundleOptions b = a.bundle;
  b.progress = bars.callback();
  BundleResult r = bundle(env, a.file, b);
  bars.finish();
  if (a.common.json) print_json(r);
  std::string note = r.compression_from_config.empty()
                         ? ""
                         : " (compression model " + r.compression_from_config + ", from xp.cfg)";
  // --compression NAME that is not a file here: a pointer, which a misspelt
  // file name without a checkpoint's extension also becomes; say which.
  if (note.empty() && r.compression_pretrained)
    note = " (compression model: a pointer to the pretrained '" + a.bundle.compression +
           "', not a file here; AudioCraft fetches it when it loads the folder)";
  say(a.common, "wrote " + r.state_dict + " and " + r.compression_state_dict + note);
  return 0;
}

int cmd_sanitize(Env& env, const WriteArgs& a) {
  SanitizeResult r = with_output(a, a.output, false, [&](const OutputOptions& o) { return sanitize(env, a.file, o); });
  if (!r.written) {
    if (!a.common.json)
      for (const auto& g : r.refused) std::printf("%s\n", g.c_str());
    std::string names;
    for (size_t i = 0; i < r.refused.size() && i < 5; ++i) names += (i ? ", " : "") + r.refused[i];
    if (r.refused.size() > 5) names += ", ...";
    std::fprintf(stderr,
                 "ckpt: %s: %zu global(s) outside torch's weights_only allowlist (%s); nothing written. "
                 "'ckpt scan %s' shows where each is used; if you trust them, torch loads the file with "
                 "torch.serialization.add_safe_globals([...]) before torch.load(..., weights_only=True), or with "
                 "weights_only=False\n",
                 a.file.c_str(), r.refused.size(), names.c_str(), a.file.c_str());
    return 1;
  }
  say(a.common, "wrote " + output_name(a.output.out));
  return 0;
}

}  // namespace

void register_write_commands(CLI::App& app, Context& ctx) {
  auto a = std::make_shared<WriteArgs>();
  auto io = [&](CLI::App* sub, OutputOptions& o, bool output_required,
                const char* output_help = "output file ('-': standard output)") {
    sub->add_option("FILE", a->file, "input checkpoint ('-': standard input)")->required();
    auto* out = sub->add_option("-o,--output", o.out, output_help);
    if (output_required) out->required();
    sub->add_flag("--force", o.force, "overwrite an existing output");
    sub->add_flag("-q,--quiet", a->common.quiet, "no progress or summary on stderr");
    sub->add_flag("--json", a->common.json, "the result as JSON on standard output");
    add_dialect_option(sub, o.dialect);
    sub->add_flag("--ignore-crc", o.ignore_crc,
                  "write from a file whose records fail their CRC-32 (damaged), with the bytes as read");
  };
  auto bind = [&](CLI::App* sub, int (*fn)(Env&, const WriteArgs&)) {
    sub->callback([a, &ctx, fn] { ctx.exit_code = fn(ctx.env, *a); });
  };

  auto* rewrite = app.add_subcommand("rewrite", "load and save unchanged, as torch.save would");
  io(rewrite, a->output, true);
  bind(rewrite, cmd_rewrite);

  EditOptions& e = a->edit;
  auto* edit = app.add_subcommand("edit", "Hydra overrides on xp.cfg and key surgery on state dicts");
  io(edit, e.output, false);
  edit->add_option("OVERRIDES", e.overrides, "key=value, +key=value, ++key=value, ~key");
  edit->add_flag("--in-place", e.in_place,
                 "update FILE in place (appends metadata when tensor bytes are unchanged; crash-safe)");
  edit->add_flag("--compact", e.compact, "with --in-place: full rewrite that reclaims dead bytes");
  edit->add_option("--keep", e.keep, "keep only keys matching this glob (repeatable)");
  edit->add_option("--drop", e.drop, "drop keys matching this glob (repeatable)");
  edit->add_option("--rename", e.rename, "REGEX=REPLACEMENT on key names, Python's re.sub syntax: \\1, \\g<1>, \\g<name> (repeatable)");
  edit->add_option("--state", e.state, "state dict to edit (repeatable; default: the best state)");
  edit->add_flag("--strict", a->strict, "a glob or regex that matches no key is an error (the default)");
  edit->add_flag("--allow-no-match", e.allow_no_match, "a --keep/--drop glob or --rename regex may match no key");
  edit->add_flag("--allow-empty", e.allow_empty, "allow an edit that removes every key of a state dict");
  edit->add_flag("-n,--dry-run", e.dry_run,
                 "print what would change (config values, keys dropped/renamed, bytes written); write nothing "
                 "(-o may be left out)");
  edit->add_option("--dtype", e.dtype,
                   "convert floating tensors to float16, bfloat16 or float32 (fp16, bf16, fp32, torch.float16 ... too), "
                   "bit for bit as torch's .to()");
  edit->add_flag("--for-finetune", e.for_finetune,
                 "remove what AudioCraft restores besides the weights when it resumes from this file (optimizer, "
                 "lr_scheduler, ema, scaler, history: the epoch), so a fine-tune starts at epoch 1");
  edit->add_option("--match", e.match, "with --dtype: only tensors whose names match this glob (repeatable)");
  bind(edit, cmd_edit);

  auto* compact = app.add_subcommand("compact", "rewrite FILE over itself, reclaiming bytes in-place edits left behind");
  compact->add_option("FILE", a->file, "checkpoint to compact")->required();
  compact->add_flag("-q,--quiet", a->common.quiet, "no summary on stderr");
  compact->add_flag("--json", a->common.json, "the result as JSON on standard output");
  compact->add_flag("--ignore-crc", a->compact.ignore_crc,
                    "rewrite a file whose records fail their CRC-32 (damaged), with the bytes as read");
  bind(compact, cmd_compact);

  auto* exp = app.add_subcommand("export", "AudioCraft's export: best_state, xp.cfg as YAML, version, exported");
  io(exp, a->exp.output, true);
  exp->add_option("--version", a->exp.version, "version string (default: the input's, else " +
                                                   std::string(audiocraft::kDefaultVersion) + ")");
  bind(exp, cmd_export);

  auto* wrap = app.add_subcommand("wrap", "turn an exported checkpoint back into the training layout");
  io(wrap, a->output, true);
  bind(wrap, cmd_wrap);

  BundleOptions& b = a->bundle;
  auto* bundle = app.add_subcommand("bundle", "a folder MusicGen.get_pretrained(DIR) loads");
  bundle->add_option("FILE", a->file, "input checkpoint ('-': standard input)")->required();
  bundle->add_option("-o,--output", b.out, "output folder (created if missing)")->required();
  bundle->add_flag("--force", b.force, "overwrite an existing output");
  bundle->add_flag("-q,--quiet", a->common.quiet, "no progress or summary on stderr");
  bundle->add_flag("--json", a->common.json, "the result as JSON on standard output");
  add_dialect_option(bundle, b.dialect);
  bundle->add_flag("--ignore-crc", b.ignore_crc,
                   "write from checkpoints whose records fail their CRC-32 (damaged), with the bytes as read");
  bundle->add_option("--compression", b.compression,
                     "compression checkpoint to export, or a pretrained name (default: xp.cfg's compression_model_checkpoint)");
  bundle->add_option("--version", b.version, "version string");
  bind(bundle, cmd_bundle);

  auto* sanitize = app.add_subcommand("sanitize", "make a checkpoint torch >= 2.6 loads with weights_only=True");
  io(sanitize, a->output, true);
  bind(sanitize, cmd_sanitize);
}

}  // namespace ckpt::cli
