// Commands that write checkpoints: rewrite, edit, export, wrap, bundle,
// sanitize. Every output goes through torch::save (atomic, torch's layout).
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "audiocraft/config_changes.h"
#include "audiocraft/operations.h"
#include "cli/commands.h"
#include "cli/dialect_option.h"
#include "cli/dtype_edit.h"
#include "cli/format.h"
#include "cli/progress.h"
#include "cli/session.h"
#include "omegaconf/override.h"
#include "torch/in_place.h"
#include "util/discard_env.h"
#include "util/error.h"
#include "util/stdout_file.h"

namespace ckpt::cli {

namespace {

struct WriteArgs {
  Common common;
  std::string file, out;
  bool in_place = false, compact = false;
  std::vector<std::string> overrides, keep, drop, renames, states;
  bool strict = false;
  std::string version, compression;  // bundle: empty = the one xp.cfg names
  std::string dtype;                    // edit --dtype
  std::vector<std::string> dtype_match;  // edit --match
  bool dry_run = false, allow_no_match = false, allow_empty = false;
};

void say(const Common& c, const std::string& line) {
  if (!c.quiet) std::fprintf(stderr, "%s\n", line.c_str());
}

void save_checkpoint(torch::Checkpoint& ck, const pickle::Node* root, const std::string& out, const Common& c,
                     std::map<std::string, torch::StorageTransform> transforms = {}) {
  torch::SaveOptions so;
  so.transforms = std::move(transforms);
  so.force = c.force;
  so.dialect = dialect_from(c.dialect);
  Progress bar("writing " + basename_of(out), c.quiet);  // shown only on a terminal, for big files
  so.progress = bar.callback();
  if (out == "-") {  // standard output, in order; "archive" as torch.save names it for a file object
    auto file = open_stdout_output();
    torch::save_to(ck, root, *file, "archive", so);
    file->sync();
    return;
  }
  torch::save(ck, root, Env::Default(), out, so);
}

std::string output_name(const std::string& out) { return out == "-" ? "standard output" : out; }

int cmd_rewrite(const WriteArgs& a) {
  Opened o = open_checkpoint(a.file);
  save_checkpoint(*o.ck, o.ck->root(), a.out, a.common);
  say(a.common, "wrote " + output_name(a.out));
  return 0;
}

// A glob with '=' is almost certainly an override that a user put after a
// flag: refuse it rather than match nothing.
void check_glob(const char* flag, const std::string& glob) {
  if (glob.find('=') != std::string::npos)
    throw UsageError(std::string(flag) + " '" + glob + "': a glob with '=' looks like a config override; " +
                     "overrides go anywhere on the line as KEY=VALUE, and " + flag +
                     " takes one glob per occurrence (repeat the flag)");
}

// The changes `edit` makes, named one per line, printed after the write (or
// instead of it with --dry-run). Long key lists are cut in the normal summary.
struct EditSummary {
  std::vector<std::string> lines;
  size_t changes = 0;
  void add_list(const std::string& head, const std::vector<std::string>& items, bool all) {
    constexpr size_t kShown = 20;
    for (size_t i = 0; i < items.size(); ++i) {
      if (!all && i == kShown && items.size() > kShown + 1) {
        lines.push_back(head + "... " + std::to_string(items.size() - kShown) + " more (--dry-run lists all)");
        break;
      }
      lines.push_back(head + items[i]);
    }
  }
};

std::string plural(size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

int cmd_edit(const WriteArgs& a) {
  if (a.in_place == !a.out.empty()) throw UsageError("edit needs exactly one of -o OUT and --in-place");
  if (a.compact && !a.in_place) throw UsageError("--compact goes with --in-place");
  for (const auto& g : a.keep) check_glob("--keep", g);
  for (const auto& g : a.drop) check_glob("--drop", g);
  for (const auto& g : a.dtype_match) check_glob("--match", g);
  if (a.overrides.empty() && a.keep.empty() && a.drop.empty() && a.renames.empty() && a.dtype.empty() && !a.compact)
    throw UsageError("edit: nothing to do: give overrides (KEY=VALUE, +KEY=VALUE, ++KEY=VALUE, ~KEY), "
                     "--drop/--keep GLOB, --rename RE=REPL or --dtype (see 'ckpt help edit')");
  std::vector<omegaconf::Override> overrides;
  for (const auto& text : a.overrides) overrides.push_back(omegaconf::parse_override(text));
  audiocraft::KeySurgery surgery;
  surgery.keep = a.keep;
  surgery.drop = a.drop;
  surgery.strict = !a.allow_no_match;  // --strict is the default now; kept as a no-op
  for (const auto& r : a.renames) {
    auto eq = r.find('=');
    if (eq == std::string::npos) throw UsageError("--rename '" + r + "': expected REGEX=REPLACEMENT");
    surgery.renames.emplace_back(r.substr(0, eq), r.substr(eq + 1));
  }

  if (a.in_place && a.file == "-") throw UsageError("--in-place needs a file, not standard input");
  Opened o = open_checkpoint(a.file);
  if (a.in_place && o.safetensors)
    throw UsageError(a.file + " is a safetensors file: --in-place edits torch checkpoints (use -o OUT.th)");
  pickle::Graph& g = o.ck->graph();
  EditSummary summary;
  if (!overrides.empty()) {
    omegaconf::Value before = audiocraft::config_tree(o.ck->root());
    audiocraft::apply_overrides(g, o.ck->root(), overrides);
    auto changes = audiocraft::config_changes(before, audiocraft::config_tree(o.ck->root()));
    for (const auto& c : changes) summary.lines.push_back("xp.cfg: " + c.text());
    if (changes.empty()) summary.lines.push_back("xp.cfg: unchanged (the overrides set the values it had)");
    summary.changes += changes.size();
  }
  if (!surgery.empty()) {
    std::vector<std::string> states = a.states;
    if (states.empty()) states.push_back(o.default_state_path());
    for (const auto& path : states) {
      auto report = audiocraft::apply_surgery(g, o.state_dict(path), surgery, path);
      std::string where = path.empty() ? std::string("(root)") : path;
      if (report.before > 0 && report.dropped == report.before && !a.allow_empty)
        throw UsageError(where + ": the edit would remove all " + plural(report.before, "key", "keys") +
                         "; nothing written (pass --allow-empty to write an empty state dict)");
      std::vector<std::string> renamed;
      for (const auto& [from, to] : report.renamed_keys) renamed.push_back(from + " -> " + to);
      summary.add_list(where + ": dropped ", report.dropped_keys, a.dry_run);
      summary.add_list(where + ": renamed ", renamed, a.dry_run);
      summary.lines.push_back(where + ": " + plural(report.before, "key", "keys") + ", " +
                              std::to_string(report.dropped) + " dropped, " + std::to_string(report.renamed) +
                              " renamed, " + std::to_string(report.before - report.dropped) + " left");
      summary.changes += report.dropped + report.renamed;
    }
  }
  std::map<std::string, torch::StorageTransform> transforms;
  if (!a.dtype.empty())
    transforms = plan_dtype_conversion(o, a.states, a.dtype, a.dtype_match,
                                       [&](const std::string& l) { summary.lines.push_back(l); });
  else if (!a.dtype_match.empty())
    throw UsageError("--match goes with --dtype");
  summary.changes += transforms.size();

  auto print_summary = [&](const std::string& prefix) {
    for (const auto& l : summary.lines) say(a.common, prefix + l);
  };
  if (a.dry_run) {
    // Everything up to the write has run (so every error above is reported);
    // the output is produced into a counter.
    print_summary("would change ");
    if (a.in_place) {
      std::printf("dry run: %s not updated\n", a.file.c_str());
    } else {
      DiscardEnv discard(Env::Default());
      torch::SaveOptions so;
      so.transforms = std::move(transforms);
      so.force = a.common.force;
      torch::save(*o.ck, o.ck->root(), discard, a.out, so);
      std::printf("dry run: would write %s (%s bytes); nothing written\n", a.out.c_str(),
                  with_commas(discard.bytes_written()).c_str());
    }
    return 0;
  }
  if (summary.changes == 0 && !a.compact)
    std::fprintf(stderr, "ckpt: warning: the edit changes nothing; %s is written as it was read\n",
                 a.in_place ? a.file.c_str() : a.out.c_str());
  if (a.in_place) {
    // Appends a new data.pkl and central directory when tensor bytes are
    // unchanged, else rewrites atomically; old-or-new at every instant
    // either way (torch/in_place.cc).
    torch::InPlaceOptions ipo;
    ipo.compact = a.compact;
    ipo.save.transforms = std::move(transforms);
    ipo.save.dialect = dialect_from(a.common.dialect);
    auto r = torch::update_in_place(*o.ck, o.ck->root(), Env::Default(), ipo);
    print_summary("");
    say(a.common, "updated " + a.file + (r.appended ? " in place (" + std::to_string(r.bytes_written) + " bytes appended)"
                                                    : " (full rewrite: " + r.reason + ")"));
  } else {
    save_checkpoint(*o.ck, o.ck->root(), a.out, a.common, std::move(transforms));
    print_summary("");
    if (a.out == "-")
      say(a.common, "wrote standard output");
    else
      say(a.common, "wrote " + a.out + " (" + with_commas(Env::Default().open_read(a.out)->size()) + " bytes)");
  }
  return 0;
}

// Reclaims the dead bytes in-place edits leave behind: a full streaming
// rewrite of the file over itself (atomic, storage keys renumbered).
int cmd_compact(const WriteArgs& a) {
  if (a.file == "-") throw UsageError("compact needs a file, not standard input");
  Opened o = open_checkpoint(a.file);
  if (o.safetensors) throw UsageError(a.file + " is a safetensors file: compact rewrites torch checkpoints");
  uint64_t before = o.ck->file().size();
  torch::InPlaceOptions ipo;
  ipo.compact = true;
  auto r = torch::update_in_place(*o.ck, o.ck->root(), Env::Default(), ipo);
  say(a.common, "compacted " + a.file + ": " + std::to_string(before) + " -> " + std::to_string(r.bytes_written) +
                    " bytes");
  return 0;
}

int cmd_export(const WriteArgs& a) {
  Opened o = open_checkpoint(a.file);
  if (o.layout == audiocraft::Layout::FsdpShard)
    throw UsageError(a.file + ": rank " + std::to_string(audiocraft::fsdp_rank_of(a.file).value_or(0)) +
                     "'s shard of an FSDP checkpoint; the full state is fsdp_best_state in rank 0's file: ckpt export " +
                     audiocraft::fsdp_rank0_file(a.file) + " -o " + a.out);
  std::optional<std::string> version;
  if (!a.version.empty()) version = a.version;
  pickle::Node* root = audiocraft::make_export(o.ck->graph(), o.ck->root(), o.layout, version);
  save_checkpoint(*o.ck, root, a.out, a.common);
  say(a.common, "wrote " + output_name(a.out) + " (exported from " + *o.best_state + ")");
  return 0;
}

int cmd_wrap(const WriteArgs& a) {
  Opened o = open_checkpoint(a.file);
  pickle::Node* root = audiocraft::make_wrap(o.ck->graph(), o.ck->root(), o.layout);
  save_checkpoint(*o.ck, root, a.out, a.common);
  say(a.common, "wrote " + output_name(a.out));
  return 0;
}

int cmd_bundle(const WriteArgs& a) {
  Opened o = open_checkpoint(a.file);
  std::optional<std::string> version;
  if (!a.version.empty()) version = a.version;
  // An exported input goes into the bundle as it is.
  pickle::Node* root = o.layout == audiocraft::Layout::Exported
                           ? o.ck->root()
                           : audiocraft::make_export(o.ck->graph(), o.ck->root(), o.layout, version);
  std::string v = version.value_or(audiocraft::version_of(root).value_or(audiocraft::kDefaultVersion));

  if (a.out == "-") throw UsageError("bundle writes a folder: -o DIR, not standard output");
  struct stat st;
  if (::stat(a.out.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) throw UsageError(a.out + " exists and is not a directory");
  } else if (::mkdir(a.out.c_str(), 0755) != 0) {
    throw IoError(a.out + ": mkdir: " + std::strerror(errno), errno);
  }
  std::string lm = a.out + "/state_dict.bin", comp = a.out + "/compression_state_dict.bin";
  if (!a.common.force)
    for (const auto& p : {lm, comp})
      if (Env::Default().exists(p)) throw UsageError(p + " exists (use --force to overwrite)");

  // The compression model: a checkpoint to export, or a pretrained name;
  // without --compression, the one the config names.
  std::string compression = a.compression;
  bool is_file = !compression.empty() && Env::Default().exists(compression);
  std::string source_note;
  if (compression.empty()) {
    audiocraft::CompressionSource src = audiocraft::compression_from_config(o.ck->root());
    compression = src.name_or_path;
    is_file = !src.pretrained;
    if (is_file && !Env::Default().exists(compression))
      throw UsageError("xp.cfg's compression_model_checkpoint '" + src.configured +
                       "' is not a file here; give the compression checkpoint with --compression FILE");
    source_note = " (compression model " + src.configured + ", from xp.cfg)";
  }
  std::unique_ptr<Opened> comp_ck;
  if (is_file) comp_ck = std::make_unique<Opened>(open_checkpoint(compression));
  save_checkpoint(*o.ck, root, lm, a.common);
  if (comp_ck) {
    pickle::Node* croot = comp_ck->layout == audiocraft::Layout::Exported ||
                                  comp_ck->layout == audiocraft::Layout::ExportedPointer
                              ? comp_ck->ck->root()
                              : audiocraft::make_export(comp_ck->ck->graph(), comp_ck->ck->root(),
                                                        comp_ck->layout, version);
    save_checkpoint(*comp_ck->ck, croot, comp, a.common);
  } else {
    pickle::Node* proot = audiocraft::make_pointer(o.ck->graph(), compression, v);
    save_checkpoint(*o.ck, proot, comp, a.common);
  }
  say(a.common, "wrote " + lm + " and " + comp + source_note);
  return 0;
}

int cmd_sanitize(const WriteArgs& a) {
  Opened o = open_checkpoint(a.file);
  auto result = audiocraft::make_sanitized(o.ck->graph(), o.ck->root());
  if (!result.refused.empty()) {
    for (const auto& r : result.refused) std::printf("%s\n", r.c_str());
    std::fprintf(stderr, "ckpt: %s: %zu global(s) outside torch's weights_only allowlist; nothing written\n",
                 a.file.c_str(), result.refused.size());
    return 1;
  }
  save_checkpoint(*o.ck, result.root, a.out, a.common);
  say(a.common, "wrote " + output_name(a.out));
  return 0;
}

}  // namespace

void register_write_commands(CLI::App& app, Context& ctx) {
  auto a = std::make_shared<WriteArgs>();
  auto io = [&](CLI::App* sub, bool output_required, const char* output_help = "output file ('-': standard output)") {
    sub->add_option("FILE", a->file, "input checkpoint ('-': standard input)")->required();
    auto* o = sub->add_option("-o,--output", a->out, output_help);
    if (output_required) o->required();
    sub->add_flag("--force", a->common.force, "overwrite an existing output");
    sub->add_flag("-q,--quiet", a->common.quiet, "no progress or summary on stderr");
    add_dialect_option(sub, a->common.dialect);
  };
  auto bind = [&](CLI::App* sub, int (*fn)(const WriteArgs&)) {
    sub->callback([a, &ctx, fn] { ctx.exit_code = fn(*a); });
  };

  auto* rewrite = app.add_subcommand("rewrite", "load and save unchanged, as torch.save would");
  io(rewrite, true);
  bind(rewrite, cmd_rewrite);

  auto* edit = app.add_subcommand("edit", "Hydra overrides on xp.cfg and key surgery on state dicts");
  io(edit, false);
  edit->add_option("OVERRIDES", a->overrides, "key=value, +key=value, ++key=value, ~key");
  edit->add_flag("--in-place", a->in_place,
                 "update FILE in place (appends metadata when tensor bytes are unchanged; crash-safe)");
  edit->add_flag("--compact", a->compact, "with --in-place: full rewrite that reclaims dead bytes");
  edit->add_option("--keep", a->keep, "keep only keys matching this glob (repeatable)");
  edit->add_option("--drop", a->drop, "drop keys matching this glob (repeatable)");
  edit->add_option("--rename", a->renames, "REGEX=REPLACEMENT on key names (repeatable)");
  edit->add_option("--state", a->states, "state dict to edit (repeatable; default: the best state)");
  edit->add_flag("--strict", a->strict, "a glob or regex that matches no key is an error (the default)");
  edit->add_flag("--allow-no-match", a->allow_no_match, "a --keep/--drop glob or --rename regex may match no key");
  edit->add_flag("--allow-empty", a->allow_empty, "allow an edit that removes every key of a state dict");
  edit->add_flag("-n,--dry-run", a->dry_run,
                 "print what would change (config values, keys dropped/renamed, bytes written); write nothing");
  edit->add_option("--dtype", a->dtype,
                   "convert floating tensors to float16, bfloat16 or float32, bit for bit as torch's .to()");
  edit->add_option("--match", a->dtype_match, "with --dtype: only tensors whose names match this glob (repeatable)");
  bind(edit, cmd_edit);

  auto* compact = app.add_subcommand("compact", "rewrite FILE over itself, reclaiming bytes in-place edits left behind");
  compact->add_option("FILE", a->file, "checkpoint to compact")->required();
  compact->add_flag("-q,--quiet", a->common.quiet, "no summary on stderr");
  bind(compact, cmd_compact);

  auto* exp = app.add_subcommand("export", "AudioCraft's export: best_state, xp.cfg as YAML, version, exported");
  io(exp, true);
  exp->add_option("--version", a->version, "version string (default: the input's, else " +
                                                std::string(audiocraft::kDefaultVersion) + ")");
  bind(exp, cmd_export);

  auto* wrap = app.add_subcommand("wrap", "turn an exported checkpoint back into the training layout");
  io(wrap, true);
  bind(wrap, cmd_wrap);

  auto* bundle = app.add_subcommand("bundle", "a folder MusicGen.get_pretrained(DIR) loads");
  io(bundle, true, "output folder (created if missing)");
  bundle->add_option("--compression", a->compression,
                     "compression checkpoint to export, or a pretrained name (default: xp.cfg's compression_model_checkpoint)");
  bundle->add_option("--version", a->version, "version string");
  bind(bundle, cmd_bundle);

  auto* sanitize = app.add_subcommand("sanitize", "make a checkpoint torch >= 2.6 loads with weights_only=True");
  io(sanitize, true);
  bind(sanitize, cmd_sanitize);
}

}  // namespace ckpt::cli
