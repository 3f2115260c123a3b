#include "pickle/scan.h"

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
  enum Kind : uint8_t { Other, Str, Global, Made, Tuple } kind = Other;
  uint32_t index = 0;  // Str: into strings; Global / Made: into uses; Tuple: into tuple_uses
};

class Scanner : private MarkedStack<Sym> {
 public:
  Scanner(std::string_view data, std::string_view source) : in_(data, source) {}

  size_t frame_end() const { return frame_end_; }

  std::vector<GlobalUse> run(size_t* end_offset) {
    for (;;) {
      Instruction ins = in_.next();
      at_ = ins.offset;
      if (ins.code == op::STOP) {
        pop();
        if (end_offset) *end_offset = in_.pos();
        return std::move(uses_);
      }
      step(ins);
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const override { in_.fail(at_, what); }
  // The first value above the mark (Other when none); the rest are dropped.
  Sym pop_mark_first() {
    std::vector<Sym> items = pop_mark();
    return items.empty() ? Sym{} : items.front();
  }
  // A tuple that holds globals (or objects they made), so that a persistent
  // id built from it can name them. At most kTupleUses per tuple.
  static constexpr size_t kTupleUses = 16;
  void push_tuple(std::vector<Sym>::const_iterator first, std::vector<Sym>::const_iterator last) {
    std::vector<uint32_t> found;
    for (auto it = first; it != last && found.size() < kTupleUses; ++it) {
      if (it->kind == Sym::Global || it->kind == Sym::Made) found.push_back(it->index);
      if (it->kind == Sym::Tuple)
        for (uint32_t u : tuple_uses_[it->index])
          if (found.size() < kTupleUses) found.push_back(u);
    }
    if (found.empty()) {
      push_other();
      return;
    }
    tuple_uses_.push_back(std::move(found));
    push(Sym{Sym::Tuple, static_cast<uint32_t>(tuple_uses_.size() - 1)});
  }
  void push_other() { push(Sym{}); }
  void push_str(std::string s) {
    strings_.push_back(std::move(s));
    push(Sym{Sym::Str, static_cast<uint32_t>(strings_.size() - 1)});
  }

  uint32_t use(std::string module, std::string name) {
    check_global_name(module, name, [this](const std::string& what) { fail(what); });
    auto key = std::make_pair(module, name);
    auto it = by_name_.find(key);
    if (it != by_name_.end()) return it->second;
    uses_.push_back(GlobalUse{std::move(module), std::move(name), false, false, false, false, false, at_});
    auto idx = static_cast<uint32_t>(uses_.size() - 1);
    by_name_.emplace(std::move(key), idx);
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
  void memo_get(uint64_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) fail("memo index " + std::to_string(idx) + " undefined");
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
      case op::POP_MARK: pop_mark(); break;
      case op::DUP: push(top()); break;

      case op::STRING: {
        std::string s;
        if (!decode_string_literal(ins.arg, s).empty()) fail("malformed STRING argument");
        push_str(std::move(s));
        break;
      }
      case op::UNICODE: {
        std::string s;
        if (!decode_raw_unicode_escape(ins.arg, s).empty()) fail("malformed UNICODE argument");
        push_str(std::move(s));
        break;
      }
      case op::BINSTRING:
      case op::SHORT_BINSTRING:
      case op::BINUNICODE:
      case op::SHORT_BINUNICODE:
      case op::BINUNICODE8: push_str(std::string(ins.arg)); break;

      case op::INT: case op::LONG: case op::BININT: case op::BININT1: case op::BININT2:
      case op::LONG1: case op::LONG4: case op::FLOAT: case op::BINFLOAT: case op::NONE:
      case op::NEWTRUE: case op::NEWFALSE: case op::BINBYTES: case op::SHORT_BINBYTES:
      case op::BINBYTES8: case op::BYTEARRAY8: case op::EMPTY_TUPLE: case op::EMPTY_LIST:
      case op::EMPTY_DICT: case op::EMPTY_SET: case op::PERSID: case op::NEXT_BUFFER:
        push_other();
        break;

      case op::TUPLE1: case op::TUPLE2: case op::TUPLE3: {
        size_t n = ins.code - op::TUPLE1 + 1;
        std::vector<Sym> items = pop_n(n);
        push_tuple(items.begin(), items.end());
        break;
      }
      case op::TUPLE: {
        std::vector<Sym> items = pop_mark();
        push_tuple(items.begin(), items.end());
        break;
      }
      case op::LIST: case op::DICT: case op::FROZENSET:
        pop_mark();
        push_other();
        break;
      case op::APPEND: pop(); top(); break;
      case op::SETITEM: pop_n(2); top(); break;
      case op::APPENDS: case op::SETITEMS: case op::ADDITEMS: pop_mark(); top(); break;
      case op::BINPERSID: {
        Sym pid = pop();
        if (pid.kind == Sym::Global || pid.kind == Sym::Made) uses_[pid.index].in_persistent_id = true;
        if (pid.kind == Sym::Tuple)
          for (uint32_t u : tuple_uses_[pid.index]) uses_[u].in_persistent_id = true;
        push_other();
        break;
      }

      case op::GLOBAL:
        push(Sym{Sym::Global, use(std::string(ins.arg), std::string(ins.arg2))});
        break;
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
        uint32_t g = use(std::string(ins.arg), std::string(ins.arg2));
        pop_mark();
        uses_[g].instantiated = true;
        uses_[g].called = true;
        push(Sym{Sym::Made, g});
        break;
      }
      case op::OBJ: {
        if (marks_.empty() || stack_.size() <= marks_.back()) fail("OBJ without a class");
        Sym cls = pop_mark_first();
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
        pop_n(2);
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

      case op::PUT: memo_[text_index(ins.arg)] = top(); break;
      case op::BINPUT:
      case op::LONG_BINPUT: memo_[decode_fixed(ins.arg)] = top(); break;
      case op::MEMOIZE: memo_[memo_.size()] = top(); break;
      case op::GET: memo_get(text_index(ins.arg)); break;
      case op::BINGET:
      case op::LONG_BINGET: memo_get(decode_fixed(ins.arg)); break;
      default: fail("opcode not handled by the scanner");
    }
  }

  OpReader in_;
  size_t at_ = 0;
  std::unordered_map<uint64_t, Sym> memo_;
  std::vector<std::string> strings_;
  std::vector<GlobalUse> uses_;
  std::vector<std::vector<uint32_t>> tuple_uses_;
  std::map<std::pair<std::string, std::string>, uint32_t> by_name_;
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
