// info, ls, tensors, verify: read-only commands (api/inspect.h), printed as
// text or JSON. A DCP folder or a folder of rank files goes to shard.h.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "api/format.h"
#include "api/inspect.h"
#include "api/text_width.h"
#include "cli/commands.h"
#include "cli/shard.h"
#include "cli/terminal.h"
#include "util/error.h"

namespace ckpt::cli {

using namespace api;

namespace {

void print_records(const std::vector<ZipRecord>& records) {
  // Listed as people count (data/2 before data/10); --json keeps file order.
  std::vector<const ZipRecord*> rs;
  for (const auto& r : records) rs.push_back(&r);
  // Only the first 8 are shown of more than 10: a partial sort, ties kept in
  // file order (rs holds pointers into records, so the address is the order),
  // puts the same records first as a stable sort of them all.
  const size_t shown_max = rs.size() > 10 ? 8 : rs.size();
  std::partial_sort(rs.begin(), rs.begin() + static_cast<std::ptrdiff_t>(shown_max), rs.end(), [](auto* x, auto* y) {
    if (natural_less(x->name, y->name)) return true;
    return !natural_less(y->name, x->name) && x < y;
  });
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

using cli::print_text;  // the folder forms (shard.h)

void print_text(const InfoResult& r) {
  std::printf("file        %s (%s)\n", r.file.c_str(), human_bytes(r.file_size).c_str());
  const bool safetensors = r.format == "safetensors", zip = r.format == "zip" && !r.records.empty();
  if (safetensors)
    std::printf("format      safetensors, %llu tensors\n",
                static_cast<unsigned long long>(r.state_dicts.empty() ? 0 : r.state_dicts.front().tensors));
  else if (zip)
    std::printf("format      zip, %s dialect, archive '%s', %zu records\n", r.dialect.value_or("").c_str(),
                r.archive.value_or("").c_str(), r.records.size());
  else
    std::printf("format      legacy (torch < 1.6), %llu storages\n", static_cast<unsigned long long>(r.storages));
  if (!safetensors) std::printf("pickle      %s\n", human_bytes(r.pickle_bytes).c_str());
  std::printf("layout      %s\n", r.layout.c_str());
  if (r.kind) std::printf("kind        %s\n", r.kind->c_str());
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
  if (zip) print_records(r.records);
}

int cmd_info(Env& env, const std::string& path, const Common& c) {
  InfoAny r = info_any(env, path);
  if (c.json) print_json(r);
  else std::visit([](const auto& alt) { print_text(alt); }, r);
  return 0;
}

// info FILE...: each in turn (a blank line between), an error reported and
// the next one shown; exit 2 when any failed. --json: an array.
int cmd_info_many(Env& env, const std::vector<std::string>& paths, const Common& c) {
  if (paths.size() == 1) return cmd_info(env, paths.front(), c);
  std::vector<InfoAny> all;
  int code = 0;
  for (size_t i = 0; i < paths.size(); ++i) {
    try {
      if (c.json) {
        all.push_back(info_any(env, paths[i]));
        continue;
      }
      if (i) std::printf("\n");
      std::fflush(stdout);
      code = std::max(code, cmd_info(env, paths[i], c));
    } catch (const Error& e) {
      std::fflush(stdout);
      std::fprintf(stderr, "ckpt: error: %s\n", cli_message(e.what()).c_str());
      code = 2;
    }
  }
  if (c.json) print_json(all);
  return code;
}

int cmd_ls(Env& env, const std::string& file, const LsOptions& options, const Common& c) {
  if (c.json) {  // the tree as data; text streams, so a huge container costs no memory per child
    print_json(ls_tree(env, file, options));
    return 0;
  }
  ls(env, file, options, [&](const LsEntry& e) {
    if (e.more)
      std::printf("%*s... %s more\n", e.depth * 2, "", with_commas(e.more).c_str());
    else
      std::printf("%*s%s: %s%s\n", e.depth * 2, "", printable(e.key).c_str(), e.ref.empty() ? e.summary.c_str() : "",
                  e.ref.empty() ? "" : ("-> /" + e.ref + " (same object)").c_str());
  });
  return 0;
}

void print_groups(const std::vector<TensorGroup>& groups, size_t rows, const std::string& path) {
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
  std::printf("%s in %s, %s parameters, %s (%s)\n", count_of(rows, "tensor", "tensors").c_str(),
              count_of(groups.size(), "group", "groups").c_str(), with_commas(total_params).c_str(),
              human_bytes(total_bytes).c_str(), path.empty() ? "root" : path.c_str());
}

// printf's "%-*s" / "%*s" into out, without printf's format parsing (a
// table of hundreds of rows spent most of its time there). Widths are in
// bytes and a string ends at its first NUL, as printf's %s reads them.
void append_padded(std::string& out, const std::string& s, size_t width, bool left) {
  std::string_view v(s.c_str());
  if (!left && v.size() < width) out.append(width - v.size(), ' ');
  out += v;
  if (left && v.size() < width) out.append(width - v.size(), ' ');
}

void print_tensor_table(const std::vector<TensorEntry>& rows, const std::string& path) {
  // Widths in terminal columns; names cut in the middle only when the
  // terminal (COLUMNS) is too narrow for them.
  size_t w = 4, dw = 9;
  std::vector<std::string> names;
  std::vector<size_t> widths;
  names.reserve(rows.size());
  widths.reserve(rows.size());
  for (const TensorEntry& r : rows) {
    names.push_back(printable(r.name));
    widths.push_back(display_width(names.back()));
    w = std::max(w, widths.back());
    dw = std::max(dw, r.dtype.size());
  }
  const size_t rest = 2 + dw + 2 + 20 + 2 + 12 + 2 + 10;
  if (size_t cols = output_columns(); cols && w + rest > cols) w = std::max<size_t>(10, cols > rest ? cols - rest : 0);
  std::printf("%s  %-*s  %-20s  %12s  %10s\n", pad_right("name", w).c_str(), static_cast<int>(dw), "dtype", "shape",
              "numel", "bytes");
  // The rows go out as one buffer: the same bytes as a printf per row.
  std::string out;
  out.reserve(rows.size() * (w + rest + 8));
  uint64_t total = 0, params = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const TensorEntry& r = rows[i];
    if (widths[i] <= w) {  // pad_right(fit_width(name, w), w) without measuring it twice more
      out += std::string_view(names[i].c_str());
      out.append(w - widths[i], ' ');
    } else {
      append_padded(out, pad_right(fit_width(names[i], w), w), 0, true);
    }
    out += "  ";
    append_padded(out, r.dtype, dw, true);
    out += "  ";
    append_padded(out, shape_text(r.shape), 20, true);
    out += "  ";
    append_padded(out, with_commas(r.numel), 12, false);
    out += "  ";
    append_padded(out, human_bytes(r.nbytes), 10, false);
    if (!r.form.empty()) append_padded(out, "  " + r.form, 0, true);
    out += '\n';
    total += r.nbytes;
    params += r.numel;
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::printf("%s, %s elements, %s (%s)\n", count_of(rows.size(), "tensor", "tensors").c_str(),
              with_commas(params).c_str(), human_bytes(total).c_str(), path.empty() ? "root" : path.c_str());
}

void print_tree(const TensorTree& root, const std::string& path) {
  // Iteratively (depth is the names' component count), parents first.
  struct Item {
    const TensorTree* n;
    size_t depth;
  };
  std::vector<Item> order, stack;
  for (auto it = root.children.rbegin(); it != root.children.rend(); ++it) stack.push_back({&*it, 0});
  size_t w = 4;
  while (!stack.empty()) {
    Item i = stack.back();
    stack.pop_back();
    order.push_back(i);
    w = std::max(w, i.depth * 2 + display_width(printable(i.n->name)));
    for (auto it = i.n->children.rbegin(); it != i.n->children.rend(); ++it) stack.push_back({&*it, i.depth + 1});
  }
  if (size_t cols = output_columns(); cols && w + 50 > cols) w = std::max<size_t>(10, cols > 50 ? cols - 50 : 0);
  std::printf("%s  %15s  %10s\n", pad_right("module", w).c_str(), "parameters", "bytes");
  for (const Item& i : order) {
    std::string label = std::string(i.depth * 2, ' ') + printable(i.n->name);
    std::string extra = i.n->shape ? "  " + i.n->dtype.value_or("?") + " " + shape_text(*i.n->shape)
                                   : "  (" + count_of(i.n->tensors, "tensor", "tensors") + ")";
    std::printf("%s  %15s  %10s%s\n", pad_right(fit_width(label, w), w).c_str(), with_commas(i.n->parameters).c_str(),
                human_bytes(i.n->bytes).c_str(), extra.c_str());
  }
  std::printf("%s, %s parameters, %s (%s)\n", count_of(root.tensors, "tensor", "tensors").c_str(),
              with_commas(root.parameters).c_str(), human_bytes(root.bytes).c_str(), path.empty() ? "root" : path.c_str());
}

int cmd_tensors(Env& env, const std::string& file, const TensorsOptions& options, const Common& c) {
  if (is_dcp_folder(file)) {
    auto rows = dcp_tensors(env, file, options.match);
    if (c.json) print_json(rows);
    else print_dcp_tensors(rows);
    return 0;
  }
  TensorsResult r = tensors(env, file, options);
  if (!r.state_note.empty()) std::fprintf(stderr, "ckpt: note: %s\n", r.state_note.c_str());
  warn_if_nothing_matched(options.match, r.rows.size(), r.state);
  if (options.tree && options.group > 0)
    throw UsageError(option_name("tree") + " and " + option_name("group") + " are two views: give one");
  if (options.tree) {
    TensorTree tree = tensor_tree(r.rows, r.state);
    if (c.json) print_json(tree);
    else print_tree(tree, r.state);
  } else if (options.group > 0) {
    auto groups = group_tensors(r.rows, options.group);
    if (c.json) print_json(groups);
    else print_groups(groups, r.rows.size(), r.state);
  } else if (c.json) {
    print_json(r.rows);
  } else {
    print_tensor_table(r.rows, r.state);
  }
  return 0;
}

int cmd_verify(Env& env, const std::string& file, const Common& c) {
  VerifyAny r = verify_any(env, file);
  if (c.json) print_json(r);
  else std::visit([](const auto& alt) { print_text(alt); }, r);
  return std::visit([](const auto& alt) { return alt.ok ? 0 : 1; }, r);
}

}  // namespace

CLI::Validator non_negative_whole_number() {
  return CLI::Validator(
      [](std::string& v) {
        return !v.empty() && v.find_first_not_of("0123456789") == std::string::npos ? std::string()
                                                                                     : "must be a whole number >= 0";
      },
      "N>=0");
}

CLI::Validator number() {
  return CLI::Validator(
      [](std::string& v) {
        char* end = nullptr;
        if (!v.empty()) std::strtod(v.c_str(), &end);
        return end && *end == '\0' ? std::string() : "must be a number (e.g. 1e-3)";
      },
      "NUMBER");
}

void register_inspect_commands(CLI::App& app, Context& ctx) {
  struct Args {
    Common common;
    std::string file;
    std::vector<std::string> files;  // info FILE...
    LsOptions ls;
    TensorsOptions tensors;
  };
  auto a = std::make_shared<Args>();
  auto file_arg = [&](CLI::App* sub) {
    sub->add_option("FILE", a->file, "checkpoint or .safetensors file ('-': standard input)")->required();
    sub->add_flag("--json", a->common.json, "machine-readable JSON output");
  };

  CLI::Validator non_negative = non_negative_whole_number();

  auto* info = app.add_subcommand("info", "format, layout, top-level keys and state-dict totals (of each FILE)");
  info->add_option("FILE", a->files, "checkpoints, .safetensors files or folders ('-': standard input)")->required();
  info->add_flag("--json", a->common.json, "machine-readable JSON output (an array for several files)");
  info->callback([a, &ctx] { ctx.exit_code = cmd_info_many(ctx.env, a->files, a->common); });

  auto* ls = app.add_subcommand("ls", "the object tree; PATH is '/'-separated keys and indexes");
  file_arg(ls);
  ls->add_option("PATH", a->ls.path, "e.g. best_state/model or history/3/train");
  ls->add_option("--depth", a->ls.depth, "levels to expand (default 2)")->check(non_negative);
  ls->callback([a, &ctx] { ctx.exit_code = cmd_ls(ctx.env, a->file, a->ls, a->common); });

  auto* tensors = app.add_subcommand("tensors", "one row per tensor of a state dict (default: the best state)");
  file_arg(tensors);
  tensors->add_option("--state", a->tensors.state, "path of the state dict");
  tensors->add_option("--match", a->tensors.match, "only tensors whose names match this glob (repeatable)");
  tensors->add_option("--group", a->tensors.group,
                      "sum tensors, parameters and bytes by the first N dot-separated name components")
      ->check(non_negative);
  tensors->add_flag("--tree", a->tensors.tree,
                    "the module tree: one line per name component with the parameters below it, as print(model) "
                    "nests modules");
  tensors->callback([a, &ctx] { ctx.exit_code = cmd_tensors(ctx.env, a->file, a->tensors, a->common); });

  auto* verify = app.add_subcommand("verify", "check CRCs, storage sizes and tensor views; exit 1 on a problem");
  file_arg(verify);
  verify->callback([a, &ctx] { ctx.exit_code = cmd_verify(ctx.env, a->file, a->common); });
}

}  // namespace ckpt::cli
