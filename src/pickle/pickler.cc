#include "pickle/pickler.h"

#include <bit>
#include <cstring>
#include <memory>
#include <unordered_map>
#include <vector>

#include "pickle/allowlist.h"
#include "pickle/opcodes.h"
#include "pickle/text.h"
#include "util/coding.h"
#include "util/error.h"

namespace ckpt::pickle {

namespace {

#include "pickle/compat_names.inc"

constexpr size_t kBatchSize = 1000;  // CPython's _BATCHSIZE

// CPython's pickler with fix_imports: Python 3 names to their Python 2
// spelling (('builtins', 'int') -> ('__builtin__', 'long')). The mapping is
// idempotent on names already in Python 2 form except for module 'dbm'.
std::pair<std::string_view, std::string_view> python2_name(std::string_view module,
                                                           std::string_view name) {
  for (const auto& m : kReverseNameMapping)
    if (module == m.module && name == m.name) return {m.py2_module, m.py2_name};
  for (const auto& m : kReverseImportMapping)
    if (module == m.module) return {m.py2_module, name};
  return {module, name};
}

// Keys under which synthetic objects shared by every use are memoized (in
// CPython they are one object each: the 'latin1' constant, object.__new__).
constexpr std::string_view kLatin1Key = "\x01latin1";
constexpr std::string_view kObjectNewKey = "\x01object.__new__";

enum class StepKind : uint8_t {
  Save,        // node
  Op,          // op
  EndTuple,    // node, n: TUPLEn / TUPLE + memoize, or POPs + GET if memoized meanwhile
  EndReduce,   // node, op: REDUCE / NEWOBJ + memoize, or POP + GET if memoized meanwhile
  MemoFresh,   // memoize a synthetic object that is never referenced again
  MemoNode,    // node
  MemoKey,     // a, b: memoize under key a\nb
  SaveGlobal,  // a = module, b = qualified name
  FreshStr,    // a: a new str object
  BytesAsStr,  // node: latin-1 decoding of a bytes node, a new str object
  Latin1,      // the shared 'latin1' str
  ObjectNew,   // the shared object.__new__ (getattr(object, '__new__'))
};

struct Step {
  StepKind kind;
  uint8_t op = 0;
  uint32_t n = 0;
  const Node* node = nullptr;
  std::string_view a, b;
};

class Writer {
 public:
  explicit Writer(const PickleOptions& options) : options_(options) {}

  std::string run(const Node* root) {
    if (!root) throw Error("pickle: nothing to write (null root)");
    out_ += static_cast<char>(op::PROTO);
    out_ += '\x02';
    steps_.push_back(save(root));
    while (!steps_.empty()) {
      Step s = steps_.back();
      steps_.pop_back();
      exec(s);
    }
    out_ += static_cast<char>(op::STOP);
    return std::move(out_);
  }

 private:
  static Step save(const Node* n) { return Step{StepKind::Save, 0, 0, n, {}, {}}; }
  static Step opcode(uint8_t op) { return Step{StepKind::Op, op, 0, nullptr, {}, {}}; }
  static Step simple(StepKind k) { return Step{k, 0, 0, nullptr, {}, {}}; }
  static Step strs(StepKind k, std::string_view a, std::string_view b = {}) {
    return Step{k, 0, 0, nullptr, a, b};
  }

  // Steps run in the order given (the step stack is last-in first-out).
  void schedule(std::vector<Step>& seq) {
    steps_.insert(steps_.end(), seq.rbegin(), seq.rend());
  }

  void put_u32(uint32_t v) { put_fixed32(out_, v); }

  uint32_t next_memo() {
    if (next_memo_ == UINT32_MAX) throw Error("pickle: too many objects to memoize");
    return next_memo_++;
  }
  void write_put(uint32_t idx) {
    if (idx < 256) {
      out_ += static_cast<char>(op::BINPUT);
      out_ += static_cast<char>(idx);
    } else {
      out_ += static_cast<char>(op::LONG_BINPUT);
      put_u32(idx);
    }
  }
  void write_get(uint32_t idx) {
    if (idx < 256) {
      out_ += static_cast<char>(op::BINGET);
      out_ += static_cast<char>(idx);
    } else {
      out_ += static_cast<char>(op::LONG_BINGET);
      put_u32(idx);
    }
  }
  void memoize(const Node* n) {
    uint32_t idx = next_memo();
    memo_.emplace(n, idx);
    write_put(idx);
  }
  void memoize_key(std::string key) {
    uint32_t idx = next_memo();
    key_memo_.emplace(std::move(key), idx);
    write_put(idx);
  }
  static std::string key_of(std::string_view a, std::string_view b) {
    std::string k(a);
    k += '\n';
    k += b;
    return k;
  }

  void write_str(std::string_view s) {
    if (s.size() > UINT32_MAX) throw Error("pickle: a str over 4 GiB cannot be written in protocol 2");
    out_ += static_cast<char>(op::BINUNICODE);
    put_u32(static_cast<uint32_t>(s.size()));
    out_ += s;
  }

  void write_int(const Node* n) {
    int64_t v = n->integer;
    std::string big;
    if (n->is_big_int()) {
      big = n->text;
      normalize_long(big, v);
    }
    if (big.empty()) {
      if (v >= 0 && v < 256) {
        out_ += static_cast<char>(op::BININT1);
        out_ += static_cast<char>(v);
        return;
      }
      if (v >= 0 && v < 65536) {
        out_ += static_cast<char>(op::BININT2);
        put_fixed16(out_, static_cast<uint16_t>(v));
        return;
      }
      if (v >= INT32_MIN && v <= INT32_MAX) {
        out_ += static_cast<char>(op::BININT);
        put_u32(static_cast<uint32_t>(static_cast<int32_t>(v)));
        return;
      }
      big = encode_long(v);
    }
    if (big.size() < 256) {
      out_ += static_cast<char>(op::LONG1);
      out_ += static_cast<char>(big.size());
    } else {
      if (big.size() > INT32_MAX) throw Error("pickle: integer too large");
      out_ += static_cast<char>(op::LONG4);
      put_u32(static_cast<uint32_t>(big.size()));
    }
    out_ += big;
  }

  void write_float(double d) {
    auto bits = std::bit_cast<uint64_t>(d);
    out_ += static_cast<char>(op::BINFLOAT);
    for (int i = 7; i >= 0; --i) out_ += static_cast<char>((bits >> (8 * i)) & 0xFF);
  }

  // Nodes that CPython memoizes only after their children (tuples, and the
  // results of REDUCE / NEWOBJ). Meeting one again before it is memoized is
  // legal (CPython then POPs and GETs), but only if some node got memoized
  // in between; otherwise CPython would recurse forever.
  void enter_pre_memo(const Node* n) {
    auto& marks = in_progress_[n];
    if (!marks.empty() && marks.back() == memo_.size())
      throw FormatError("pickle: a cycle through tuples or constructor arguments cannot be pickled");
    marks.push_back(memo_.size());
  }
  void leave_pre_memo(const Node* n) {
    auto it = in_progress_.find(n);
    if (it == in_progress_.end()) return;
    it->second.pop_back();
    if (it->second.empty()) in_progress_.erase(it);
  }

  // A list saved by CPython's batch_list_exact: a lone item is APPENDed,
  // otherwise MARK ... APPENDS per 1000 items (also for a last batch of one).
  void exact_list_items(std::vector<Step>& seq, const std::vector<Node*>& items) {
    if (items.size() == 1) {
      seq.push_back(save(items[0]));
      seq.push_back(opcode(op::APPEND));
      return;
    }
    for (size_t i = 0; i < items.size(); i += kBatchSize) {
      seq.push_back(opcode(op::MARK));
      for (size_t k = i; k < items.size() && k < i + kBatchSize; ++k) seq.push_back(save(items[k]));
      seq.push_back(opcode(op::APPENDS));
    }
  }
  // Items of a reduced object (save_reduce listitems, batch_list): batches of
  // 1000, a batch of exactly one as APPEND.
  void object_list_items(std::vector<Step>& seq, const std::vector<Node*>& items) {
    for (size_t i = 0; i < items.size(); i += kBatchSize) {
      size_t end = std::min(items.size(), i + kBatchSize);
      if (end - i == 1) {
        seq.push_back(save(items[i]));
        seq.push_back(opcode(op::APPEND));
        continue;
      }
      seq.push_back(opcode(op::MARK));
      for (size_t k = i; k < end; ++k) seq.push_back(save(items[k]));
      seq.push_back(opcode(op::APPENDS));
    }
  }
  // A dict saved by CPython's batch_dict_exact: a lone item is SETITEM,
  // otherwise MARK ... SETITEMS per 1000 items, and a full last batch is
  // followed by an empty MARK SETITEMS.
  void exact_dict_items(std::vector<Step>& seq, const std::vector<std::pair<Node*, Node*>>& entries) {
    if (entries.empty()) return;
    if (entries.size() == 1) {
      seq.push_back(save(entries[0].first));
      seq.push_back(save(entries[0].second));
      seq.push_back(opcode(op::SETITEM));
      return;
    }
    size_t i = 0, batch;
    do {
      seq.push_back(opcode(op::MARK));
      for (batch = 0; i < entries.size() && batch < kBatchSize; ++i, ++batch) {
        seq.push_back(save(entries[i].first));
        seq.push_back(save(entries[i].second));
      }
      seq.push_back(opcode(op::SETITEMS));
    } while (batch == kBatchSize);
  }
  // Entries of a reduced object (save_reduce dictitems, batch_dict).
  void object_dict_items(std::vector<Step>& seq, const std::vector<std::pair<Node*, Node*>>& entries) {
    for (size_t i = 0; i < entries.size(); i += kBatchSize) {
      size_t end = std::min(entries.size(), i + kBatchSize);
      bool lone = end - i == 1;
      if (!lone) seq.push_back(opcode(op::MARK));
      for (size_t k = i; k < end; ++k) {
        seq.push_back(save(entries[k].first));
        seq.push_back(save(entries[k].second));
      }
      seq.push_back(opcode(lone ? op::SETITEM : op::SETITEMS));
    }
  }

  void exec(const Step& s) {
    switch (s.kind) {
      case StepKind::Save: save_node(s.node); break;
      case StepKind::Op: out_ += static_cast<char>(s.op); break;
      case StepKind::EndTuple: {
        leave_pre_memo(s.node);
        auto it = memo_.find(s.node);
        if (it != memo_.end()) {  // the tuple was saved inside itself
          if (s.n <= 3)
            out_.append(s.n, static_cast<char>(op::POP));
          else
            out_ += static_cast<char>(op::POP_MARK);
          write_get(it->second);
        } else {
          static constexpr uint8_t kSmall[] = {0, op::TUPLE1, op::TUPLE2, op::TUPLE3};
          out_ += static_cast<char>(s.n <= 3 ? kSmall[s.n] : op::TUPLE);
          memoize(s.node);
        }
        break;
      }
      case StepKind::EndReduce: {
        out_ += static_cast<char>(s.op);
        leave_pre_memo(s.node);
        auto it = memo_.find(s.node);
        if (it != memo_.end()) {  // reached again through its own arguments
          out_ += static_cast<char>(op::POP);
          write_get(it->second);
        } else {
          memoize(s.node);
        }
        break;
      }
      case StepKind::MemoFresh: write_put(next_memo()); break;
      case StepKind::MemoNode: memoize(s.node); break;
      case StepKind::MemoKey: memoize_key(key_of(s.a, s.b)); break;
      case StepKind::SaveGlobal: save_global(s.a, s.b); break;
      case StepKind::FreshStr:
        write_str(s.a);
        write_put(next_memo());
        break;
      case StepKind::BytesAsStr:
        write_str(latin1_to_utf8(s.node->text));
        write_put(next_memo());
        break;
      case StepKind::Latin1: {
        auto it = key_memo_.find(key_of(kLatin1Key, {}));
        if (it != key_memo_.end()) {
          write_get(it->second);
        } else {
          write_str("latin1");
          memoize_key(key_of(kLatin1Key, {}));
        }
        break;
      }
      case StepKind::ObjectNew: {
        auto it = key_memo_.find(key_of(kObjectNewKey, {}));
        if (it != key_memo_.end()) {
          write_get(it->second);
          break;
        }
        std::vector<Step> seq{strs(StepKind::SaveGlobal, "__builtin__", "getattr"),
                              strs(StepKind::SaveGlobal, "__builtin__", "object"),
                              strs(StepKind::FreshStr, "__new__"),
                              opcode(op::TUPLE2),
                              simple(StepKind::MemoFresh),
                              opcode(op::REDUCE),
                              strs(StepKind::MemoKey, kObjectNewKey)};
        schedule(seq);
        break;
      }
    }
  }

  void save_global(std::string_view py3_module, std::string_view py3_name) {
    // A dotted name whose prefix is a submodule (module 'torch', name
    // 'nn.parameter.Parameter', as a protocol-4 STACK_GLOBAL or a hand-made
    // GLOBAL spells it) names the object pickle would save under its
    // __module__ and __qualname__ ('torch.nn.parameter', 'Parameter'): write
    // that, as torch.save does, not getattr(...).
    size_t last = py3_name.rfind('.');
    if (last != std::string_view::npos) {
      std::string sub_module = std::string(py3_module) + "." + std::string(py3_name.substr(0, last));
      std::string_view leaf = py3_name.substr(last + 1);
      if (audiocraft_allows(sub_module, leaf)) {
        canonical_modules_.push_back(std::make_unique<std::string>(std::move(sub_module)));
        save_global(*canonical_modules_.back(), leaf);
        return;
      }
    }
    // One Python object whichever spelling the graph uses: key by the written name.
    auto [module, name] = python2_name(py3_module, py3_name);
    std::string key = key_of(module, name);
    auto it = key_memo_.find(key);
    if (it != key_memo_.end()) {
      write_get(it->second);
      return;
    }
    size_t dot = name.rfind('.');
    if (dot != std::string_view::npos) {
      // Protocol 2 spells a nested qualified name as getattr(parent, last).
      std::vector<Step> seq{strs(StepKind::SaveGlobal, "__builtin__", "getattr"),
                            strs(StepKind::SaveGlobal, module, name.substr(0, dot)),
                            strs(StepKind::FreshStr, name.substr(dot + 1)),
                            opcode(op::TUPLE2),
                            simple(StepKind::MemoFresh),
                            opcode(op::REDUCE),
                            strs(StepKind::MemoKey, module, name)};
      schedule(seq);
      return;
    }
    for (std::string_view part : {module, name})
      for (char c : part)
        if (c == '\n' || static_cast<uint8_t>(c) >= 0x80)
          throw FormatError("pickle: global name '" + std::string(module) + " " + std::string(name) +
                            "' is not ASCII without newlines, as protocol 2 requires");
    out_ += static_cast<char>(op::GLOBAL);
    out_ += module;
    out_ += '\n';
    out_ += name;
    out_ += '\n';
    memoize_key(std::move(key));
  }

  void save_node(const Node* n) {
    if (!n) throw FormatError("pickle: null reference in the object graph");
    switch (n->kind) {
      case Kind::None: out_ += static_cast<char>(op::NONE); return;
      case Kind::Bool: out_ += static_cast<char>(n->boolean ? op::NEWTRUE : op::NEWFALSE); return;
      case Kind::Int: write_int(n); return;
      case Kind::Float: write_float(n->real); return;
      case Kind::Global: save_global(n->text, n->name); return;
      case Kind::PersId: {
        if (!n->pid) throw FormatError("pickle: persistent id without an id object");
        if (options_.on_persistent_id) options_.on_persistent_id(const_cast<Node*>(n));
        std::vector<Step> seq{save(n->pid), opcode(op::BINPERSID)};
        schedule(seq);
        return;
      }
      default: break;
    }
    auto it = memo_.find(n);
    if (it != memo_.end()) {
      write_get(it->second);
      return;
    }
    std::vector<Step>& seq = scratch_;  // save_node never nests: reuse one buffer
    seq.clear();
    switch (n->kind) {
      case Kind::Str:
        write_str(n->text);
        memoize(n);
        return;
      case Kind::Bytes:
        // Protocol 2 has no bytes opcode: CPython writes bytes() or
        // _codecs.encode(latin-1 text, 'latin1').
        if (n->text.empty()) {
          seq = {strs(StepKind::SaveGlobal, "__builtin__", "bytes"), opcode(op::EMPTY_TUPLE),
                 opcode(op::REDUCE), Step{StepKind::MemoNode, 0, 0, n, {}, {}}};
        } else {
          seq = {strs(StepKind::SaveGlobal, "_codecs", "encode"),
                 Step{StepKind::BytesAsStr, 0, 0, n, {}, {}},
                 simple(StepKind::Latin1),
                 opcode(op::TUPLE2),
                 simple(StepKind::MemoFresh),
                 opcode(op::REDUCE),
                 Step{StepKind::MemoNode, 0, 0, n, {}, {}}};
        }
        break;
      case Kind::ByteArray:
        // bytearray(bytes(x)), the inner bytes a new object.
        if (n->text.empty()) {
          seq = {strs(StepKind::SaveGlobal, "__builtin__", "bytearray"), opcode(op::EMPTY_TUPLE),
                 opcode(op::REDUCE), Step{StepKind::MemoNode, 0, 0, n, {}, {}}};
        } else {
          seq = {strs(StepKind::SaveGlobal, "__builtin__", "bytearray"),
                 strs(StepKind::SaveGlobal, "_codecs", "encode"),
                 Step{StepKind::BytesAsStr, 0, 0, n, {}, {}},
                 simple(StepKind::Latin1),
                 opcode(op::TUPLE2),
                 simple(StepKind::MemoFresh),
                 opcode(op::REDUCE),
                 simple(StepKind::MemoFresh),
                 opcode(op::TUPLE1),
                 simple(StepKind::MemoFresh),
                 opcode(op::REDUCE),
                 Step{StepKind::MemoNode, 0, 0, n, {}, {}}};
        }
        break;
      case Kind::Tuple: {
        size_t count = n->items.size();
        if (count == 0) {
          out_ += static_cast<char>(op::EMPTY_TUPLE);
          return;
        }
        enter_pre_memo(n);
        if (count > 3) seq.push_back(opcode(op::MARK));
        for (const Node* item : n->items) seq.push_back(save(item));
        seq.push_back(Step{StepKind::EndTuple, 0, static_cast<uint32_t>(std::min<size_t>(count, 4)), n, {}, {}});
        break;
      }
      case Kind::List:
        out_ += static_cast<char>(op::EMPTY_LIST);
        memoize(n);
        exact_list_items(seq, n->items);
        break;
      case Kind::Dict:
        out_ += static_cast<char>(op::EMPTY_DICT);
        memoize(n);
        exact_dict_items(seq, n->entries);
        break;
      case Kind::Set:
      case Kind::FrozenSet:
        // Protocol 2: set(list) / frozenset(list) by REDUCE.
        enter_pre_memo(n);
        seq.push_back(strs(StepKind::SaveGlobal, "__builtin__", n->kind == Kind::Set ? "set" : "frozenset"));
        seq.push_back(opcode(op::EMPTY_LIST));
        seq.push_back(simple(StepKind::MemoFresh));
        exact_list_items(seq, n->items);
        seq.push_back(opcode(op::TUPLE1));
        seq.push_back(simple(StepKind::MemoFresh));
        seq.push_back(Step{StepKind::EndReduce, op::REDUCE, 0, n, {}, {}});
        break;
      case Kind::Object:
        save_object(seq, n);
        break;
      default: throw FormatError("pickle: node of unknown kind");
    }
    schedule(seq);
  }

  // CPython's save_reduce: constructor, memoize, list items, dict items, state.
  void save_object(std::vector<Step>& seq, const Node* n) {
    if (!n->callable) throw FormatError("pickle: object without a callable or class");
    enter_pre_memo(n);
    if (n->how == How::NewObjEx) {
      // Protocol 2 has no NEWOBJ_EX: CPython pickles
      // functools.partial(cls.__new__, cls, *args, **kwargs)() instead. We
      // assume cls.__new__ is object.__new__ (a class with its own __new__
      // would be spelled getattr(cls, '__new__')).
      const std::vector<Node*> no_items;
      const auto& args = n->args ? n->args->items : no_items;
      seq.push_back(strs(StepKind::SaveGlobal, "functools", "partial"));
      seq.push_back(simple(StepKind::ObjectNew));
      seq.push_back(opcode(op::TUPLE1));
      seq.push_back(simple(StepKind::MemoFresh));
      seq.push_back(opcode(op::REDUCE));
      seq.push_back(simple(StepKind::MemoFresh));
      seq.push_back(opcode(op::MARK));  // state: (func, args, keywords, None)
      seq.push_back(simple(StepKind::ObjectNew));
      size_t count = args.size() + 1;
      if (count > 3) seq.push_back(opcode(op::MARK));
      seq.push_back(save(n->callable));
      for (const Node* a : args) seq.push_back(save(a));
      static constexpr uint8_t kSmall[] = {0, op::TUPLE1, op::TUPLE2, op::TUPLE3};
      seq.push_back(opcode(count <= 3 ? kSmall[count] : op::TUPLE));
      seq.push_back(simple(StepKind::MemoFresh));
      seq.push_back(opcode(op::EMPTY_DICT));
      seq.push_back(simple(StepKind::MemoFresh));
      static const std::vector<std::pair<Node*, Node*>> no_entries;
      exact_dict_items(seq, n->kwargs ? n->kwargs->entries : no_entries);
      seq.push_back(opcode(op::NONE));
      seq.push_back(opcode(op::TUPLE));
      seq.push_back(simple(StepKind::MemoFresh));
      seq.push_back(opcode(op::BUILD));
      seq.push_back(opcode(op::EMPTY_TUPLE));
      seq.push_back(Step{StepKind::EndReduce, op::REDUCE, 0, n, {}, {}});
    } else {
      seq.push_back(save(n->callable));
      seq.push_back(n->args ? save(n->args) : opcode(op::EMPTY_TUPLE));
      seq.push_back(Step{StepKind::EndReduce, n->how == How::NewObj ? op::NEWOBJ : op::REDUCE, 0, n, {}, {}});
    }
    object_list_items(seq, n->items);
    object_dict_items(seq, n->entries);
    if (n->state) {
      seq.push_back(save(n->state));
      seq.push_back(opcode(op::BUILD));
    }
  }

  const PickleOptions& options_;
  std::string out_;
  std::vector<Step> steps_;
  std::vector<Step> scratch_;
  std::unordered_map<const Node*, uint32_t> memo_;
  std::unordered_map<std::string, uint32_t> key_memo_;
  std::unordered_map<const Node*, std::vector<size_t>> in_progress_;
  std::vector<std::unique_ptr<std::string>> canonical_modules_;  // names save_global made
  uint32_t next_memo_ = 0;
};

}  // namespace

std::string pickle(const Node* root, const PickleOptions& options) {
  Writer w(options);
  return w.run(root);
}

}  // namespace ckpt::pickle
