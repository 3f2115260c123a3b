// safetensors in and out (api/safetensors.h): `ckpt safetensors` writes a
// state dict of a checkpoint as a .safetensors file; `ckpt from-safetensors`
// turns one back into a torch.save checkpoint, alone or put into an
// AudioCraft template.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "api/format.h"
#include "api/safetensors.h"
#include "cli/commands.h"
#include "cli/dialect_option.h"
#include "cli/progress.h"
#include "util/error.h"

namespace ckpt::cli {

using namespace api;

namespace {

struct Args {
  Common common;
  std::string file;
  ToSafetensorsOptions to;
  FromSafetensorsOptions from;
};

int cmd_safetensors(Env& env, const Args& a) {
  ToSafetensorsOptions o = a.to;
  if (a.common.json && o.out == "-")
    throw UsageError("--json prints the result on standard output; -o - cannot share it");
  auto sink = o.max_shard_size.empty() ? stdout_sink(o.out) : nullptr;
  if (!o.max_shard_size.empty() && o.out == "-")
    throw UsageError("--max-shard-size writes a folder: -o names it, not standard output");
  ProgressBars bars(a.common.quiet);
  o.sink = sink.get();
  o.progress = bars.callback();
  ToSafetensorsResult r = to_safetensors(env, a.file, o);
  bars.finish();
  if (!r.state_note.empty()) say(a.common, "note: " + r.state_note);
  if (a.common.json) print_json(r);
  for (const auto& line : r.skipped) say(a.common, "skipped tensor " + line);
  if (r.non_tensors)
    say(a.common, "note: " + std::to_string(r.non_tensors) + " non-tensor entr" + (r.non_tensors == 1 ? "y" : "ies") +
                      " of '" + r.state + "' not written (safetensors holds tensors only)");
  std::string skipped = r.skipped.empty() ? "" : "; " + std::to_string(r.skipped.size()) + " skipped (listed above)";
  if (r.sharded)
    say(a.common, "wrote " + o.out + ": " + std::to_string(r.tensors) + " tensors, " + human_bytes(r.bytes) + " in " +
                      std::to_string(r.files) + " file" + (r.files == 1 ? "" : "s") +
                      (r.wrote_index ? " + model.safetensors.index.json" : "") + skipped);
  else
    say(a.common, "wrote " + output_name(o.out) + ": " + std::to_string(r.tensors) + " tensors, " +
                      human_bytes(r.bytes) + " (from " + (r.state.empty() ? std::string("the root") : r.state) + ")" +
                      skipped);
  return 0;
}

int cmd_from_safetensors(Env& env, const Args& a) {
  ProgressBars bars(a.common.quiet);
  FromSafetensorsOptions o = a.from;
  o.progress = bars.callback();
  FromSafetensorsResult r;
  try {
    r = from_safetensors(env, a.file, o);
  } catch (const SafetensorsMismatch& e) {
    for (const auto& d : e.differences) std::fprintf(stderr, "  %s\n", d.c_str());
    throw;
  }
  bars.finish();
  if (a.common.json) print_json(r);
  if (o.into.empty()) {
    say(a.common, "wrote " + o.out + ": " + std::to_string(r.tensors) +
                      " tensors (a plain state dict, in the file's header order)");
    return 0;
  }
  for (const auto& c : r.dtype_changes) say(a.common, "note: dtype changed: " + c);
  say(a.common, "wrote " + o.out + ": " + (r.state.empty() ? std::string("(root)") : r.state) + ": " +
                    std::to_string(r.replaced) + " tensors replaced, everything else kept");
  return 0;
}

}  // namespace

void register_safetensors_commands(CLI::App& app, Context& ctx) {
  auto a = std::make_shared<Args>();
  auto common = [&](CLI::App* sub, std::string& out, bool& force) {
    sub->add_option("-o,--output", out, "output file")->required();
    sub->add_flag("--force", force, "overwrite an existing output");
    sub->add_flag("-q,--quiet", a->common.quiet, "no progress or summary on stderr");
    sub->add_flag("--json", a->common.json, "the result as JSON on standard output");
  };

  auto* out = app.add_subcommand("safetensors", "write a state dict as a .safetensors file (tensors as torch's)");
  out->add_option("FILE", a->file, "input checkpoint")->required();
  common(out, a->to.out, a->to.force);
  out->add_option("--state", a->to.state, "path of the state dict (default: the best state)");
  out->add_flag("--skip-unsupported", a->to.skip_unsupported,
                "leave out (and list) tensors safetensors cannot hold: quantized, sparse, nested, meta, conj/neg "
                "bits, dtypes it lacks; without it they are an error");
  out->add_flag("--ignore-crc", a->to.ignore_crc,
                "convert a file whose records fail their CRC-32 (damaged), with the bytes as read");
  out->add_option("--max-shard-size", a->to.max_shard_size,
                  "write Hugging Face shards into the folder -o names (model-00001-of-0000N.safetensors + "
                  "model.safetensors.index.json), each at most SIZE (5GB, 500MB, bytes) as huggingface_hub splits");
  out->callback([a, &ctx] { ctx.exit_code = cmd_safetensors(ctx.env, *a); });

  auto* in = app.add_subcommand("from-safetensors",
                                "a .safetensors file as torch.save writes a state dict, or put into a template");
  in->add_option("FILE", a->file, "input .safetensors file, or a sharded model's index .json or its folder")->required();
  common(in, a->from.out, a->from.force);
  add_dialect_option(in, a->from.dialect);
  in->add_option("--into", a->from.into,
                 "AudioCraft checkpoint whose best state's tensors the file replaces (names and shapes must match)");
  in->add_option("--state", a->from.state, "with --into: the state dict to replace (default: the best state)");
  in->callback([a, &ctx] { ctx.exit_code = cmd_from_safetensors(ctx.env, *a); });
}

}  // namespace ckpt::cli
