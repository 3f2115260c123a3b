// info, ls, tensors, verify: read-only commands (api/inspect.h), printed as
// text or JSON. A DCP folder or a folder of rank files goes to shard.h.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <optional>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "api/format.h"
#include "api/inspect.h"
#include "api/text_width.h"
#include "cli/commands.h"
#include "cli/shard.h"
#include "util/error.h"
#include "cli/terminal.h"

namespace ckpt::cli {

using json = nlohmann::ordered_json;
using namespace api;

namespace {

json info_json(const InfoResult& r) {
  json j;
  j["file"] = r.file;
  j["file_size"] = r.file_size;
  j["format"] = r.safetensors ? "safetensors" : torch::to_string(r.format);
  j["dialect"] = r.torch_zip ? json(r.dialect) : json(nullptr);
  j["archive"] = r.torch_zip ? json(r.archive) : json(nullptr);
  j["pickle_bytes"] = r.pickle_bytes;
  json recs = json::array();
  for (const auto& rec : r.records)
    recs.push_back({{"name", rec.name}, {"size", rec.size}, {"crc32", rec.crc32}, {"offset", rec.offset_known ? json(rec.offset) : json(nullptr)}});
  j["records"] = recs;
  j["layout"] = audiocraft::to_string(r.layout);
  j["kind"] = r.kind.empty() ? json(nullptr) : json(r.kind);
  j["best_state"] = r.best_state ? json(*r.best_state) : json(nullptr);
  json keys = json::array();
  for (const auto& k : r.keys) keys.push_back({{"key", k.key}, {"kind", k.kind}, {"summary", k.summary}});
  j["keys"] = keys;
  json sdj = json::array();
  for (const auto& s : r.state_dicts) {
    json by = json::object();
    for (auto& [d, b] : s.bytes_by_dtype) by[d] = b;
    sdj.push_back({{"path", s.path}, {"tensors", s.tensors}, {"parameters", s.parameters}, {"bytes", s.bytes},
                   {"bytes_by_dtype", by}});
  }
  j["state_dicts"] = sdj;
  if (r.rank_set)
    j["rank_set"] = {{"set", r.rank_set->set}, {"rank", r.rank_set->rank}, {"ranks", r.rank_set->ranks},
                     {"missing", r.rank_set->missing}};
  return j;
}

void print_records(const std::vector<InfoResult::Record>& records) {
  // Listed as people count (data/2 before data/10); --json keeps file order.
  std::vector<const InfoResult::Record*> rs;
  for (const auto& r : records) rs.push_back(&r);
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

void print_info(const InfoResult& r) {
  std::printf("file        %s (%s)\n", r.file.c_str(), human_bytes(r.file_size).c_str());
  if (r.safetensors)
    std::printf("format      safetensors, %zu tensors\n", r.state_dicts.empty() ? size_t{0} : r.state_dicts.front().tensors);
  else if (r.format == torch::Format::Zip && !r.records.empty())
    std::printf("format      zip, %s dialect, archive '%s', %zu records\n", r.dialect.c_str(), r.archive.c_str(),
                r.records.size());
  else
    std::printf("format      legacy (torch < 1.6), %zu storages\n", r.storages);
  if (!r.safetensors) std::printf("pickle      %s\n", human_bytes(r.pickle_bytes).c_str());
  std::printf("layout      %s\n", audiocraft::to_string(r.layout));
  if (!r.kind.empty()) std::printf("kind        %s\n", r.kind.c_str());
  if (r.rank_set) std::printf("rank set    %s\n", rank_set_text(*r.rank_set).c_str());
  std::printf("best state  %s\n", r.best_state ? (r.best_state->empty() ? "(the root)" : r.best_state->c_str()) : "none");
  if (!r.keys.empty()) {
    size_t w = 0;
    for (auto& k : r.keys) w = std::max(w, display_width(printable(k.key)));
    std::printf("keys\n");
    for (auto& k : r.keys) std::printf("  %s  %s\n", pad_right(printable(k.key), w).c_str(), k.summary.c_str());
  }
  if (!r.state_dicts.empty()) {
    std::printf("state dicts\n");
    for (const auto& s : r.state_dicts) {
      std::string by;
      for (auto& [d, b] : s.bytes_by_dtype) by += (by.empty() ? "" : ", ") + d + " " + human_bytes(b);
      std::printf("  %s: %s, %s parameters, %s\n", s.path.empty() ? "(root)" : printable(s.path).c_str(),
                  count_of(s.tensors, "tensor", "tensors").c_str(), with_commas(s.parameters).c_str(),
                  by.empty() ? "no data" : by.c_str());
    }
  }
  if (!r.training_state.empty()) {
    std::string keys;
    for (const auto& k : r.training_state) keys += (keys.empty() ? "" : ", ") + k;
    std::printf("training    %s\n"
                "            (a run that finds this file as its XP's checkpoint.th resumes them; continue_from=FILE\n"
                "            takes the best state only; to fine-tune from epoch 1: ckpt edit FILE -o OUT --for-finetune)\n",
                keys.c_str());
  }
  if (r.format == torch::Format::Zip && !r.records.empty()) print_records(r.records);
}

int cmd_info(Env& env, const std::string& file, const Common& c) {
  InfoResult r = info(env, file);
  if (c.json) std::cout << info_json(r).dump(2) << "\n";
  else print_info(r);
  return 0;
}

// A scalar's value, typed as Python has it (None, bool, int, float, str);
// nullopt for anything else.
std::optional<json> scalar_json(const pickle::Node* n) {
  if (!n) return std::nullopt;
  switch (n->kind) {
    case pickle::Kind::None: return json(nullptr);
    case pickle::Kind::Bool: return json(n->boolean);
    case pickle::Kind::Int:
      if (n->is_big_int()) return std::nullopt;
      return json(n->integer);
    case pickle::Kind::Float:
      if (std::isnan(n->real)) return json("nan");  // JSON has no nan or inf
      if (std::isinf(n->real)) return json(n->real > 0 ? "inf" : "-inf");
      return json(n->real);
    case pickle::Kind::Str: return json(n->text);
    default: return std::nullopt;
  }
}

int cmd_ls(Env& env, const std::string& file, const std::string& path, int depth, const Common& c) {
  // The JSON tree is built only when asked for: text output streams, so a
  // container with very many children costs no memory per child. parents[d]
  // is the latest entry at depth d; its earlier siblings are complete.
  json root_json;
  std::vector<json*> parents;
  ls(env, file, {path, depth}, [&](const LsEntry& e) {
    if (!c.json) {
      if (e.more)
        std::printf("%*s... %s more\n", e.depth * 2, "", with_commas(e.more).c_str());
      else
        std::printf("%*s%s: %s%s\n", e.depth * 2, "", printable(e.key).c_str(), e.ref.empty() ? e.summary.c_str() : "",
                    e.ref.empty() ? "" : ("-> /" + e.ref + " (same object)").c_str());
      return;
    }
    json entry;
    if (e.more) {
      entry = {{"more", e.more}};
    } else {
      entry = {{"key", e.key}, {"path", e.path}, {"kind", e.kind}, {"summary", e.summary}};
      if (!e.ref.empty()) entry["ref"] = e.ref;
      if (auto v = scalar_json(e.node)) entry["value"] = *v;
    }
    parents.resize(static_cast<size_t>(e.depth) + 1);
    if (e.depth == 0) {
      root_json = std::move(entry);
      parents[0] = &root_json;
      return;
    }
    json& children = (*parents[e.depth - 1])["children"];
    children.push_back(std::move(entry));
    parents[e.depth] = &children.back();
  });
  if (c.json) std::cout << root_json.dump(2) << "\n";
  return 0;
}

void print_groups(const std::vector<TensorRow>& rows, int depth, const std::string& path, const Common& c) {
  std::vector<TensorGroup> groups = group_tensors(rows, depth);
  if (c.json) {
    json out = json::array();
    for (const TensorGroup& g : groups)
      out.push_back({{"group", g.name}, {"tensors", g.tensors}, {"parameters", g.parameters}, {"bytes", g.bytes}});
    std::cout << out.dump(2) << "\n";
    return;
  }
  uint64_t total_params = 0, total_bytes = 0;
  for (const TensorGroup& g : groups) total_params += g.parameters, total_bytes += g.bytes;
  size_t w = 5;
  for (const TensorGroup& g : groups) w = std::max(w, display_width(printable(g.name)));
  if (size_t cols = output_columns(); cols && w + 50 > cols) w = std::max<size_t>(10, cols > 50 ? cols - 50 : 0);
  std::printf("%s  %8s  %15s  %10s  %6s\n", pad_right("group", w).c_str(), "tensors", "parameters", "bytes", "share");
  for (const TensorGroup& g : groups) {
    double share = total_params ? 100.0 * static_cast<double>(g.parameters) / static_cast<double>(total_params) : 0.0;
    std::printf("%s  %8llu  %15s  %10s  %5.1f%%\n", pad_right(fit_width(printable(g.name), w), w).c_str(),
                static_cast<unsigned long long>(g.tensors), with_commas(g.parameters).c_str(),
                human_bytes(g.bytes).c_str(), share);
  }
  std::printf("%s in %s, %s parameters, %s (%s)\n", count_of(rows.size(), "tensor", "tensors").c_str(),
              count_of(groups.size(), "group", "groups").c_str(), with_commas(total_params).c_str(),
              human_bytes(total_bytes).c_str(), path.empty() ? "root" : path.c_str());
}

json tensor_json(const TensorRow& r) {
  const auto& t = r.info;
  json row = {{"name", r.name},
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
              {"form", t.form()}};
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
  return row;
}

void print_tensor_table(const std::vector<TensorRow>& rows, const std::string& path) {
  // Widths in terminal columns; names cut in the middle only when the
  // terminal (COLUMNS) is too narrow for them.
  size_t w = 4, dw = 9;
  for (const TensorRow& r : rows) {
    w = std::max(w, display_width(printable(r.name)));
    if (r.info.dtype) dw = std::max(dw, std::strlen(r.info.dtype->name));
  }
  const size_t rest = 2 + dw + 2 + 20 + 2 + 12 + 2 + 10;
  if (size_t cols = output_columns(); cols && w + rest > cols) w = std::max<size_t>(10, cols > rest ? cols - rest : 0);
  std::printf("%s  %-*s  %-20s  %12s  %10s\n", pad_right("name", w).c_str(), static_cast<int>(dw), "dtype", "shape",
              "numel", "bytes");
  uint64_t total = 0, params = 0;
  for (const TensorRow& r : rows) {
    std::string form = r.info.form();
    std::printf("%s  %-*s  %-20s  %12s  %10s%s\n", pad_right(fit_width(printable(r.name), w), w).c_str(),
                static_cast<int>(dw), r.info.dtype ? r.info.dtype->name : "?", shape_text(r.info.shape).c_str(),
                with_commas(r.info.numel()).c_str(), human_bytes(r.info.nbytes()).c_str(),
                form.empty() ? "" : ("  " + form).c_str());
    total += r.info.nbytes();
    params += r.info.numel();
  }
  std::printf("%s, %s elements, %s (%s)\n", count_of(rows.size(), "tensor", "tensors").c_str(),
              with_commas(params).c_str(), human_bytes(total).c_str(), path.empty() ? "root" : path.c_str());
}

// The module tree (tensors --tree): one line per name component, with the
// parameters below it, as print(model) nests modules; a tensor's line has its
// dtype and shape. Children keep the order of their first tensor.
struct TreeNode {
  std::string name;
  uint64_t parameters = 0, bytes = 0;
  size_t tensors = 0;
  const TensorRow* row = nullptr;  // a tensor (leaf)
  std::vector<std::unique_ptr<TreeNode>> children;
  std::map<std::string, size_t> index;
};

TreeNode build_tree(const std::vector<TensorRow>& rows) {
  TreeNode root;
  constexpr size_t kMaxDepth = 100;  // the JSON form nests one level per component
  for (const TensorRow& r : rows) {
    if (size_t parts = size_t(std::count(r.name.begin(), r.name.end(), '.')) + 1; parts > kMaxDepth)
      throw UsageError("--tree: tensor name '" + printable(r.name.substr(0, 60)) + "...' has " + std::to_string(parts) +
                       " components, more than " + std::to_string(kMaxDepth) + "; use --group N");
    TreeNode* n = &root;
    auto add = [&](TreeNode* at) { at->parameters += r.info.numel(), at->bytes += r.info.nbytes(), ++at->tensors; };
    add(n);
    size_t start = 0;
    while (true) {
      size_t dot = r.name.find('.', start);
      std::string part = r.name.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      auto [it, fresh] = n->index.emplace(part, n->children.size());
      if (fresh) {
        n->children.push_back(std::make_unique<TreeNode>());
        n->children.back()->name = part;
      }
      n = n->children[it->second].get();
      add(n);
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    n->row = &r;
  }
  return root;
}

json tree_json(const TreeNode& n) {
  json j = {{"name", n.name}, {"tensors", n.tensors}, {"parameters", n.parameters}, {"bytes", n.bytes}};
  if (n.row) j["dtype"] = n.row->info.dtype ? n.row->info.dtype->name : "?", j["shape"] = n.row->info.shape;
  if (!n.children.empty()) {
    j["children"] = json::array();
    for (const auto& c : n.children) j["children"].push_back(tree_json(*c));
  }
  return j;
}

void print_tree(const std::vector<TensorRow>& rows, const std::string& path, const Common& c) {
  TreeNode root = build_tree(rows);
  if (c.json) {
    root.name = path;
    std::cout << tree_json(root).dump(2) << "\n";
    return;
  }
  // Iteratively (depth is the names' component count), parents first.
  struct Item {
    const TreeNode* n;
    size_t depth;
  };
  std::vector<Item> order, stack;
  for (auto it = root.children.rbegin(); it != root.children.rend(); ++it) stack.push_back({it->get(), 0});
  size_t w = 4;
  while (!stack.empty()) {
    Item i = stack.back();
    stack.pop_back();
    order.push_back(i);
    w = std::max(w, i.depth * 2 + display_width(printable(i.n->name)));
    for (auto it = i.n->children.rbegin(); it != i.n->children.rend(); ++it) stack.push_back({it->get(), i.depth + 1});
  }
  if (size_t cols = output_columns(); cols && w + 50 > cols) w = std::max<size_t>(10, cols > 50 ? cols - 50 : 0);
  std::printf("%s  %15s  %10s\n", pad_right("module", w).c_str(), "parameters", "bytes");
  for (const Item& i : order) {
    std::string label = std::string(i.depth * 2, ' ') + printable(i.n->name);
    std::string extra = i.n->row ? std::string("  ") + (i.n->row->info.dtype ? i.n->row->info.dtype->name : "?") +
                                       " " + shape_text(i.n->row->info.shape)
                                 : "  (" + count_of(i.n->tensors, "tensor", "tensors") + ")";
    std::printf("%s  %15s  %10s%s\n", pad_right(fit_width(label, w), w).c_str(), with_commas(i.n->parameters).c_str(),
                human_bytes(i.n->bytes).c_str(), extra.c_str());
  }
  std::printf("%s, %s parameters, %s (%s)\n", count_of(root.tensors, "tensor", "tensors").c_str(),
              with_commas(root.parameters).c_str(), human_bytes(root.bytes).c_str(), path.empty() ? "root" : path.c_str());
}

int cmd_tensors(Env& env, const std::string& file, const std::string& state, const std::vector<std::string>& match,
                int group, bool tree, const Common& c) {
  TensorsResult r = tensors(env, file, {state, match});
  if (!r.state_note.empty()) std::fprintf(stderr, "ckpt: note: %s\n", r.state_note.c_str());
  warn_if_nothing_matched(match, r.rows.size(), r.state);
  if (tree && group > 0) throw UsageError("--tree and --group are two views: give one");
  if (tree) {
    print_tree(r.rows, r.state, c);
  } else if (group > 0) {
    print_groups(r.rows, group, r.state, c);
  } else if (c.json) {
    json rows = json::array();
    for (const TensorRow& row : r.rows) rows.push_back(tensor_json(row));
    std::cout << rows.dump(2) << "\n";
  } else {
    print_tensor_table(r.rows, r.state);
  }
  return 0;
}

int cmd_verify(Env& env, const std::string& file, const Common& c) {
  VerifyResult r = verify(env, file);
  return print_verify(c, file, {{"records", r.records}, {"tensors", r.tensors}},
                      count_of(r.records, "record", "records") + ", " + count_of(r.tensors, "tensor", "tensors") +
                          " checked",
                      r.problems);
}

}  // namespace

void register_inspect_commands(CLI::App& app, Context& ctx) {
  struct Args {
    Common common;
    std::string file, path, state;
    std::vector<std::string> files;  // info FILE...
    std::vector<std::string> match;
    int depth = 2, group = 0;
    bool tree = false;
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

  auto* info = app.add_subcommand("info", "format, layout, top-level keys and state-dict totals (of each FILE)");
  info->add_option("FILE", a->files, "checkpoints, .safetensors files or folders ('-': standard input)")->required();
  info->add_flag("--json", a->common.json, "machine-readable JSON output (an array for several files)");
  info->callback([a, &ctx] {
    auto one = [&](const std::string& file) {
      return is_dcp_folder(file)            ? print_dcp_info(ctx.env, file, a->common)
             : ctx.env.is_directory(file) && folder_checkpoint(ctx.env, file).empty()
                 ? print_folder_info(ctx.env, file, a->common)
                                            : cmd_info(ctx.env, file, a->common);
    };
    if (a->files.size() == 1) {
      ctx.exit_code = one(a->files.front());
      return;
    }
    // Several files: each in turn (a blank line between), an error reported
    // and the next one shown; exit 2 when any failed.
    json all = json::array();
    int code = 0;
    for (size_t i = 0; i < a->files.size(); ++i) {
      const std::string& file = a->files[i];
      try {
        if (a->common.json) {
          if (ctx.env.is_directory(file) && folder_checkpoint(ctx.env, file).empty())
            throw UsageError(file + ": a folder: give folders to 'info --json' one at a time");
          all.push_back(info_json(api::info(ctx.env, file)));
          continue;
        }
        if (i) std::printf("\n");
        std::fflush(stdout);
        code = std::max(code, one(file));
      } catch (const Error& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "ckpt: error: %s\n", e.what());
        code = 2;
      }
    }
    if (a->common.json) std::cout << all.dump(2) << "\n";
    ctx.exit_code = code;
  });

  auto* ls = app.add_subcommand("ls", "the object tree; PATH is '/'-separated keys and indexes");
  file_arg(ls);
  ls->add_option("PATH", a->path, "e.g. best_state/model or history/3/train");
  ls->add_option("--depth", a->depth, "levels to expand (default 2)")->check(non_negative);
  ls->callback([a, &ctx] { ctx.exit_code = cmd_ls(ctx.env, a->file, a->path, a->depth, a->common); });

  auto* tensors = app.add_subcommand("tensors", "one row per tensor of a state dict (default: the best state)");
  file_arg(tensors);
  tensors->add_option("--state", a->state, "path of the state dict");
  tensors->add_option("--match", a->match, "only tensors whose names match this glob (repeatable)");
  tensors->add_option("--group", a->group,
                      "sum tensors, parameters and bytes by the first N dot-separated name components")
      ->check(non_negative);
  tensors->add_flag("--tree", a->tree,
                    "the module tree: one line per name component with the parameters below it, as print(model) "
                    "nests modules");
  tensors->callback([a, &ctx] {
    ctx.exit_code = is_dcp_folder(a->file) ? print_dcp_tensors(ctx.env, a->file, a->match, a->common)
                                           : cmd_tensors(ctx.env, a->file, a->state, a->match, a->group, a->tree,
                                                         a->common);
  });

  auto* verify = app.add_subcommand("verify", "check CRCs, storage sizes and tensor views; exit 1 on a problem");
  file_arg(verify);
  verify->callback([a, &ctx] {
    ctx.exit_code = is_dcp_folder(a->file) ? print_dcp_verify(ctx.env, a->file, a->common)
                                           : cmd_verify(ctx.env, a->file, a->common);
  });
}

}  // namespace ckpt::cli
