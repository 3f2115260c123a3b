// diff and stats: commands that read tensor values (streamed, bounded
// memory), and the planning half of `edit --dtype` (src/cli/dtype_edit.h).
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "audiocraft/diff.h"
#include "audiocraft/operations.h"
#include "cli/commands.h"
#include "cli/dtype_edit.h"
#include "cli/format.h"
#include "cli/session.h"
#include "cli/shard.h"
#include "torch/convert.h"
#include "torch/stats.h"
#include "util/error.h"

namespace ckpt::cli {

using json = nlohmann::ordered_json;
using pickle::Kind;
using pickle::Node;

namespace {

json number_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

std::string num_text(double v) {
  if (std::isnan(v)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

bool matches_any(const std::vector<std::string>& globs, const std::string& name) {
  if (globs.empty()) return true;
  for (const auto& g : globs)
    if (glob_match(g, name)) return true;
  return false;
}

// ------------------------------------------------------------------ stats

struct StatsArgs {
  std::string file, state;
  bool has_state = false;
  std::vector<std::string> match;
  bool json = false, check_finite = false;
};

int cmd_stats(const StatsArgs& a) {
  ReadableCheckpoint input(a.file);  // a DCP folder: its consolidation
  Opened o = open_checkpoint(input.path());
  std::string path = a.has_state ? a.state : o.default_state_path();
  json rows = json::array();
  uint64_t bad_tensors = 0;
  std::vector<std::string> bad_names;
  for (const TensorRow& r : o.tensors_of(o.state_dict(path))) {
    if (!matches_any(a.match, r.name)) continue;
    json j;
    j["name"] = r.name;
    j["dtype"] = r.info.dtype ? r.info.dtype->name : "?";
    j["shape"] = r.info.shape;
    if (std::string form = r.info.form(); !form.empty()) j["form"] = form;
    // A tensor without statistics gets a row of nulls saying why.
    std::string why = torch::stats_refusal(r.info);
    torch::TensorStats s;
    if (why.empty()) {
      try {
        s = torch::tensor_stats(*o.ck, r.info, r.name);
      } catch (const UsageError& e) {
        why = e.what();
      }
    }
    if (!why.empty()) {
      j["numel"] = r.info.numel();
      for (const char* k : {"nan", "inf", "finite", "min", "max", "mean", "std", "std_population", "norm"})
        j[k] = nullptr;
      j["note"] = why;
      rows.push_back(j);
      continue;
    }
    j["numel"] = s.numel;
    j["nan"] = s.nan;
    j["inf"] = s.inf;
    j["finite"] = s.finite;
    j["min"] = number_or_null(s.min);
    j["max"] = number_or_null(s.max);
    j["mean"] = number_or_null(s.mean);
    j["std"] = number_or_null(s.std);
    j["std_population"] = number_or_null(s.std_population);
    j["norm"] = number_or_null(s.norm);
    if (s.nan || s.inf) {
      ++bad_tensors;
      bad_names.push_back(r.name);
    }
    rows.push_back(j);
  }
  if (a.json) {
    std::cout << rows.dump(2) << "\n";
  } else {
    size_t w = 4, dw = 8;
    for (auto& r : rows) {
      w = std::max(w, r["name"].get<std::string>().size());
      dw = std::max(dw, r["dtype"].get<std::string>().size());
    }
    std::printf("%-*s  %-*s %12s %6s %6s %12s %12s %12s %12s %12s\n", static_cast<int>(w), "name",
                static_cast<int>(dw), "dtype", "numel", "nan", "inf", "min", "max", "mean", "std", "norm");
    auto cell = [](const json& v) { return v.is_null() ? std::string("-") : num_text(v.get<double>()); };
    auto count = [](const json& v) { return v.is_null() ? std::string("-") : std::to_string(v.get<uint64_t>()); };
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
  if (a.check_finite && bad_tensors) {
    std::string list;
    for (size_t i = 0; i < bad_names.size() && i < 5; ++i) list += (i ? ", " : "") + bad_names[i];
    if (bad_names.size() > 5) list += ", ...";
    std::fprintf(stderr, "ckpt: %s: %llu tensor(s) hold NaN or Inf: %s\n", a.file.c_str(),
                 static_cast<unsigned long long>(bad_tensors), list.c_str());
    return 1;
  }
  return 0;
}

// ------------------------------------------------------------------- diff

struct DiffArgs {
  std::string a, b, state;
  bool has_state = false, json = false;
  double atol = 0, rtol = 0;  // as torch.allclose: |a - b| <= atol + rtol * |b|
};

bool is_scalar(const Node* n) {
  switch (n->kind) {
    case Kind::None: case Kind::Bool: case Kind::Int: case Kind::Float: case Kind::Str: case Kind::Bytes:
    case Kind::ByteArray:
      return true;
    default:
      return false;
  }
}

bool scalar_equal(const Node* x, const Node* y) {
  if (x->kind != y->kind) return false;
  switch (x->kind) {
    case Kind::None: return true;
    case Kind::Bool: return x->boolean == y->boolean;
    case Kind::Int: return x->is_big_int() || y->is_big_int() ? x->text == y->text : x->integer == y->integer;
    case Kind::Float: return x->real == y->real || (std::isnan(x->real) && std::isnan(y->real));
    default: return x->text == y->text;
  }
}

std::optional<std::string> config_text(const Opened& o) {
  const Node* root = o.ck->root();
  if (!pickle::entries_of(root) || !pickle::get_item(root, "xp.cfg")) return std::nullopt;
  return audiocraft::config_yaml(root);
}

int cmd_diff(const DiffArgs& d) {
  ReadableCheckpoint in_a(d.a), in_b(d.b);  // DCP folders: their consolidations
  Opened oa = open_checkpoint(in_a.path()), ob = open_checkpoint(in_b.path());
  // Each side's best state; a side without one (say, an export whose flag
  // was changed) is read at the other's path.
  std::string pa, pb;
  if (d.has_state) pa = pb = d.state;
  else if (oa.best_state) pa = *oa.best_state, pb = ob.best_state.value_or(pa);
  else pb = ob.default_state_path(), pa = oa.best_state.value_or(pb);
  auto rows_a = oa.tensors_of(oa.state_dict(pa)), rows_b = ob.tensors_of(ob.state_dict(pb));
  std::map<std::string, const TensorRow*> by_name_b;
  for (const auto& r : rows_b) by_name_b[r.name] = &r;
  std::set<std::string> names_a;
  for (const auto& r : rows_a) names_a.insert(r.name);

  json only_a = json::array(), only_b = json::array(), changed = json::array(), values = json::array();
  uint64_t compared = 0;
  const bool tolerant = d.atol > 0 || d.rtol > 0;
  for (const auto& ra : rows_a) {
    auto it = by_name_b.find(ra.name);
    if (it == by_name_b.end()) {
      only_a.push_back(ra.name);
      continue;
    }
    const TensorRow& rb = *it->second;
    ++compared;
    const char* da = ra.info.dtype ? ra.info.dtype->name : "?";
    const char* db = rb.info.dtype ? rb.info.dtype->name : "?";
    if (!ra.info.is_plain() || !rb.info.is_plain() || ra.info.form() != rb.info.form()) {
      // Quantized, sparse, nested, meta, conj/neg, subclasses: forms and
      // every component compared.
      torch::TensorDiff td = torch::compare_tensors(*oa.ck, ra.info, ra.name, *ob.ck, rb.info, rb.name);
      if (ra.info.dtype != rb.info.dtype || ra.info.shape != rb.info.shape || !td.form_changes.empty()) {
        json c = {{"name", ra.name}, {"dtype_a", da}, {"dtype_b", db}, {"shape_a", ra.info.shape},
                  {"shape_b", rb.info.shape}};
        if (!td.form_changes.empty()) c["form"] = td.form_changes;
        changed.push_back(c);
      }
      for (const auto& [part, v] : td.values) {
        json e = {{"name", ra.name}, {"numel", v.compared}, {"differing", v.differing},
                  {"max_abs_diff", v.max_abs_diff}, {"nonfinite_differing", v.nonfinite_differing}};
        if (!part.empty()) e["part"] = part;
        values.push_back(e);
      }
      continue;
    }
    if (ra.info.dtype != rb.info.dtype || ra.info.shape != rb.info.shape)
      changed.push_back({{"name", ra.name}, {"dtype_a", da}, {"dtype_b", db}, {"shape_a", ra.info.shape},
                         {"shape_b", rb.info.shape}});
    if (ra.info.shape != rb.info.shape) continue;
    if (ra.info.dtype != rb.info.dtype &&
        !(torch::has_real_values(*ra.info.dtype) && torch::has_real_values(*rb.info.dtype)))
      continue;
    torch::ValueDiff v =
        torch::compare_values(*oa.ck, ra.info, ra.name, *ob.ck, rb.info, rb.name, d.atol, d.rtol);
    if (v.equal() || (tolerant && v.beyond_tolerance == 0)) continue;
    json row = {{"name", ra.name}, {"numel", v.compared}, {"differing", v.differing},
                {"max_abs_diff", v.max_abs_diff}, {"nonfinite_differing", v.nonfinite_differing}};
    if (tolerant) row["beyond_tolerance"] = v.beyond_tolerance;
    values.push_back(std::move(row));
  }
  for (const auto& rb : rows_b)
    if (!names_a.count(rb.name)) only_b.push_back(rb.name);

  // Top level: keys, and values of scalars (version, exported, ...).
  json top_only_a = json::array(), top_only_b = json::array(), top_changed = json::array();
  const Node *root_a = oa.ck->root(), *root_b = ob.ck->root();
  auto* ea = pickle::entries_of(root_a);
  auto* eb = pickle::entries_of(root_b);
  // A safetensors file is tensors only: its checkpoint's top level and
  // xp.cfg are not compared (the conversion check compares the tensors).
  const bool tensors_only = oa.safetensors || ob.safetensors;
  if (tensors_only) {
  } else if (ea && eb) {
    std::map<std::string, const Node*> vb;
    for (auto& [k, v] : *eb) vb[key_text(k)] = v;
    std::set<std::string> ka;
    for (auto& [k, v] : *ea) {
      std::string key = key_text(k);
      ka.insert(key);
      auto it = vb.find(key);
      if (it == vb.end()) {
        top_only_a.push_back(key);
        continue;
      }
      if (key == "xp.cfg") continue;  // as YAML below
      const Node* w = it->second;
      bool differ = is_scalar(v) || is_scalar(w) ? !(is_scalar(v) && is_scalar(w) && scalar_equal(v, w))
                                                 : kind_name(v, *oa.ck) != kind_name(w, *ob.ck);
      if (differ) top_changed.push_back({{"key", key}, {"a", describe(v, *oa.ck)}, {"b", describe(w, *ob.ck)}});
    }
    for (auto& [k, v] : *eb)
      if (!ka.count(key_text(k))) top_only_b.push_back(key_text(k));
  } else if (kind_name(root_a, *oa.ck) != kind_name(root_b, *ob.ck)) {
    top_changed.push_back({{"key", ""}, {"a", describe(root_a, *oa.ck)}, {"b", describe(root_b, *ob.ck)}});
  }
  if (oa.layout != ob.layout && !tensors_only)
    top_changed.push_back({{"key", "(layout)"}, {"a", audiocraft::to_string(oa.layout)},
                           {"b", audiocraft::to_string(ob.layout)}});

  auto cfg_a = config_text(oa), cfg_b = config_text(ob);
  std::string cfg_diff;
  if ((cfg_a || cfg_b) && !tensors_only) cfg_diff = audiocraft::unified_diff(cfg_a.value_or(""), cfg_b.value_or(""), "a/xp.cfg", "b/xp.cfg");

  // Under a tolerance, a dtype change alone (a conversion being checked) is
  // listed but is not a difference; a shape change always is.
  bool shapes_changed = false;
  for (auto& c : changed) shapes_changed = shapes_changed || c["shape_a"] != c["shape_b"];
  const bool tensors_changed = tolerant ? shapes_changed : !changed.empty();
  const bool equal = only_a.empty() && only_b.empty() && !tensors_changed && values.empty() && top_only_a.empty() &&
                     top_only_b.empty() && top_changed.empty() && cfg_diff.empty();
  if (d.json) {
    json j;
    j["equal"] = equal;
    j["a"] = {{"file", d.a}, {"state", pa}, {"layout", audiocraft::to_string(oa.layout)}};
    j["b"] = {{"file", d.b}, {"state", pb}, {"layout", audiocraft::to_string(ob.layout)}};
    j["tensors"] = {{"compared", compared}, {"only_in_a", only_a}, {"only_in_b", only_b},
                    {"changed", changed}, {"values", values}};
    j["top_level"] = {{"only_in_a", top_only_a}, {"only_in_b", top_only_b}, {"changed", top_changed}};
    j["config"] = {{"in_a", cfg_a.has_value()}, {"in_b", cfg_b.has_value()}, {"diff", cfg_diff}};
    std::cout << j.dump(2) << "\n";
    return equal ? 0 : 1;
  }
  auto state_name = [](const std::string& p) { return p.empty() ? std::string("(root)") : p; };
  std::printf("a: %s [%s]\nb: %s [%s]\n", d.a.c_str(), state_name(pa).c_str(), d.b.c_str(), state_name(pb).c_str());
  std::printf("tensors: %llu in both, %zu only in a, %zu only in b, %zu dtype/shape changes, %zu with other values\n",
              static_cast<unsigned long long>(compared), only_a.size(), only_b.size(), changed.size(), values.size());
  for (auto& n : only_a) std::printf("  only in a  %s\n", n.get<std::string>().c_str());
  for (auto& n : only_b) std::printf("  only in b  %s\n", n.get<std::string>().c_str());
  for (auto& c : changed) {
    std::string what = c["dtype_a"] != c["dtype_b"]
                           ? c["dtype_a"].get<std::string>() + " -> " + c["dtype_b"].get<std::string>()
                           : "";
    if (c["shape_a"] != c["shape_b"])
      what += (what.empty() ? "" : ", ") + shape_text(c["shape_a"].get<std::vector<int64_t>>()) + " -> " +
              shape_text(c["shape_b"].get<std::vector<int64_t>>());
    if (c.contains("form"))
      for (auto& f : c["form"]) what += (what.empty() ? "" : "; ") + f.get<std::string>();
    std::printf("  changed    %s: %s\n", c["name"].get<std::string>().c_str(), what.c_str());
  }
  for (auto& v : values) {
    std::string extra;
    if (v["nonfinite_differing"].get<uint64_t>())
      extra = " (" + std::to_string(v["nonfinite_differing"].get<uint64_t>()) + " with NaN/Inf)";
    if (v.contains("beyond_tolerance"))
      extra += " (" + with_commas(v["beyond_tolerance"].get<uint64_t>()) + " beyond the tolerance)";
    std::string label = v["name"].get<std::string>();
    if (v.contains("part")) label += " (" + v["part"].get<std::string>() + ")";
    std::printf("  values     %s: %s of %s elements differ, max abs diff %s%s\n", label.c_str(),
                with_commas(v["differing"].get<uint64_t>()).c_str(), with_commas(v["numel"].get<uint64_t>()).c_str(),
                num_text(v["max_abs_diff"].get<double>()).c_str(), extra.c_str());
  }
  if (!top_only_a.empty() || !top_only_b.empty() || !top_changed.empty()) {
    std::printf("top level:\n");
    for (auto& k : top_only_a) std::printf("  only in a  %s\n", k.get<std::string>().c_str());
    for (auto& k : top_only_b) std::printf("  only in b  %s\n", k.get<std::string>().c_str());
    for (auto& c : top_changed)
      std::printf("  changed    %s: %s -> %s\n", c["key"].get<std::string>().c_str(), c["a"].get<std::string>().c_str(),
                  c["b"].get<std::string>().c_str());
  }
  if (!cfg_diff.empty()) std::printf("xp.cfg:\n%s", cfg_diff.c_str());
  if (tensors_only) std::printf("(a safetensors file holds tensors only: top level and xp.cfg not compared)\n");
  std::printf("%s\n", equal ? "no differences" : "different");
  return equal ? 0 : 1;
}

}  // namespace

// ------------------------------------------------------------ edit --dtype

std::map<std::string, torch::StorageTransform> plan_dtype_conversion(
    const Opened& o, const std::vector<std::string>& states, const std::string& dtype,
    const std::vector<std::string>& match, const std::function<void(const std::string&)>& say) {
  const torch::DTypeInfo* to = torch::from_name(dtype);
  if (!to || (to->dtype != torch::DType::Float16 && to->dtype != torch::DType::BFloat16 &&
              to->dtype != torch::DType::Float32))
    throw UsageError("--dtype '" + dtype + "': expected float16, bfloat16 or float32");
  std::vector<std::string> paths = states;
  if (paths.empty()) paths.push_back(o.default_state_path());

  std::map<std::string, torch::StorageTransform> transforms;
  std::set<const Node*> selected;
  uint64_t converted = 0, kept = 0, bytes_before = 0, bytes_after = 0;
  bool any_match = false;
  for (const auto& path : paths) {
    for (const TensorRow& r : o.tensors_of(o.state_dict(path))) {
      if (!matches_any(match, r.name)) continue;
      any_match = true;
      const torch::Storage* s = r.info.storage;
      if (!r.info.is_plain() && !(r.info.neg && r.info.layout == torch::TensorLayout::Strided && !r.info.quantization)) {
        // Only dense tensors convert; the others are named, not passed over.
        if (r.info.dtype && r.info.dtype->is_floating && r.info.dtype != to)
          say("note: '" + r.name + "' (" + r.info.dtype->name + ", " + r.info.form() + ") left as it is: --dtype " +
              "converts dense tensors only");
        ++kept;
        continue;
      }
      if (!r.info.dtype || !r.info.dtype->is_floating || !s || r.info.dtype == to ||
          !torch::can_convert(r.info.dtype->dtype, to->dtype)) {
        ++kept;
        continue;
      }
      if (s->dtype != r.info.dtype)
        throw UsageError(o.ck->path() + ": tensor '" + r.name + "' views an untyped storage; --dtype cannot convert it");
      selected.insert(r.info.object);
      ++converted;
      if (transforms.emplace(s->key, torch::dtype_transform(*o.ck, to->dtype)).second) {
        bytes_before += s->nbytes();
        bytes_after += s->numel * to->element_size;
      }
    }
  }
  if (!match.empty() && !any_match) throw UsageError("--match matches no tensor of the selected state dicts");

  // Other tensors on a converted storage change with it: count them.
  uint64_t also = 0;
  std::vector<const Node*> stack{o.ck->root()};
  std::set<const Node*> seen;
  while (!stack.empty()) {
    const Node* n = stack.back();
    stack.pop_back();
    if (!n || !seen.insert(n).second) continue;
    if (n->kind == Kind::Object) {
      std::optional<torch::TensorInfo> t;
      try {
        t = o.ck->tensor(n);
      } catch (const Error&) {
      }
      if (t && t->object == n && t->storage && transforms.count(t->storage->key) && !selected.count(n)) ++also;
    }
    for (auto* c : {n->callable, n->args, n->kwargs, n->state}) stack.push_back(c);
    for (const Node* c : n->items) stack.push_back(c);
    for (auto& [k, v] : n->entries) stack.push_back(v);
  }
  say(std::string("--dtype ") + to->name + ": " + std::to_string(converted) + " tensor(s) in " +
      std::to_string(transforms.size()) + " storage(s), " + human_bytes(bytes_before) + " -> " +
      human_bytes(bytes_after) + "; " + std::to_string(kept) + " left as they are (not floating or already " +
      to->name + ")");
  if (also)
    say("note: " + std::to_string(also) +
        " tensor(s) outside the selection share a converted storage and are converted with it");
  return transforms;
}

void register_tools_commands(CLI::App& app, Context& ctx) {
  auto s = std::make_shared<StatsArgs>();
  auto* stats = app.add_subcommand(
      "stats",
      "per-tensor numel, NaN, Inf, min, max, mean, std, L2 norm (float64; over finite values; std unbiased as "
      "torch.std(), std_population in --json)");
  stats->add_option("FILE", s->file, "checkpoint or .safetensors file ('-': standard input)")->required();
  stats->add_option("--state", s->state, "state dict path (default: the best state)")
      ->each([s](const std::string&) { s->has_state = true; });
  stats->add_option("--match", s->match, "only tensors whose names match this glob (repeatable)");
  stats->add_flag("--json", s->json, "JSON array of {name, dtype, shape, numel, nan, inf, finite, min, max, mean, "
                                     "std, std_population, norm}");
  stats->add_flag("--check-finite", s->check_finite, "exit 1 if any tensor holds NaN or Inf");
  stats->callback([s, &ctx] { ctx.exit_code = cmd_stats(*s); });

  auto d = std::make_shared<DiffArgs>();
  auto* diff = app.add_subcommand(
      "diff", "compare two checkpoints: tensors (keys, dtypes, shapes, values), top-level keys and xp.cfg; exit 1 "
              "when different");
  diff->add_option("A", d->a, "first checkpoint or .safetensors file")->required();
  diff->add_option("B", d->b, "second checkpoint or .safetensors file")->required();
  diff->add_option("--state", d->state, "state dict path in both (default: each one's best state)")
      ->each([d](const std::string&) { d->has_state = true; });
  diff->add_flag("--json", d->json, "one JSON object");
  diff->add_option("--atol", d->atol, "values equal when |a - b| <= atol + rtol * |b| (as torch.allclose; default 0)")
      ->check(CLI::NonNegativeNumber);
  diff->add_option("--rtol", d->rtol, "relative tolerance (default 0: values compared exactly); with a tolerance a dtype change alone is not a difference")
      ->check(CLI::NonNegativeNumber);
  diff->callback([d, &ctx] { ctx.exit_code = cmd_diff(*d); });
}

}  // namespace ckpt::cli
