#include "pickle/scan.h"

#include <algorithm>
#include <deque>
#include <map>
#include <unordered_map>

#include "pickle/marked_stack.h"
#include "pickle/opcodes.h"
#include "pickle/text.h"
#include "util/coding.h"
#include "util/error.h"

namespace ckpt::pickle {

namespace {

// What the scanner knows about a stack value.
struct Sym {
  // Unset: only in the memo's dense slots, an index no PUT defined.
  enum Kind : uint8_t { Other, Str, Global, Made, Tuple, Unset } kind = Other;
  uint32_t index = 0;  // Str: into strings; Global / Made: into uses; Tuple: into tuples
};

// (module, name) ordered as std::pair orders them, also looked up by a pair
// of views, so that a GLOBAL already seen allocates nothing.
struct NameLess {
  using is_transparent = void;
  using Views = std::pair<std::string_view, std::string_view>;
  static Views views(const std::pair<std::string, std::string>& p) { return {p.first, p.second}; }
  static const Views& views(const Views& p) { return p; }
  template <class A, class B>
  bool operator()(const A& a, const B& b) const {
    return views(a) < views(b);
  }
};

// The speed of this walk is most of `ckpt scan`'s time on a checkpoint
// (issue 25): like the unpickler (unpickler.cc) it decodes the fixed-width
// opcodes inline, keeps the memo's dense indexes in a vector, and allocates
// nothing per opcode (strings are views into the pickle, MARK groups are
// read where they lie on the stack, tuples' globals share one array).
class Scanner : private MarkedStack<Sym> {
 public:
  Scanner(std::string_view data, std::string_view source) : in_(data, source) {}

  size_t frame_end() const { return frame_end_; }

  std::vector<GlobalUse> run(size_t* end_offset) {
    for (;;) {
      Instruction ins = in_.next_fast();
      at_ = ins.offset;
      switch (ins.code) {  // the memo's opcodes (half of a checkpoint's) without step's dispatch
        case op::LONG_BINGET: memo_get(decode_fixed32(ins.arg.data())); continue;
        case op::LONG_BINPUT: memo_put(decode_fixed32(ins.arg.data())); continue;
        case op::BINGET: memo_get(static_cast<uint8_t>(ins.arg[0])); continue;
        case op::BINPUT: memo_put(static_cast<uint8_t>(ins.arg[0])); continue;
        case op::STOP:
          pop();
          if (end_offset) *end_offset = in_.pos();
          return std::move(uses_);
        default: break;
      }
      step(ins);
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const override { in_.fail(at_, what); }
  // The top n values must be there (pop_n's check and message).
  void need(size_t n) {
    if (stack_.size() < fence() + n) fail("stack underflow");
  }
  // A tuple that holds globals (or objects they made), so that a persistent
  // id built from it can name them: stack_[first, stack_.size()) are its
  // items. At most kTupleUses per tuple.
  static constexpr size_t kTupleUses = 16;
  Sym tuple_of(size_t first) {
    const size_t begin = tuple_uses_.size();
    size_t found = 0;
    for (size_t i = first; i < stack_.size() && found < kTupleUses; ++i) {
      const Sym it = stack_[i];
      if (it.kind == Sym::Global || it.kind == Sym::Made) {
        tuple_uses_.push_back(it.index);
        ++found;
      }
      if (it.kind == Sym::Tuple) {
        const Span inner = tuples_[it.index];  // a copy: tuple_uses_ grows below
        for (size_t k = 0; k < inner.count && found < kTupleUses; ++k, ++found) {
          const uint32_t u = tuple_uses_[inner.begin + k];
          tuple_uses_.push_back(u);
        }
      }
    }
    if (!found) return Sym{};
    tuples_.push_back(Span{begin, static_cast<uint32_t>(found)});
    return Sym{Sym::Tuple, static_cast<uint32_t>(tuples_.size() - 1)};
  }
  // TUPLE1-3, TUPLE: the values from stack_[first] up become one tuple.
  void make_tuple(size_t first) {
    Sym t = tuple_of(first);
    truncate(first);
    push(t);
  }
  void push_other() { push(Sym{}); }
  void push_str(std::string_view s) {
    strings_.push_back(s);
    push(Sym{Sym::Str, static_cast<uint32_t>(strings_.size() - 1)});
  }
  // A decoded STRING / UNICODE argument: kept here, pushed as a view.
  void push_owned_str(std::string&& s) {
    owned_.push_back(std::move(s));
    push_str(owned_.back());
  }

  uint32_t use(std::string_view module, std::string_view name) {
    check_global_name(module, name, [this](const std::string& what) { fail(what); });
    auto it = by_name_.find(NameLess::Views{module, name});
    if (it != by_name_.end()) return it->second;
    uses_.push_back(GlobalUse{std::string(module), std::string(name), false, false, false, false, false, at_});
    auto idx = static_cast<uint32_t>(uses_.size() - 1);
    by_name_.emplace(std::make_pair(std::string(module), std::string(name)), idx);
    return idx;
  }

  void mark_made(Sym callable, bool called) {
    if (callable.kind != Sym::Global) {
      push_other();
      return;
    }
    (called ? uses_[callable.index].called : uses_[callable.index].instantiated) = true;
    push(Sym{Sym::Made, callable.index});
  }

  uint64_t text_index(std::string_view s) {
    uint64_t v = 0;
    if (s.empty()) fail("memo index missing");
    for (char c : s) {
      if (c < '0' || c > '9' || v > UINT64_MAX / 16) fail("memo index is not a number");
      v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    return v;
  }

  // The memo, as the unpickler keeps it: the dense indexes picklers write
  // (0, 1, 2, ...) in a vector, any index past twice the entries so far
  // (plus a slack) in a map, so the vector stays within 2 slots per entry (a
  // hostile LONG_BINPUT 4e9 costs one map entry, not a 32 GiB vector). An
  // index is in the vector once the vector reaches it; a map entry for it is
  // then removed. memo_count_ is the number of distinct indexes (MEMOIZE's).
  static constexpr uint64_t kMemoSlack = 1024;
  // Inline: a slot the vector holds (nearly every memo opcode of a
  // checkpoint); growth, the map and errors out of line.
  [[gnu::always_inline]] void memo_put(uint64_t index, Sym v) {
    if (index < dense_memo_.size() && dense_memo_[index].kind != Sym::Unset) [[likely]] {
      dense_memo_[index] = v;  // redefined: no new entry
      return;
    }
    memo_put_slow(index, v);
  }
  [[gnu::noinline]] void memo_put_slow(uint64_t index, Sym v) {
    if (index < 2 * memo_count_ + kMemoSlack) {
      if (index >= dense_memo_.size())
        dense_memo_.resize(std::max<size_t>(index + 1, dense_memo_.capacity()), Sym{Sym::Unset, 0});
      Sym& slot = dense_memo_[index];
      if (slot.kind == Sym::Unset && !(sparse_memo_.size() && sparse_memo_.erase(index))) ++memo_count_;
      slot = v;
      return;
    }
    if (sparse_memo_.insert_or_assign(index, v).second) ++memo_count_;
  }
  [[gnu::always_inline]] void memo_put(uint64_t index) { memo_put(index, top()); }
  [[gnu::always_inline]] void memo_get(uint64_t index) {
    if (index < dense_memo_.size() && dense_memo_[index].kind != Sym::Unset) [[likely]] {
      push(dense_memo_[index]);
      return;
    }
    memo_get_slow(index);
  }
  [[gnu::noinline]] void memo_get_slow(uint64_t index) {
    auto it = sparse_memo_.find(index);
    if (it == sparse_memo_.end()) fail("memo index " + std::to_string(index) + " undefined");
    push(it->second);
  }

  void step(const Instruction& ins) {
    switch (ins.code) {
      case op::FRAME: {
        // CPython's load_frame reads the whole frame before going on; the
        // end of the last frame read is where a file's position is after
        // STOP when the frame came from read(n) (see safety_scan.cc).
        uint64_t len = decode_fixed(ins.arg);
        uint64_t after = in_.pos();
        frame_end_ = len > UINT64_MAX - after ? SIZE_MAX : static_cast<size_t>(after + len);
        break;
      }
      case op::PROTO:
      case op::READONLY_BUFFER: break;
      case op::MARK: mark(); break;
      case op::POP: pop_or_unmark(); break;
      case op::POP_MARK: truncate(pop_mark_in_place()); break;
      case op::DUP: push(top()); break;

      case op::STRING: {
        std::string s;
        if (!decode_string_literal(ins.arg, s).empty()) fail("malformed STRING argument");
        push_owned_str(std::move(s));
        break;
      }
      case op::UNICODE: {
        std::string s;
        if (!decode_raw_unicode_escape(ins.arg, s).empty()) fail("malformed UNICODE argument");
        push_owned_str(std::move(s));
        break;
      }
      case op::BINSTRING:
      case op::SHORT_BINSTRING:
      case op::BINUNICODE:
      case op::SHORT_BINUNICODE:
      case op::BINUNICODE8: push_str(ins.arg); break;  // a view into the pickle, which outlives the scan

      case op::INT: case op::LONG: case op::BININT: case op::BININT1: case op::BININT2:
      case op::LONG1: case op::LONG4: case op::FLOAT: case op::BINFLOAT: case op::NONE:
      case op::NEWTRUE: case op::NEWFALSE: case op::BINBYTES: case op::SHORT_BINBYTES:
      case op::BINBYTES8: case op::BYTEARRAY8: case op::EMPTY_TUPLE: case op::EMPTY_LIST:
      case op::EMPTY_DICT: case op::EMPTY_SET: case op::PERSID: case op::NEXT_BUFFER:
        push_other();
        break;

      case op::TUPLE1: case op::TUPLE2: case op::TUPLE3: {
        size_t n = ins.code - op::TUPLE1 + 1;
        need(n);
        make_tuple(stack_.size() - n);
        break;
      }
      case op::TUPLE: make_tuple(pop_mark_in_place()); break;
      case op::LIST: case op::DICT: case op::FROZENSET:
        truncate(pop_mark_in_place());
        push_other();
        break;
      case op::APPEND: pop(); top(); break;
      case op::SETITEM:
        need(2);
        truncate(stack_.size() - 2);
        top();
        break;
      case op::APPENDS: case op::SETITEMS: case op::ADDITEMS:
        truncate(pop_mark_in_place());
        top();
        break;
      case op::BINPERSID: {
        Sym pid = pop();
        if (pid.kind == Sym::Global || pid.kind == Sym::Made) uses_[pid.index].in_persistent_id = true;
        if (pid.kind == Sym::Tuple) {
          const Span t = tuples_[pid.index];
          for (size_t k = 0; k < t.count; ++k) uses_[tuple_uses_[t.begin + k]].in_persistent_id = true;
        }
        push_other();
        break;
      }

      case op::GLOBAL: push(Sym{Sym::Global, use(ins.arg, ins.arg2)}); break;
      case op::STACK_GLOBAL: {
        Sym name = pop();
        Sym module = pop();
        if (name.kind == Sym::Str && module.kind == Sym::Str)
          push(Sym{Sym::Global, use(strings_[module.index], strings_[name.index])});
        else
          push(Sym{Sym::Global, use("?", "?")});
        break;
      }
      case op::EXT1: case op::EXT2: case op::EXT4:
        push(Sym{Sym::Global, use("?", "?")});  // a registry entry: unknown callable
        break;
      case op::INST: {
        uint32_t g = use(ins.arg, ins.arg2);
        truncate(pop_mark_in_place());
        uses_[g].instantiated = true;
        uses_[g].called = true;
        push(Sym{Sym::Made, g});
        break;
      }
      case op::OBJ: {
        if (marks_.empty() || stack_.size() <= marks_.back()) fail("OBJ without a class");
        size_t m = pop_mark_in_place();
        Sym cls = stack_[m];  // the first value above the mark; the rest are dropped
        truncate(m);
        if (cls.kind == Sym::Global) uses_[cls.index].called = true;
        mark_made(cls, false);
        break;
      }
      case op::REDUCE: {
        pop();
        mark_made(pop(), true);
        break;
      }
      case op::NEWOBJ: {
        pop();
        mark_made(pop(), false);
        break;
      }
      case op::NEWOBJ_EX: {
        need(2);
        truncate(stack_.size() - 2);
        mark_made(pop(), false);
        break;
      }
      case op::BUILD: {
        pop();
        Sym& target = top();
        if (target.kind == Sym::Made || target.kind == Sym::Global) uses_[target.index].built = true;
        // BUILD on the class itself: pickle's slot state becomes setattr on
        // the class (collections.Counter.x = ...), which changes what later
        // code does however harmless the class is.
        if (target.kind == Sym::Global) uses_[target.index].class_built = true;
        break;
      }

      // PUT: the value first (an empty stack is "stack underflow" before a
      // bad index is named), as before.
      case op::PUT: {
        Sym v = top();
        memo_put(text_index(ins.arg), v);
        break;
      }
      case op::BINPUT:
      case op::LONG_BINPUT: memo_put(decode_fixed(ins.arg)); break;
      case op::MEMOIZE: {
        Sym v = top();
        memo_put(memo_count_, v);
        break;
      }
      case op::GET: memo_get(text_index(ins.arg)); break;
      case op::BINGET:
      case op::LONG_BINGET: memo_get(decode_fixed(ins.arg)); break;
      default: fail("opcode not handled by the scanner");
    }
  }

  struct Span {
    size_t begin;    // into tuple_uses_
    uint32_t count;  // 1..kTupleUses
  };

  OpReader in_;
  size_t at_ = 0;
  std::vector<Sym> dense_memo_;
  std::unordered_map<uint64_t, Sym> sparse_memo_;
  uint64_t memo_count_ = 0;
  std::vector<std::string_view> strings_;  // the Str values: views into the pickle or into owned_
  std::deque<std::string> owned_;          // decoded STRING / UNICODE arguments (a deque: views stay valid)
  std::vector<GlobalUse> uses_;
  std::vector<uint32_t> tuple_uses_;       // every tuple's globals, one after another
  std::vector<Span> tuples_;               // Sym::Tuple's index: its part of tuple_uses_
  std::map<std::pair<std::string, std::string>, uint32_t, NameLess> by_name_;
  size_t frame_end_ = 0;
};

}  // namespace

std::vector<GlobalUse> scan_globals(std::string_view data, std::string_view source, size_t* end_offset,
                                    size_t* frame_end) {
  Scanner s(data, source);
  std::vector<GlobalUse> uses = s.run(end_offset);
  if (frame_end) *frame_end = s.frame_end();
  return uses;
}

bool is_weights_only_opcode(uint8_t code) {
  switch (code) {
    case op::GLOBAL: case op::NEWOBJ: case op::REDUCE: case op::BUILD: case op::APPEND:
    case op::APPENDS: case op::SETITEM: case op::SETITEMS: case op::MARK: case op::TUPLE:
    case op::TUPLE1: case op::TUPLE2: case op::TUPLE3: case op::NONE: case op::NEWTRUE:
    case op::NEWFALSE: case op::EMPTY_TUPLE: case op::EMPTY_LIST: case op::EMPTY_DICT:
    case op::EMPTY_SET: case op::BININT: case op::BININT1: case op::BININT2: case op::BINFLOAT:
    case op::BINUNICODE: case op::SHORT_BINSTRING: case op::BINPERSID: case op::BINGET:
    case op::LONG_BINGET: case op::BINPUT: case op::LONG_BINPUT: case op::LONG1: case op::PROTO:
    case op::STOP:
      return true;
    default:
      return false;
  }
}

std::vector<uint8_t> opcodes_used(std::string_view data, std::string_view source) {
  OpReader in(data, source);
  bool seen[256] = {};
  std::vector<uint8_t> used;
  for (;;) {
    Instruction ins = in.next();
    if (!seen[ins.code]) {
      seen[ins.code] = true;
      used.push_back(ins.code);
    }
    if (ins.code == op::STOP) return used;
  }
}

std::string opcode_display_name(uint8_t code) {
  const char* n = opcode_name(code);
  return n ? n : "?";
}

}  // namespace ckpt::pickle
