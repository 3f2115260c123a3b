#include "api/inspect.h"

#include <algorithm>
#include <cerrno>
#include <cmath>

#include <cstdio>
#include <set>
#include <unordered_map>

#include "api/checkpoint.h"
#include "api/format.h"
#include "audiocraft/operations.h"
#include "torch/integrity.h"
#include "torch/open_any.h"
#include "util/error.h"

namespace ckpt::api {

using pickle::Kind;
using pickle::Node;

namespace {

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

// State dicts (Opened::find_state_dict_paths) and the best state.
std::vector<StateDictSummary> find_state_dicts(const Opened& o) {
  std::vector<StateDictSummary> out;
  std::vector<std::string> paths = o.find_state_dict_paths();
  if (o.best_state && std::find(paths.begin(), paths.end(), *o.best_state) == paths.end()) paths.push_back(*o.best_state);
  for (const std::string& p : paths) {
    const Node* n = audiocraft::resolve_path(o.ck->root(), p);
    if (o.mapping_of(n)) out.push_back(summarize(o, p, n));
  }
  return out;
}

}  // namespace

InfoResult info(Env& env, const std::string& file) {
  Opened o = open_checkpoint(env, file);
  const torch::Checkpoint& ck = *o.ck;
  InfoResult r;
  r.file = file;
  r.file_size = o.file_size;
  r.format = o.safetensors ? "safetensors" : torch::to_string(ck.format());
  if (ck.format() == torch::Format::Zip && !o.safetensors) {
    r.dialect = torch::to_string(ck.dialect());
    r.archive = ck.archive_name();
  }
  r.pickle_bytes = ck.pickle_size();
  r.storages = ck.storages().size();
  if (ck.zip())
    for (const auto& rec : ck.zip()->records()) {
      bool known = !ck.zip()->file().prefers_few_reads() || ck.zip()->is_resolved(rec);
      r.records.push_back({rec.name, rec.size, rec.crc32,
                           known ? std::optional<uint64_t>(ck.zip()->data_offset(rec)) : std::nullopt});
    }
  r.layout = audiocraft::to_string(o.layout);
  std::string kind = audiocraft::describe_kind(ck.root(), o.layout, file);
  if (!kind.empty()) r.kind = kind;
  if (o.layout == audiocraft::Layout::Training) r.training_state = audiocraft::training_state_present(ck.root());
  r.best_state = o.best_state;
  if (auto* e = pickle::entries_of(ck.root()))
    for (auto& [k, v] : *e) r.keys.push_back({key_text(k), kind_name(v, ck), describe(v, ck)});
  r.state_dicts = find_state_dicts(o);
  r.rank_set = rank_set_of(env, file);
  return r;
}

InfoAny info_any(Env& env, const std::string& path) {
  if (is_dcp_folder(path)) return dcp_info(env, path);
  if (env.is_directory(path) && folder_checkpoint(env, path).empty()) return folder_info(env, path);
  return info(env, path);
}

namespace {

// Children of a node as ls shows them: the path language's
// (audiocraft::path_children), none for a tensor.
std::vector<std::pair<std::string, const Node*>> children(const Node* n, const torch::Checkpoint& ck) {
  std::vector<std::pair<std::string, const Node*>> out;
  if (!n || (n->kind == Kind::Object && ck.tensor(n))) return out;
  for (auto& [k, v] : audiocraft::path_children(n)) out.emplace_back(k, v);
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

void ls(Env& env, const std::string& file, const LsOptions& options, const std::function<void(const LsEntry&)>& visit) {
  Opened o = open_checkpoint(env, file);
  const torch::Checkpoint& ck = *o.ck;
  Node* start = audiocraft::resolve_path(ck.root(), options.path);
  if (!start) throw UsageError(file + ": no object at '" + options.path + "'" + path_hint(ck.root(), options.path));
  std::string base;
  for (auto& p : audiocraft::split_path(options.path)) base += (base.empty() ? "" : "/") + p;

  std::map<const Node*, std::string> first_path;
  struct Item { std::string key, path; const Node* n; int depth; uint64_t more; };
  std::vector<Item> stack{{base.empty() ? "/" : base, base, start, 0, 0}};
  while (!stack.empty()) {
    Item it = stack.back();
    stack.pop_back();
    LsEntry entry;
    entry.depth = it.depth;
    if (!it.n) {  // the note after a container's first kMaxChildrenShown children
      entry.path = it.path;
      entry.more = it.more;
      visit(entry);
      continue;
    }
    const Node* n = shown(it.n);
    if (shared_kind(n)) {
      auto [pos, fresh] = first_path.emplace(n, it.path);
      if (!fresh) entry.ref = pos->second;
    }
    entry.key = it.key;
    entry.path = it.path;
    entry.kind = kind_name(n, ck);
    entry.summary = describe(n, ck);
    entry.node = n;
    visit(entry);
    if (!entry.ref.empty() || it.depth >= options.depth) continue;
    auto kids = children(n, ck);
    if (kids.empty()) continue;
    // Output and memory stay bounded for a container with a million items.
    constexpr size_t kMaxChildrenShown = 10000;
    if (kids.size() > kMaxChildrenShown) {
      stack.push_back({"", it.path, nullptr, it.depth + 1, kids.size() - kMaxChildrenShown});
      kids.resize(kMaxChildrenShown);
    }
    for (auto i = kids.rbegin(); i != kids.rend(); ++i)
      stack.push_back({i->first, it.path.empty() ? i->first : it.path + "/" + i->first, i->second, it.depth + 1, 0});
  }
}

namespace {

// A scalar's value, typed as Python has it (None, bool, int, float, str);
// nullopt for anything else.
std::optional<Json> scalar_value(const pickle::Node* n) {
  if (!n) return std::nullopt;
  switch (n->kind) {
    case pickle::Kind::None: return Json(nullptr);
    case pickle::Kind::Bool: return Json(n->boolean);
    case pickle::Kind::Int:
      if (n->is_big_int()) return std::nullopt;
      return Json(n->integer);
    case pickle::Kind::Float:
      if (std::isnan(n->real)) return Json("nan");  // JSON has no nan or inf
      if (std::isinf(n->real)) return Json(n->real > 0 ? "inf" : "-inf");
      return Json(n->real);
    case pickle::Kind::Str: return Json(n->text);
    default: return std::nullopt;
  }
}

}  // namespace

LsNode ls_tree(Env& env, const std::string& file, const LsOptions& options) {
  // parents[d] is the latest node at depth d; its earlier siblings are complete.
  LsNode root;
  std::vector<LsNode*> parents;
  ls(env, file, options, [&](const LsEntry& e) {
    LsNode node;
    if (e.more) {
      node.path = e.path;
      node.kind = "more";
      node.summary = std::to_string(e.more) + " more";
      node.more = e.more;
    } else {
      node = {e.key, e.path, e.kind, e.summary, e.ref, 0, scalar_value(e.node), {}};
    }
    parents.resize(static_cast<size_t>(e.depth) + 1);
    if (e.depth == 0) {
      root = std::move(node);
      parents[0] = &root;
      return;
    }
    auto& siblings = parents[e.depth - 1]->children;
    siblings.push_back(std::move(node));
    parents[e.depth] = &siblings.back();
  });
  return root;
}

namespace {

// Name and Info are const& (copied from) or && (shape and stride moved).
template <class Name, class Info>
TensorEntry make_tensor_entry(Name&& name, Info&& t) {
  TensorEntry e;
  e.name = std::forward<Name>(name);
  e.dtype = t.dtype ? t.dtype->name : "?";
  e.numel = t.numel();
  e.nbytes = t.nbytes();
  e.storage_offset = t.storage_offset;
  if (t.storage) e.storage = t.storage->key;
  e.contiguous = t.is_contiguous();
  e.requires_grad = t.requires_grad;
  e.parameter = t.is_parameter;
  e.layout = torch::to_string(t.layout);
  e.form = t.form();
  if (t.layout != torch::TensorLayout::Strided && t.layout != torch::TensorLayout::Nested &&
      t.layout != torch::TensorLayout::Jagged) {
    e.nnz = t.nnz();
    if (t.layout == torch::TensorLayout::SparseCoo) e.coalesced = t.coalesced;
  }
  if (t.quantization) {
    const auto& q = *t.quantization;
    e.qscheme = q.scheme;
    if (q.per_channel()) e.axis = q.axis;
    else e.scale = q.scale, e.zero_point = q.zero_point;
  }
  if (t.is_meta) e.device = "meta";
  e.conj = t.conj;
  e.neg = t.neg;
  e.subclass = t.subclass;
  e.has_state = t.has_state;
  for (const auto& [part, p] : t.parts)
    e.parts[part] = {p.dtype ? p.dtype->name : "?", p.shape,
                     p.storage ? std::optional<std::string>(p.storage->key) : std::nullopt};
  // Last: everything above may read them.
  e.shape = std::forward<Info>(t).shape;
  e.stride = std::forward<Info>(t).stride;
  return e;
}

}  // namespace

TensorEntry tensor_entry(const std::string& name, const torch::TensorInfo& t) { return make_tensor_entry(name, t); }

TensorsResult tensors(Env& env, const std::string& file, const TensorsOptions& options) {
  Opened o = open_checkpoint(env, file);
  TensorsResult r;
  r.state = o.state_path_or_best(options.state);
  r.state_note = o.state_note(options.state);
  std::vector<TensorRow> rows = o.tensors_of(o.state_dict(r.state));
  r.rows.reserve(rows.size());
  for (TensorRow& row : rows)
    if (matches_any(options.match, row.name)) r.rows.push_back(make_tensor_entry(std::move(row.name), std::move(row.info)));
  return r;
}

TensorsAny tensors_any(Env& env, const std::string& path, const TensorsOptions& options) {
  if (is_dcp_folder(path)) return dcp_tensors(env, path, options.match);
  TensorsResult r = tensors(env, path, options);
  if (options.tree && options.group > 0) throw UsageError(option_name("tree") + " and " + option_name("group") + " are two views: give one");
  if (options.tree) return tensor_tree(r.rows, r.state);
  if (options.group > 0) return group_tensors(r.rows, options.group);
  return std::move(r.rows);
}

TensorTree tensor_tree(const std::vector<TensorEntry>& rows, const std::string& path) {
  TensorTree root;
  root.name = path;
  constexpr size_t kMaxDepth = 100;  // the JSON form nests one level per component
  std::unordered_map<std::string, size_t> index;
  for (const TensorEntry& r : rows) {
    if (size_t parts = size_t(std::count(r.name.begin(), r.name.end(), '.')) + 1; parts > kMaxDepth)
      throw UsageError(option_name("tree") + ": tensor name '" + r.name.substr(0, 60) + "...' has " +
                       std::to_string(parts) + " components, more than " + std::to_string(kMaxDepth) + "; use " +
                       option_set("group", "N"));
    TensorTree* n = &root;
    auto add = [&](TensorTree* at) { at->parameters += r.numel, at->bytes += r.nbytes, ++at->tensors; };
    add(n);
    size_t start = 0;
    while (true) {
      size_t dot = r.name.find('.', start);
      std::string part = r.name.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      // The child's index among its siblings, by its full prefix.
      auto [it, fresh] = index.emplace(r.name.substr(0, dot), n->children.size());
      if (fresh) {
        n->children.emplace_back();
        n->children.back().name = part;
      }
      n = &n->children[it->second];
      add(n);
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    n->dtype = r.dtype;
    n->shape = r.shape;
  }
  return root;
}

namespace {

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

}  // namespace

std::vector<TensorGroup> group_tensors(const std::vector<TensorEntry>& rows, int depth) {
  std::vector<TensorGroup> groups;
  std::map<std::string, size_t> index;
  for (const TensorEntry& r : rows) {
    std::string g = name_prefix(r.name, depth);
    auto [it, fresh] = index.emplace(g, groups.size());
    if (fresh) groups.push_back({g});
    TensorGroup& gr = groups[it->second];
    ++gr.tensors;
    gr.parameters += r.numel;
    gr.bytes += r.nbytes;
  }
  return groups;
}

namespace {

void verify_records(const torch::Checkpoint& ck, const std::string& file, VerifyResult& r) {
  const auto* zip = ck.zip();
  if (!zip) return;
  for (const auto& rec : zip->records()) {
    ++r.records;
    try {
      uint32_t crc = zip->compute_crc(rec);
      if (crc != rec.crc32) {
        char buf[96];
        std::snprintf(buf, sizeof buf, "CRC-32 is %08x, the directory says %08x", crc, rec.crc32);
        r.problems.push_back(file + ": record '" + rec.name + "': " + buf);
      }
    } catch (const Error& e) {
      r.problems.push_back(e.what());
    }
  }
}

void verify_storages(const torch::Checkpoint& ck, const std::string& file, VerifyResult& r) {
  for (const auto& [key, s] : ck.storages()) {
    if (!s.present) {
      r.problems.push_back(file + ": storage '" + key + "' has no data record");
      continue;
    }
    if (s.record && s.record->size != s.nbytes())
      r.problems.push_back(file + ": record '" + s.record->name + "' holds " + std::to_string(s.record->size) +
                           " bytes; storage '" + key + "' of " + std::to_string(s.numel) + " " + s.dtype->name +
                           " needs " + std::to_string(s.nbytes()));
  }
}

// Every tensor in the graph.
void verify_tensors(const torch::Checkpoint& ck, const std::string& file, VerifyResult& r) {
  std::set<const Node*> wrapped;  // a Parameter's inner tensor: counted with its wrapper
  pickle::walk_graph(ck.root(), pickle::kAllEdges, [&](const Node* n) {
    if (wrapped.count(n)) return false;
    try {
      if (auto t = ck.tensor(n)) {
        ++r.tensors;
        for (const std::string& p : t->problems())
          r.problems.push_back(file + ": tensor on storage '" + (t->storage ? t->storage->key : "?") + "' " +
                               shape_text(t->shape) + ": " + p);
        if (t->outer != t->object) wrapped.insert(t->object);
        return false;
      }
    } catch (const Error& e) {
      r.problems.push_back(file + ": " + e.what());
      return false;
    }
    return true;
  });
}

}  // namespace

namespace {

// A safetensors file, a Hugging Face index or a folder holding either: the
// header (JSON, dtypes, shapes), data offsets tiling the data section and
// each tensor's size, as safetensors' own loader checks them (every shard of
// an index), then every tensor view.
bool is_safetensors_input(Env& env, const std::string& path) {
  if (path == "-") return false;
  std::string inner = torch::folder_checkpoint(env, path);
  std::string target = inner.empty() ? path : inner;
  if (target.size() > 5 && target.compare(target.size() - 5, 5, ".json") == 0) return true;
  if (env.is_directory(target)) return false;
  try {
    auto f = env.open_read(target);
    return torch::looks_like_safetensors(*f);
  } catch (const Error&) {
    return false;
  }
}

}  // namespace

VerifyResult verify(Env& env, const std::string& file) {
  VerifyResult r;
  r.file = file;
  std::unique_ptr<torch::Checkpoint> ck;
  const bool safetensors = is_safetensors_input(env, file);
  try {
    if (safetensors) ck = torch::open_any(env, file).ck;
    else ck = torch::Checkpoint::open(env, torch::folder_checkpoint(env, file).empty() ? file : torch::folder_checkpoint(env, file));
  } catch (const FormatError& e) {
    r.problems.push_back(e.what());
  } catch (const IoError& e) {
    if (e.error_number() == EISDIR) throw folder_given_error(env, file);
    throw;
  }
  if (ck && safetensors) {
    verify_tensors(*ck, file, r);
  } else if (ck) {
    verify_records(*ck, file, r);
    verify_storages(*ck, file, r);
    for (auto& p : torch::integrity_problems(*ck)) r.problems.push_back(std::move(p));
    verify_tensors(*ck, file, r);
  }
  r.ok = r.problems.empty();
  return r;
}

VerifyAny verify_any(Env& env, const std::string& path) {
  if (is_dcp_folder(path)) return dcp_verify(env, path);
  return verify(env, path);
}

}  // namespace ckpt::api
