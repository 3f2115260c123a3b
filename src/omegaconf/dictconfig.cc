// The DictConfig view of a pickle graph. Walks are iterative (explicit
// stacks) and refuse a config node met twice, so a hostile graph with cycles
// through _content cannot loop.
#include "omegaconf/dictconfig.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <unordered_map>
#include <unordered_set>

#include "omegaconf/resolve.h"
#include "omegaconf/select.h"
#include "omegaconf/yaml.h"
#include "pickle/text.h"
#include "util/error.h"
#include "util/suggest.h"

namespace ckpt::omegaconf {
namespace {

using pickle::Graph;
using pickle::How;
using pickle::Kind;
using pickle::Node;
using pickle::class_name;
using pickle::key_text;

bool is_dictconfig(const Node* n) { return n && n->is_instance_of("omegaconf.dictconfig", "DictConfig"); }
bool is_listconfig(const Node* n) { return n && n->is_instance_of("omegaconf.listconfig", "ListConfig"); }

Node* state_get(const Node* obj, std::string_view name) {
  if (!obj || obj->kind != Kind::Object || !obj->state) return nullptr;
  return pickle::get_item(obj->state, name);
}

// An OmegaConf value node (AnyNode, IntegerNode, ...): an object whose state
// holds _val.
bool is_value_node(const Node* n) {
  if (!n || n->kind != Kind::Object || !n->state || !pickle::is_mapping(n->state)) return false;
  for (const auto& [k, v] : n->state->entries)
    if (k->is_str("_val")) return true;
  return false;
}

std::string join_path(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

Value scalar_value(const Node* n, const std::string& where) {
  switch (n->kind) {
    case Kind::None: return Value::null();
    case Kind::Bool: return Value::of_bool(n->boolean);
    case Kind::Int: {
      Value v = Value::of_int(n->integer);
      if (n->is_big_int()) {
        v.integer = 0;
        v.big_int = pickle::long_to_decimal(n->text);
      }
      return v;
    }
    case Kind::Float: return Value::of_float(n->real);
    case Kind::Str: return Value::of_str(n->text);
    default:
      throw FormatError("config key '" + where + "': value of unsupported type " +
                        (n->kind == Kind::Object ? class_name(n) : std::string("(pickle kind ") +
                                                                       std::to_string(static_cast<int>(n->kind)) + ")"));
  }
}

bool is_single_latin1_char(std::string_view s) {
  if (s.size() == 1) return true;
  if (s.size() == 2) {
    unsigned char a = static_cast<unsigned char>(s[0]), b = static_cast<unsigned char>(s[1]);
    return (a == 0xC2 || a == 0xC3) && (b & 0xC0) == 0x80;
  }
  return false;
}

// The objects CPython shares across a config: the interned attribute names
// used as state / metadata keys, the classes, and the str singletons ('' and
// one latin-1 character) that PyYAML's scanner returns from its cache.
class Shared {
 public:
  explicit Shared(Graph& g) : g_(g) {}

  Graph& graph() { return g_; }

  Node* name(std::string_view s) {
    auto it = names_.find(std::string(s));
    if (it != names_.end()) return it->second;
    Node* n = g_.str(s);
    names_.emplace(std::string(s), n);
    return n;
  }

  // Reuses the attribute-name strings an existing config already holds, so
  // that added nodes pickle as CPython's (BINGET of the interned name).
  void adopt_names(const Node* n) {
    const Node* meta = state_get(n, "_metadata");
    for (const Node* st : {n ? n->state : nullptr, meta ? meta->state : nullptr}) {
      if (!st || st->kind != Kind::Dict) continue;
      for (const auto& [k, v] : st->entries)
        if (k->kind == Kind::Str && !names_.count(k->text)) names_.emplace(k->text, k);
    }
  }

  Node* global(std::string_view module, std::string_view qualname) {
    std::string key = std::string(module) + "\n" + std::string(qualname);
    auto it = globals_.find(key);
    if (it != globals_.end()) return it->second;
    Node* n = g_.global(module, qualname);
    globals_.emplace(key, n);
    return n;
  }

  Node* str(std::string_view s) {
    if (!(s.empty() || is_single_latin1_char(s))) return g_.str(s);
    auto it = singletons_.find(std::string(s));
    if (it != singletons_.end()) return it->second;
    Node* n = g_.str(s);
    singletons_.emplace(std::string(s), n);
    return n;
  }

  Node* scalar(const Value& v) {
    switch (v.type) {
      case Value::Type::Null: return g_.none();
      case Value::Type::Bool: return g_.boolean(v.boolean);
      case Value::Type::Int: {
        if (v.big_int.empty()) return g_.integer(v.integer);
        Node* n = g_.make(Kind::Int);
        std::string err = pickle::parse_decimal(v.big_int, n->integer, n->text);
        if (!err.empty()) throw UsageError("integer " + v.big_int + ": " + err);
        return n;
      }
      case Value::Type::Float: return g_.real(v.real);
      case Value::Type::Str: return str(v.str);
      default: throw Error("Shared::scalar called with a container");
    }
  }

  Node* metadata(bool container, Value::Type type, Node* key) {
    Node* any = global("typing", "Any");
    Node* meta = g_.object(How::NewObj, container ? global("omegaconf.base", "ContainerMetadata")
                                                  : global("omegaconf.base", "Metadata"),
                           g_.tuple());
    Node* st = g_.dict();
    Node* object_type = !container ? g_.none()
                        : type == Value::Type::Seq ? global("__builtin__", "list")
                                                   : global("__builtin__", "dict");
    Node* cache = g_.object(How::Reduce, global("collections", "defaultdict"),
                            g_.tuple({global("__builtin__", "dict")}));
    st->entries = {{name("ref_type"), any},       {name("object_type"), object_type},
                   {name("optional"), g_.boolean(true)}, {name("key"), key},
                   {name("flags"), g_.dict()},    {name("flags_root"), g_.boolean(false)},
                   {name("resolver_cache"), cache}};
    if (container) {
      st->entries.emplace_back(name("key_type"), type == Value::Type::Seq ? global("__builtin__", "long") : any);
      st->entries.emplace_back(name("element_type"), any);
    }
    meta->state = st;
    return meta;
  }

 private:
  Graph& g_;
  std::unordered_map<std::string, Node*> names_;
  std::unordered_map<std::string, Node*> globals_;
  std::unordered_map<std::string, Node*> singletons_;
};

Node* key_node_for(Shared& sh, const Value& key, const std::string& where) {
  switch (key.type) {
    case Value::Type::Str: return sh.str(key.str);
    case Value::Type::Int:
    case Value::Type::Bool:
    case Value::Type::Float: return sh.scalar(key);
    default: throw UsageError("config key '" + where + "': keys must be strings, ints, floats or bools");
  }
}

// Builds the nodes for `v` (OmegaConf's _maybe_wrap / DictConfig / ListConfig
// construction) under `parent` with metadata key `key`.
Node* build_node(Shared& sh, const Value& v, Node* parent, Node* key, const std::string& where) {
  Graph& g = sh.graph();
  struct Task {
    const Value* v;
    Node* content;
    Node* obj;
    std::string path;
  };
  std::vector<Task> tasks;
  auto make = [&](const Value& x, Node* par, Node* k, const std::string& path) -> Node* {
    Node* obj;
    Node* st = g.dict();
    if (x.is_container()) {
      bool seq = x.type == Value::Type::Seq;
      obj = g.object(How::NewObj, seq ? sh.global("omegaconf.listconfig", "ListConfig")
                                      : sh.global("omegaconf.dictconfig", "DictConfig"),
                     g.tuple());
      Node* content = seq ? g.list() : g.dict();
      st->entries = {{sh.name("_metadata"), sh.metadata(true, x.type, k)},
                     {sh.name("_parent"), par ? par : g.none()},
                     {sh.name("_content"), content}};
      tasks.push_back({&x, content, obj, path});
    } else {
      obj = g.object(How::NewObj, sh.global("omegaconf.nodes", "AnyNode"), g.tuple());
      st->entries = {{sh.name("_metadata"), sh.metadata(false, x.type, k)},
                     {sh.name("_parent"), par ? par : g.none()},
                     {sh.name("_val"), sh.scalar(x)}};
    }
    obj->state = st;
    return obj;
  };
  Node* root = make(v, parent, key, where);
  while (!tasks.empty()) {
    Task t = std::move(tasks.back());
    tasks.pop_back();
    if (t.v->type == Value::Type::Seq) {
      for (size_t i = 0; i < t.v->seq.size(); ++i)
        t.content->items.push_back(make(t.v->seq[i], t.obj, g.integer(static_cast<int64_t>(i)),
                                        join_path(t.path, std::to_string(i))));
    } else {
      for (const auto& [k, x] : t.v->map) {
        std::string path = join_path(t.path, k.type == Value::Type::Str ? k.str : "?");
        Node* kn = key_node_for(sh, k, path);
        t.content->entries.emplace_back(kn, make(x, t.obj, kn, path));
      }
    }
  }
  return root;
}

// ------------------------------------------------- value node conversion

bool is_special_string(const Value& v) {
  return v.type == Value::Type::Str && (v.str == "???" || v.str.find("${") != std::string::npos);
}

std::string describe(const Value& v) {
  switch (v.type) {
    case Value::Type::Null: return "None";
    case Value::Type::Bool: return v.boolean ? "True" : "False";
    case Value::Type::Int: return v.big_int.empty() ? std::to_string(v.integer) : v.big_int;
    case Value::Type::Float: return detail::python_float_repr(v.real);
    case Value::Type::Str: return "'" + v.str + "'";
    case Value::Type::Map: return "a dict";
    case Value::Type::Seq: return "a list";
  }
  return "?";
}

std::string ascii_strip(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\n\r\f\v");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t\n\r\f\v");
  return std::string(s.substr(b, e - b + 1));
}

std::optional<Value> python_int(const std::string& s) {
  if (!detail::python_int_accepts(s)) return std::nullopt;
  std::string t;
  for (char c : ascii_strip(s))
    if (c != '_') t.push_back(c);
  if (!t.empty() && t[0] == '+') t.erase(0, 1);
  Value v = Value::of_int(0);
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v.integer);
  if (ec != std::errc() || p != t.data() + t.size()) {
    // Normalize through the pickle codec (drops leading zeros).
    int64_t small = 0;
    std::string big;
    if (!pickle::parse_decimal(t, small, big).empty()) return std::nullopt;
    v.integer = 0;
    v.big_int = pickle::long_to_decimal(big);
  }
  return v;
}

std::optional<double> python_float(const std::string& s) {
  if (!detail::python_float_accepts(s)) return std::nullopt;
  std::string t;
  for (char c : ascii_strip(s))
    if (c != '_') t.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  return std::strtod(t.c_str(), nullptr);  // strtod reads inf / infinity / nan like float()
}

double int_to_double(const Value& v) {
  return v.big_int.empty() ? static_cast<double>(v.integer) : std::strtod(v.big_int.c_str(), nullptr);
}

// OmegaConf's validate_and_convert for the node class; throws UsageError.
Value convert_for(const std::string& cls, const Value& v, const std::string& where) {
  auto fail = [&]() -> Value {
    throw UsageError("config key '" + where + "': cannot assign " + describe(v) + " to " + cls);
  };
  if (cls == "AnyNode") return v;
  if (cls == "IntegerNode") {
    if (v.type == Value::Type::Int) return v;
    if (v.type == Value::Type::Str)
      if (auto i = python_int(v.str)) return *i;
    return fail();
  }
  if (cls == "FloatNode") {
    if (v.type == Value::Type::Float) return v;
    if (v.type == Value::Type::Int) return Value::of_float(int_to_double(v));
    if (v.type == Value::Type::Str)
      if (auto d = python_float(v.str)) return Value::of_float(*d);
    return fail();
  }
  if (cls == "BooleanNode") {
    if (v.type == Value::Type::Bool) return v;
    if (v.type == Value::Type::Int) return Value::of_bool(!(v.big_int.empty() && v.integer == 0));
    if (v.type == Value::Type::Str) {
      if (auto i = python_int(v.str)) return Value::of_bool(!(i->big_int.empty() && i->integer == 0));
      std::string l;
      for (char c : v.str) l.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
      if (l == "yes" || l == "y" || l == "on" || l == "true") return Value::of_bool(true);
      if (l == "no" || l == "n" || l == "off" || l == "false") return Value::of_bool(false);
    }
    return fail();
  }
  if (cls == "StringNode") {
    switch (v.type) {
      case Value::Type::Str: return v;
      case Value::Type::Bool: return Value::of_str(v.boolean ? "True" : "False");
      case Value::Type::Int: return Value::of_str(describe(v));
      case Value::Type::Float: return Value::of_str(detail::python_float_repr(v.real));
      default: return fail();
    }
  }
  return fail();  // EnumNode, BytesNode, PathNode, unknown classes
}

// ------------------------------------------------- navigation

struct Slot {
  Node* container = nullptr;  // DictConfig / ListConfig
  Node* child = nullptr;      // nullptr when absent
  Node* key = nullptr;        // the dict key node (dict) ; nullptr for list
  size_t index = 0;           // list index
};

Node* content_of(Node* container, const std::string& where) {
  Node* c = state_get(container, "_content");
  if (!c) throw FormatError("config key '" + where + "': container without _content");
  return c;
}

std::optional<size_t> parse_index(const std::string& s) {
  size_t i = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), i);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return i;
}

Slot find_child(Node* container, const std::string& element, const std::string& where) {
  Slot slot;
  slot.container = container;
  Node* content = content_of(container, where);
  if (is_dictconfig(container)) {
    if (content->kind != Kind::Dict)
      throw UsageError("config key '" + where + "': the parent has no content (None or missing)");
    for (auto& [k, v] : content->entries)
      if (k->is_str(element)) {
        slot.child = v;
        slot.key = k;
        return slot;
      }
    if (auto i = parse_index(element))
      for (auto& [k, v] : content->entries)
        if (k->kind == Kind::Int && !k->is_big_int() && k->integer >= 0 && static_cast<size_t>(k->integer) == *i) {
          slot.child = v;
          slot.key = k;
          return slot;
        }
    return slot;
  }
  if (content->kind != Kind::List)
    throw UsageError("config key '" + where + "': the parent has no content (None or missing)");
  auto i = parse_index(element);
  if (!i) throw UsageError("config key '" + where + "': list index '" + element + "' is not a number");
  slot.index = *i;
  if (*i < content->items.size()) slot.child = content->items[*i];
  return slot;
}

void set_state(Graph& g, Node* obj, std::string_view name, Node* value) {
  for (auto& [k, v] : obj->state->entries)
    if (k->is_str(name)) {
      v = value;
      return;
    }
  pickle::set_item(g, obj->state, name, value);
}

// Replaces or fills the child at `slot` with `v`, the way OmegaConf's
// _set_item_impl does.
// `fresh`: a new node even where a value node could take the value (a merge
// puts the source's AnyNode in place of the destination's).
void assign(Shared& sh, Slot& slot, const std::string& element, const Value& v, const std::string& where,
            bool fresh = false) {
  Graph& g = sh.graph();
  Node* content = content_of(slot.container, where);
  auto place = [&](Node* node) {
    if (is_dictconfig(slot.container)) {
      if (slot.child) {
        for (auto& [k, c] : content->entries)
          if (k == slot.key) c = node;
      } else {
        content->entries.emplace_back(slot.key, node);
      }
    } else {
      if (!slot.child) throw UsageError("config key '" + where + "': list index out of range");
      content->items[slot.index] = node;
    }
    slot.child = node;
  };
  // The metadata key of a new node: for a new dict entry the same str object
  // as the dict key; for a replaced entry a fresh str, as in Python, where
  // the key comes from the caller while the dict keeps its old key object.
  Node* key = nullptr;
  if (is_dictconfig(slot.container)) {
    key = sh.str(element);
    if (!slot.key) slot.key = key;
  } else {
    Node* old_meta = state_get(slot.child, "_metadata");
    key = old_meta ? state_get(old_meta, "key") : nullptr;
    if (!key) key = g.integer(static_cast<int64_t>(slot.index));
  }
  if (v.is_container() || !slot.child || fresh) {
    place(build_node(sh, v, slot.container, key, where));
    return;
  }
  if (is_dictconfig(slot.child) || is_listconfig(slot.child)) {
    // An untyped container (ref_type Any) is replaced by an AnyNode, even for
    // None or an interpolation (OmegaConf 2.2 and 2.3 alike).
    Node* meta = state_get(slot.child, "_metadata");
    Node* ref = meta ? state_get(meta, "ref_type") : nullptr;
    if (ref && ref->is_global("typing", "Any")) {
      place(build_node(sh, v, slot.container, key, where));
      return;
    }
    if (v.type == Value::Type::Null || is_special_string(v)) {
      set_state(g, slot.child, "_content", sh.scalar(v));
      return;
    }
    // An untyped container becomes a value node, as _set_item_impl wraps it.
    place(build_node(sh, v, slot.container, key, where));
    return;
  }
  if (!is_value_node(slot.child))
    throw FormatError("config key '" + where + "': not an OmegaConf node (" + class_name(slot.child) + ")");
  std::string cls = class_name(slot.child);
  Value converted;
  if (is_special_string(v)) {
    converted = v;
  } else if (v.type == Value::Type::Null) {
    Node* meta = state_get(slot.child, "_metadata");
    Node* optional = meta ? state_get(meta, "optional") : nullptr;
    if (optional && optional->kind == Kind::Bool && !optional->boolean)
      throw UsageError("config key '" + where + "': cannot assign None to a non-optional " + cls);
    converted = v;
  } else {
    converted = convert_for(cls, v, where);
  }
  set_state(g, slot.child, "_val", sh.scalar(converted));
}

void remove_child(Slot& slot, const std::string& where) {
  Node* content = content_of(slot.container, where);
  if (is_dictconfig(slot.container)) {
    auto& e = content->entries;
    for (auto it = e.begin(); it != e.end(); ++it)
      if (it->first == slot.key) {
        e.erase(it);
        return;
      }
    return;
  }
  auto& items = content->items;
  items.erase(items.begin() + static_cast<std::ptrdiff_t>(slot.index));
  // Renumber the metadata keys of the later elements.
  for (size_t i = slot.index; i < items.size(); ++i) {
    Node* meta = state_get(items[i], "_metadata");
    Node* key = meta ? state_get(meta, "key") : nullptr;
    if (key && key->kind == Kind::Int) {
      key->integer = static_cast<int64_t>(i);
      key->text.clear();
    }
  }
}

std::string add_hint(const Override& o) {
  return "(use +" + o.key + "=... to add)";
}

// "did you mean 'optim.lr'? " for a key missing from a DictConfig: the
// closest of the container's keys, with the path to it; "" when none is close.
// `rest` is the part of the key below `element` ("lr" of 'optm.lr'), kept in
// the suggestion: 'optim.lr', not 'optim'.
std::string sibling_hint(Node* container, const std::string& element, const std::string& where,
                         const std::string& rest = "") {
  Node* content = state_get(container, "_content");
  if (!content || content->kind != Kind::Dict || !is_dictconfig(container)) return "";
  std::vector<std::string> keys;
  for (const auto& [k, v] : content->entries)
    if (k->kind == Kind::Str) keys.push_back(k->text);
  std::string m = closest_match(element, keys);
  if (m.empty()) return "";
  std::string prefix = where.size() > element.size() ? where.substr(0, where.size() - element.size()) : "";
  return "did you mean '" + prefix + m + (rest.empty() ? "" : "." + rest) + "'? ";
}

// The key elements of `o` after element i, joined with dots.
std::string rest_of(const Override& o, size_t i) {
  std::string rest;
  for (size_t j = i + 1; j < o.path.size(); ++j) rest += (rest.empty() ? "" : ".") + o.path[j];
  return rest;
}

// "; did you mean 'optim.lr'?" for an override whose key is missing: the
// closest key at the first missing element; "" when none is close.
std::string missing_hint(Node* config, const Override& o) {
  Node* cur = config;
  std::string where;
  for (size_t i = 0; i < o.path.size(); ++i) {
    where = join_path(where, o.path[i]);
    Slot slot;
    try {
      slot = find_child(cur, o.path[i], where);
    } catch (const Error&) {
      return "";
    }
    if (!slot.child) {
      std::string hint = sibling_hint(cur, o.path[i], where, rest_of(o, i));
      return hint.empty() ? "" : "; " + hint.substr(0, hint.size() - 1);
    }
    if (!is_config_node(slot.child)) return "";
    cur = slot.child;
  }
  return "";
}

}  // namespace


bool is_config_node(const pickle::Node* n) { return is_dictconfig(n) || is_listconfig(n); }

Value to_value(const pickle::Node* config) {
  if (!is_config_node(config) && !is_value_node(config))
    throw FormatError("not an OmegaConf DictConfig or ListConfig (" + class_name(config) + ")");
  struct Task {
    const Node* node;
    Value* out;
    std::string path;
    size_t depth;
  };
  // Value trees are copied and destroyed recursively: bound their depth as
  // the YAML parser does.
  constexpr size_t kMaxDepth = 512;
  Value root;
  std::vector<Task> tasks{{config, &root, "", 0}};
  std::unordered_set<const Node*> seen;
  while (!tasks.empty()) {
    Task t = std::move(tasks.back());
    tasks.pop_back();
    const Node* n = t.node;
    if (is_config_node(n)) {
      if (t.depth >= kMaxDepth)
        throw FormatError("config key '" + t.path + "': configs nested deeper than " + std::to_string(kMaxDepth) +
                          " levels");
      if (!seen.insert(n).second)
        throw FormatError("config key '" + t.path + "': a config node is reached twice (cycle or shared node)");
      const Node* content = state_get(n, "_content");
      if (!content) throw FormatError("config key '" + t.path + "': " + class_name(n) + " without _content");
      if (content->kind == Kind::None || content->kind == Kind::Str) {
        *t.out = scalar_value(content, t.path);
        continue;
      }
      if (is_dictconfig(n)) {
        if (content->kind != Kind::Dict) throw FormatError("config key '" + t.path + "': DictConfig _content is not a dict");
        *t.out = Value::empty_map();
        t.out->map.resize(content->entries.size());  // sized first: children's pointers stay valid
        for (size_t i = 0; i < content->entries.size(); ++i) {
          const auto& [k, c] = content->entries[i];
          std::string path = join_path(t.path, key_text(k));
          t.out->map[i].first = scalar_value(k, path);
          tasks.push_back({c, &t.out->map[i].second, path, t.depth + 1});
        }
      } else {
        if (content->kind != Kind::List) throw FormatError("config key '" + t.path + "': ListConfig _content is not a list");
        *t.out = Value::empty_seq();
        t.out->seq.resize(content->items.size());
        for (size_t i = 0; i < content->items.size(); ++i)
          tasks.push_back({content->items[i], &t.out->seq[i], join_path(t.path, std::to_string(i)), t.depth + 1});
      }
    } else if (is_value_node(n)) {
      *t.out = scalar_value(state_get(n, "_val"), t.path);
    } else {
      throw FormatError("config key '" + t.path + "': not an OmegaConf node (" + class_name(n) + ")");
    }
  }
  return root;
}

pickle::Node* build_dictconfig(pickle::Graph& g, const Value& v) {
  if (!v.is_container()) throw UsageError("build_dictconfig: the config must be a dict or a list");
  Shared sh(g);
  return build_node(sh, v, nullptr, g.none(), "");
}

namespace {

// OmegaConf's _get_flag: the node's own flag when set (not None), else its
// parent's, stopping at a flags_root node. `off` is a container whose struct
// flag is overridden to False (flag_override(root, "struct", False), what
// Hydra's + and ++ do around the assignment).
bool get_flag(const Node* n, std::string_view flag, const Node* off = nullptr) {
  for (size_t hops = 0; n && (is_config_node(n) || is_value_node(n)); ++hops) {
    if (hops > 100000) return false;  // a _parent cycle in a hostile file
    if (n == off) return false;
    const Node* meta = state_get(n, "_metadata");
    const Node* flags = meta ? state_get(meta, "flags") : nullptr;
    if (flags && flags->kind == Kind::Dict)
      for (const auto& [k, v] : flags->entries)
        if (k->is_str(flag) && v->kind != Kind::None) return v->kind == Kind::Bool ? v->boolean : true;
    const Node* root = meta ? state_get(meta, "flags_root") : nullptr;
    if (root && root->kind == Kind::Bool && root->boolean) return false;
    n = state_get(n, "_parent");
  }
  return false;
}

void check_writable(const Node* n, const std::string& where) {
  if (get_flag(n, "readonly"))
    throw UsageError("config key '" + where + "': the config is read-only (OmegaConf.set_readonly); " +
                     "OmegaConf and Hydra refuse to change it");
}

bool content_is(const Node* container, Kind k) {
  const Node* c = state_get(container, "_content");
  return c && c->kind == k;
}

class Updater {
 public:
  Updater(Shared& sh, const Override& o) : sh_(sh), o_(o) {}

  // OmegaConf.update(cfg, key, value, merge=True, force_add=force_add).
  void update(Node* config, const Value& v, bool force_add) {
    Node* cur = config;
    std::string where;
    for (size_t i = 0; i + 1 < o_.path.size(); ++i) {
      where = join_path(where, o_.path[i]);
      Slot slot = find_child(cur, o_.path[i], where);
      if (slot.child && is_config_node(slot.child)) {
        cur = slot.child;
        continue;
      }
      // root[key] = {} (struct lifted for + and ++).
      check_writable(cur, where);
      if (!slot.child) {
        if (is_listconfig(cur)) throw UsageError("config key '" + where + "': list index out of range");
        if (!force_add && get_flag(cur, "struct"))
          throw UsageError("config key '" + o_.key + "' not found (" +
                           sibling_hint(cur, o_.path[i], where, rest_of(o_, i)) + add_hint(o_).substr(1));
      }
      assign(sh_, slot, o_.path[i], Value::empty_map(), where);
      cur = slot.child;
    }
    const std::string& last = o_.path.back();
    Slot slot = find_child(cur, last, o_.key);
    const Node* off = force_add ? cur : nullptr;
    if (v.is_container() && slot.child && is_config_node(slot.child) &&
        (content_is(slot.child, Kind::Dict) || content_is(slot.child, Kind::List))) {
      merge(slot.child, v, off, o_.key);
      return;
    }
    set(slot, cur, last, v, off, o_.key);
  }

 private:
  void set(Slot& slot, Node* container, const std::string& element, const Value& v, const Node* off,
           const std::string& where) {
    check_writable(container, where);
    if (!slot.child) {
      if (is_listconfig(container))
        throw UsageError("config key '" + where + "': list index out of range (lists cannot grow by override)");
      if (get_flag(container, "struct", off))
        throw UsageError("config key '" + where + "' not found in a struct config (" +
                         sibling_hint(container, element, where) + add_hint(o_).substr(1));
    } else if (is_value_node(slot.child) && !v.is_container()) {
      check_writable(slot.child, where);  // _set_value on the node itself
    }
    assign(sh_, slot, element, v, where);
  }

  // BaseContainer._merge_with(value): dicts key by key, a list replaces the
  // list's elements.
  void merge(Node* dest, const Value& v, const Node* off, const std::string& where) {
    struct Task {
      Node* dest;
      const Value* v;
      std::string where;
    };
    std::vector<Task> tasks{{dest, &v, where}};
    while (!tasks.empty()) {
      Task t = std::move(tasks.back());
      tasks.pop_back();
      if (is_listconfig(t.dest)) {
        if (t.v->type != Value::Type::Seq)
          throw UsageError("config key '" + t.where + "': cannot merge a dict into a list");
        check_writable(t.dest, t.where);
        Node* content = content_of(t.dest, t.where);
        content->items.clear();
        Graph& g = sh_.graph();
        for (size_t i = 0; i < t.v->seq.size(); ++i)
          content->items.push_back(build_node(sh_, t.v->seq[i], t.dest, g.integer(static_cast<int64_t>(i)),
                                              join_path(t.where, std::to_string(i))));
        continue;
      }
      if (t.v->type != Value::Type::Map)
        throw UsageError("config key '" + t.where + "': cannot merge a list into a dict");
      for (const auto& [k, x] : t.v->map) {
        if (k.type != Value::Type::Str && k.type != Value::Type::Int)
          throw UsageError("config key '" + t.where + "': merged keys must be strings or ints");
        std::string element = k.type == Value::Type::Str ? k.str : describe(k);
        std::string path = join_path(t.where, element);
        Slot slot = find_child(t.dest, element, path);
        if (slot.child && is_config_node(slot.child) && x.is_container() &&
            (content_is(slot.child, Kind::Dict) || content_is(slot.child, Kind::List))) {
          tasks.push_back({slot.child, &x, path});
          continue;
        }
        // An AnyNode is replaced through the container; a typed node converts.
        check_writable(t.dest, path);
        if (!slot.child && get_flag(t.dest, "struct", off))
          throw UsageError("config key '" + path + "' not found in a struct config (use +" + o_.key +
                           "=... or ++" + o_.key + "=... to add keys)");
        bool any = slot.child && is_value_node(slot.child) && class_name(slot.child) == "AnyNode";
        if (slot.child && is_value_node(slot.child) && !any) check_writable(slot.child, path);
        assign(sh_, slot, element, x, path, any);
      }
    }
  }

  Shared& sh_;
  const Override& o_;
};

// OmegaConf.select(cfg, key, throw_on_missing=False) is None: absent on the
// way, None, '???' (missing), or such a container.
bool select_is_none(Node* config, const Override& o) {
  auto none_or_missing = [](const Node* v) { return !v || v->kind == Kind::None || v->is_str("???"); };
  Node* cur = config;
  for (size_t i = 0; i < o.path.size(); ++i) {
    if (!is_config_node(cur)) return true;
    const Node* c = state_get(cur, "_content");
    if (!c || (c->kind != Kind::Dict && c->kind != Kind::List)) return true;
    Slot slot = find_child(cur, o.path[i], o.key);
    if (!slot.child) return true;
    cur = slot.child;
  }
  if (is_value_node(cur)) return none_or_missing(state_get(cur, "_val"));
  const Node* c = state_get(cur, "_content");
  return c && none_or_missing(c);
}

}  // namespace

void apply_override(pickle::Graph& g, pickle::Node* config, const Override& o) {
  if (!is_config_node(config)) throw FormatError("not an OmegaConf DictConfig or ListConfig");
  if (o.path.empty()) throw UsageError("override '" + o.text + "': empty key");
  Shared sh(g);
  sh.adopt_names(config);
  // Find a value node's names ('_val') near the root, for added value nodes.
  {
    std::vector<const Node*> todo{config};
    size_t budget = 100000;
    while (!todo.empty() && budget--) {
      const Node* n = todo.back();
      todo.pop_back();
      if (is_value_node(n)) {
        sh.adopt_names(n);
        break;
      }
      const Node* c = state_get(n, "_content");
      if (!c) continue;
      for (const auto& [k, v] : c->entries) todo.push_back(v);
      for (const Node* v : c->items) todo.push_back(v);
    }
  }
  // Hydra's ConfigLoaderImpl._apply_overrides_to_config.
  Updater updater(sh, o);
  switch (o.op) {
    case Override::Op::Set:
      updater.update(config, *o.value, false);
      return;
    case Override::Op::Add:
      if (!select_is_none(config, o) && !o.value->is_container())
        throw UsageError("config key '" + o.key + "' already exists (use ++" + o.key + "=... to override)");
      updater.update(config, *o.value, true);
      return;
    case Override::Op::ForceAdd:
      updater.update(config, *o.value, true);
      return;
    case Override::Op::Delete: {
      // Deletion runs under open_dict (struct lifted), not past read-only.
      if (select_is_none(config, o)) throw UsageError("config key '" + o.key + "' not found" + missing_hint(config, o));
      Node* cur = config;
      for (size_t i = 0; i + 1 < o.path.size(); ++i) cur = find_child(cur, o.path[i], o.key).child;
      Slot slot = find_child(cur, o.path.back(), o.key);
      if (o.value) {
        // Hydra compares with OmegaConf.select(cfg, key): interpolations resolved.
        Value current = to_value(slot.child);
        try {
          if (auto resolved = select_resolved(to_value(config), o.key)) current = *resolved;
        } catch (const UsageError&) {
          // unresolvable (a resolver, a dangling key): compare the text as stored
        }
        if (!(current == *o.value))
          throw UsageError("config key '" + o.key + "' is " + describe(current) + ", not " + describe(*o.value));
      }
      check_writable(cur, o.key);
      remove_child(slot, o.key);
      return;
    }
  }
}

void apply_override(Value& tree, const Override& o) {
  // A YAML xp.cfg is what OmegaConf.create(text) makes of it (no flags):
  // apply the override to that DictConfig and read it back.
  Graph g;
  Node* config = build_dictconfig(g, tree);
  apply_override(g, config, o);
  tree = to_value(config);
}


}  // namespace ckpt::omegaconf
