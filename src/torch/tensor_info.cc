// Recognizing tensors in the pickle graph: every rebuild function torch 1.13
// to 2.13 pickles a tensor with (torch/_tensor.py __reduce_ex__, the
// _rebuild_* functions of torch/_utils.py), and what TensorInfo derives
// from them. Nothing here reads tensor bytes.
#include <functional>
#include <limits>

#include "torch/checkpoint.h"
#include "util/error.h"

namespace ckpt::torch {

using pickle::Kind;
using pickle::Node;

namespace {

// Parameter(subclass(Parameter(...))) is legal but a hostile pickle could
// nest wrappers without end; recursion stops here.
constexpr int kMaxWrapperDepth = 16;

int64_t int_arg(const Node* n, const char* what) {
  if (!n || n->kind != Kind::Int || n->is_big_int())
    throw FormatError(std::string("tensor ") + what + " is not an integer");
  return n->integer;
}

std::vector<int64_t> int_tuple(const Node* n, const char* what) {
  if (!n || n->kind != Kind::Tuple) throw FormatError(std::string("tensor ") + what + " is not a tuple");
  std::vector<int64_t> v;
  v.reserve(n->items.size());
  for (const Node* i : n->items) v.push_back(int_arg(i, what));
  return v;
}

// A size as torch pickles it in sparse tensors: torch.Size((3, 3)); or a tuple.
std::vector<int64_t> size_arg(const Node* n, const char* what) {
  if (n && n->is_instance_of("torch", "Size") && n->args && n->args->kind == Kind::Tuple &&
      n->args->items.size() == 1)
    return int_tuple(n->args->items[0], what);
  return int_tuple(n, what);
}

bool truthy(const Node* n) { return n && n->kind == Kind::Bool && n->boolean; }

double number_arg(const Node* n, const char* what) {
  if (n && n->kind == Kind::Float) return n->real;
  if (n && n->kind == Kind::Int && !n->is_big_int()) return static_cast<double>(n->integer);
  throw FormatError(std::string("tensor ") + what + " is not a number");
}

// A dtype argument: the global torch.float32.
const DTypeInfo* dtype_arg(const Node* n, const std::string& fn) {
  if (!n || n->kind != Kind::Global || n->text != "torch")
    throw FormatError(fn + ": the dtype argument is not a torch dtype");
  const DTypeInfo* d = from_name(n->name);
  if (!d) throw FormatError(fn + ": unknown dtype torch." + n->name);
  return d;
}

bool non_empty_state(const Node* n) {
  if (!n || n->kind == Kind::None) return false;
  if (const auto* e = pickle::entries_of(n)) return !e->empty();
  return true;
}

// The layout of _rebuild_sparse_tensor: torch.serialization._get_layout(
// 'torch.sparse_coo') since torch 1.13's serialization; a global before.
TensorLayout layout_arg(const Node* n) {
  std::string name;
  if (n && n->is_instance_of("torch.serialization", "_get_layout") && n->args && n->args->kind == Kind::Tuple &&
      n->args->items.size() == 1 && n->args->items[0]->kind == Kind::Str) {
    name = n->args->items[0]->text;
    if (name.rfind("torch.", 0) == 0) name = name.substr(6);
  } else if (n && n->kind == Kind::Global && n->text == "torch") {
    name = n->name;
  }
  for (TensorLayout l : {TensorLayout::SparseCoo, TensorLayout::SparseCsr, TensorLayout::SparseCsc,
                         TensorLayout::SparseBsr, TensorLayout::SparseBsc})
    if (name == to_string(l)) return l;
  throw FormatError("_rebuild_sparse_tensor with an unknown layout '" + name + "'");
}

// The metadata dict of _rebuild_tensor_v2/_v3 (torch._utils.get_tensor_metadata):
// the conjugate and negative bits.
void apply_metadata(TensorInfo& t, const Node* md, const std::string& fn) {
  if (!md || md->kind == Kind::None) return;
  const auto* e = pickle::entries_of(md);
  if (!e) throw FormatError(fn + ": tensor metadata is not a dict");
  for (const auto& [k, v] : *e) {
    if (k->is_str("conj")) t.conj = truthy(v);
    else if (k->is_str("neg")) t.neg = truthy(v);
    else throw FormatError(fn + ": unknown tensor metadata '" + (k->kind == Kind::Str ? k->text : "?") + "'");
  }
}

// Rebuild functions of tensors whose data ckpt cannot reach (device
// tensors, wrapper subclasses): refused by name rather than passed over.
bool is_unreadable_rebuild(const std::string& fn) {
  for (const char* f : {"_rebuild_wrapper_subclass", "_rebuild_device_tensor_from_numpy",
                        "_rebuild_device_tensor_from_cpu_tensor", "_rebuild_xla_tensor", "_rebuild_mlc_tensor",
                        "_rebuild_mps_tensor"})
    if (fn == f) return true;
  return false;
}

}  // namespace

const char* to_string(TensorLayout l) {
  switch (l) {
    case TensorLayout::Strided: return "strided";
    case TensorLayout::SparseCoo: return "sparse_coo";
    case TensorLayout::SparseCsr: return "sparse_csr";
    case TensorLayout::SparseCsc: return "sparse_csc";
    case TensorLayout::SparseBsr: return "sparse_bsr";
    case TensorLayout::SparseBsc: return "sparse_bsc";
    case TensorLayout::Nested: return "nested";
    case TensorLayout::Jagged: return "jagged";
  }
  return "?";
}

const TensorInfo* TensorInfo::part(std::string_view name) const {
  for (const auto& [n, t] : parts)
    if (n == name) return &t;
  return nullptr;
}

bool TensorInfo::is_plain() const {
  return layout == TensorLayout::Strided && !is_meta && !conj && !neg && !quantization;
}

uint64_t TensorInfo::nnz() const {
  const TensorInfo* v = part("values");
  return v && !v->shape.empty() && v->shape[0] > 0 ? static_cast<uint64_t>(v->shape[0]) : 0;
}

std::string TensorInfo::form() const {
  std::string out;
  auto add = [&](const std::string& s) { out += (out.empty() ? "" : ", ") + s; };
  if (layout == TensorLayout::Nested || layout == TensorLayout::Jagged) {
    add(std::string(to_string(layout)) + ", " + std::to_string(shape.empty() ? 0 : shape[0]) + " tensors" +
        (part("lengths") ? " (with lengths)" : ""));
  } else if (layout != TensorLayout::Strided) {
    add(std::string(to_string(layout)) + ", nnz " + std::to_string(nnz()));
    if (layout == TensorLayout::SparseCoo && !coalesced) add("uncoalesced");
  }
  if (quantization) {
    char buf[96];
    if (quantization->per_channel())
      std::snprintf(buf, sizeof buf, " (axis %lld)", static_cast<long long>(quantization->axis));
    else
      std::snprintf(buf, sizeof buf, " (scale %.9g, zero_point %lld)", quantization->scale,
                    static_cast<long long>(quantization->zero_point));
    add("quantized " + quantization->scheme + buf);
  }
  if (is_meta) add("meta");
  if (conj) add("conj");
  if (neg) add("neg");
  if (!subclass.empty()) add("subclass " + subclass);
  return out;
}

uint64_t TensorInfo::numel() const {
  if (layout == TensorLayout::Nested || layout == TensorLayout::Jagged) {
    const TensorInfo* b = part(layout == TensorLayout::Nested ? "buffer" : "values");
    return b ? b->numel() : 0;
  }
  uint64_t n = 1;
  for (int64_t s : shape) {
    if (s < 0) return 0;
    if (s != 0 && n > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(s))
      return std::numeric_limits<uint64_t>::max();
    n *= static_cast<uint64_t>(s);
  }
  return n;
}

uint64_t TensorInfo::nbytes() const {
  if (is_meta) return 0;
  uint64_t n = layout == TensorLayout::Strided && dtype ? numel() * dtype->element_size : 0;
  for (const auto& [name, p] : parts) n += p.nbytes();
  return n;
}

bool TensorInfo::is_contiguous() const {
  if (layout != TensorLayout::Strided || shape.size() != stride.size()) return false;
  int64_t expected = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    if (shape[i] == 1) continue;
    if (stride[i] != expected) return numel() == 0;
    expected *= shape[i];
  }
  return true;
}

std::string TensorInfo::view_problem() const {
  if (layout != TensorLayout::Strided) return {};  // its parts are the views
  if (shape.size() != stride.size()) return "size and stride have different lengths";
  if (storage_offset < 0) return "negative storage offset";
  // Last element index = offset + sum((size-1)*stride), in 128 bits.
  __int128 last = storage_offset;
  bool empty = false;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0) return "negative size";
    if (stride[i] < 0) return "negative stride";
    if (shape[i] == 0) empty = true;
  }
  if (numel() == std::numeric_limits<uint64_t>::max()) return "element count overflows";
  if (empty || is_meta) return {};
  for (size_t i = 0; i < shape.size(); ++i) {
    last += static_cast<__int128>(shape[i] - 1) * stride[i];
    // Each term is below 2^126; stop before a sum (or the byte count below) could overflow.
    if (last > (static_cast<__int128>(1) << 100)) return "view reaches past any storage";
  }
  if (!storage) return "no storage";
  if (static_cast<__int128>(storage->numel) * storage->dtype->element_size > (static_cast<__int128>(1) << 62))
    return "storage of " + std::to_string(storage->numel) + " elements is too large";
  // In bytes: a _rebuild_tensor_v3 view's dtype differs from its untyped storage's.
  const uint32_t es = dtype ? dtype->element_size : storage->dtype->element_size;
  if ((last + 1) * es > static_cast<__int128>(storage->numel) * storage->dtype->element_size) {
    if (storage->dtype == dtype)
      return "view reaches element " + std::to_string(static_cast<long long>(last)) + " of a storage of " +
             std::to_string(storage->numel);
    return "view reaches byte " + std::to_string(static_cast<long long>((last + 1) * es)) +
           " of a storage of " + std::to_string(storage->nbytes()) + " bytes";
  }
  return {};
}

std::vector<std::string> TensorInfo::problems() const {
  std::vector<std::string> out;
  if (std::string p = view_problem(); !p.empty()) out.push_back(p);
  for (const auto& [name, t] : parts)
    for (const std::string& p : t.problems()) out.push_back(name + ": " + p);
  auto dims_of = [&](const char* name) -> const std::vector<int64_t>* {
    const TensorInfo* t = part(name);
    return t ? &t->shape : nullptr;
  };
  if (layout == TensorLayout::SparseCoo) {
    const auto *ind = dims_of("indices"), *val = dims_of("values");
    if (!ind || !val || ind->size() != 2 || val->empty() || (*ind)[1] != (*val)[0] ||
        static_cast<size_t>((*ind)[0]) + val->size() - 1 != shape.size())
      out.push_back("sparse_coo indices and values do not fit its size");
  } else if (layout == TensorLayout::SparseCsr || layout == TensorLayout::SparseCsc) {
    const bool csr = layout == TensorLayout::SparseCsr;
    const auto *comp = dims_of(csr ? "crow_indices" : "ccol_indices"), *plain = dims_of(csr ? "col_indices" : "row_indices"),
               *val = dims_of("values");
    if (!comp || !plain || !val || shape.size() != 2 || comp->size() != 1 || plain->size() != 1 || val->empty() ||
        (*comp)[0] != shape[csr ? 0 : 1] + 1 || (*plain)[0] != (*val)[0])
      out.push_back(std::string(to_string(layout)) + " indices and values do not fit its size");
  }
  if (quantization && quantization->per_channel()) {
    const auto *sc = dims_of("scales"), *zp = dims_of("zero_points");
    const int64_t axis = quantization->axis;
    if (axis < 0 || static_cast<size_t>(axis) >= shape.size() || !sc || !zp || sc->size() != 1 ||
        zp->size() != 1 || (*sc)[0] != shape[axis] || (*zp)[0] != shape[axis])
      out.push_back("per-channel scales and zero points do not fit its size along axis " + std::to_string(axis));
  }
  return out;
}

std::optional<TensorInfo> Checkpoint::tensor(const Node* n) const {
  if (!n || n->kind != Kind::Object) return std::nullopt;
  return tensor_call(n, n->callable, n->args, 0);
}

namespace {

// One rebuild call of the pickle (callable(args), callable a global) read as
// a tensor: each kind of rebuild function its own method. `inner` reads a
// nested call one level deeper (Checkpoint::tensor_call).
class RebuildCall {
 public:
  using Inner = std::function<std::optional<TensorInfo>(const Node* outer, const Node* callable, const Node* args)>;

  RebuildCall(const Checkpoint& ck, const Node* outer, const Node* callable, const Node* args, Inner inner)
      : ck_(ck), outer_(outer), fn_(callable->name), args_(args), inner_(std::move(inner)) {}

  std::optional<TensorInfo> read(const std::string& mod) {
    if (mod == "torch._tensor" && (fn_ == "_rebuild_from_type_v2" || fn_ == "_rebuild_from_type"))
      return from_type();
    if (mod != "torch._utils") return std::nullopt;
    if (fn_ == "_rebuild_parameter" || fn_ == "_rebuild_parameter_with_state") return parameter();
    if (fn_ == "_rebuild_tensor_v2" || fn_ == "_rebuild_tensor_v3" || fn_ == "_rebuild_tensor") return strided();
    if (fn_ == "_rebuild_qtensor") return quantized();
    if (fn_ == "_rebuild_sparse_tensor" || fn_ == "_rebuild_sparse_csr_tensor") return sparse();
    if (fn_ == "_rebuild_meta_tensor_no_storage") return meta();
    if (fn_ == "_rebuild_nested_tensor") return nested();
    if (is_unreadable_rebuild(fn_))
      throw FormatError("a tensor of a kind ckpt cannot read (torch._utils." + fn_ + ")");
    return std::nullopt;
  }

 private:
  const std::vector<Node*>& tuple_args(size_t at_least) const {
    if (!args_ || args_->kind != Kind::Tuple || args_->items.size() < at_least)
      throw FormatError("malformed " + fn_ + " arguments");
    return args_->items;
  }
  std::optional<TensorInfo> inner_tensor(const Node* n) const {
    if (!n || n->kind != Kind::Object) return std::nullopt;
    return inner_(n, n->callable, n->args);
  }
  TensorInfo part_tensor(const Node* n, const std::string& what) const {
    auto t = inner_tensor(n);
    if (!t) throw FormatError(fn_ + ": the " + what + " are not a tensor");
    return std::move(*t);
  }
  TensorInfo fresh() const {
    TensorInfo t;
    t.object = t.outer = outer_;
    return t;
  }
  const Storage* storage_arg(const Node* p) const {
    if (!p || p->kind != Kind::PersId || !is_storage_pid(p->pid))
      throw FormatError(fn_ + " without a storage persistent id");
    return ck_.storage(p->pid->items[2]->text);
  }
  void view_args(TensorInfo& t, const std::vector<Node*>& a) const {
    t.storage_offset = int_arg(a[1], "storage offset");
    t.shape = int_tuple(a[2], "size");
    t.stride = int_tuple(a[3], "stride");
    if (t.shape.size() != t.stride.size()) throw FormatError(fn_ + ": size and stride lengths differ");
  }

  // Tensor subclasses (and Parameters with hooks): torch/_tensor.py
  // _rebuild_from_type_v2(func, new_type, args, state).
  std::optional<TensorInfo> from_type() const {
    const auto& a = tuple_args(3);
    if (a[2]->kind != Kind::Tuple) throw FormatError("malformed " + fn_ + " arguments");
    if (a[0]->is_global("torch.nested._internal.nested_tensor", "_rebuild_njt")) return jagged(a[2]);
    auto inner = inner_(outer_, a[0], a[2]);
    if (!inner) return std::nullopt;
    inner->object = outer_;
    inner->outer = outer_;
    const Node* type = a[1];
    if (type->is_global("torch.nn.parameter", "Parameter")) inner->is_parameter = true;
    else if (type->kind == Kind::Global && !type->is_global("torch", "Tensor"))
      inner->subclass = type->text + "." + type->name;
    else if (type->kind != Kind::Global)
      inner->subclass = "?";
    if (a.size() >= 4 && non_empty_state(a[3])) inner->has_state = true;
    return inner;
  }

  // A jagged nested tensor: _rebuild_njt({values, offsets, lengths, _ragged_idx, ...}).
  TensorInfo jagged(const Node* njt_args) const {
    const auto* kw = njt_args->items.size() == 1 ? pickle::entries_of(njt_args->items[0]) : nullptr;
    const Node* values = kw ? pickle::get_item(njt_args->items[0], "values") : nullptr;
    const Node* offsets = kw ? pickle::get_item(njt_args->items[0], "offsets") : nullptr;
    if (!values || !offsets) throw FormatError("_rebuild_njt without values and offsets");
    const Node* lengths = pickle::get_item(njt_args->items[0], "lengths");
    TensorInfo t = fresh();
    t.layout = TensorLayout::Jagged;
    auto component = [&](const Node* n, const char* what) {
      auto c = n->kind == Kind::Object ? inner_(n, n->callable, n->args) : std::nullopt;
      if (!c) throw FormatError(std::string("_rebuild_njt: the ") + what + " are not a tensor");
      return std::move(*c);
    };
    t.parts.emplace_back("values", component(values, "values"));
    t.parts.emplace_back("offsets", component(offsets, "offsets"));
    if (lengths && lengths->kind != Kind::None) t.parts.emplace_back("lengths", component(lengths, "lengths"));
    t.dtype = t.part("values")->dtype;
    const auto& off = t.part("offsets")->shape;
    t.shape = {off.size() == 1 && off[0] > 0 ? off[0] - 1 : 0};
    return t;
  }

  std::optional<TensorInfo> parameter() const {
    const auto& a = tuple_args(2);
    auto inner = inner_tensor(a[0]);
    if (!inner) return std::nullopt;
    inner->outer = outer_;
    inner->is_parameter = true;
    inner->requires_grad = truthy(a[1]);
    if (fn_ == "_rebuild_parameter_with_state" && a.size() >= 4 && non_empty_state(a[3])) inner->has_state = true;
    return inner;
  }

  // v2(storage, offset, size, stride, requires_grad, hooks[, metadata]);
  // v3 adds the dtype before the metadata: its storage is untyped.
  // torch 0.3's _rebuild_tensor(storage, offset, size, stride) has neither
  // requires_grad nor hooks (torch 2.13 still loads it, weights_only too).
  TensorInfo strided() const {
    const bool v3 = fn_ == "_rebuild_tensor_v3";
    const bool v1 = fn_ == "_rebuild_tensor";
    const auto& a = tuple_args(v3 ? 7 : v1 ? 4 : 5);
    TensorInfo t = fresh();
    t.storage = storage_arg(a[0]);
    t.dtype = v3 ? dtype_arg(a[6], fn_) : (t.storage ? t.storage->dtype : nullptr);
    view_args(t, a);
    if (v1) return t;
    t.requires_grad = truthy(a[4]);
    const size_t md = v3 ? 7 : 6;
    if (a.size() > md) apply_metadata(t, a[md], fn_);
    return t;
  }

  // (storage, offset, size, stride, quantizer_params, requires_grad, hooks)
  TensorInfo quantized() const {
    const auto& a = tuple_args(6);
    TensorInfo t = fresh();
    t.storage = storage_arg(a[0]);
    t.dtype = t.storage ? t.storage->dtype : nullptr;
    view_args(t, a);
    t.requires_grad = truthy(a[5]);
    const Node* q = a[4];
    if (q->kind != Kind::Tuple || q->items.empty() || q->items[0]->kind != Kind::Global ||
        q->items[0]->text != "torch")
      throw FormatError(fn_ + ": malformed quantizer parameters");
    Quantization qz;
    qz.scheme = q->items[0]->name;
    if (qz.scheme == "per_tensor_affine") {
      if (q->items.size() != 3) throw FormatError(fn_ + ": malformed per_tensor_affine parameters");
      qz.scale = number_arg(q->items[1], "quantization scale");
      qz.zero_point = int_arg(q->items[2], "quantization zero point");
    } else if (qz.scheme == "per_channel_affine" || qz.scheme == "per_channel_affine_float_qparams") {
      if (q->items.size() != 4) throw FormatError(fn_ + ": malformed " + qz.scheme + " parameters");
      t.parts.emplace_back("scales", part_tensor(q->items[1], "scales"));
      t.parts.emplace_back("zero_points", part_tensor(q->items[2], "zero points"));
      qz.axis = int_arg(q->items[3], "quantization axis");
    } else {
      throw FormatError(fn_ + ": unknown qscheme torch." + qz.scheme);
    }
    t.quantization = qz;
    return t;
  }

  // (layout, data): COO data (indices, values, size[, is_coalesced]);
  // compressed layouts (compressed_indices, plain_indices, values, size).
  // torch 1.13 names the CSR one _rebuild_sparse_csr_tensor.
  TensorInfo sparse() const {
    const auto& a = tuple_args(2);
    TensorInfo t = fresh();
    t.layout = layout_arg(a[0]);
    const Node* d = a[1];
    if (d->kind != Kind::Tuple) throw FormatError(fn_ + ": malformed sparse data");
    if (t.layout == TensorLayout::SparseCoo) {
      if (d->items.size() != 3 && d->items.size() != 4) throw FormatError(fn_ + ": malformed sparse_coo data");
      t.parts.emplace_back("indices", part_tensor(d->items[0], "indices"));
      t.parts.emplace_back("values", part_tensor(d->items[1], "values"));
      t.shape = size_arg(d->items[2], "size");
      t.coalesced = d->items.size() == 4 && truthy(d->items[3]);
    } else {
      if (d->items.size() != 4) throw FormatError(fn_ + ": malformed " + to_string(t.layout) + " data");
      const bool row = t.layout == TensorLayout::SparseCsr || t.layout == TensorLayout::SparseBsr;
      t.parts.emplace_back(row ? "crow_indices" : "ccol_indices", part_tensor(d->items[0], "compressed indices"));
      t.parts.emplace_back(row ? "col_indices" : "row_indices", part_tensor(d->items[1], "plain indices"));
      t.parts.emplace_back("values", part_tensor(d->items[2], "values"));
      t.shape = size_arg(d->items[3], "size");
    }
    t.dtype = t.part("values")->dtype;
    return t;
  }

  // (dtype, size, stride, requires_grad)
  TensorInfo meta() const {
    const auto& a = tuple_args(4);
    TensorInfo t = fresh();
    t.is_meta = true;
    t.dtype = dtype_arg(a[0], fn_);
    t.shape = int_tuple(a[1], "size");
    t.stride = int_tuple(a[2], "stride");
    if (t.shape.size() != t.stride.size()) throw FormatError(fn_ + ": size and stride lengths differ");
    t.requires_grad = truthy(a[3]);
    return t;
  }

  // (buffer, nested sizes, nested strides, storage offsets)
  TensorInfo nested() const {
    const auto& a = tuple_args(4);
    TensorInfo t = fresh();
    t.layout = TensorLayout::Nested;
    t.parts.emplace_back("buffer", part_tensor(a[0], "buffer"));
    t.parts.emplace_back("sizes", part_tensor(a[1], "nested sizes"));
    t.parts.emplace_back("strides", part_tensor(a[2], "nested strides"));
    t.parts.emplace_back("offsets", part_tensor(a[3], "storage offsets"));
    t.dtype = t.part("buffer")->dtype;
    const auto& sizes = t.part("sizes")->shape;
    t.shape = {sizes.empty() ? 0 : sizes[0]};
    return t;
  }

  const Checkpoint& ck_;
  const Node* outer_;
  const std::string& fn_;
  const Node* args_;
  Inner inner_;
};

}  // namespace

std::optional<TensorInfo> Checkpoint::tensor_call(const Node* outer, const Node* callable, const Node* args,
                                                  int depth) const {
  if (!callable || callable->kind != Kind::Global) return std::nullopt;
  if (depth > kMaxWrapperDepth) throw FormatError("tensor wrappers nested more than " + std::to_string(kMaxWrapperDepth) + " deep");
  RebuildCall call(*this, outer, callable, args, [this, depth](const Node* o, const Node* c, const Node* a) {
    return tensor_call(o, c, a, depth + 1);
  });
  return call.read(callable->text);
}

}  // namespace ckpt::torch
