// show: a tensor's values, read from its storage alone (no other tensor is
// touched), printed flat in row-major order.
#include <CLI/CLI.hpp>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cli/commands.h"
#include "cli/format.h"
#include "cli/session.h"
#include "cli/text_width.h"
#include "torch/stats.h"
#include "torch/tensor_data.h"
#include "util/error.h"

namespace ckpt::cli {

namespace {

struct ShowArgs {
  std::string file, name, state;
  int64_t head = 20;
};

// The shortest decimal that reads back as the same value of the dtype
// (float32, float64); the small floats get the digits they hold.
std::string number(double v, torch::DType d = torch::DType::Float64) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[40];
  using torch::DType;
  if (d == DType::Float16 || d == DType::BFloat16 || d == DType::Float8E5M2 || d == DType::Float8E4M3FN) {
    int digits = d == DType::Float16 ? 5 : d == DType::BFloat16 ? 4 : 3;
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    return buf;
  }
  for (int p = 1; p <= 17; ++p) {
    std::snprintf(buf, sizeof buf, "%.*g", p, v);
    double back = std::strtod(buf, nullptr);
    if (d == DType::Float32 ? static_cast<float>(back) == static_cast<float>(v) : back == v) break;
  }
  return buf;
}

// One element as text: exact for 64-bit integers, float pairs for complex,
// hex bytes for quantized types.
std::string element_text(const torch::DTypeInfo& d, const char* p) {
  using torch::DType;
  switch (d.dtype) {
    case DType::Int64: {
      int64_t v;
      std::memcpy(&v, p, 8);
      return std::to_string(v);
    }
    case DType::UInt64: {
      uint64_t v;
      std::memcpy(&v, p, 8);
      return std::to_string(v);
    }
    case DType::Bool: return p[0] ? "True" : "False";
    case DType::Complex64:
    case DType::Complex128: {
      const auto& part = torch::info(d.dtype == DType::Complex64 ? DType::Float32 : DType::Float64);
      double re, im;
      torch::decode_to_double(part, p, &re, 1);
      torch::decode_to_double(part, p + part.element_size, &im, 1);
      return "(" + number(re, part.dtype) + (std::signbit(im) ? "-" : "+") + number(std::fabs(im), part.dtype) + "j)";
    }
    default: break;
  }
  if (torch::has_real_values(d)) {
    double v;
    torch::decode_to_double(d, p, &v, 1);
    return d.is_floating ? number(v, d.dtype) : std::to_string(static_cast<int64_t>(v));
  }
  std::string hex = "0x";
  for (uint32_t i = 0; i < d.element_size; ++i) {
    char b[4];
    std::snprintf(b, sizeof b, "%02x", static_cast<unsigned char>(p[d.element_size - 1 - i]));
    hex += b;
  }
  return hex;
}

int cmd_show(const ShowArgs& a) {
  Opened o = open_checkpoint(a.file);
  std::string path = a.state.empty() ? o.default_state_path() : a.state;
  const pickle::Node* sd = o.state_dict(path);
  const pickle::Node* value = nullptr;
  for (auto& [k, v] : *pickle::entries_of(sd))
    if (key_text(k) == a.name) value = v;
  if (!value) throw UsageError(a.file + ": no tensor '" + a.name + "' in '" + path + "' (see 'ckpt tensors')");
  auto t = o.ck->tensor(value);
  if (!t) throw UsageError(a.file + ": '" + a.name + "' in '" + path + "' is not a tensor (" + describe(value, *o.ck) + ")");
  if (!t->dtype) throw UsageError(a.file + ": tensor '" + a.name + "' has an unknown dtype");
  const uint64_t numel = t->numel();
  const uint64_t shown = a.head == 0 ? numel : std::min<uint64_t>(numel, static_cast<uint64_t>(a.head));
  std::printf("%s: %s %s, %s\n", printable(a.name).c_str(), t->dtype->name, shape_text(t->shape).c_str(),
              count_of(numel, "element", "elements").c_str());
  torch::ElementReader reader(*o.ck, *t, a.name);
  const size_t es = reader.element_size();
  std::string buf(4096 * es, '\0');
  uint64_t done = 0;
  std::string line;
  while (done < shown) {
    size_t n = reader.read(buf.data(), static_cast<size_t>(std::min<uint64_t>(shown - done, 4096)));
    if (n == 0) break;
    for (size_t i = 0; i < n; ++i) {
      std::string cell = element_text(*t->dtype, buf.data() + i * es);
      if (!line.empty() && line.size() + cell.size() + 1 > 78) {
        std::printf("%s\n", line.c_str());
        line.clear();
      }
      line += (line.empty() ? "" : " ") + cell;
    }
    done += n;
  }
  if (!line.empty()) std::printf("%s\n", line.c_str());
  if (shown < numel)
    std::printf("... %s more (--head 0 shows all)\n", with_commas(numel - shown).c_str());
  return 0;
}

}  // namespace

void register_show_commands(CLI::App& app, Context& ctx) {
  auto a = std::make_shared<ShowArgs>();
  auto* show = app.add_subcommand("show", "print a tensor's values (row-major), reading that tensor alone");
  show->add_option("FILE", a->file, "checkpoint or .safetensors file ('-': standard input)")->required();
  show->add_option("NAME", a->name, "tensor name, as 'ckpt tensors' lists it")->required();
  show->add_option("--state", a->state, "path of the state dict (default: the best state)");
  show->add_option("--head", a->head, "print the first K values (default 20; 0: all)")
      ->check(CLI::Range(int64_t{0}, INT64_MAX));
  show->callback([a, &ctx] { ctx.exit_code = cmd_show(*a); });
}

}  // namespace ckpt::cli
