#include "api/format.h"

#include <charconv>

#include "util/python_number.h"

#include <cmath>
#include <cstdio>

#include "api/text_width.h"
#include "util/error.h"

namespace ckpt::api {

using pickle::Kind;
using pickle::Node;

std::string human_bytes(uint64_t n) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1000 && u < 4) {
    v /= 1000;
    ++u;
  }
  if (u == 0) return std::to_string(n) + " B";
  // std::to_chars with a precision prints as printf's "%.2f" does (the C
  // standard's definition of it), without printf's format parsing: the
  // tensors table calls this once a row.
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, 2);
  if (ec != std::errc()) return "?";  // cannot happen: 32 chars hold any uint64 in TB with 2 decimals
  return std::string(buf, end) + " " + units[u];
}

std::string with_commas(uint64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

namespace {

using pickle::class_name;

std::string short_str(const std::string& s) {
  std::string out = "'";
  size_t n = 0;
  for (char ch : s) {
    if (++n > 60) {
      out += "...";
      break;
    }
    if (ch == '\'') out += "\\'";
    else out += printable(std::string_view(&ch, 1));
  }
  return out + "'";
}

}  // namespace

std::string kind_name(const Node* n, const torch::Checkpoint& ck) {
  if (!n) return "None";
  if (n->kind != Kind::Object) return pickle::kind_name(n->kind);
  try {
    if (auto t = ck.tensor(n)) return t->is_parameter ? "Parameter" : "tensor";
  } catch (const Error&) {  // a malformed tensor is named by its class, as any object
  }
  if (n->is_instance_of("_codecs", "encode")) return "bytes";
  if (n->is_instance_of("__builtin__", "set") || n->is_instance_of("builtins", "set")) return "set";
  return class_name(n);
}

std::string describe(const Node* n, const torch::Checkpoint& ck) {
  if (!n) return "None";
  switch (n->kind) {
    case Kind::None: return "None";
    case Kind::Bool: return n->boolean ? "True" : "False";
    case Kind::Int: return n->is_big_int() ? "int (" + std::to_string(n->text.size() * 8) + "-bit)" : std::to_string(n->integer);
    case Kind::Float:
      if (std::isnan(n->real)) return "nan";
      if (std::isinf(n->real)) return n->real > 0 ? "inf" : "-inf";
      return python_float_repr(n->real);  // as Python prints it: 4.8, 160.0
    case Kind::Str:
      return n->text.size() > 60 ? "str (" + std::to_string(n->text.size()) + " bytes) " + short_str(n->text)
                                 : short_str(n->text);
    case Kind::Bytes:
    case Kind::ByteArray: return kind_name(n, ck) + " (" + std::to_string(n->text.size()) + " bytes)";
    case Kind::Tuple:
    case Kind::List:
    case Kind::Set:
    case Kind::FrozenSet: return kind_name(n, ck) + " (" + count_of(n->items.size(), "item", "items") + ")";
    case Kind::Dict: return "dict (" + count_of(n->entries.size(), "key", "keys") + ")";
    case Kind::Global: return "global " + n->text + "." + n->name;
    case Kind::PersId: return "persistent id";
    case Kind::Object: break;
  }
  if (auto t = ck.tensor(n)) {
    std::string form = t->form();
    return kind_name(n, ck) + " " + (t->dtype ? t->dtype->name : "?") + " " + shape_text(t->shape) +
           (form.empty() ? "" : " (" + form + ")");
  }
  std::string cls = kind_name(n, ck);
  if (n->is_instance_of("omegaconf.dictconfig", "DictConfig") ||
      n->is_instance_of("omegaconf.listconfig", "ListConfig")) {
    const Node* content = n->state ? pickle::get_item(n->state, "_content") : nullptr;
    if (content && content->kind == Kind::Dict)
      return cls + " (" + count_of(content->entries.size(), "key", "keys") + ")";
    if (content && content->kind == Kind::List)
      return cls + " (" + count_of(content->items.size(), "item", "items") + ")";
    return cls;
  }
  if (!n->entries.empty() || n->is_instance_of("collections", "OrderedDict"))
    return cls + " (" + count_of(n->entries.size(), "key", "keys") + ")";
  if (n->is_instance_of("collections", "defaultdict"))
    return cls + " (" + count_of(n->entries.size(), "key", "keys") + ")";
  if (!n->items.empty()) return cls + " (" + count_of(n->items.size(), "item", "items") + ")";
  return cls + " object";
}

const torch::DTypeInfo* dtype_option(const std::string& name) {
  std::string n = name.rfind("torch.", 0) == 0 ? name.substr(6) : name;
  if (n == "fp16") n = "float16";
  else if (n == "bf16") n = "bfloat16";
  else if (n == "fp32") n = "float32";
  return torch::from_name(n);
}

}  // namespace ckpt::api
