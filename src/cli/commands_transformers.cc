// AudioCraft MusicGen <-> Hugging Face transformers (api/transformers.h):
// `ckpt to-transformers` and `ckpt from-transformers`. Flags bind straight
// into the options; --json prints the result as described (api/schema.h).
#include <CLI/CLI.hpp>

#include "api/format.h"
#include "api/transformers.h"
#include "cli/commands.h"
#include "cli/progress.h"
#include "util/error.h"

namespace ckpt::cli {

using namespace api;

namespace {

struct Args {
  Common common;
  std::string file;
  ToTransformersOptions to;
  FromTransformersOptions from;
};

int cmd_to(Env& env, const Args& a) {
  ProgressBars bars(a.common.quiet || a.common.json);
  ToTransformersOptions o = a.to;
  o.progress = bars.callback();
  ToTransformersResult r = to_transformers(env, a.file, o);
  bars.finish();
  if (a.common.json) {
    print_json(r);
    return 0;
  }
  for (const auto& n : r.notes) say(a.common, "note: " + cli_message(n));  // `text_encoder` -> --text-encoder
  say(a.common, "wrote " + o.out + ": " + r.architecture + ", " + std::to_string(r.tensors) + " tensors, " +
                    human_bytes(r.bytes) + " in " + std::to_string(r.files) + " safetensors file" +
                    (r.files == 1 ? "" : "s") + " + config.json" +
                    (r.architecture == "EncodecModel" ? "" : ", generation_config.json"));
  return 0;
}

int cmd_from(Env& env, const Args& a) {
  ProgressBars bars(a.common.quiet || a.common.json);
  FromTransformersOptions o = a.from;
  o.progress = bars.callback();
  FromTransformersResult r = from_transformers(env, a.file, o);
  bars.finish();
  if (a.common.json) {
    print_json(r);
    return 0;
  }
  for (const auto& n : r.notes) say(a.common, "note: " + cli_message(n));  // `text_encoder` -> --text-encoder
  if (r.written.size() == 1)  // an EncodecModel folder: the compression model alone
    say(a.common, "wrote " + o.out + ": compression_state_dict.bin (" + r.compression + ", " +
                      std::to_string(r.tensors) + " tensors)");
  else
    say(a.common, "wrote " + o.out + ": state_dict.bin (" + std::to_string(r.tensors) +
                      " tensors), compression_state_dict.bin (" + r.compression + ")");
  return 0;
}

}  // namespace

void register_transformers_commands(CLI::App& app, Context& ctx) {
  auto a = std::make_shared<Args>();
  auto* to = app.add_subcommand("to-transformers",
                                "an AudioCraft MusicGen LM or EnCodec model as a Hugging Face transformers folder (from_pretrained)");
  to->add_option("FILE", a->file, "MusicGen LM (training checkpoint, exported state_dict.bin, bundle folder) or EnCodec compression checkpoint")
      ->required();
  to->add_option("-o,--output", a->to.out, "output folder")->required();
  to->add_option("--state", a->to.state, "path of the state dict (default: the best state)");
  to->add_option("--text-encoder", a->to.text_encoder, "a local Hugging Face T5 folder (the T5 xp.cfg names)");
  to->add_option("--audio-encoder", a->to.audio_encoder, "a transformers EncodecModel folder or an AudioCraft compression checkpoint");
  to->add_option("--dtype", a->to.dtype, "float32, float16 or bfloat16: floating tensors converted as torch's .to()");
  to->add_option("--max-shard-size", a->to.max_shard_size,
                 "shards of at most SIZE (5GB, 500MB, bytes) + model.safetensors.index.json");
  to->add_flag("--force", a->to.force, "replace an existing output folder");
  to->add_flag("--ignore-crc", a->to.ignore_crc,
               "write from a file whose records fail their CRC-32 (damaged), with the bytes as read");
  to->add_flag("-q,--quiet", a->common.quiet, "no progress or summary on stderr");
  to->add_flag("--json", a->common.json, "the result as JSON on stdout");
  to->callback([a, &ctx] { ctx.exit_code = cmd_to(ctx.env, *a); });

  auto* from = app.add_subcommand("from-transformers",
                                  "a transformers MusicGen (or EncodecModel) folder as the folder MusicGen (CompressionModel).get_pretrained loads");
  from->add_option("DIR", a->file, "a transformers Musicgen / MusicgenMelody / EncodecModel folder")->required();
  from->add_option("-o,--output", a->from.out, "output folder (state_dict.bin, compression_state_dict.bin)")
      ->required();
  from->add_option("--compression", a->from.compression,
                   "compression model: an AudioCraft checkpoint or a pretrained name (default: the stock "
                   "facebook/encodec_32khz pointer when the audio encoder is that model, else its weights converted)");
  from->add_flag("--force", a->from.force, "replace an existing output folder");
  from->add_flag("--ignore-crc", a->from.ignore_crc,
                 "write from a pytorch_model.bin or compression checkpoint whose records fail their CRC-32 "
                 "(damaged), with the bytes as read");
  from->add_flag("-q,--quiet", a->common.quiet, "no progress or summary on stderr");
  from->add_flag("--json", a->common.json, "the result as JSON on stdout");
  from->callback([a, &ctx] { ctx.exit_code = cmd_from(ctx.env, *a); });
}

}  // namespace ckpt::cli
