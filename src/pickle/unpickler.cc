#include "pickle/unpickler.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstring>
#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "pickle/marked_stack.h"
#include "pickle/opcodes.h"
#include "pickle/text.h"
#include "util/coding.h"
#include "util/error.h"

namespace ckpt::pickle {

namespace {

// key_hash, with each key's hash computed once per unpickling (CPython caches
// a str's hash too): a memoised 16 MiB key set thousands of times is hashed
// once, not once per insert. Tuples combine their items' cached hashes the
// way key_hash does (nested tuples by length), so equal keys hash equal.
using HashCache = std::unordered_map<const Node*, size_t>;
struct KeyHash {
  HashCache* cache = nullptr;
  size_t scalar(const Node* n) const {
    // Short keys cost less to hash than to look up: only long texts are cached.
    if (!cache || n->text.size() + n->name.size() < 256) return key_hash(n);
    auto [it, inserted] = cache->try_emplace(n, 0);
    if (inserted) it->second = key_hash(n);
    return it->second;
  }
  size_t operator()(const Node* n) const {
    if (n->kind != Kind::Tuple && n->kind != Kind::FrozenSet) return scalar(n);
    size_t h = n->items.size();
    for (const Node* c : n->items) {
      size_t ch = (c->kind == Kind::Tuple || c->kind == Kind::FrozenSet) ? c->items.size() : scalar(c);
      h = h * 1000003 ^ ch;
    }
    return h;
  }
};
struct KeyEq {
  bool operator()(const Node* a, const Node* b) const { return key_equal(a, b); }
};
// Key -> position in a dict's entries (or a set's items).
using KeyIndex = std::unordered_map<const Node*, size_t, KeyHash, KeyEq>;

// Below this many entries a linear scan beats building a hash index.
constexpr size_t kIndexThreshold = 16;

class Machine : private MarkedStack<Node*> {
 public:
  Machine(std::string_view data, const UnpickleOptions& options)
      : graph_(options.limits), in_(data, options.source) {}

  Graph run(size_t* end_offset) {
    for (;;) {
      Instruction ins = in_.next_fast();
      at_ = ins.offset;
      switch (ins.code) {  // the memo's opcodes (half of a checkpoint's) without step's dispatch
        case op::LONG_BINGET: memo_get(decode_fixed32(ins.arg.data())); continue;
        case op::LONG_BINPUT: memo_put(decode_fixed32(ins.arg.data())); continue;
        case op::BINGET: memo_get(static_cast<uint8_t>(ins.arg[0])); continue;
        case op::BINPUT: memo_put(static_cast<uint8_t>(ins.arg[0])); continue;
        case op::STOP:
          graph_.root = pop();
          if (end_offset) *end_offset = in_.pos();
          return std::move(graph_);
        default: break;
      }
      step(ins);
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const override { in_.fail(at_, what); }

  Node* none() { return none_ ? none_ : (none_ = graph_.none()); }
  Node* boolean(bool b) {
    Node*& slot = b ? true_ : false_;
    return slot ? slot : (slot = graph_.boolean(b));
  }

  Node* make_int_from_long(std::string_view bytes) {
    std::string big(bytes);
    int64_t small = 0;
    normalize_long(big, small);
    Node* n = graph_.integer(small);
    n->text = std::move(big);
    return n;
  }

  // Text of the STRING family: torch.load decodes it as UTF-8.
  Node* make_legacy_str(std::string_view raw, const char* opname) {
    if (!valid_utf8(raw, false)) fail(std::string(opname) + " argument is not valid UTF-8");
    return graph_.str(raw);
  }

  std::string utf8_line(std::string_view s, const char* what) {
    if (!valid_utf8(s, false)) fail(std::string(what) + " is not valid UTF-8");
    return std::string(s);
  }

  uint64_t memo_index_text(std::string_view s, const char* opname) {
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || s.empty())
      fail(std::string(opname) + " argument is not a memo index");
    return v;
  }

  // The memo: the dense indexes picklers write (0, 1, 2, ...) in a vector,
  // any index past twice the entries so far (plus a slack) in a map, so the
  // vector stays within 2 slots per entry (a hostile LONG_BINPUT 4e9 costs
  // one map entry, not a 32 GiB vector). An index is in the vector once the
  // vector reaches it; a map entry for it is then removed.
  static constexpr uint64_t kMemoSlack = 1024;
  void memo_put(uint64_t index) {
    Node* v = top();
    if (index < 2 * memo_count_ + kMemoSlack) {
      // Grown to the capacity it has (null slots are undefined indexes):
      // a resize per new index was a call and a fill each.
      if (index >= dense_memo_.size())
        dense_memo_.resize(std::max<size_t>(index + 1, dense_memo_.capacity()), nullptr);
      Node*& slot = dense_memo_[index];
      if (!slot && !(sparse_memo_.size() && sparse_memo_.erase(index))) ++memo_count_;
      slot = v;
      return;
    }
    if (sparse_memo_.insert_or_assign(index, v).second) ++memo_count_;
  }
  void memo_get(uint64_t index) {
    if (index < dense_memo_.size() && dense_memo_[index]) {
      push(dense_memo_[index]);
      return;
    }
    auto it = sparse_memo_.find(index);
    if (it == sparse_memo_.end()) fail("memo index " + std::to_string(index) + " undefined");
    push(it->second);
  }

  // Python raises TypeError for list / dict / set keys, also inside tuples.
  void require_hashable(const Node* key) {
    switch (key->kind) {  // a scalar key needs no work list
      case Kind::Tuple:
      case Kind::List:
      case Kind::Dict:
      case Kind::Set:
      case Kind::ByteArray: break;
      default: return;
    }
    std::vector<const Node*> todo{key};
    std::unordered_set<const Node*> seen;
    while (!todo.empty()) {
      const Node* n = todo.back();
      todo.pop_back();
      switch (n->kind) {
        case Kind::List:
        case Kind::Dict:
        case Kind::Set:
        case Kind::ByteArray:
          fail(std::string("unhashable ") + kind_name(n->kind) + " used as a dict key or set item");
        case Kind::Tuple:
          if (seen.insert(n).second) for_each_child(n, kItemEdges, [&](const Node* c) { todo.push_back(c); });
          break;
        default: break;
      }
    }
  }

  // Python dict semantics: an equal key keeps its position, takes the value.
  void set_entry(Node* target, Node* key, Node* value) {
    require_hashable(key);
    auto& entries = target->entries;
    auto idx = indexes_.find(target);
    if (idx == indexes_.end()) {
      if (entries.size() < kIndexThreshold) {
        if (key->kind == Kind::Str) {
          // A str key (a config's, a state dict's) equals only a str of the
          // same text: key_equal's answer without its calls.
          for (auto& kv : entries)
            if (kv.first == key || (kv.first->kind == Kind::Str && kv.first->text == key->text)) {
              kv.second = value;
              return;
            }
        } else {
          for (auto& kv : entries)
            if (key_equal(kv.first, key)) {
              kv.second = value;
              return;
            }
        }
        entries.emplace_back(key, value);
        return;
      }
      idx = indexes_.emplace(target, std::make_unique<KeyIndex>(kIndexThreshold * 2, KeyHash{&hash_cache_})).first;
      for (size_t i = 0; i < entries.size(); ++i) idx->second->emplace(entries[i].first, i);
    }
    auto [it, inserted] = idx->second->try_emplace(key, entries.size());
    if (inserted)
      entries.emplace_back(key, value);
    else
      entries[it->second].second = value;
  }

  // Python set semantics: an item equal to one already there is dropped.
  void add_to_set(Node* target, Node* item) {
    require_hashable(item);
    auto& items = target->items;
    auto idx = indexes_.find(target);
    if (idx == indexes_.end()) {
      if (items.size() < kIndexThreshold) {
        for (const Node* n : items)
          if (key_equal(n, item)) return;
        items.push_back(item);
        return;
      }
      idx = indexes_.emplace(target, std::make_unique<KeyIndex>(kIndexThreshold * 2, KeyHash{&hash_cache_})).first;
      for (size_t i = 0; i < items.size(); ++i) idx->second->emplace(items[i], i);
    }
    if (idx->second->try_emplace(item, items.size()).second) items.push_back(item);
  }

  Node* require_tuple(Node* n, const char* opname, const char* what) {
    if (n->kind != Kind::Tuple)
      fail(std::string(opname) + " " + what + " must be a tuple, not " + kind_name(n->kind));
    return n;
  }

  // The values are n pointers from `values` (on the value stack or in a
  // local array: no vector per APPENDS / SETITEMS).
  void append_items(Node* target, Node* const* values, size_t n, const char* opname) {
    if (target->kind != Kind::List && target->kind != Kind::Object)
      fail(std::string(opname) + " onto a " + kind_name(target->kind));
    target->items.insert(target->items.end(), values, values + n);
  }

  void set_items(Node* target, Node* const* kv, size_t n, const char* opname) {
    if (target->kind != Kind::Dict && target->kind != Kind::Object)
      fail(std::string(opname) + " onto a " + kind_name(target->kind));
    if (n % 2) fail(std::string(opname) + " with an odd number of items");
    // A mapping's first batch sizes its entries (later batches, e.g. 1,000
    // at a time, grow them as emplace_back does: no exact-size regrowth).
    if (target->entries.empty()) target->entries.reserve(n / 2);
    for (size_t i = 0; i < n; i += 2) set_entry(target, kv[i], kv[i + 1]);
  }

  // The key-value pairs a mapping constructor's argument gives (dict(x),
  // OrderedDict(x)): a dict's entries, or a list / tuple of 2-item lists or
  // tuples (Python 2's OrderedDict.__reduce__ writes [[key, value], ...]).
  // False for anything else (the call is then kept as it is).
  static bool constructor_pairs(const Node* src, std::vector<std::pair<Node*, Node*>>& out) {
    if (src->kind == Kind::Dict) {
      out = src->entries;
      return true;
    }
    if (src->kind != Kind::List && src->kind != Kind::Tuple) return false;
    for (const Node* p : src->items)
      if ((p->kind != Kind::List && p->kind != Kind::Tuple) || p->items.size() != 2) return false;
    for (const Node* p : src->items) out.emplace_back(p->items[0], p->items[1]);
    return true;
  }

  static bool is_builtin_dict(const Node* n) {
    return n->is_global("builtins", "dict") || n->is_global("__builtin__", "dict");
  }

  // REDUCE, with the one normalisation every reader relies on: a mapping
  // built from constructor arguments is the mapping the call makes, its
  // entries where SETITEMS would have put them (docs/FORMATS.md):
  //   dict(pairs)                     -> a dict
  //   OrderedDict(pairs)              -> OrderedDict() with the entries
  //   defaultdict(factory, pairs)     -> defaultdict(factory) with the entries
  //   copyreg._reconstructor(cls, dict, state)  (protocol 0/1 of a dict
  //     subclass)                     -> cls.__new__(cls) with state's entries
  // which is also what torch.save writes for the loaded object. Pairs of any
  // other form (or a duplicate key) behave as Python's constructor does; a
  // form the constructor would reject is left as the call it is.
  Node* reduce(Node* callable, Node* args) {
    if (callable->kind == Kind::Global) {
      const auto& a = args->items;
      std::vector<std::pair<Node*, Node*>> pairs;
      const bool od = callable->is_global("collections", "OrderedDict");
      const bool dd = callable->is_global("collections", "defaultdict");
      const bool d = is_builtin_dict(callable);
      Node* made = nullptr;
      if ((od || d) && a.size() == 1 && constructor_pairs(a[0], pairs)) {
        made = d ? graph_.dict() : graph_.object(How::Reduce, callable, graph_.tuple());
      } else if (dd && a.size() == 2 && constructor_pairs(a[1], pairs)) {
        made = graph_.object(How::Reduce, callable, graph_.tuple({a[0]}));
      } else if ((callable->is_global("copyreg", "_reconstructor") ||
                  callable->is_global("copy_reg", "_reconstructor")) &&
                 a.size() == 3 && a[0]->kind == Kind::Global && is_builtin_dict(a[1]) &&
                 constructor_pairs(a[2], pairs)) {
        made = graph_.object(How::NewObj, a[0], graph_.tuple());
      }
      if (made) {
        for (auto& [k, v] : pairs) set_entry(made, k, v);
        return made;
      }
    }
    return graph_.object(How::Reduce, callable, args);
  }

  Node* make_global(std::string_view module, std::string_view name) {
    check_global_name(module, name, [this](const std::string& what) { fail(what); });
    return graph_.global(utf8_line(module, "GLOBAL module name"), utf8_line(name, "GLOBAL name"));
  }

  void step(const Instruction& ins) {
    switch (ins.code) {
      case op::PROTO: {
        auto v = static_cast<uint8_t>(ins.arg[0]);
        if (v > 5) fail("unsupported pickle protocol " + std::to_string(v));
        break;
      }
      case op::FRAME: break;  // framing only groups opcodes
      case op::MARK: mark(); break;
      case op::POP: pop_or_unmark(); break;
      case op::POP_MARK: pop_mark(); break;
      case op::DUP: push(top()); break;

      case op::NONE: push(none()); break;
      case op::NEWTRUE: push(boolean(true)); break;
      case op::NEWFALSE: push(boolean(false)); break;
      case op::INT:
      case op::LONG: {
        int64_t small = 0;
        std::string big;
        int as_bool = -1;
        std::string err = parse_int_opcode_text(ins.arg, ins.code == op::LONG, small, big, as_bool);
        if (!err.empty()) fail(std::string(ins.code == op::LONG ? "LONG" : "INT") + ": " + err);
        if (as_bool >= 0) {
          push(boolean(as_bool == 1));
          break;
        }
        Node* n = graph_.integer(small);
        n->text = std::move(big);
        push(n);
        break;
      }
      case op::BININT: push(graph_.integer(static_cast<int32_t>(decode_fixed(ins.arg)))); break;
      case op::BININT1:
      case op::BININT2: push(graph_.integer(static_cast<int64_t>(decode_fixed(ins.arg)))); break;
      case op::LONG1:
      case op::LONG4: push(make_int_from_long(ins.arg)); break;
      case op::BINFLOAT: {
        uint64_t bits = 0;
        for (char c : ins.arg) bits = (bits << 8) | static_cast<uint8_t>(c);
        push(graph_.real(std::bit_cast<double>(bits)));
        break;
      }
      case op::FLOAT: {
        std::string_view t = ins.arg;
        if (!t.empty() && t[0] == '+') t.remove_prefix(1);
        double v = 0;
        auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
        if (ec != std::errc() || p != t.data() + t.size() || t.empty())
          fail("FLOAT argument is not a float");
        push(graph_.real(v));
        break;
      }

      case op::STRING: {
        std::string raw;
        std::string err = decode_string_literal(ins.arg, raw);
        if (!err.empty()) fail(err);
        push(make_legacy_str(raw, "STRING"));
        break;
      }
      case op::BINSTRING: push(make_legacy_str(ins.arg, "BINSTRING")); break;
      case op::SHORT_BINSTRING: push(make_legacy_str(ins.arg, "SHORT_BINSTRING")); break;
      case op::UNICODE: {
        std::string s;
        std::string err = decode_raw_unicode_escape(ins.arg, s);
        if (!err.empty()) fail("UNICODE: " + err);
        push(graph_.str(s));
        break;
      }
      case op::BINUNICODE:
      case op::SHORT_BINUNICODE:
      case op::BINUNICODE8:
        if (!valid_utf8(ins.arg, true))
          fail(std::string(opcode_name(ins.code)) + " argument is not valid UTF-8");
        push(graph_.str(ins.arg));
        break;
      case op::BINBYTES:
      case op::SHORT_BINBYTES:
      case op::BINBYTES8: push(graph_.bytes(ins.arg)); break;
      case op::BYTEARRAY8: {
        Node* n = graph_.make(Kind::ByteArray);
        n->text = ins.arg;
        push(n);
        break;
      }
      case op::NEXT_BUFFER:
      case op::READONLY_BUFFER:
        fail(std::string(opcode_name(ins.code)) + " (out-of-band buffers) is not supported");

      case op::EMPTY_TUPLE: push(graph_.tuple()); break;
      case op::TUPLE1:
      case op::TUPLE2:
      case op::TUPLE3: {
        size_t n = ins.code - op::TUPLE1 + 1;
        push(graph_.tuple(pop_n(n)));
        break;
      }
      case op::TUPLE: push(graph_.tuple(pop_mark())); break;
      case op::EMPTY_LIST: push(graph_.list()); break;
      case op::LIST: push(graph_.list(pop_mark())); break;
      case op::EMPTY_DICT: push(graph_.dict()); break;
      case op::DICT: {
        size_t m = pop_mark_in_place();
        Node* d = graph_.dict();
        set_items(d, stack_.data() + m, stack_.size() - m, "DICT");
        truncate(m);
        push(d);
        break;
      }
      case op::EMPTY_SET: push(graph_.make(Kind::Set)); break;
      case op::FROZENSET: {
        std::vector<Node*> items = pop_mark();
        Node* s = graph_.make(Kind::FrozenSet);
        for (Node* item : items) add_to_set(s, item);
        indexes_.erase(s);  // immutable from here on
        push(s);
        break;
      }
      case op::ADDITEMS: {
        std::vector<Node*> items = pop_mark();
        Node* s = top();
        if (s->kind != Kind::Set) fail(std::string("ADDITEMS onto a ") + kind_name(s->kind));
        for (Node* item : items) add_to_set(s, item);
        break;
      }
      case op::APPEND: {
        Node* v = pop();
        append_items(top(), &v, 1, "APPEND");
        break;
      }
      case op::APPENDS: {
        size_t m = pop_mark_in_place();
        append_items(top_below(m), stack_.data() + m, stack_.size() - m, "APPENDS");
        truncate(m);
        break;
      }
      case op::SETITEM: {
        Node* kv[2];
        kv[1] = pop();
        kv[0] = pop();
        set_items(top(), kv, 2, "SETITEM");
        break;
      }
      case op::SETITEMS: {
        size_t m = pop_mark_in_place();
        set_items(top_below(m), stack_.data() + m, stack_.size() - m, "SETITEMS");
        truncate(m);
        break;
      }

      case op::GLOBAL: push(make_global(ins.arg, ins.arg2)); break;
      case op::STACK_GLOBAL: {
        Node* name = pop();
        Node* module = pop();
        if (name->kind != Kind::Str || module->kind != Kind::Str)
          fail("STACK_GLOBAL requires str operands");
        check_global_name(module->text, name->text, [this](const std::string& what) { fail(what); });
        push(graph_.global(module->text, name->text));
        break;
      }
      case op::EXT1:
      case op::EXT2:
      case op::EXT4:
        fail(std::string(opcode_name(ins.code)) + " (extension registry) is not supported");
      case op::REDUCE: {
        Node* args = require_tuple(pop(), "REDUCE", "argument");
        Node* callable = pop();
        push(reduce(callable, args));
        break;
      }
      case op::NEWOBJ: {
        Node* args = require_tuple(pop(), "NEWOBJ", "argument");
        Node* cls = pop();
        push(graph_.object(How::NewObj, cls, args));
        break;
      }
      case op::NEWOBJ_EX: {
        Node* kwargs = pop();
        if (kwargs->kind != Kind::Dict)
          fail(std::string("NEWOBJ_EX keyword arguments must be a dict, not ") + kind_name(kwargs->kind));
        Node* args = require_tuple(pop(), "NEWOBJ_EX", "argument");
        Node* cls = pop();
        Node* obj = graph_.object(How::NewObjEx, cls, args);
        obj->kwargs = kwargs;
        push(obj);
        break;
      }
      case op::INST: {
        Node* cls = make_global(ins.arg, ins.arg2);
        push(graph_.object(How::Reduce, cls, graph_.tuple(pop_mark())));
        break;
      }
      case op::OBJ: {
        std::vector<Node*> items = pop_mark();
        if (items.empty()) fail("OBJ without a class");
        Node* cls = items.front();
        items.erase(items.begin());
        push(graph_.object(How::Reduce, cls, graph_.tuple(std::move(items))));
        break;
      }
      case op::BUILD: {
        Node* state = pop();
        Node* obj = top();
        if (obj->kind != Kind::Object) fail(std::string("BUILD onto a ") + kind_name(obj->kind));
        // CPython's pickler writes BUILD twice (same state object) only for
        // an object reached again through its own constructor arguments.
        if (obj->state && obj->state != state) fail("BUILD applied twice to one object");
        obj->state = state;
        break;
      }
      case op::PERSID: {
        for (char c : ins.arg)
          if (static_cast<uint8_t>(c) >= 0x80) fail("PERSID argument is not ASCII");
        push(graph_.persid(graph_.str(ins.arg)));
        break;
      }
      case op::BINPERSID: push(graph_.persid(pop())); break;

      case op::PUT: memo_put(memo_index_text(ins.arg, "PUT")); break;
      case op::BINPUT:
      case op::LONG_BINPUT: memo_put(decode_fixed(ins.arg)); break;
      case op::MEMOIZE: memo_put(memo_count_); break;
      case op::GET: memo_get(memo_index_text(ins.arg, "GET")); break;
      case op::BINGET:
      case op::LONG_BINGET: memo_get(decode_fixed(ins.arg)); break;
      default: fail(std::string("opcode ") + (opcode_name(ins.code) ? opcode_name(ins.code) : "?") +
                    " not handled");
    }
  }

  Graph graph_;
  OpReader in_;
  size_t at_ = 0;  // offset of the instruction being run
  std::vector<Node*> dense_memo_;
  std::unordered_map<uint64_t, Node*> sparse_memo_;
  uint64_t memo_count_ = 0;  // distinct indexes in the memo (MEMOIZE's next index)
  HashCache hash_cache_;
  std::unordered_map<const Node*, std::unique_ptr<KeyIndex>> indexes_;
  Node* none_ = nullptr;
  Node* true_ = nullptr;
  Node* false_ = nullptr;
};

}  // namespace

Graph unpickle(std::string_view data, const UnpickleOptions& options, size_t* end_offset) {
  Graph::before_large_graph(data.size());
  Machine m(data, options);
  return m.run(end_offset);
}

}  // namespace ckpt::pickle
