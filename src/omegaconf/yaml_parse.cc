// OmegaConf.create(text): libyaml's parser (events), with PyYAML's
// SafeLoader resolver and constructors plus OmegaConf's loader changes
// (duplicate keys an error, merge keys, bounded alias expansion and depth).
#include <yaml.h>

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "omegaconf/yaml.h"
#include "omegaconf/yaml_scalar.h"
#include "util/error.h"

namespace ckpt::omegaconf {
namespace {

// ------------------------------------------------------ the parser

constexpr size_t kMaxDepth = 512;
constexpr size_t kMaxAliasNodes = 1'000'000;

std::string where(const yaml_mark_t& m) {
  return "yaml: line " + std::to_string(m.line + 1) + ", column " + std::to_string(m.column + 1);
}

size_t count_nodes(const Value& v) {
  size_t n = 0;
  std::vector<const Value*> todo{&v};
  while (!todo.empty()) {
    const Value* x = todo.back();
    todo.pop_back();
    ++n;
    for (const auto& [k, c] : x->map) todo.push_back(&c), ++n;
    for (const auto& c : x->seq) todo.push_back(&c);
  }
  return n;
}

struct Anchored {
  Value value;
  Tag tag;
  size_t nodes;
};

struct Frame {
  Value v;
  Tag tag;
  std::string anchor;
  yaml_mark_t mark;
  bool have_key = false;
  Value key;
  Tag key_tag = Tag::Str;
  yaml_mark_t key_mark{};
  std::vector<std::pair<Value, Value>> merged;  // SafeConstructor.flatten_mapping
  std::vector<std::pair<Value, Value>> own;
  std::unordered_set<std::string> str_keys;     // OmegaConf's duplicate check
};

// Python dict semantics for the constructed mapping: a later value for an
// equal key replaces the earlier one, which keeps its position.
Value build_mapping(std::vector<std::pair<Value, Value>>&& merged, std::vector<std::pair<Value, Value>>&& own) {
  Value m = Value::empty_map();
  std::unordered_map<std::string, size_t> str_index;
  auto put = [&](Value&& k, Value&& v) {
    if (k.type == Value::Type::Str) {
      auto [it, inserted] = str_index.emplace(k.str, m.map.size());
      if (!inserted) {
        m.map[it->second].second = std::move(v);
        return;
      }
    } else {
      for (auto& kv : m.map)
        if (kv.first.type != Value::Type::Str && kv.first == k) {
          kv.second = std::move(v);
          return;
        }
    }
    m.map.emplace_back(std::move(k), std::move(v));
  };
  for (auto& [k, v] : merged) put(std::move(k), std::move(v));
  for (auto& [k, v] : own) put(std::move(k), std::move(v));
  return m;
}

class Parser {
 public:
  explicit Parser(std::string_view text) {
    if (!yaml_parser_initialize(&p_)) throw Error("yaml: cannot initialize libyaml parser");
    yaml_parser_set_input_string(&p_, reinterpret_cast<const unsigned char*>(text.data()), text.size());
  }
  ~Parser() { yaml_parser_delete(&p_); }
  Parser(const Parser&) = delete;
  Parser& operator=(const Parser&) = delete;

  std::optional<Value> run() {
    int documents = 0;
    while (true) {
      yaml_event_t ev;
      if (!yaml_parser_parse(&p_, &ev)) {
        std::string msg = where(p_.problem_mark) + ": " + (p_.problem ? p_.problem : "invalid YAML");
        if (p_.context) msg += " (" + std::string(p_.context) + ")";
        throw FormatError(msg);
      }
      std::unique_ptr<yaml_event_t, void (*)(yaml_event_t*)> guard(&ev, yaml_event_delete);
      switch (ev.type) {
        case YAML_STREAM_END_EVENT: return std::move(root_);
        case YAML_DOCUMENT_START_EVENT:
          if (++documents > 1) throw FormatError(where(ev.start_mark) + ": expected a single document in the stream");
          break;
        case YAML_SCALAR_EVENT: on_scalar(ev); break;
        case YAML_ALIAS_EVENT: on_alias(ev); break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT: on_start(ev); break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT: on_end(); break;
        default: break;
      }
    }
  }

 private:
  yaml_parser_t p_;
  std::vector<Frame> stack_;
  std::optional<Value> root_;
  std::unordered_map<std::string, Anchored> anchors_;
  std::unordered_set<std::string> open_anchors_;
  size_t alias_nodes_ = 0;

  static std::string_view cstr(const yaml_char_t* s) {
    return s ? std::string_view(reinterpret_cast<const char*>(s)) : std::string_view();
  }

  void on_scalar(const yaml_event_t& ev) {
    std::string_view text(reinterpret_cast<const char*>(ev.data.scalar.value), ev.data.scalar.length);
    std::string_view tag = cstr(ev.data.scalar.tag);
    std::string w = where(ev.start_mark);
    Tag t;
    if (tag.empty() || tag == "!") {
      t = ev.data.scalar.plain_implicit ? resolve_plain(text, true) : Tag::Str;
    } else if (tag == YAML_STR_TAG) {
      t = Tag::Str;
    } else if (tag == YAML_INT_TAG) {
      t = Tag::Int;
    } else if (tag == YAML_FLOAT_TAG) {
      t = Tag::Float;
    } else if (tag == YAML_BOOL_TAG) {
      t = Tag::Bool;
    } else if (tag == YAML_NULL_TAG) {
      t = Tag::Null;
    } else {
      throw FormatError(w + ": unsupported tag '" + std::string(tag) + "'");
    }
    Value v;
    if (t == Tag::Merge || t == Tag::ValueKey) {
      v = Value::of_str(std::string(text));
      // '=' is a str as a key (flatten_mapping); as a value SafeLoader has
      // no constructor for it.
      bool is_key = !stack_.empty() && stack_.back().v.type == Value::Type::Map && !stack_.back().have_key;
      if (!is_key) throw FormatError(w + ": could not determine a constructor for the tag 'tag:yaml.org,2002:" +
                                     (t == Tag::Merge ? "merge" : "value") + "'");
      if (t == Tag::ValueKey) t = Tag::Str;
    } else {
      v = construct(t, text, w);
    }
    add(std::move(v), t, cstr(ev.data.scalar.anchor), ev.start_mark);
  }

  void on_alias(const yaml_event_t& ev) {
    std::string name(cstr(ev.data.alias.anchor));
    auto it = anchors_.find(name);
    if (it == anchors_.end()) {
      if (open_anchors_.count(name))
        throw FormatError(where(ev.start_mark) + ": alias '*" + name + "' refers to a node that contains it");
      throw FormatError(where(ev.start_mark) + ": found undefined alias '" + name + "'");
    }
    alias_nodes_ += it->second.nodes;
    if (alias_nodes_ > kMaxAliasNodes)
      throw FormatError(where(ev.start_mark) + ": aliases expand to more than " + std::to_string(kMaxAliasNodes) +
                        " nodes (limit reached)");
    add(Value(it->second.value), it->second.tag, {}, ev.start_mark);
  }

  void on_start(const yaml_event_t& ev) {
    if (stack_.size() >= kMaxDepth)
      throw FormatError(where(ev.start_mark) + ": nesting deeper than " + std::to_string(kMaxDepth) + " levels");
    bool is_map = ev.type == YAML_MAPPING_START_EVENT;
    std::string_view tag = cstr(is_map ? ev.data.mapping_start.tag : ev.data.sequence_start.tag);
    std::string_view anchor = cstr(is_map ? ev.data.mapping_start.anchor : ev.data.sequence_start.anchor);
    if (!tag.empty() && tag != "!" && tag != (is_map ? YAML_MAP_TAG : YAML_SEQ_TAG))
      throw FormatError(where(ev.start_mark) + ": unsupported tag '" + std::string(tag) + "'");
    Frame f;
    f.v = is_map ? Value::empty_map() : Value::empty_seq();
    f.tag = is_map ? Tag::Map : Tag::Seq;
    f.anchor = anchor;
    f.mark = ev.start_mark;
    if (!f.anchor.empty()) open_anchors_.insert(f.anchor);
    stack_.push_back(std::move(f));
  }

  void on_end() {
    Frame f = std::move(stack_.back());
    stack_.pop_back();
    if (f.tag == Tag::Map) f.v = build_mapping(std::move(f.merged), std::move(f.own));
    if (!f.anchor.empty()) open_anchors_.erase(f.anchor);
    add(std::move(f.v), f.tag, f.anchor, f.mark);
  }

  void add(Value v, Tag tag, std::string_view anchor, const yaml_mark_t& mark) {
    if (!anchor.empty()) {
      size_t nodes = count_nodes(v);
      anchors_[std::string(anchor)] = Anchored{v, tag, nodes};
    }
    if (stack_.empty()) {
      root_ = std::move(v);
      return;
    }
    Frame& f = stack_.back();
    if (f.tag == Tag::Seq) {
      f.v.seq.push_back(std::move(v));
      return;
    }
    if (!f.have_key) {
      if (v.is_container())
        throw FormatError(where(mark) + ": found unhashable key (a mapping or list used as a key)");
      if (tag == Tag::Str) {
        if (!f.str_keys.insert(v.str).second)
          throw FormatError(where(mark) + ": found duplicate key " + v.str);
      }
      f.key = std::move(v);
      f.key_tag = tag;
      f.key_mark = mark;
      f.have_key = true;
      return;
    }
    f.have_key = false;
    if (f.key_tag == Tag::Merge) {
      if (v.type == Value::Type::Map) {
        for (auto& kv : v.map) f.merged.push_back(std::move(kv));
      } else if (v.type == Value::Type::Seq) {
        for (const auto& sub : v.seq)
          if (sub.type != Value::Type::Map)
            throw FormatError(where(mark) + ": expected a mapping for merging");
        for (size_t k = v.seq.size(); k-- > 0;)
          for (auto& kv : v.seq[k].map) f.merged.push_back(std::move(kv));
      } else {
        throw FormatError(where(mark) + ": expected a mapping or list of mappings for merging");
      }
      return;
    }
    f.own.emplace_back(std::move(f.key), std::move(v));
  }
};


}  // namespace

Value parse_yaml(std::string_view text) {
  Parser parser(text);
  std::optional<Value> root = parser.run();
  if (!root || root->type == Value::Type::Null) return Value::empty_map();
  if (root->type == Value::Type::Str) {
    // OmegaConf.create("abc") gives {"abc": None}.
    Value m = Value::empty_map();
    m.map.emplace_back(std::move(*root), Value::null());
    return m;
  }
  if (!root->is_container())
    throw FormatError("yaml: the document is a scalar, not a mapping or a list");
  return std::move(*root);
}

}  // namespace ckpt::omegaconf
