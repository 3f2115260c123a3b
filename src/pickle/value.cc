#include "pickle/value.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <functional>
#include <mutex>
#include <new>
#include <unordered_set>

#include "pickle/text.h"
#include "util/error.h"
#include "util/process_heap.h"
#include "util/python_number.h"

namespace ckpt::pickle {

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::Str: return "str";
    case Kind::Bytes: return "bytes";
    case Kind::ByteArray: return "bytearray";
    case Kind::Tuple: return "tuple";
    case Kind::List: return "list";
    case Kind::Dict: return "dict";
    case Kind::Set: return "set";
    case Kind::FrozenSet: return "frozenset";
    case Kind::Global: return "global";
    case Kind::Object: return "object";
    case Kind::PersId: return "persistent id";
  }
  return "?";
}

namespace {

// Graphs left to the process's exit (Graph::leave_to_exit): their blocks,
// reachable from here until the process ends.
std::mutex g_left_mutex;
size_t g_left_allowance = 0;              // nodes that may still be left
std::vector<Node*>* g_left = nullptr;     // never freed: reachable, not leaked
bool g_short_process = false;             // leave_to_exit was given nodes to leave
bool g_heap_reserved = false;             // before_large_graph grew the heap once

}  // namespace

void Graph::leave_to_exit(size_t max_nodes) {
  std::lock_guard<std::mutex> lock(g_left_mutex);
  g_left_allowance = max_nodes;
  g_short_process = max_nodes > 0;
}

void Graph::before_large_graph(size_t pickle_bytes) {
  constexpr size_t kFrom = 32 << 10, kHugePage = 2 << 20, kMost = 16 << 20;
  if (pickle_bytes < kFrom) return;
  std::lock_guard<std::mutex> lock(g_left_mutex);
  if (!g_short_process || g_heap_reserved) return;
  g_heap_reserved = true;
  size_t bytes = std::min(kMost, (pickle_bytes * 24 + kHugePage - 1) / kHugePage * kHugePage);
  reserve_heap_for_short_process(bytes);
}

void Graph::release() noexcept {
  if (blocks_.empty()) return;
  {
    std::lock_guard<std::mutex> lock(g_left_mutex);
    if (size_ <= g_left_allowance) {
      try {
        if (!g_left) g_left = new std::vector<Node*>;
        g_left->insert(g_left->end(), blocks_.begin(), blocks_.end());
        g_left_allowance -= size_;
        blocks_.clear();
        size_ = non_leaves_ = block_used_ = block_size_ = 0;
        return;
      } catch (const std::bad_alloc&) {
        // free them below
      }
    }
  }
  // Every block but the last is full; the last holds block_used_ nodes.
  size_t block = kFirstBlock;
  for (size_t b = 0; b < blocks_.size(); ++b) {
    size_t used = b + 1 == blocks_.size() ? block_used_ : block;
    for (size_t i = 0; i < used; ++i) blocks_[b][i].~Node();
    ::operator delete(static_cast<void*>(blocks_[b]));
    block = std::min(block * 2, kMaxBlock);
  }
  blocks_.clear();
  size_ = non_leaves_ = block_used_ = block_size_ = 0;
}

Node* Graph::make(Kind k) {
  if (size_ >= limits_.max_nodes)
    throw FormatError("pickle holds more than " + std::to_string(limits_.max_nodes) +
                      " objects (limit reached)");
  if (block_used_ == block_size_) {
    size_t next = block_size_ == 0 ? kFirstBlock : std::min(block_size_ * 2, kMaxBlock);
    // Room first, so that the push_back below cannot throw and leak the block.
    if (blocks_.size() == blocks_.capacity()) blocks_.reserve(std::max<size_t>(16, blocks_.size() * 2));
    blocks_.push_back(static_cast<Node*>(::operator new(next * sizeof(Node))));
    block_size_ = next;
    block_used_ = 0;
  }
  Node* n = ::new (blocks_.back() + block_used_) Node;
  ++block_used_;
  ++size_;
  non_leaves_ += !is_leaf_kind(k);
  n->kind = k;
  return n;
}

Node* Graph::none() { return make(Kind::None); }

Node* Graph::boolean(bool b) {
  Node* n = make(Kind::Bool);
  n->boolean = b;
  return n;
}

Node* Graph::integer(int64_t v) {
  Node* n = make(Kind::Int);
  n->integer = v;
  return n;
}

Node* Graph::real(double v) {
  Node* n = make(Kind::Float);
  n->real = v;
  return n;
}

Node* Graph::str(std::string_view s) {
  Node* n = make(Kind::Str);
  n->text = s;
  return n;
}

Node* Graph::bytes(std::string_view s) {
  Node* n = make(Kind::Bytes);
  n->text = s;
  return n;
}

Node* Graph::tuple(std::vector<Node*> items) {
  Node* n = make(Kind::Tuple);
  n->items = std::move(items);
  return n;
}

Node* Graph::list(std::vector<Node*> items) {
  Node* n = make(Kind::List);
  n->items = std::move(items);
  return n;
}

Node* Graph::dict() { return make(Kind::Dict); }

Node* Graph::global(std::string_view module, std::string_view name) {
  Node* n = make(Kind::Global);
  n->text = module;
  n->name = name;
  return n;
}

Node* Graph::object(How how, Node* callable, Node* args) {
  Node* n = make(Kind::Object);
  n->how = how;
  n->callable = callable;
  n->args = args;
  return n;
}

Node* Graph::persid(Node* pid) {
  Node* n = make(Kind::PersId);
  n->pid = pid;
  return n;
}

bool is_mapping(const Node* n) {
  if (!n) return false;
  if (n->kind == Kind::Dict) return true;
  return n->kind == Kind::Object &&
         (n->is_instance_of("collections", "OrderedDict") || !n->entries.empty());
}

std::vector<std::pair<Node*, Node*>>* entries_of(Node* n) {
  return is_mapping(n) ? &n->entries : nullptr;
}

const std::vector<std::pair<Node*, Node*>>* entries_of(const Node* n) {
  return is_mapping(n) ? &n->entries : nullptr;
}

Node* get_item(const Node* dict, std::string_view key) {
  auto* e = entries_of(dict);
  if (!e) return nullptr;
  for (auto& [k, v] : *e)
    if (k->kind == Kind::Str && k->text == key) return v;
  return nullptr;
}

void set_item(Graph& g, Node* dict, std::string_view key, Node* value) {
  auto* e = entries_of(dict);
  if (!e) throw Error("set_item on a value that is not a mapping");
  for (auto& kv : *e)
    if (kv.first->kind == Kind::Str && kv.first->text == key) {
      kv.second = value;
      return;
    }
  e->emplace_back(g.str(key), value);
}

bool erase_item(Node* dict, std::string_view key) {
  auto* e = entries_of(dict);
  if (!e) return false;
  for (auto it = e->begin(); it != e->end(); ++it)
    if (it->first->kind == Kind::Str && it->first->text == key) {
      e->erase(it);
      return true;
    }
  return false;
}

namespace {

// Numeric value of a bool/int/float key, for Python's 1 == 1.0 == True.
bool as_number(const Node* n, double& d, bool& exact_int, int64_t& i) {
  switch (n->kind) {
    case Kind::Bool: i = n->boolean; d = static_cast<double>(i); exact_int = true; return true;
    case Kind::Int:
      if (n->is_big_int()) return false;
      i = n->integer; d = static_cast<double>(i); exact_int = true; return true;
    case Kind::Float: d = n->real; exact_int = false; return true;
    default: return false;
  }
}

}  // namespace

namespace {

bool scalar_key_equal(const Node* a, const Node* b) {
  // A str or bytes key (every key of a state dict or config) equals only its
  // own kind with the same bytes: no number conversion to try first.
  if (a->kind == Kind::Str || a->kind == Kind::Bytes) return a->kind == b->kind && a->text == b->text;
  double da, db;
  bool ia, ib;
  int64_t xa, xb;
  if (as_number(a, da, ia, xa) && as_number(b, db, ib, xb)) {
    if (ia && ib) return xa == xb;
    if (ia) return static_cast<double>(xa) == db && std::trunc(db) == db && db >= -9.2e18 && db <= 9.2e18 && static_cast<int64_t>(db) == xa;
    if (ib) return static_cast<double>(xb) == da && std::trunc(da) == da && da >= -9.2e18 && da <= 9.2e18 && static_cast<int64_t>(da) == xb;
    return da == db;
  }
  if (a->kind != b->kind) return false;
  switch (a->kind) {
    case Kind::None: return true;
    case Kind::Int: return a->text == b->text;  // both big
    case Kind::Str:
    case Kind::Bytes: return a->text == b->text;
    case Kind::Global: return a->text == b->text && a->name == b->name;
    default: return false;
  }
}

struct PairHash {
  size_t operator()(const std::pair<const Node*, const Node*>& p) const {
    return std::hash<const void*>{}(p.first) * 31 ^ std::hash<const void*>{}(p.second);
  }
};

}  // namespace

// Iterative, and each pair of containers is compared once, so deeply nested
// or widely shared tuples (hostile pickles) cost no stack and no exponential time.
bool key_equal(const Node* a, const Node* b) {
  // Scalars (every key of a state dict or config) need no work list.
  if (a == b) return true;
  if (a->kind != Kind::Tuple && a->kind != Kind::FrozenSet) return scalar_key_equal(a, b);
  std::vector<std::pair<const Node*, const Node*>> todo{{a, b}};
  std::unordered_set<std::pair<const Node*, const Node*>, PairHash> seen;
  while (!todo.empty()) {
    auto [x, y] = todo.back();
    todo.pop_back();
    if (x == y) continue;
    bool x_seq = x->kind == Kind::Tuple || x->kind == Kind::FrozenSet;
    if (!x_seq) {
      if (!scalar_key_equal(x, y)) return false;
      continue;
    }
    if (x->kind != y->kind || x->items.size() != y->items.size()) return false;
    if (!seen.insert({x, y}).second) continue;
    for (size_t i = x->items.size(); i-- > 0;) todo.emplace_back(x->items[i], y->items[i]);
  }
  return true;
}

size_t key_hash(const Node* n) {
  double d;
  bool exact;
  int64_t i;
  if (as_number(n, d, exact, i)) {
    if (exact) return std::hash<int64_t>{}(i);
    if (std::trunc(d) == d && d >= -9.2e18 && d <= 9.2e18)
      return std::hash<int64_t>{}(static_cast<int64_t>(d));
    return std::hash<double>{}(d);
  }
  switch (n->kind) {
    case Kind::None: return 0x9e3779b9;
    case Kind::Int:
    case Kind::Str:
    case Kind::Bytes: return std::hash<std::string>{}(n->text) ^ static_cast<size_t>(n->kind);
    case Kind::Global: return std::hash<std::string>{}(n->text + "\n" + n->name);
    case Kind::Tuple:
    case Kind::FrozenSet: {
      size_t h = n->items.size();
      // Shallow on purpose: nested tuples hash by length only, so hashing
      // never recurses; equality still compares them fully.
      for (const Node* c : n->items) {
        size_t ch = (c->kind == Kind::Tuple || c->kind == Kind::FrozenSet) ? c->items.size() : key_hash(c);
        h = h * 1000003 ^ ch;
      }
      return h;
    }
    default: return std::hash<const void*>{}(n);
  }
}

std::string key_text(const Node* k) {
  if (!k) return "?";
  switch (k->kind) {
    case Kind::Str: return k->text;
    case Kind::Int: return k->is_big_int() ? long_to_decimal(k->text) : std::to_string(k->integer);
    case Kind::Bool: return k->boolean ? "True" : "False";
    case Kind::None: return "None";
    case Kind::Float: return python_float_repr(k->real);
    default: return k->kind == Kind::Tuple ? "<tuple>" : "<object>";
  }
}

std::string class_name(const Node* n) {
  const Node* c = n ? n->callable : nullptr;
  if (!c || c->kind != Kind::Global) return "object";
  const std::string& mod = c->text;
  if (mod == "__builtin__" || mod == "builtins") return c->name;
  if (mod == "collections" || mod.rfind("omegaconf", 0) == 0) return c->name;
  return mod + "." + c->name;
}

void detail::SeenSet::grow() {
  std::vector<const Node*> old = std::move(slots_);
  slots_.assign(old.empty() ? 256 : old.size() * 2, nullptr);
  size_t mask = slots_.size() - 1;
  for (const Node* n : old)
    if (n) {
      size_t i = slot_of(n, mask);
      while (slots_[i]) i = (i + 1) & mask;
      slots_[i] = n;
    }
}

}  // namespace ckpt::pickle
