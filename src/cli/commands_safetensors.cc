// safetensors in and out: `ckpt safetensors` writes a state dict of a
// checkpoint as a .safetensors file; `ckpt from-safetensors` turns one back
// into a torch.save checkpoint, alone or put into an AudioCraft template.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/commands.h"
#include "cli/dialect_option.h"
#include "cli/format.h"
#include "cli/progress.h"
#include "cli/session.h"
#include "torch/safetensors.h"
#include "torch/safetensors_shards.h"
#include "util/error.h"
#include "util/stdout_file.h"

namespace ckpt::cli {

namespace {

struct Args {
  Common common;
  std::string file, out, state, into, max_shard_size;
  bool skip_unsupported = false;
};

void say(const Common& c, const std::string& line) {
  if (!c.quiet) std::fprintf(stderr, "%s\n", line.c_str());
}

int cmd_safetensors(const Args& a) {
  Opened o = open_checkpoint(a.file);
  std::string path = a.state.empty() ? o.default_state_path() : a.state;
  pickle::Node* sd = o.state_dict(path);
  std::vector<std::pair<std::string, torch::TensorInfo>> tensors;
  uint64_t bytes = 0;
  std::vector<std::string> unsupported;
  size_t tensor_entries = 0;
  for (auto& row : o.tensors_of(sd)) {
    ++tensor_entries;
    std::string why = torch::safetensors_refusal(row.info);
    if (!why.empty()) {
      unsupported.push_back("'" + row.name + "' " + why);
      continue;
    }
    bytes += row.info.nbytes();
    tensors.emplace_back(std::move(row.name), std::move(row.info));
  }
  if (!unsupported.empty() && !a.skip_unsupported)
    throw UsageError(a.file + ": tensor " + unsupported[0] +
                     (unsupported.size() > 1 ? " (and " + std::to_string(unsupported.size() - 1) + " more)" : "") +
                     "; --skip-unsupported leaves such tensors out and lists them");
  for (const auto& line : unsupported) say(a.common, "skipped tensor " + line);
  size_t skipped = pickle::entries_of(sd)->size() - tensor_entries;
  if (skipped)
    say(a.common, "note: " + std::to_string(skipped) + " non-tensor entr" + (skipped == 1 ? "y" : "ies") + " of '" +
                      path + "' not written (safetensors holds tensors only)");

  Progress bar("writing " + basename_of(a.out), a.common.quiet);
  torch::SafetensorsWriteOptions opts;
  opts.force = a.common.force;
  opts.progress = bar.callback();
  if (!a.max_shard_size.empty()) {
    if (a.out == "-") throw UsageError("--max-shard-size writes a folder: -o names it, not standard output");
    auto r = torch::write_sharded_safetensors(*o.ck, tensors, Env::Default(), a.out,
                                              torch::parse_shard_size(a.max_shard_size), opts);
    bar.finish();
    say(a.common, "wrote " + a.out + ": " + std::to_string(tensors.size()) + " tensors, " + human_bytes(bytes) + " in " +
                      std::to_string(r.plan.files.size()) + " file" + (r.plan.files.size() == 1 ? "" : "s") +
                      (r.wrote_index ? " + model.safetensors.index.json" : "") +
                      (unsupported.empty() ? "" : "; " + std::to_string(unsupported.size()) + " skipped (listed above)"));
    return 0;
  }
  if (a.out == "-") {
    auto file = open_stdout_output();
    torch::write_safetensors_to(*o.ck, tensors, *file, opts);
  } else {
    torch::write_safetensors(*o.ck, tensors, Env::Default(), a.out, opts);
  }
  bar.finish();
  say(a.common, "wrote " + (a.out == "-" ? std::string("standard output") : a.out) + ": " + std::to_string(tensors.size()) + " tensors, " + human_bytes(bytes) +
                    " (from " + (path.empty() ? std::string("the root") : path) + ")" +
                    (unsupported.empty() ? "" : "; " + std::to_string(unsupported.size()) + " skipped (listed above)"));
  return 0;
}

int cmd_from_safetensors(const Args& a) {
  Env& env = Env::Default();
  std::string index = torch::safetensors_index_of(a.file);
  if (!index.empty() && !a.into.empty()) throw UsageError("--into takes one .safetensors file, not an index");
  if (a.into.empty()) {
    auto ck = index.empty() ? torch::checkpoint_from_safetensors(env, a.file)
                            : torch::checkpoint_from_safetensors_index(env, index);
    Progress bar("writing " + basename_of(a.out), a.common.quiet);
    torch::SaveOptions so;
    so.force = a.common.force;
    so.dialect = dialect_from(a.common.dialect);
    so.progress = bar.callback();
    torch::save(*ck, ck->root(), env, a.out, so);
    bar.finish();
    say(a.common, "wrote " + a.out + ": " + std::to_string(pickle::entries_of(ck->root())->size()) +
                      " tensors (a plain state dict, in the file's header order)");
    return 0;
  }

  Opened t = open_checkpoint(a.into);
  std::string path = a.state.empty() ? t.default_state_path() : a.state;
  pickle::Node* sd = t.state_dict(path);
  std::shared_ptr<RandomAccessFile> file = env.open_read(a.file);
  torch::SafetensorsHeader header = torch::read_safetensors(*file);
  auto report = torch::replace_tensors_from_safetensors(*t.ck, sd, header, file, a.file);
  if (!report.differences.empty()) {
    for (const auto& d : report.differences) std::fprintf(stderr, "  %s\n", d.c_str());
    throw UsageError(a.file + " does not match '" + (path.empty() ? "(root)" : path) + "' of " + a.into + ": " +
                     std::to_string(report.differences.size()) + " difference(s) above; nothing written");
  }
  for (const auto& c : report.dtype_changes) say(a.common, "note: dtype changed: " + c);
  Progress bar("writing " + basename_of(a.out), a.common.quiet);
  torch::SaveOptions so;
  so.force = a.common.force;
  so.dialect = dialect_from(a.common.dialect);
  so.progress = bar.callback();
  torch::save(*t.ck, t.ck->root(), env, a.out, so);
  bar.finish();
  say(a.common, "wrote " + a.out + ": " + (path.empty() ? std::string("(root)") : path) + ": " +
                    std::to_string(report.replaced) + " tensors replaced, everything else kept");
  return 0;
}

}  // namespace

void register_safetensors_commands(CLI::App& app, Context& ctx) {
  auto a = std::make_shared<Args>();
  auto common = [&](CLI::App* sub) {
    sub->add_option("-o,--output", a->out, "output file")->required();
    sub->add_flag("--force", a->common.force, "overwrite an existing output");
    sub->add_flag("-q,--quiet", a->common.quiet, "no progress or summary on stderr");
  };

  auto* out = app.add_subcommand("safetensors", "write a state dict as a .safetensors file (tensors as torch's)");
  out->add_option("FILE", a->file, "input checkpoint")->required();
  common(out);
  out->add_option("--state", a->state, "path of the state dict (default: the best state)");
  out->add_flag("--skip-unsupported", a->skip_unsupported,
                "leave out (and list) tensors safetensors cannot hold: quantized, sparse, nested, meta, conj/neg "
                "bits, dtypes it lacks; without it they are an error");
  out->add_option("--max-shard-size", a->max_shard_size,
                  "write Hugging Face shards into the folder -o names (model-00001-of-0000N.safetensors + "
                  "model.safetensors.index.json), each at most SIZE (5GB, 500MB, bytes) as huggingface_hub splits");
  out->callback([a, &ctx] { ctx.exit_code = cmd_safetensors(*a); });

  auto* in = app.add_subcommand("from-safetensors",
                                "a .safetensors file as torch.save writes a state dict, or put into a template");
  in->add_option("FILE", a->file, "input .safetensors file, or a sharded model's index .json or its folder")->required();
  common(in);
  add_dialect_option(in, a->common.dialect);
  in->add_option("--into", a->into,
                 "AudioCraft checkpoint whose best state's tensors the file replaces (names and shapes must match)");
  in->add_option("--state", a->state, "with --into: the state dict to replace (default: the best state)");
  in->callback([a, &ctx] { ctx.exit_code = cmd_from_safetensors(*a); });
}

}  // namespace ckpt::cli
