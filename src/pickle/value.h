// A lossless object graph of a pickle. Nothing is imported or called:
// globals are names, REDUCE / NEWOBJ / BUILD are recorded as data, and
// identity is kept (a node referenced twice is one node; cycles are allowed,
// e.g. a DictConfig's children point back at it through `_parent`).
//
// All nodes are owned by a Graph (an arena); nodes refer to each other by raw
// pointer, which makes cycles free of ownership problems.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ckpt::pickle {

enum class Kind : uint8_t {
  None,
  Bool,
  Int,       // integer; big values keep their LONG bytes in `text`
  Float,
  Str,       // text holds UTF-8 (surrogates as CPython's surrogatepass)
  Bytes,     // text holds the raw bytes (protocol 3+ BINBYTES)
  ByteArray, // protocol 5 BYTEARRAY8
  Tuple,     // items
  List,      // items
  Dict,      // entries, insertion order
  Set,       // items
  FrozenSet, // items
  Global,    // text = module, name = qualified name
  Object,    // the result of calling something: see `how`
  PersId,    // a persistent id: `pid` is the id object (torch: a storage tuple)
};

// Python's name of the type a node of this kind is ("dict", "tuple", ...).
const char* kind_name(Kind k);

enum class How : uint8_t {
  Reduce,    // callable(*args)            REDUCE (also INST / OBJ)
  NewObj,    // cls.__new__(cls, *args)    NEWOBJ
  NewObjEx,  // cls.__new__(cls, *args, **kwargs)  NEWOBJ_EX
};

// A Global's qualified name. Out of line (one node in hundreds is a
// global) so that it costs every node 8 bytes rather than a std::string's
// 32 (issue 25: the graph's pages are most of `ckpt info`'s page faults).
// Reads as a const std::string&; assigned from text.
class NodeName {
 public:
  NodeName() = default;
  NodeName(const NodeName& o) : p_(o.p_ && !o.p_->empty() ? std::make_unique<std::string>(*o.p_) : nullptr) {}
  NodeName(NodeName&&) noexcept = default;
  NodeName& operator=(const NodeName& o) {
    if (this != &o) *this = std::string_view(o.str());
    return *this;
  }
  NodeName& operator=(NodeName&&) noexcept = default;
  NodeName& operator=(std::string_view s) {
    if (p_)
      p_->assign(s);
    else if (!s.empty())
      p_ = std::make_unique<std::string>(s);
    return *this;
  }
  NodeName& operator=(const std::string& s) { return *this = std::string_view(s); }
  NodeName& operator=(const char* s) { return *this = std::string_view(s); }

  const std::string& str() const { return p_ ? *p_ : empty_string(); }
  operator const std::string&() const { return str(); }
  operator std::string_view() const { return str(); }
  bool empty() const { return !p_ || p_->empty(); }
  size_t size() const { return p_ ? p_->size() : 0; }

  friend bool operator==(const NodeName& a, const NodeName& b) { return a.str() == b.str(); }
  friend bool operator==(const NodeName& a, std::string_view b) { return std::string_view(a.str()) == b; }
  friend bool operator==(const NodeName& a, const std::string& b) { return a.str() == b; }
  friend bool operator==(const NodeName& a, const char* b) { return std::string_view(a.str()) == b; }
  friend std::string operator+(const std::string& a, const NodeName& b) { return a + b.str(); }
  friend std::string operator+(const char* a, const NodeName& b) { return a + b.str(); }
  friend std::string operator+(const NodeName& a, const std::string& b) { return a.str() + b; }
  friend std::string operator+(const NodeName& a, const char* b) { return a.str() + b; }

 private:
  static const std::string& empty_string() {
    static const std::string empty;
    return empty;
  }
  std::unique_ptr<std::string> p_;
};

struct Node {
  Kind kind = Kind::None;
  How how = How::Reduce;  // Object only
  bool boolean = false;   // Bool
  int64_t integer = 0;    // Int when it fits in int64 (text empty)
  double real = 0.0;      // Float
  std::string text;       // Str/Bytes/ByteArray data, Global module, big Int (LONG bytes, little-endian two's complement)
  NodeName name;          // Global name
  std::vector<Node*> items;                      // Tuple/List/Set/FrozenSet; Object: APPENDed items
  std::vector<std::pair<Node*, Node*>> entries;  // Dict; Object: SETITEMed items (OrderedDict)
  Node* callable = nullptr;  // Object: the callable (Reduce) or class (NewObj*)
  Node* args = nullptr;      // Object: argument tuple
  // An Object's keyword dict (NewObjEx) and a PersId's id share a slot, 8
  // bytes of every node: no node is both. for_each_child reads the slot by
  // the node's kind.
  union {
    Node* kwargs = nullptr;  // Object with NewObjEx: keyword dict
    Node* pid;               // PersId: the id object
  };
  Node* state = nullptr;     // Object: BUILD argument, nullptr when not built

  bool is_big_int() const { return kind == Kind::Int && !text.empty(); }
  bool is_str(std::string_view s) const { return kind == Kind::Str && text == s; }
  bool is_global(std::string_view module, std::string_view qualname) const {
    return kind == Kind::Global && text == module && name == qualname;
  }
  // An Object made by calling / instantiating the global module.qualname.
  bool is_instance_of(std::string_view module, std::string_view qualname) const {
    return kind == Kind::Object && callable && callable->is_global(module, qualname);
  }
};

// Limits that keep a hostile pickle from exhausting memory. A node costs
// about 250 bytes with the walks commands make over the graph, so 500,000
// keeps every command under 256 MiB (README "Limits"); a large AudioCraft
// training checkpoint (model, best state, optimizer) needs ~60 per tensor.
struct GraphLimits {
  size_t max_nodes = 500'000;
};

class Graph {
 public:
  explicit Graph(GraphLimits limits = {}) : limits_(limits) {}
  ~Graph() { release(); }
  // A moved-from Graph owns no nodes (and is usable again), as with the
  // deque it had; root is copied, as the defaulted move did.
  Graph(Graph&& o) noexcept
      : root(o.root),
        limits_(o.limits_),
        blocks_(std::move(o.blocks_)),
        size_(std::exchange(o.size_, 0)),
        non_leaves_(std::exchange(o.non_leaves_, 0)),
        block_used_(std::exchange(o.block_used_, 0)),
        block_size_(std::exchange(o.block_size_, 0)) {
    o.blocks_.clear();
  }
  Graph& operator=(Graph&& o) noexcept {
    if (this != &o) {
      release();
      root = o.root;
      limits_ = o.limits_;
      blocks_ = std::move(o.blocks_);
      o.blocks_.clear();
      size_ = std::exchange(o.size_, 0);
      non_leaves_ = std::exchange(o.non_leaves_, 0);
      block_used_ = std::exchange(o.block_used_, 0);
      block_size_ = std::exchange(o.block_size_, 0);
    }
    return *this;
  }
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  Node* root = nullptr;

  // Factories. Every node lives as long as the Graph.
  Node* make(Kind k);
  Node* none();
  Node* boolean(bool b);
  Node* integer(int64_t v);
  Node* real(double v);
  Node* str(std::string_view s);
  Node* bytes(std::string_view s);
  Node* tuple(std::vector<Node*> items = {});
  Node* list(std::vector<Node*> items = {});
  Node* dict();
  Node* global(std::string_view module, std::string_view name);
  Node* object(How how, Node* callable, Node* args);
  Node* persid(Node* pid);

  size_t size() const { return size_; }
  // Nodes made with a kind that can have children (is_leaf_kind false):
  // how many a walk_non_leaves of the whole graph visits at most, unless
  // later edits changed kinds.
  size_t non_leaves_made() const { return non_leaves_; }

  // For a process about to exit (a CLI command): graphs destroyed from now
  // on leave their nodes to the process's exit, up to max_nodes nodes in
  // all, instead of destroying them one by one (a string and a vector or two
  // each: ~0.9M instructions for a 10,000-node checkpoint, 6% of all that
  // `ckpt info` executes on the bench file). The nodes stay reachable from
  // a static list, so leak checkers count them as in use, not leaked; a
  // graph past the remaining allowance is freed as usual, which bounds the
  // memory a command over many files keeps. 0 (the default) frees every
  // graph; the Python binding never changes it.
  // Such a process's first large pickle also has the heap grown for its graph
  // at once, on a huge page where the kernel has one (before_large_graph).
  static void leave_to_exit(size_t max_nodes);
  // Called by unpickle before it reads a pickle of that many bytes: in a
  // process that leaves graphs to its exit, the first pickle of 32 KiB or more
  // grows the heap by ~24 bytes per pickle byte (the bench file's 100 KB
  // data.pkl makes ~2 MiB of nodes, strings and vectors), see
  // reserve_heap_for_short_process: one page fault for the graph where there
  // were ~450, ~10% of `ckpt info`. Otherwise it does nothing.
  static void before_large_graph(size_t pickle_bytes);

 private:
  void release() noexcept;
  static constexpr size_t kFirstBlock = 16, kMaxBlock = 512;

  GraphLimits limits_;
  // Nodes in blocks that double in size (16, 32, ... 512 nodes): stable
  // addresses, one allocation per block rather than per two nodes (a deque
  // of a ~180-byte Node allocates a 512-byte block per two). 512 nodes are
  // 90 KiB, under malloc's 128 KiB mmap threshold: a block of 1,024 was an
  // mmap and, at the end, a munmap of its own. A block is raw memory and a
  // node is constructed when made, so the unused end of the last block is
  // never touched (nor its pages faulted in).
  std::vector<Node*> blocks_;
  size_t size_ = 0;         // nodes made
  size_t non_leaves_ = 0;   // of them, made with a kind that has children
  size_t block_used_ = 0;   // nodes made in blocks_.back()
  size_t block_size_ = 0;   // capacity of blocks_.back()
};

// The edges of the graph, so that every walk follows one definition of a
// node's children and says which of them it wants.
enum Edges : unsigned {
  kCallEdges = 1u << 0,   // an Object's callable, args and kwargs
  kStateEdge = 1u << 1,   // an Object's state (BUILD)
  kPidEdge = 1u << 2,     // a PersId's id object
  kItemEdges = 1u << 3,   // items (tuple, list, set; an Object's APPENDs)
  kKeyEdges = 1u << 4,    // entries' keys
  kValueEdges = 1u << 5,  // entries' values
  kAllEdges = (1u << 6) - 1,
};

// Calls visit(child) for each non-null child of n along `edges`, in one
// order: callable, args, kwargs (not of a PersId), state, pid (of a PersId),
// items, then each entry's key and value. NodePtr is Node* or const Node*.
template <class NodePtr, class Visit>
void for_each_child(NodePtr n, unsigned edges, Visit&& visit) {
  auto go = [&](NodePtr c) {
    if (c) visit(c);
  };
  const bool persid = n->kind == Kind::PersId;  // its slot holds pid, not kwargs
  if (edges & kCallEdges) {
    go(n->callable);
    go(n->args);
    if (!persid) go(n->kwargs);
  }
  if (edges & kStateEdge) go(n->state);
  if ((edges & kPidEdge) && persid) go(n->pid);
  if (edges & kItemEdges)
    for (NodePtr c : n->items) go(c);
  if (edges & (kKeyEdges | kValueEdges))
    for (auto& [k, v] : n->entries) {
      if (edges & kKeyEdges) go(k);
      if (edges & kValueEdges) go(v);
    }
}

// True for the kinds that never have children (str, bytes, numbers, None,
// globals): the leaves of the graph.
inline bool is_leaf_kind(Kind k) {
  switch (k) {
    case Kind::Tuple:
    case Kind::List:
    case Kind::Dict:
    case Kind::Set:
    case Kind::FrozenSet:
    case Kind::Object:
    case Kind::PersId: return false;
    default: return true;
  }
}

namespace detail {

// The set of nodes a walk has seen: open addressing over a power-of-two
// table of pointers, no allocation per insert (an unordered_set allocates
// one list node per node visited).
class SeenSet {
 public:
  SeenSet() = default;
  // Sized for `expected` nodes at once rather than grown to them by doubling.
  explicit SeenSet(size_t expected) {
    if (expected == 0) return;
    size_t n = 256;
    while (n < expected * 2) n *= 2;
    slots_.assign(n, nullptr);
  }
  // True if n was not in the set (and is now).
  bool insert(const Node* n) {
    if ((count_ + 1) * 2 > slots_.size()) grow();
    size_t mask = slots_.size() - 1;
    for (size_t i = slot_of(n, mask);; i = (i + 1) & mask) {
      if (slots_[i] == n) return false;
      if (!slots_[i]) {
        slots_[i] = n;
        ++count_;
        return true;
      }
    }
  }

 private:
  static size_t slot_of(const Node* n, size_t mask) {
    auto v = reinterpret_cast<uintptr_t>(n);
    return static_cast<size_t>((v >> 4) * 0x9E3779B97F4A7C15ull >> 20) & mask;
  }
  void grow();
  std::vector<const Node*> slots_;
  size_t count_ = 0;
};

}  // namespace detail

// Visits each node reachable from root along `edges` once, depth first and
// iteratively (a hostile graph's depth costs no stack). visit(n) returns
// whether to go on into n's children. Children are visited last-first, as
// a stack pops them. A template (visit is any callable taking a const
// Node*), so that the visit is inlined rather than a std::function call
// per node.
template <class Visit>
void walk_graph(const Node* root, unsigned edges, Visit&& visit) {
  std::vector<const Node*> stack;
  if (root) stack.push_back(root);
  detail::SeenSet seen;
  while (!stack.empty()) {
    const Node* n = stack.back();
    stack.pop_back();
    if (!seen.insert(n) || !visit(n)) continue;
    for_each_child(n, edges, [&](const Node* c) { stack.push_back(c); });
  }
}

// walk_graph visiting only the nodes that are not leaves, in the order
// walk_graph visits them: a walk looking for containers, objects or
// persistent ids skips most of a graph's nodes (its strings and numbers)
// without a visit or a seen-set entry each.
// expected_nodes (Graph::non_leaves_made() of root's graph, or 0) sizes its
// seen set at once.
template <class Visit>
void walk_non_leaves(const Node* root, unsigned edges, Visit&& visit, size_t expected_nodes = 0) {
  std::vector<const Node*> stack;
  if (root && !is_leaf_kind(root->kind)) stack.push_back(root);
  detail::SeenSet seen(expected_nodes);
  while (!stack.empty()) {
    const Node* n = stack.back();
    stack.pop_back();
    if (!seen.insert(n) || !visit(n)) continue;
    for_each_child(n, edges, [&](const Node* c) {
      if (!is_leaf_kind(c->kind)) stack.push_back(c);
    });
  }
}

// Dict-like access to a Dict node or an Object with SETITEMed entries
// (OrderedDict), by string key. Linear in the number of entries.
Node* get_item(const Node* dict, std::string_view key);
// Replaces the value of an existing key, or appends key -> value.
void set_item(Graph& g, Node* dict, std::string_view key, Node* value);
// Removes the key; returns false if it was not there.
bool erase_item(Node* dict, std::string_view key);
// The entries of a Dict or dict-like Object (nullptr for anything else).
std::vector<std::pair<Node*, Node*>>* entries_of(Node* n);
const std::vector<std::pair<Node*, Node*>>* entries_of(const Node* n);
// True for a Dict or an OrderedDict-like Object (REDUCE of collections.OrderedDict).
bool is_mapping(const Node* n);

// Python-equality of two hashable values as dict keys (str, bytes, int,
// float, bool, None, tuple of those; identity for everything else).
bool key_equal(const Node* a, const Node* b);
size_t key_hash(const Node* n);

// A mapping key as Python's str() shows it: a str as is, ints of any size
// in decimal, floats as repr(), True / False / None; "<tuple>" or "<object>"
// for the rest, "?" for no node.
std::string key_text(const Node* key);

// The class of an object node for messages: "module.Name", or just "Name"
// for builtins, collections and omegaconf classes; "object" when its
// callable is not a global.
std::string class_name(const Node* n);

}  // namespace ckpt::pickle
