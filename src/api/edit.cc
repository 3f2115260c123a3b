#include "api/edit.h"

#include <filesystem>
#include <set>

#include "api/format.h"
#include "audiocraft/config_changes.h"
#include "omegaconf/override.h"
#include "torch/convert.h"
#include "torch/in_place.h"
#include "torch/module.h"
#include "util/discard_env.h"
#include "util/error.h"

namespace ckpt::api {

using pickle::Kind;
using pickle::Node;

namespace {

// A glob with '=' is almost certainly an override that a user put after a
// flag: refuse it rather than match nothing.
void check_glob(const char* flag, const std::string& glob) {
  if (glob.find('=') != std::string::npos)
    throw UsageError(option_name(flag) + " '" + glob + "': a glob with '=' looks like a config override; " +
                     "overrides go anywhere on the line as KEY=VALUE, and " + option_name(flag) +
                     " takes one glob per occurrence (repeat the flag)");
}

std::string plural(size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

void check_options(const std::string& file, const EditOptions& a) {
  // A dry run may name no output: it counts what -o would write.
  bool dry_run_alone = a.dry_run && !a.in_place && a.output.out.empty() && !a.output.sink;
  if (a.in_place == !a.output.out.empty() && !dry_run_alone) {
    // 'ckpt edit in.th out.th optim.lr=1' (no -o): the output name sits among the overrides.
    std::string hint;
    if (!a.in_place)
      for (const auto& w : a.overrides) {
        if (w.find('=') != std::string::npos || w.empty() || w[0] == '~') continue;
        for (const char* ext : {".th", ".pt", ".pth", ".bin", ".ckpt"}) {
          const std::string e = ext;
          if (w.size() > e.size() && w.compare(w.size() - e.size(), e.size(), e) == 0) hint = w;
        }
        if (!hint.empty()) break;
      }
    throw UsageError("edit needs exactly one of " + option_set("out", "OUT") + " and " + option_set("in_place") +
                     (hint.empty() ? "" : "; '" + hint + "' is not an override: did you mean " + option_set("out", hint) + "?"));
  }
  if (a.compact && !a.in_place) throw UsageError(option_name("compact") + " goes with " + option_set("in_place"));
  for (const auto& g : a.keep) check_glob("keep", g);
  for (const auto& g : a.drop) check_glob("drop", g);
  for (const auto& g : a.match) check_glob("match", g);
  if (a.overrides.empty() && a.keep.empty() && a.drop.empty() && a.rename.empty() && a.dtype.empty() && !a.compact &&
      !a.for_finetune)
    throw UsageError("edit: nothing to do: give overrides (KEY=VALUE, +KEY=VALUE, ++KEY=VALUE, ~KEY), " +
                     option_name("drop") + "/" + option_name("keep") + " GLOB, " + option_name("rename") +
                     " RE=REPL, " + option_name("dtype") + " or " + option_name("for_finetune") + " (see 'ckpt help edit')");
  // -o naming the input (a lexical test: no I/O): --in-place is the edit
  // that keeps the file; --force replaces it with a full rewrite.
  if (!a.in_place && !a.dry_run && !a.output.force && !a.output.sink && file != "-" && !a.output.out.empty() &&
      std::filesystem::path(file).lexically_normal() == std::filesystem::path(a.output.out).lexically_normal())
    throw UsageError(a.output.out + " is the input: edit it with " + option_set("in_place") + " (crash-safe), or " +
                     option_set("force") + " to replace it with the new file");
  if (a.in_place && file == "-") throw UsageError(option_name("in_place") + " needs a file, not standard input");
  if (!a.in_place && !a.output.sink && a.output.out != "-" && !dry_run_alone) check_torch_output_name(a.output.out);
}

// For an override without '=' that fails to parse, what the shell or a
// habit made of a whole one: "; did you mean 'optim.lr=1e-5'? (...)" or "".
std::string override_hint(const std::vector<std::string>& args, size_t i) {
  const std::string& t = args[i];
  if (t.empty() || t.find('=') != std::string::npos || t[0] == '~') return "";
  auto has_eq = [](const std::string& s) { return s.find('=') != std::string::npos; };
  const std::string* prev = i > 0 ? &args[i - 1] : nullptr;
  const std::string* next = i + 1 < args.size() ? &args[i + 1] : nullptr;
  const std::string* after = i + 2 < args.size() ? &args[i + 2] : nullptr;
  auto hint = [](const std::string& joined, const char* why) {
    return "; did you mean '" + joined + "'? (" + why + ")";
  };
  const char* spaces = "no spaces around '='";
  if (next && *next == "=" && after) return hint(t + "=" + *after, spaces);            // k = v
  if (next && next->size() > 1 && (*next)[0] == '=') return hint(t + *next, spaces);  // k =v
  if (prev && !prev->empty() && prev->back() == '=') return hint(*prev + t, spaces);  // k= v
  if (prev && has_eq(*prev))  // path=/my data: the shell split an unquoted value
    return hint(*prev + " " + t, "quote a value with spaces, the whole override: 'key=a b'");
  size_t colon = t.find(':');
  if (colon != std::string::npos && colon > 0)  // YAML's k: v
    return hint(t.substr(0, colon) + "=" + t.substr(colon + 1 + (colon + 1 < t.size() && t[colon + 1] == ' ')),
                "overrides are key=value");
  if (next && !has_eq(*next) && (*next)[0] != '~' && !next->empty())  // k v
    return hint(t + "=" + *next, "overrides are key=value");
  return "";
}

audiocraft::KeySurgery surgery_of(const EditOptions& a) {
  audiocraft::KeySurgery surgery;
  surgery.keep = a.keep;
  surgery.drop = a.drop;
  surgery.strict = !a.allow_no_match;
  for (const auto& r : a.rename) {
    auto eq = r.find('=');
    if (eq == std::string::npos) throw UsageError(option_name("rename") + " '" + r + "': expected REGEX=REPLACEMENT");
    surgery.renames.emplace_back(r.substr(0, eq), r.substr(eq + 1));
  }
  return surgery;
}

void apply_surgery(const Opened& o, const audiocraft::KeySurgery& surgery, const EditOptions& a, EditResult& r) {
  std::vector<std::string> states = a.state;
  if (states.empty()) {
    states.push_back(o.default_state_path());
    r.state_note = o.state_note(std::nullopt);
  }
  for (const auto& path : states) {
    if (torch::is_module(audiocraft::resolve_path(o.ck->root(), path)))
      throw UsageError(o.ck->path() + ": '" + (path.empty() ? std::string("(root)") : path) +
                       "' is a pickled nn.Module: " + option_name("drop") + ", " + option_name("keep") + " and " +
                       option_name("rename") + " edit mappings only (export its state dict to safetensors first)");
    auto report = audiocraft::apply_surgery(o.ck->graph(), o.state_dict(path), surgery, path);
    if (report.before > 0 && report.dropped == report.before && !a.allow_empty)
      throw UsageError((path.empty() ? std::string("(root)") : path) + ": the edit would remove all " +
                       plural(report.before, "key", "keys") +
                       "; nothing written (pass " + option_set("allow_empty") + " to write an empty state dict)");
    r.changes += report.dropped + report.renamed;
    StateEdit edit{path, report.before, std::move(report.dropped_keys), {}};
    for (auto& [from, to] : report.renamed_keys) edit.renamed.push_back({std::move(from), std::move(to)});
    r.states.push_back(std::move(edit));
  }
}

void write_edit(Env& env, Opened& o, const EditOptions& a,
                std::map<std::string, torch::StorageTransform> transforms, EditResult& r) {
  if (a.dry_run) {
    // Everything up to the write has run (so every error is reported); the
    // output is written as it would be (dialect, progress) into a counter.
    r.dry_run = true;
    // What the real run would refuse: a read-only file it would change or
    // replace (with --force; without, an existing output is only reported).
    if (a.in_place) {
      refuse_read_only(env, o.ck->path());
      return;
    }
    if (a.output.force && !a.output.sink && !a.output.out.empty() && a.output.out != "-")
      refuse_read_only(env, env.resolve_links(a.output.out));
    DiscardEnv discard(env);
    OutputOptions counted = a.output;
    counted.sink = nullptr;
    // A dry run never refuses for an existing output: it says so instead.
    counted.force = true;
    // Without -o: the size an output named as the input would have (the
    // record prefix comes from the name), counted, never written.
    if (counted.out.empty()) counted.out = o.ck->path() == "-" ? "checkpoint.th" : o.ck->path();
    r.output_exists = !a.output.sink && !a.output.out.empty() && a.output.out != "-" && env.exists(a.output.out);
    write_checkpoint(*o.ck, o.ck->root(), discard, counted, std::move(transforms));
    r.bytes = discard.bytes_written();
    return;
  }
  if (a.in_place) {
    // Appends a new data.pkl and central directory when tensor bytes are
    // unchanged, else rewrites atomically; old-or-new at every instant
    // either way (torch/in_place.cc).
    torch::InPlaceOptions ipo;
    ipo.compact = a.compact;
    ipo.save.transforms = std::move(transforms);
    ipo.save.dialect = dialect_of(a.output.dialect);
    ipo.save.progress = progress_for(a.output.progress, r.out);
    // The records the update reads are checked (and, when it rewrites, the
    // storages as they are copied): a damaged file is not edited silently.
    check_crcs_as_written(*o.ck, a.output.ignore_crc, ipo.save);
    torch::InPlaceResult done = torch::update_in_place(*o.ck, o.ck->root(), env, ipo);
    r.in_place = InPlaceUpdate{done.appended, done.reason, done.bytes_written};
    r.bytes = env.open_read(r.out)->size();
    return;
  }
  write_checkpoint(*o.ck, o.ck->root(), env, a.output, std::move(transforms));
  if (!a.output.sink) r.bytes = env.open_read(a.output.out)->size();
}

}  // namespace

EditResult edit(Env& env, const std::string& file, const EditOptions& a) {
  check_options(file, a);
  EditResult r;
  r.out = a.in_place ? file : a.output.out;
  std::vector<omegaconf::Override> overrides;
  for (size_t i = 0; i < a.overrides.size(); ++i) {
    try {
      overrides.push_back(omegaconf::parse_override(a.overrides[i]));
    } catch (const UsageError& e) {
      throw UsageError(e.what() + override_hint(a.overrides, i));
    }
  }
  audiocraft::KeySurgery surgery = surgery_of(a);

  Opened o = open_checkpoint(env, file);
  if (a.in_place && o.safetensors)
    throw UsageError(file + " is a safetensors file: " + option_name("in_place") + " edits torch checkpoints (use " + option_set("out", "OUT.th") + ")");
  if (!overrides.empty()) {
    r.overrides_given = true;
    require_config(o, file);
    omegaconf::Value before = audiocraft::config_tree(o.ck->root());
    audiocraft::apply_overrides(o.ck->graph(), o.ck->root(), overrides);
    for (const auto& c : audiocraft::config_changes(before, audiocraft::config_tree(o.ck->root())))
      r.config_changes.push_back(c.text());
    r.changes += r.config_changes.size();
  }
  if (!surgery.empty()) apply_surgery(o, surgery, a, r);
  if (a.for_finetune) {
    if (o.layout != audiocraft::Layout::Training)
      throw UsageError(file + ": " + option_name("for_finetune") + " removes the training state of an AudioCraft training checkpoint, "
                       "and this file is '" + std::string(audiocraft::to_string(o.layout)) + "'");
    r.training_state_removed = audiocraft::strip_training_state(o.ck->root());
    r.changes += r.training_state_removed.size();
  }
  std::map<std::string, torch::StorageTransform> transforms;
  if (!a.dtype.empty()) {
    r.dtype = plan_dtype_conversion(o, a.state, a.dtype, a.match);
    transforms = r.dtype->transforms;
  } else if (!a.match.empty()) {
    throw UsageError(option_name("match") + " goes with " + option_name("dtype"));
  }
  r.changes += transforms.size();
  write_edit(env, o, a, std::move(transforms), r);
  return r;
}

namespace {

// Tensors outside `selected` whose storage is converted.
uint64_t count_also_converted(const Opened& o, const std::map<std::string, torch::StorageTransform>& transforms,
                              const std::set<const Node*>& selected) {
  uint64_t also = 0;
  // Tensors reached as values, items or call arguments: keys and persistent
  // ids hold no tensor objects of their own.
  pickle::walk_graph(o.ck->root(), pickle::kAllEdges & ~(pickle::kKeyEdges | pickle::kPidEdge), [&](const Node* n) {
    if (n->kind == Kind::Object) {
      std::optional<torch::TensorInfo> t;
      try {
        t = o.ck->tensor(n);
      } catch (const Error&) {
      }
      if (t && t->object == n && t->storage && transforms.count(t->storage->key) && !selected.count(n)) ++also;
    }
    return true;
  });
  return also;
}

const torch::DTypeInfo& target_dtype(const std::string& dtype) {
  const torch::DTypeInfo* to = dtype_option(dtype);
  if (!to || (to->dtype != torch::DType::Float16 && to->dtype != torch::DType::BFloat16 &&
              to->dtype != torch::DType::Float32))
    throw UsageError(option_name("dtype") + " '" + dtype + "': expected float16, bfloat16 or float32");
  return *to;
}

}  // namespace

DtypePlan plan_dtype_conversion(const Opened& o, const std::vector<std::string>& states, const std::string& dtype,
                                const std::vector<std::string>& match) {
  const torch::DTypeInfo* to = &target_dtype(dtype);
  std::vector<std::string> paths = states;
  if (paths.empty()) paths.push_back(o.default_state_path());

  DtypePlan plan;
  plan.dtype = to->name;
  std::set<const Node*> selected;
  bool any_match = false;
  for (const auto& path : paths) {
    for (const TensorRow& r : o.tensors_of(o.state_dict(path))) {
      if (!matches_any(match, r.name)) continue;
      any_match = true;
      const torch::Storage* s = r.info.storage;
      if (!r.info.is_plain() && !(r.info.neg && r.info.layout == torch::TensorLayout::Strided && !r.info.quantization)) {
        // Only dense tensors convert; the others are named, not passed over.
        if (r.info.dtype && r.info.dtype->is_floating && r.info.dtype != to)
          plan.not_dense.push_back("'" + r.name + "' (" + r.info.dtype->name + ", " + r.info.form() + ")");
        ++plan.kept;
        continue;
      }
      if (!r.info.dtype || !r.info.dtype->is_floating || !s || r.info.dtype == to ||
          !torch::can_convert(r.info.dtype->dtype, to->dtype)) {
        ++plan.kept;
        continue;
      }
      if (s->dtype != r.info.dtype)
        throw UsageError(o.ck->path() + ": tensor '" + r.name + "' views an untyped storage; " + option_name("dtype") + " cannot convert it");
      selected.insert(r.info.object);
      ++plan.converted;
      if (plan.transforms.emplace(s->key, torch::dtype_transform(*o.ck, to->dtype)).second) {
        plan.bytes_before += s->nbytes();
        plan.bytes_after += s->numel * to->element_size;
      }
    }
  }
  if (!match.empty() && !any_match) {
    std::string globs;
    for (const auto& m : match) globs += (globs.empty() ? "'" : ", '") + m + "'";
    throw UsageError(option_name("match") + " " + globs +
                     " selects no tensor of the selected state dicts (globs match whole names: 'emb.*', '*.weight')");
  }
  plan.also_converted = count_also_converted(o, plan.transforms, selected);
  plan.storages = plan.transforms.size();
  return plan;
}

}  // namespace ckpt::api
