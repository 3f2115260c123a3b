// info, ls, tensors, verify: read-only commands. They read the central
// directory and data.pkl only (verify also streams every record for CRCs).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "cli/commands.h"
#include "cli/format.h"
#include "cli/session.h"
#include "torch/integrity.h"
#include "cli/shard.h"
#include "cli/text_width.h"
#include "util/crc32.h"
#include "util/error.h"

namespace ckpt::cli {

using json = nlohmann::ordered_json;
using pickle::Kind;
using pickle::Node;

namespace {

struct StateDictSummary {
  std::string path;
  size_t tensors = 0;
  uint64_t parameters = 0, bytes = 0;
  std::map<std::string, uint64_t> bytes_by_dtype;
};

StateDictSummary summarize(const Opened& o, const std::string& path, const Node* sd) {
  StateDictSummary s;
  s.path = path;
  for (const TensorRow& r : o.tensors_of(sd)) {
    ++s.tensors;
    s.parameters += r.info.numel();
    uint64_t b = r.info.nbytes();
    s.bytes += b;
    s.bytes_by_dtype[r.info.dtype ? r.info.dtype->name : "?"] += b;
  }
  return s;
}

// State dicts: mappings with string keys whose values are all tensors, found
// within a few levels of the root (not under the optimizer, whose per-param
// states look alike but are not state dicts).
std::vector<StateDictSummary> find_state_dicts(const Opened& o) {
  std::vector<StateDictSummary> out;
  CheckpointTensorTest is_tensor(*o.ck);
  struct Item { const Node* n; std::string path; int depth; };
  std::vector<Item> stack{{o.ck->root(), "", 0}};
  std::set<const Node*> seen;
  std::vector<Item> found;
  while (!stack.empty()) {
    Item it = stack.back();
    stack.pop_back();
    if (!seen.insert(it.n).second) continue;
    auto* e = pickle::entries_of(it.n);
    if (!e) continue;
    bool all = !e->empty();
    for (auto& [k, v] : *e)
      if (k->kind != Kind::Str || !is_tensor.is_tensor(v)) all = false;
    bool is_best = o.best_state && *o.best_state == it.path;
    if (all || is_best) {
      found.push_back(it);
      continue;
    }
    if (it.depth >= 4 || it.path == "optimizer") continue;
    for (auto i = e->rbegin(); i != e->rend(); ++i)
      stack.push_back({i->second, it.path.empty() ? key_text(i->first) : it.path + "/" + key_text(i->first), it.depth + 1});
  }
  for (const Item& it : found) out.push_back(summarize(o, it.path, it.n));
  return out;
}

}  // namespace

namespace {

int cmd_info(const std::string& file, const Common& c) {
  Opened o = open_checkpoint(file);
  const torch::Checkpoint& ck = *o.ck;
  auto sds = find_state_dicts(o);
  json j;
  j["file"] = file;
  j["file_size"] = o.file_size;
  const bool torch_zip = ck.format() == torch::Format::Zip && !o.safetensors;
  j["format"] = o.safetensors ? "safetensors" : torch::to_string(ck.format());
  j["dialect"] = torch_zip ? json(torch::to_string(ck.dialect())) : json(nullptr);
  j["archive"] = torch_zip ? json(ck.archive_name()) : json(nullptr);
  j["pickle_bytes"] = ck.pickle_size();
  json recs = json::array();
  if (ck.zip())
    for (const auto& r : ck.zip()->records())
      recs.push_back({{"name", r.name}, {"size", r.size}, {"crc32", r.crc32}, {"offset", r.data_offset}});
  j["records"] = recs;
  j["layout"] = audiocraft::to_string(o.layout);
  std::string kind = audiocraft::describe_kind(ck.root(), o.layout, file);
  j["kind"] = kind.empty() ? json(nullptr) : json(kind);
  j["best_state"] = o.best_state ? json(*o.best_state) : json(nullptr);
  json keys = json::array();
  if (auto* e = pickle::entries_of(ck.root()))
    for (auto& [k, v] : *e)
      keys.push_back({{"key", key_text(k)}, {"kind", kind_name(v, ck)}, {"summary", describe(v, ck)}});
  j["keys"] = keys;
  json sdj = json::array();
  for (const auto& s : sds) {
    json by = json::object();
    for (auto& [d, b] : s.bytes_by_dtype) by[d] = b;
    sdj.push_back({{"path", s.path}, {"tensors", s.tensors}, {"parameters", s.parameters}, {"bytes", s.bytes},
                   {"bytes_by_dtype", by}});
  }
  j["state_dicts"] = sdj;
  auto rank_set = rank_set_of(file);
  if (rank_set)
    j["rank_set"] = {{"set", rank_set->set}, {"rank", rank_set->rank}, {"ranks", rank_set->ranks},
                     {"missing", rank_set->missing}};
  if (c.json) {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::printf("file        %s (%s)\n", file.c_str(), human_bytes(o.file_size).c_str());
  if (o.safetensors)
    std::printf("format      safetensors, %zu tensors\n", sds.empty() ? size_t{0} : sds.front().tensors);
  else if (ck.format() == torch::Format::Zip && ck.zip())
    std::printf("format      zip, %s dialect, archive '%s', %zu records\n", torch::to_string(ck.dialect()),
                ck.archive_name().c_str(), ck.zip()->records().size());
  else
    std::printf("format      legacy (torch < 1.6), %zu storages\n", ck.storages().size());
  if (!o.safetensors) std::printf("pickle      %s\n", human_bytes(ck.pickle_size()).c_str());
  std::printf("layout      %s\n", audiocraft::to_string(o.layout));
  if (!kind.empty()) std::printf("kind        %s\n", kind.c_str());
  if (rank_set) std::printf("rank set    %s\n", rank_set_text(*rank_set).c_str());
  std::printf("best state  %s\n", o.best_state ? (o.best_state->empty() ? "(the root)" : o.best_state->c_str()) : "none");
  if (!keys.empty()) {
    size_t w = 0;
    for (auto& k : keys) w = std::max(w, display_width(printable(k["key"].get<std::string>())));
    std::printf("keys\n");
    for (auto& k : keys)
      std::printf("  %s  %s\n", pad_right(printable(k["key"].get<std::string>()), w).c_str(),
                  k["summary"].get<std::string>().c_str());
  }
  if (!sds.empty()) {
    std::printf("state dicts\n");
    for (const auto& s : sds) {
      std::string by;
      for (auto& [d, b] : s.bytes_by_dtype) by += (by.empty() ? "" : ", ") + d + " " + human_bytes(b);
      std::printf("  %s: %s, %s parameters, %s\n", s.path.empty() ? "(root)" : printable(s.path).c_str(),
                  count_of(s.tensors, "tensor", "tensors").c_str(), with_commas(s.parameters).c_str(),
                  by.empty() ? "no data" : by.c_str());
    }
  }
  if (ck.zip()) {
    // Listed as people count (data/2 before data/10); --json keeps file order.
    std::vector<const container::ZipRecord*> rs;
    for (const auto& r : ck.zip()->records()) rs.push_back(&r);
    std::stable_sort(rs.begin(), rs.end(), [](auto* x, auto* y) { return natural_less(x->name, y->name); });
    std::printf("records\n");
    size_t shown = 0;
    for (const auto* r : rs) {
      if (shown++ == 8 && rs.size() > 10) {
        std::printf("  ... %zu more (--json lists all)\n", rs.size() - 8);
        break;
      }
      std::printf("  %s %12s\n", pad_right(printable(r->name), 40).c_str(), human_bytes(r->size).c_str());
    }
  }
  return 0;
}

namespace {

// Children of a node as ls shows them: mapping entries, sequence items, the
// keys of a DictConfig / items of a ListConfig, an object's state entries.
std::vector<std::pair<std::string, const Node*>> children(const Node* n, const torch::Checkpoint& ck) {
  std::vector<std::pair<std::string, const Node*>> out;
  if (!n) return out;
  if (n->kind == Kind::Object) {
    if (ck.tensor(n)) return out;
    if (n->is_instance_of("omegaconf.dictconfig", "DictConfig") ||
        n->is_instance_of("omegaconf.listconfig", "ListConfig")) {
      const Node* content = n->state ? pickle::get_item(n->state, "_content") : nullptr;
      if (content) n = content;
    } else if (n->callable && n->callable->kind == Kind::Global && n->callable->text == "omegaconf.nodes") {
      return out;
    }
  }
  if (auto* e = pickle::entries_of(n)) {
    for (auto& [k, v] : *e) out.emplace_back(key_text(k), v);
  } else if (n->kind == Kind::List || n->kind == Kind::Tuple || n->kind == Kind::Set || n->kind == Kind::FrozenSet) {
    for (size_t i = 0; i < n->items.size(); ++i) out.emplace_back(std::to_string(i), n->items[i]);
  } else if (n->kind == Kind::Object) {
    if (n->state && pickle::entries_of(n->state))
      for (auto& [k, v] : *pickle::entries_of(n->state)) out.emplace_back(key_text(k), v);
    for (size_t i = 0; i < n->items.size(); ++i) out.emplace_back(std::to_string(i), n->items[i]);
  }
  return out;
}

bool shared_kind(const Node* n) {
  return n && (n->kind == Kind::List || n->kind == Kind::Dict || n->kind == Kind::Object ||
               n->kind == Kind::Set || (n->kind == Kind::Tuple && !n->items.empty()));
}

// The value a node shows: an OmegaConf value node shows its _val.
const Node* shown(const Node* n) {
  if (n && n->kind == Kind::Object && n->callable && n->callable->kind == Kind::Global &&
      n->callable->text == "omegaconf.nodes" && n->state)
    if (const Node* v = pickle::get_item(n->state, "_val")) return v;
  return n;
}

}  // namespace

int cmd_ls(const std::string& file, const std::string& path, int depth, const Common& c) {
  Opened o = open_checkpoint(file);
  const torch::Checkpoint& ck = *o.ck;
  Node* start = audiocraft::resolve_path(ck.root(), path);
  if (!start) throw UsageError(file + ": no object at '" + path + "'");
  std::string base;
  for (auto& p : audiocraft::split_path(path)) base += (base.empty() ? "" : "/") + p;

  std::map<const Node*, std::string> first_path;
  struct Item { std::string key, path; const Node* n; int depth; json* parent; };
  json root_json;
  std::vector<Item> stack{{base.empty() ? "/" : base, base, start, 0, nullptr}};
  while (!stack.empty()) {
    Item it = stack.back();
    stack.pop_back();
    if (!it.n) {  // the note after a container's first kMaxChildrenShown children
      if (c.json)
        (*it.parent)["children"].push_back({{"more", std::stoull(it.key)}});
      else
        std::printf("%*s... %s more\n", it.depth * 2, "", with_commas(std::stoull(it.key)).c_str());
      continue;
    }
    const Node* n = shown(it.n);
    std::string ref;
    if (shared_kind(n)) {
      auto [pos, fresh] = first_path.emplace(n, it.path);
      if (!fresh) ref = pos->second;
    }
    if (!c.json) {
      std::printf("%*s%s: %s%s\n", it.depth * 2, "", printable(it.key).c_str(),
                  ref.empty() ? describe(n, ck).c_str() : "",
                  ref.empty() ? "" : ("-> /" + ref + " (same object)").c_str());
    }
    // The JSON tree is built only when asked for: text output streams, so a
    // container with very many children costs no memory per child.
    json* slot = nullptr;
    if (c.json) {
      json entry = {{"key", it.key}, {"path", it.path}, {"kind", kind_name(n, ck)}, {"summary", describe(n, ck)}};
      if (!ref.empty()) entry["ref"] = ref;
      if (it.parent) {
        (*it.parent)["children"].push_back(std::move(entry));
        slot = &(*it.parent)["children"].back();
      } else {
        root_json = std::move(entry);
        slot = &root_json;
      }
    }
    if (!ref.empty() || it.depth >= depth) continue;
    auto kids = children(n, ck);
    if (kids.empty()) continue;
    // Output and memory stay bounded for a container with a million items.
    constexpr size_t kMaxChildrenShown = 10000;
    if (kids.size() > kMaxChildrenShown) {
      stack.push_back({std::to_string(kids.size() - kMaxChildrenShown), it.path, nullptr, it.depth + 1, slot});
      kids.resize(kMaxChildrenShown);
    }
    if (slot) {
      // Reserved, so that pointers to the children stay valid while it fills.
      (*slot)["children"] = json::array();
      (*slot)["children"].get_ref<json::array_t&>().reserve(kids.size() + 1);
    }
    for (auto i = kids.rbegin(); i != kids.rend(); ++i)
      stack.push_back({i->first, it.path.empty() ? i->first : it.path + "/" + i->first, i->second, it.depth + 1, slot});
  }
  if (c.json) std::cout << root_json.dump(2) << "\n";
  return 0;
}

// The first n dot-separated components of a tensor name ("transformer.layers.0").
std::string name_prefix(const std::string& name, int n) {
  size_t pos = 0;
  for (int i = 0; i < n; ++i) {
    pos = name.find('.', pos);
    if (pos == std::string::npos) return name;
    if (i + 1 < n) ++pos;
  }
  return name.substr(0, pos);
}

// tensors --group N: parameters and bytes summed per name prefix, in the
// order the prefixes first appear (as users size a fine-tune or check what a
// drop removed).
int print_groups(const std::vector<TensorRow>& selected, int depth, const std::string& path, const Common& c) {
  struct Group { std::string name; uint64_t tensors = 0, params = 0, bytes = 0; };
  std::vector<Group> groups;
  std::map<std::string, size_t> index;
  uint64_t total_params = 0, total_bytes = 0;
  for (const TensorRow& r : selected) {
    std::string g = name_prefix(r.name, depth);
    auto [it, fresh] = index.emplace(g, groups.size());
    if (fresh) groups.push_back({g});
    Group& gr = groups[it->second];
    ++gr.tensors;
    gr.params += r.info.numel();
    gr.bytes += r.info.nbytes();
    total_params += r.info.numel();
    total_bytes += r.info.nbytes();
  }
  if (c.json) {
    json rows = json::array();
    for (const Group& g : groups)
      rows.push_back({{"group", g.name}, {"tensors", g.tensors}, {"parameters", g.params}, {"bytes", g.bytes}});
    std::cout << rows.dump(2) << "\n";
    return 0;
  }
  size_t w = 5;
  for (const Group& g : groups) w = std::max(w, display_width(printable(g.name)));
  if (size_t cols = output_columns(); cols && w + 50 > cols) w = std::max<size_t>(10, cols > 50 ? cols - 50 : 0);
  std::printf("%s  %8s  %15s  %10s  %6s\n", pad_right("group", w).c_str(), "tensors", "parameters", "bytes", "share");
  for (const Group& g : groups) {
    double share = total_params ? 100.0 * static_cast<double>(g.params) / static_cast<double>(total_params) : 0.0;
    std::printf("%s  %8llu  %15s  %10s  %5.1f%%\n", pad_right(fit_width(printable(g.name), w), w).c_str(),
                static_cast<unsigned long long>(g.tensors), with_commas(g.params).c_str(),
                human_bytes(g.bytes).c_str(), share);
  }
  std::printf("%s in %s, %s parameters, %s (%s)\n", count_of(selected.size(), "tensor", "tensors").c_str(),
              count_of(groups.size(), "group", "groups").c_str(), with_commas(total_params).c_str(),
              human_bytes(total_bytes).c_str(), path.empty() ? "root" : path.c_str());
  return 0;
}

int cmd_tensors(const std::string& file, const std::string& state, const std::vector<std::string>& match, int group,
                const Common& c) {
  Opened o = open_checkpoint(file);
  std::string path = state.empty() ? o.default_state_path() : state;
  const Node* sd = o.state_dict(path);
  json rows = json::array();
  std::vector<TensorRow> selected;
  for (TensorRow& r : o.tensors_of(sd)) {
    bool hit = match.empty();
    for (const auto& m : match) hit = hit || glob_match(m, r.name);
    if (hit) selected.push_back(std::move(r));
  }
  if (group > 0) return print_groups(selected, group, path, c);
  if (c.json) {
    for (const TensorRow& r : selected) {
      const auto& t = r.info;
      rows.push_back({{"name", r.name},
                      {"dtype", t.dtype ? t.dtype->name : "?"},
                      {"shape", t.shape},
                      {"numel", t.numel()},
                      {"nbytes", t.nbytes()},
                      {"stride", t.stride},
                      {"storage_offset", t.storage_offset},
                      {"storage", t.storage ? json(t.storage->key) : json(nullptr)},
                      {"contiguous", t.is_contiguous()},
                      {"requires_grad", t.requires_grad},
                      {"parameter", t.is_parameter},
                      {"layout", torch::to_string(t.layout)},
                      {"form", t.form()}});
      json& row = rows.back();
      if (t.layout != torch::TensorLayout::Strided && t.layout != torch::TensorLayout::Nested &&
          t.layout != torch::TensorLayout::Jagged) {
        row["nnz"] = t.nnz();
        if (t.layout == torch::TensorLayout::SparseCoo) row["coalesced"] = t.coalesced;
      }
      if (t.quantization) {
        const auto& q = *t.quantization;
        row["qscheme"] = q.scheme;
        if (q.per_channel()) row["axis"] = q.axis;
        else row["scale"] = q.scale, row["zero_point"] = q.zero_point;
      }
      if (t.is_meta) row["device"] = "meta";
      if (t.conj) row["conj"] = true;
      if (t.neg) row["neg"] = true;
      if (!t.subclass.empty()) row["subclass"] = t.subclass;
      if (t.has_state) row["has_state"] = true;
      if (!t.parts.empty()) {
        json parts = json::object();
        for (const auto& [name, p] : t.parts)
          parts[name] = {{"dtype", p.dtype ? p.dtype->name : "?"}, {"shape", p.shape},
                         {"storage", p.storage ? json(p.storage->key) : json(nullptr)}};
        row["parts"] = parts;
      }
    }
    std::cout << rows.dump(2) << "\n";
    return 0;
  }
  // Widths in terminal columns; names cut in the middle only when the
  // terminal (COLUMNS) is too narrow for them.
  size_t w = 4, dw = 9;
  for (const TensorRow& r : selected) {
    w = std::max(w, display_width(printable(r.name)));
    if (r.info.dtype) dw = std::max(dw, std::strlen(r.info.dtype->name));
  }
  const size_t rest = 2 + dw + 2 + 20 + 2 + 12 + 2 + 10;
  if (size_t cols = output_columns(); cols && w + rest > cols) w = std::max<size_t>(10, cols > rest ? cols - rest : 0);
  std::printf("%s  %-*s  %-20s  %12s  %10s\n", pad_right("name", w).c_str(), static_cast<int>(dw), "dtype", "shape",
              "numel", "bytes");
  uint64_t total = 0, params = 0;
  for (const TensorRow& r : selected) {
    std::string form = r.info.form();
    std::printf("%s  %-*s  %-20s  %12s  %10s%s\n", pad_right(fit_width(printable(r.name), w), w).c_str(),
                static_cast<int>(dw),
                r.info.dtype ? r.info.dtype->name : "?", shape_text(r.info.shape).c_str(),
                with_commas(r.info.numel()).c_str(), human_bytes(r.info.nbytes()).c_str(),
                form.empty() ? "" : ("  " + form).c_str());
    total += r.info.nbytes();
    params += r.info.numel();
  }
  std::printf("%s, %s elements, %s (%s)\n", count_of(selected.size(), "tensor", "tensors").c_str(),
              with_commas(params).c_str(), human_bytes(total).c_str(), path.empty() ? "root" : path.c_str());
  return 0;
}

int cmd_verify(const std::string& file, const Common& c) {
  std::vector<std::string> problems;
  std::unique_ptr<torch::Checkpoint> ck;
  try {
    ck = torch::Checkpoint::open(Env::Default(), file);
  } catch (const FormatError& e) {
    problems.push_back(e.what());
  }
  size_t records = 0, tensors = 0;
  if (ck) {
    if (const auto* zip = ck->zip()) {
      for (const auto& r : zip->records()) {
        ++records;
        try {
          uint32_t crc = zip->compute_crc(r);
          if (crc != r.crc32) {
            char buf[96];
            std::snprintf(buf, sizeof buf, "CRC-32 is %08x, the directory says %08x", crc, r.crc32);
            problems.push_back(file + ": record '" + r.name + "': " + buf);
          }
        } catch (const Error& e) {
          problems.push_back(e.what());
        }
      }
    }
    for (const auto& [key, s] : ck->storages()) {
      if (!s.present) {
        problems.push_back(file + ": storage '" + key + "' has no data record");
        continue;
      }
      if (s.record && s.record->size != s.nbytes())
        problems.push_back(file + ": record '" + s.record->name + "' holds " + std::to_string(s.record->size) +
                           " bytes; storage '" + key + "' of " + std::to_string(s.numel) + " " + s.dtype->name +
                           " needs " + std::to_string(s.nbytes()));
    }
    for (auto& p : torch::integrity_problems(*ck)) problems.push_back(std::move(p));
    // Every tensor in the graph.
    std::vector<const Node*> stack{ck->root()};
    std::set<const Node*> seen;
    while (!stack.empty()) {
      const Node* n = stack.back();
      stack.pop_back();
      if (!n || !seen.insert(n).second) continue;
      try {
        if (auto t = ck->tensor(n)) {
          ++tensors;
          for (const std::string& p : t->problems())
            problems.push_back(file + ": tensor on storage '" + (t->storage ? t->storage->key : "?") + "' " +
                               shape_text(t->shape) + ": " + p);
          if (t->outer != t->object) seen.insert(t->object);
          continue;
        }
      } catch (const Error& e) {
        problems.push_back(file + ": " + e.what());
        continue;
      }
      for (auto* x : {n->callable, n->args, n->kwargs, n->state, n->pid}) stack.push_back(x);
      for (const Node* x : n->items) stack.push_back(x);
      for (auto& [k, v] : n->entries) {
        stack.push_back(k);
        stack.push_back(v);
      }
    }
  }
  if (c.json) {
    json j = {{"file", file}, {"ok", problems.empty()}, {"records", records}, {"tensors", tensors},
              {"problems", problems}};
    std::cout << j.dump(2) << "\n";
  } else if (problems.empty()) {
    std::printf("%s: ok (%s, %s checked)\n", file.c_str(), count_of(records, "record", "records").c_str(),
                count_of(tensors, "tensor", "tensors").c_str());
  } else {
    for (const auto& p : problems) std::printf("%s\n", p.c_str());
    std::printf("%s: %zu problem%s found\n", file.c_str(), problems.size(), problems.size() == 1 ? "" : "s");
  }
  return problems.empty() ? 0 : 1;
}

}  // namespace

void register_inspect_commands(CLI::App& app, Context& ctx) {
  struct Args {
    Common common;
    std::string file, path, state;
    std::vector<std::string> match;
    int depth = 2, group = 0;
  };
  auto a = std::make_shared<Args>();
  auto file_arg = [&](CLI::App* sub) {
    sub->add_option("FILE", a->file, "checkpoint or .safetensors file ('-': standard input)")->required();
    sub->add_flag("--json", a->common.json, "machine-readable JSON output");
  };

  // A readable message for "--depth -1" (CLI11's range check prints DBL_MAX).
  CLI::Validator non_negative(
      [](std::string& v) {
        return !v.empty() && v.find_first_not_of("0123456789") == std::string::npos ? std::string()
                                                                                     : "must be a whole number >= 0";
      },
      "N>=0");

  auto* info = app.add_subcommand("info", "format, layout, top-level keys and state-dict totals");
  file_arg(info);
  info->callback([a, &ctx] { ctx.exit_code = is_dcp_folder(a->file) ? dcp_info(a->file, a->common)
                    : is_folder(a->file)   ? folder_info(a->file, a->common)
                                           : cmd_info(a->file, a->common); });

  auto* ls = app.add_subcommand("ls", "the object tree; PATH is '/'-separated keys and indexes");
  file_arg(ls);
  ls->add_option("PATH", a->path, "e.g. best_state/model or history/3/train");
  ls->add_option("--depth", a->depth, "levels to expand (default 2)")->check(non_negative);
  ls->callback([a, &ctx] { ctx.exit_code = cmd_ls(a->file, a->path, a->depth, a->common); });

  auto* tensors = app.add_subcommand("tensors", "one row per tensor of a state dict (default: the best state)");
  file_arg(tensors);
  tensors->add_option("--state", a->state, "path of the state dict");
  tensors->add_option("--match", a->match, "only tensors whose names match this glob (repeatable)");
  tensors->add_option("--group", a->group,
                      "sum tensors, parameters and bytes by the first N dot-separated name components")
      ->check(non_negative);
  tensors->callback([a, &ctx] {
    ctx.exit_code = is_dcp_folder(a->file) ? dcp_tensors(a->file, a->match, a->common)
                                           : cmd_tensors(a->file, a->state, a->match, a->group, a->common);
  });

  auto* verify = app.add_subcommand("verify", "check CRCs, storage sizes and tensor views; exit 1 on a problem");
  file_arg(verify);
  verify->callback([a, &ctx] { ctx.exit_code = is_dcp_folder(a->file) ? dcp_verify(a->file, a->common) : cmd_verify(a->file, a->common); });
}

}  // namespace ckpt::cli
