// show (api/show.h): a tensor's values, read from its storage alone (no
// other tensor is touched), printed flat in row-major order.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <vector>

#include "api/format.h"
#include "api/show.h"
#include "api/text_width.h"
#include "cli/commands.h"

namespace ckpt::cli {

using namespace api;

namespace {

struct ShowArgs {
  std::string file;
  ShowOptions options;
  bool json = false;
};

// A 2-D tensor as torch's repr lays it out: one row per line, columns
// aligned, a wide row as its first and last three values around '...'.
// --head K shows the rows that hold the first K values (0: every row).
int print_matrix(TensorValues& values, const torch::TensorInfo& t, int64_t head) {
  const uint64_t rows = static_cast<uint64_t>(t.shape[0]), cols = static_cast<uint64_t>(t.shape[1]);
  const uint64_t want = head == 0 ? rows : std::min<uint64_t>(rows, (static_cast<uint64_t>(head) + cols - 1) / cols);
  const bool cut = cols > 6;
  std::vector<std::vector<std::string>> shown;
  std::vector<std::string> row;
  size_t width = 1;
  for (uint64_t r = 0; r < want; ++r) {
    row.clear();
    std::vector<std::string> cells;
    uint64_t got = 0;
    while (got < cols) {
      cells.clear();
      size_t n = values.next(cells, static_cast<size_t>(std::min<uint64_t>(cols - got, 4096)));
      if (n == 0) break;
      for (uint64_t i = 0; i < n; ++i) {
        uint64_t c = got + i;
        if (!cut || c < 3 || c >= cols - 3) row.push_back(cells[i]);
      }
      got += n;
    }
    for (const auto& c : row) width = std::max(width, c.size());
    shown.push_back(row);
  }
  for (size_t r = 0; r < shown.size(); ++r) {
    std::string line = r == 0 ? "[[" : " [";
    for (size_t i = 0; i < shown[r].size(); ++i) {
      if (cut && i == 3) line += "..., ";
      line += std::string(width - shown[r][i].size(), ' ') + shown[r][i];
      if (i + 1 < shown[r].size()) line += ", ";
    }
    bool last = r + 1 == shown.size();
    line += last && want == rows ? "]]" : "],";
    std::printf("%s\n", line.c_str());
  }
  if (want < rows)
    std::printf(" ...]\n... %s more rows (--head 0 shows all)\n", with_commas(rows - want).c_str());
  return 0;
}

int cmd_show(Env& env, const ShowArgs& args) {
  if (args.json) {
    print_json(show(env, args.file, args.options));
    return 0;
  }
  const ShowOptions& a = args.options;  // text streams: --head 0 costs no memory per value
  TensorValues values(env, args.file, a.name, a.state, a.ignore_crc);
  if (!values.state_note().empty()) std::fprintf(stderr, "ckpt: note: %s\n", values.state_note().c_str());
  const torch::TensorInfo& t = values.info();
  const uint64_t numel = t.numel();
  const uint64_t shown = a.head == 0 ? numel : std::min<uint64_t>(numel, static_cast<uint64_t>(a.head));
  std::printf("%s: %s %s, %s\n", printable(a.name).c_str(), t.dtype->name, shape_text(t.shape).c_str(),
              count_of(numel, "element", "elements").c_str());
  if (t.shape.size() == 2 && t.shape[1] > 0 && numel > 0) return print_matrix(values, t, a.head);
  uint64_t done = 0;
  std::string line;
  std::vector<std::string> cells;
  while (done < shown) {
    cells.clear();
    size_t n = values.next(cells, static_cast<size_t>(std::min<uint64_t>(shown - done, 4096)));
    if (n == 0) break;
    for (const std::string& cell : cells) {
      if (!line.empty() && line.size() + cell.size() + 1 > 78) {
        std::printf("%s\n", line.c_str());
        line.clear();
      }
      line += (line.empty() ? "" : " ") + cell;
    }
    done += n;
  }
  if (!line.empty()) std::printf("%s\n", line.c_str());
  if (shown < numel) std::printf("... %s more (--head 0 shows all)\n", with_commas(numel - shown).c_str());
  return 0;
}

}  // namespace

void register_show_commands(CLI::App& app, Context& ctx) {
  auto a = std::make_shared<ShowArgs>();
  auto* show = app.add_subcommand("show", "print a tensor's values (row-major), reading that tensor alone");
  show->add_option("FILE", a->file, "checkpoint or .safetensors file ('-': standard input)")->required();
  show->add_option("NAME", a->options.name, "tensor name, as 'ckpt tensors' lists it")->required();
  show->add_option("--state", a->options.state, "path of the state dict (default: the best state)");
  show->add_flag("--json", a->json, "the values as JSON (strings, as printed) on standard output");
  show->add_flag("--ignore-crc", a->options.ignore_crc,
                 "read a tensor whose record fails its CRC-32 (damaged), with the bytes as they are");
  show->add_option("--head", a->options.head, "print the first K values (default 20; 0: all); of a matrix, the rows that hold them, as torch prints it")
      ->check(non_negative_whole_number());
  show->callback([a, &ctx] { ctx.exit_code = cmd_show(ctx.env, *a); });
}

}  // namespace ckpt::cli
