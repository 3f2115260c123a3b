#include "api/operations.h"

#include "api/config.h"
#include "api/diff.h"
#include "api/edit.h"
#include "api/inspect.h"
#include "api/safetensors.h"
#include "api/scan.h"
#include "api/shard.h"
#include "api/show.h"
#include "api/stats.h"
#include "api/transformers.h"
#include "api/write.h"
#include "pickle/value.h"
#include "util/error.h"

namespace ckpt::api {

void bad_option(const std::string& field, const std::string& what) {
  throw UsageError(option_name(field) + ": " + what);
}

namespace {

// The options of an operation that takes none.
struct NoOptions {
  static constexpr const char* kName = "NoOptions";
  static constexpr const char* kDoc = "no options";
  template <class V>
  static void describe(V&) {}
};

template <class Options>
void set_progress(Options& o, const ProgressFn& progress) {
  if constexpr (requires { o.progress; }) o.progress = progress;
  else if constexpr (requires { o.output.progress; }) o.output.progress = progress;
}

template <class Options>
constexpr bool takes_progress() {
  return requires(Options o) { o.progress; } || requires(Options o) { o.output.progress; };
}

struct Registry {
  std::vector<Operation> operations;
  TypeTable types;

  // fn(env, inputs, options) -> a described result.
  template <class Options, class Fn>
  void add(const char* name, const char* cli, const char* doc, std::vector<std::string> inputs,
           std::vector<std::string> positional, Fn fn) {
    using Result = std::invoke_result_t<Fn, Env&, const std::vector<std::string>&, const Options&>;
    add_types<Options>(types);
    add_types<Result>(types);
    types[Options::kName]["defaults"] = to_json(Options{});
    Operation op;
    op.name = name;
    op.cli = cli;
    op.doc = doc;
    op.inputs = std::move(inputs);
    op.positional = std::move(positional);
    op.options_type = Options::kName;
    op.result_type = type_text<Result>();
    op.progress = takes_progress<Options>();
    op.call = [fn, name, count = op.inputs.size()](Env& env, const std::vector<std::string>& in, const Json& options,
                                                    const ProgressFn& progress) {
      if (in.size() != count)
        throw UsageError(std::string(name) + " takes " + std::to_string(count) + " path(s), not " +
                         std::to_string(in.size()));
      Options o;
      from_json(options.is_null() ? Json::object() : options, o, "options");
      set_progress(o, progress);
      Result r = fn(env, in, o);
      return Operation::Returned{type_name_of(r), to_json(r)};
    };
    operations.push_back(std::move(op));
  }
};

using In = const std::vector<std::string>&;

Registry make_registry() {
  Registry r;
  r.add<NoOptions>("info", "info", "format, layout, top-level keys and state-dict totals of a file, DCP folder or folder of rank files",
                   {"file"}, {}, [](Env& env, In in, const NoOptions&) { return info_any(env, in[0]); });
  r.add<LsOptions>("ls", "ls", "the object tree under a '/'-separated path", {"file"}, {"path"},
                   [](Env& env, In in, const LsOptions& o) { return ls_tree(env, in[0], o); });
  r.add<TensorsOptions>("tensors", "tensors",
                        "one row per tensor of a state dict (default: the best state), or sums by name prefix",
                        {"file"}, {}, [](Env& env, In in, const TensorsOptions& o) { return tensors_any(env, in[0], o); });
  r.add<ShowOptions>("show", "show", "a tensor's first values (row-major), reading that tensor alone", {"file"},
                     {"name"}, [](Env& env, In in, const ShowOptions& o) { return show(env, in[0], o); });
  r.add<ConfigOptions>("cfg", "cfg", "xp.cfg as OmegaConf.to_yaml prints it, or one key of it (resolved)", {"file"},
                       {"key"}, [](Env& env, In in, const ConfigOptions& o) { return cfg(env, in[0], o); });
  r.add<NoOptions>("verify", "verify", "CRCs, storage sizes and tensor views checked; ok when no problem", {"file"},
                   {}, [](Env& env, In in, const NoOptions&) { return verify_any(env, in[0]); });
  r.add<NoOptions>("scan", "scan", "every global the file's pickles name, against the allowlist, unpickling nothing",
                   {"file"}, {}, [](Env& env, In in, const NoOptions&) { return scan(env, in[0]); });
  r.add<StatsOptions>("stats", "stats", "per tensor: numel, NaN, Inf, min, max, mean, std, L2 norm (float64)",
                      {"file"}, {}, [](Env& env, In in, const StatsOptions& o) { return stats(env, in[0], o); });
  r.add<DiffOptions>("diff", "diff", "two checkpoints compared: tensors (keys, dtypes, shapes, values), top-level keys, xp.cfg",
                     {"a", "b"}, {}, [](Env& env, In in, const DiffOptions& o) { return diff(env, in[0], in[1], o); });
  r.add<EditOptions>("edit", "edit",
                     "Hydra overrides on xp.cfg, key surgery and dtype conversion, to a new file or in place",
                     {"file"}, {"out"}, [](Env& env, In in, const EditOptions& o) { return edit(env, in[0], o); });
  r.add<CompactOptions>("compact", "compact", "rewrites FILE over itself, reclaiming the bytes in-place edits left behind",
                        {"file"}, {}, [](Env& env, In in, const CompactOptions& o) { return compact(env, in[0], o); });
  r.add<OutputOptions>("rewrite", "rewrite", "load and save unchanged, as torch.save(torch.load(file))", {"file"},
                       {"out"}, [](Env& env, In in, const OutputOptions& o) { return rewrite(env, in[0], o); });
  r.add<ExportOptions>("export", "export", "AudioCraft's export: best_state, xp.cfg as YAML, version, exported",
                       {"file"}, {"out"},
                       [](Env& env, In in, const ExportOptions& o) { return export_checkpoint(env, in[0], o); });
  r.add<OutputOptions>("wrap", "wrap", "an exported checkpoint back in the training layout", {"file"}, {"out"},
                       [](Env& env, In in, const OutputOptions& o) { return wrap(env, in[0], o); });
  r.add<BundleOptions>("bundle", "bundle", "the folder MusicGen.get_pretrained(DIR) loads", {"file"}, {"out"},
                       [](Env& env, In in, const BundleOptions& o) { return bundle(env, in[0], o); });
  r.add<OutputOptions>("sanitize", "sanitize", "a checkpoint torch >= 2.6 loads with weights_only=True", {"file"},
                       {"out"}, [](Env& env, In in, const OutputOptions& o) { return sanitize(env, in[0], o); });
  r.add<ToSafetensorsOptions>(
      "to_safetensors", "safetensors", "a state dict as a .safetensors file, or Hugging Face shards", {"file"}, {"out"},
      [](Env& env, In in, const ToSafetensorsOptions& o) { return to_safetensors(env, in[0], o); });
  r.add<FromSafetensorsOptions>(
      "from_safetensors", "from-safetensors", "a .safetensors file as a torch.save state dict, or put into a template",
      {"file"}, {"out"}, [](Env& env, In in, const FromSafetensorsOptions& o) { return from_safetensors(env, in[0], o); });
  r.add<ToDcpOptions>("to_dcp", "to-dcp", "a torch.save file as a torch distributed checkpoint folder", {"file"},
                      {"out"}, [](Env& env, In in, const ToDcpOptions& o) { return to_dcp(env, in[0], o); });
  r.add<ConsolidateOptions>("consolidate", "consolidate", "a torch distributed checkpoint folder as one torch.save file",
                            {"dir"}, {"out"},
                            [](Env& env, In in, const ConsolidateOptions& o) { return consolidate(env, in[0], o); });
  r.add<ToTransformersOptions>(
      "to_transformers", "to-transformers",
      "an AudioCraft MusicGen LM as the folder transformers' from_pretrained loads (the decoder alone without "
      "text_encoder and audio_encoder), or an AudioCraft EnCodec compression model as an EncodecModel folder",
      {"file"}, {"out"}, [](Env& env, In in, const ToTransformersOptions& o) { return to_transformers(env, in[0], o); });
  r.add<FromTransformersOptions>(
      "from_transformers", "from-transformers",
      "a transformers MusicGen folder as the folder MusicGen.get_pretrained loads (state_dict.bin, "
      "compression_state_dict.bin), or an EncodecModel folder as the one CompressionModel.get_pretrained loads",
      {"dir"}, {"out"},
      [](Env& env, In in, const FromTransformersOptions& o) { return from_transformers(env, in[0], o); });
  return r;
}

const Registry& registry() {
  static const Registry r = make_registry();
  return r;
}

}  // namespace

const char* version() { return CKPT_VERSION; }

void prepare_one_command_process() { pickle::Graph::leave_to_exit(32'768); }

const std::vector<Operation>& operations() { return registry().operations; }

const TypeTable& types() { return registry().types; }

const Operation& operation(const std::string& name) {
  std::string known;
  for (const Operation& op : operations()) {
    if (op.name == name) return op;
    known += (known.empty() ? "" : ", ") + op.name;
  }
  throw UsageError("no operation '" + name + "' (operations: " + known + ")");
}

}  // namespace ckpt::api
