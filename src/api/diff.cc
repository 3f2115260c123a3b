#include "api/diff.h"

#include <cmath>
#include <map>
#include <set>

#include "api/checkpoint.h"
#include "api/format.h"
#include "api/shard.h"
#include "audiocraft/config_changes.h"
#include "audiocraft/diff.h"
#include "audiocraft/operations.h"
#include "torch/convert.h"
#include "torch/stats.h"
#include "util/python_number.h"

namespace ckpt::api {

using pickle::Kind;
using pickle::Node;

namespace {

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

const char* dtype_name(const torch::TensorInfo& t) { return t.dtype ? t.dtype->name : "?"; }

TensorChange tensor_change(const TensorRow& ra, const TensorRow& rb) {
  return {ra.name, dtype_name(ra.info), dtype_name(rb.info), ra.info.shape, rb.info.shape, {}};
}

ValueChange value_change(const std::string& name, const torch::ValueDiff& v) {
  return {name, v.compared, v.differing, v.max_abs_diff, v.nonfinite_differing, "", std::nullopt};
}

// Quantized, sparse, nested, meta, conj/neg, subclasses: forms and every
// component compared.
void compare_forms(const Opened& oa, const TensorRow& ra, const Opened& ob, const TensorRow& rb, DiffResult& r) {
  torch::TensorDiff td = torch::compare_tensors(*oa.ck, ra.info, ra.name, *ob.ck, rb.info, rb.name);
  if (ra.info.dtype != rb.info.dtype || ra.info.shape != rb.info.shape || !td.form_changes.empty()) {
    r.tensors.changed.push_back(tensor_change(ra, rb));
    r.tensors.changed.back().form = td.form_changes;
  }
  for (const auto& [part, v] : td.values) {
    r.tensors.values.push_back(value_change(ra.name, v));
    r.tensors.values.back().part = part;
  }
}

void compare_tensors(const Opened& oa, const Opened& ob, const DiffOptions& d, DiffResult& r) {
  auto rows_a = oa.tensors_of(oa.state_dict(r.a.state)), rows_b = ob.tensors_of(ob.state_dict(r.b.state));
  std::map<std::string, const TensorRow*> by_name_b;
  for (const auto& row : rows_b) by_name_b[row.name] = &row;
  std::set<std::string> names_a;
  for (const auto& row : rows_a) names_a.insert(row.name);
  const bool tolerant = d.atol > 0 || d.rtol > 0;
  for (const auto& ra : rows_a) {
    auto it = by_name_b.find(ra.name);
    if (it == by_name_b.end()) {
      r.tensors.only_in_a.push_back(ra.name);
      continue;
    }
    const TensorRow& rb = *it->second;
    ++r.tensors.compared;
    if (!ra.info.is_plain() || !rb.info.is_plain() || ra.info.form() != rb.info.form()) {
      compare_forms(oa, ra, ob, rb, r);
      continue;
    }
    if (ra.info.dtype != rb.info.dtype || ra.info.shape != rb.info.shape) r.tensors.changed.push_back(tensor_change(ra, rb));
    if (ra.info.shape != rb.info.shape) continue;
    if (ra.info.dtype != rb.info.dtype &&
        !(torch::has_real_values(*ra.info.dtype) && torch::has_real_values(*rb.info.dtype)))
      continue;
    torch::ValueDiff v = torch::compare_values(*oa.ck, ra.info, ra.name, *ob.ck, rb.info, rb.name, d.atol, d.rtol);
    if (v.equal() || (tolerant && v.beyond_tolerance == 0)) continue;
    r.tensors.values.push_back(value_change(ra.name, v));
    if (tolerant) r.tensors.values.back().beyond_tolerance = v.beyond_tolerance;
  }
  for (const auto& rb : rows_b)
    if (!names_a.count(rb.name)) r.tensors.only_in_b.push_back(rb.name);
}

// Top level: keys, and values of scalars (version, exported, ...).
void compare_top_level(const Opened& oa, const Opened& ob, DiffResult& r) {
  const Node *root_a = oa.ck->root(), *root_b = ob.ck->root();
  auto* ea = pickle::entries_of(root_a);
  auto* eb = pickle::entries_of(root_b);
  if (ea && eb) {
    std::map<std::string, const Node*> vb;
    for (auto& [k, v] : *eb) vb[key_text(k)] = v;
    std::set<std::string> ka;
    for (auto& [k, v] : *ea) {
      std::string key = key_text(k);
      ka.insert(key);
      auto it = vb.find(key);
      if (it == vb.end()) {
        r.top_level.only_in_a.push_back(key);
        continue;
      }
      if (key == "xp.cfg") continue;  // as YAML
      const Node* w = it->second;
      bool differ = is_scalar(v) || is_scalar(w) ? !(is_scalar(v) && is_scalar(w) && scalar_equal(v, w))
                                                 : kind_name(v, *oa.ck) != kind_name(w, *ob.ck);
      if (differ) r.top_level.changed.push_back({key, describe(v, *oa.ck), describe(w, *ob.ck)});
    }
    for (auto& [k, v] : *eb)
      if (!ka.count(key_text(k))) r.top_level.only_in_b.push_back(key_text(k));
  } else if (kind_name(root_a, *oa.ck) != kind_name(root_b, *ob.ck)) {
    r.top_level.changed.push_back({"", describe(root_a, *oa.ck), describe(root_b, *ob.ck)});
  }
  if (oa.layout != ob.layout)
    r.top_level.changed.push_back({"(layout)", audiocraft::to_string(oa.layout), audiocraft::to_string(ob.layout)});
}

// A tolerance is a finite number >= 0 (NaN would make every comparison
// false, a negative one or Inf no tolerance at all): checked here, so the
// CLI and Python refuse it with this one message.
void check_tolerance(const char* field, double value) {
  if (value >= 0 && std::isfinite(value)) return;
  throw UsageError(option_name(field) + " " + python_float_repr(value) + ": must be a number >= 0 (finite; e.g. 1e-3)");
}

}  // namespace

DiffResult diff(Env& env, const std::string& a, const std::string& b, const DiffOptions& d) {
  check_tolerance("atol", d.atol);
  check_tolerance("rtol", d.rtol);
  ReadableCheckpoint in_a(env, a), in_b(env, b);  // DCP folders: their consolidations
  Opened oa = open_checkpoint(env, in_a.path()), ob = open_checkpoint(env, in_b.path());
  DiffResult r;
  r.a = {a, "", audiocraft::to_string(oa.layout), ""};
  r.b = {b, "", audiocraft::to_string(ob.layout), ""};
  // Each side's best state; a side without one (say, an export whose flag
  // was changed) is read at the other's path.
  if (d.state) r.a.state = r.b.state = *d.state;
  else if (oa.best_state) r.a.state = *oa.best_state, r.b.state = ob.best_state.value_or(r.a.state);
  else r.b.state = ob.default_state_path(), r.a.state = oa.best_state.value_or(r.b.state);
  if (!d.state) {
    if (oa.best_state && *oa.best_state == r.a.state) r.a.state_note = oa.state_note(std::nullopt);
    if (ob.best_state && *ob.best_state == r.b.state) r.b.state_note = ob.state_note(std::nullopt);
  }
  {
    ValueCrcCheck crc_a(*oa.ck, d.ignore_crc), crc_b(*ob.ck, d.ignore_crc);  // folded into the reads
    compare_tensors(oa, ob, d, r);
  }
  // A safetensors file is tensors only: its checkpoint's top level and
  // xp.cfg are not compared (the conversion check compares the tensors).
  r.tensors_only = oa.safetensors || ob.safetensors;
  if (!r.tensors_only) compare_top_level(oa, ob, r);
  auto cfg_a = config_text(oa), cfg_b = config_text(ob);
  r.config.in_a = cfg_a.has_value();
  r.config.in_b = cfg_b.has_value();
  if ((cfg_a || cfg_b) && !r.tensors_only)
    r.config.diff = audiocraft::unified_diff(cfg_a.value_or(""), cfg_b.value_or(""), "a/xp.cfg", "b/xp.cfg");
  if (cfg_a && cfg_b && !r.tensors_only && !r.config.diff.empty())
    for (const auto& c : audiocraft::config_changes(audiocraft::config_tree(oa.ck->root()),
                                                    audiocraft::config_tree(ob.ck->root())))
      r.config.changes.push_back(c.text());

  // Under a tolerance, a dtype change alone (a conversion being checked) is
  // listed but is not a difference; a shape change always is.
  const bool tolerant = d.atol > 0 || d.rtol > 0;
  bool shapes_changed = false;
  for (auto& c : r.tensors.changed) shapes_changed = shapes_changed || c.shape_a != c.shape_b;
  const bool tensors_changed = tolerant ? shapes_changed : !r.tensors.changed.empty();
  r.equal = r.tensors.only_in_a.empty() && r.tensors.only_in_b.empty() && !tensors_changed && r.tensors.values.empty() &&
            r.top_level.only_in_a.empty() && r.top_level.only_in_b.empty() && r.top_level.changed.empty() && r.config.diff.empty();
  return r;
}

}  // namespace ckpt::api
