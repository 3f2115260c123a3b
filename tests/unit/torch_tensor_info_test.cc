// Checkpoint::tensor over the graphs torch 1.13 and 2.13 pickle for special
// tensors (shapes of the pickles as pickletools shows them for torch.save).
#include <gtest/gtest.h>

#include "torch/checkpoint.h"
#include "util/error.h"

namespace ckpt::torch {
namespace {

using pickle::How;
using pickle::Node;

class TensorInfoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ck_ = Checkpoint::create("t.pt", Dialect::Torch2_1);
    file_ = Env::Default().open_read(std::string(CKPT_SOURCE_DIR) + "/CMakeLists.txt");
  }
  pickle::Graph& g() { return ck_->graph(); }

  // ('storage', module.cls, key, 'cpu', numel), registered with `dtype`.
  Node* storage(const char* module, const char* cls, const std::string& key, DType dtype, int64_t numel) {
    ck_->add_external_storage(key, &info(dtype), "cpu", static_cast<uint64_t>(numel), file_, 0);
    return g().persid(g().tuple({g().str("storage"), g().global(module, cls), g().str(key), g().str("cpu"),
                                 g().integer(numel)}));
  }
  Node* ints(std::vector<int64_t> v) {
    std::vector<Node*> items;
    for (int64_t x : v) items.push_back(g().integer(x));
    return g().tuple(std::move(items));
  }
  Node* hooks() { return g().object(How::Reduce, g().global("collections", "OrderedDict"), g().tuple()); }
  Node* call(const char* module, const char* fn, std::vector<Node*> args) {
    return g().object(How::Reduce, g().global(module, fn), g().tuple(std::move(args)));
  }
  // _rebuild_tensor_v2 over a fresh FloatStorage of numel elements.
  Node* float_tensor(const std::string& key, std::vector<int64_t> shape, int64_t numel, Node* metadata = nullptr) {
    std::vector<int64_t> stride(shape.size(), 1);
    for (size_t i = shape.size(); i-- > 1;) stride[i - 1] = stride[i] * shape[i];
    std::vector<Node*> a{storage("torch", "FloatStorage", key, DType::Float32, numel), g().integer(0), ints(shape),
                         ints(stride), g().boolean(false), hooks()};
    if (metadata) a.push_back(metadata);
    return call("torch._utils", "_rebuild_tensor_v2", std::move(a));
  }
  Node* typed_tensor(const std::string& key, const char* cls, DType dt, std::vector<int64_t> shape) {
    int64_t numel = 1;
    for (int64_t s : shape) numel *= s;
    std::vector<int64_t> stride(shape.size(), 1);
    for (size_t i = shape.size(); i-- > 1;) stride[i - 1] = stride[i] * shape[i];
    return call("torch._utils", "_rebuild_tensor_v2",
                {storage("torch", cls, key, dt, numel), g().integer(0), ints(shape), ints(stride), g().boolean(false),
                 hooks()});
  }

  std::unique_ptr<Checkpoint> ck_;
  std::shared_ptr<RandomAccessFile> file_;
};

TEST_F(TensorInfoTest, V3OnUntypedStorageTakesItsDtypeAndChecksBytes) {
  // float8 [2, 5] on an UntypedStorage of 10 bytes; uint32 [3] on 12 bytes.
  Node* f8 = call("torch._utils", "_rebuild_tensor_v3",
                  {storage("torch.storage", "UntypedStorage", "0", DType::Untyped, 10), g().integer(0), ints({2, 5}),
                   ints({5, 1}), g().boolean(false), hooks(), g().global("torch", "float8_e4m3fn")});
  auto t = ck_->tensor(f8);
  ASSERT_TRUE(t);
  EXPECT_STREQ(t->dtype->name, "float8_e4m3fn");
  EXPECT_EQ(t->storage->dtype->dtype, DType::Untyped);
  EXPECT_EQ(t->nbytes(), 10u);
  EXPECT_TRUE(t->is_plain());
  EXPECT_EQ(t->view_problem(), "");

  Node* u32 = call("torch._utils", "_rebuild_tensor_v3",
                   {storage("torch.storage", "UntypedStorage", "1", DType::Untyped, 12), g().integer(1), ints({3}),
                    ints({1}), g().boolean(false), hooks(), g().global("torch", "uint32")});
  auto u = ck_->tensor(u32);
  ASSERT_TRUE(u);
  EXPECT_STREQ(u->dtype->name, "uint32");
  EXPECT_EQ(u->view_problem(), "view reaches byte 16 of a storage of 12 bytes");

  Node* bad = call("torch._utils", "_rebuild_tensor_v3",
                   {storage("torch.storage", "UntypedStorage", "2", DType::Untyped, 4), g().integer(0), ints({4}),
                    ints({1}), g().boolean(false), hooks(), g().global("torch", "float7_new")});
  EXPECT_THROW(ck_->tensor(bad), FormatError);
}

TEST_F(TensorInfoTest, HugeViewsAreProblemsNotOverflows) {
  // Four dimensions of 2^62 with strides 2^62: the index sum needs more than 128 bits.
  const int64_t big = int64_t{1} << 62;
  Node* t = call("torch._utils", "_rebuild_tensor_v3",
                 {storage("torch.storage", "UntypedStorage", "0", DType::Untyped, 8), g().integer(0),
                  ints({big, big, 1, 2}), ints({big, big, big, big}), g().boolean(false), hooks(),
                  g().global("torch", "float64")});
  auto info = ck_->tensor(t);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->view_problem(), "element count overflows");
  Node* u = call("torch._utils", "_rebuild_tensor_v3",
                 {storage("torch.storage", "UntypedStorage", "1", DType::Untyped, 8), g().integer(0),
                  ints({int64_t{1} << 40, int64_t{1} << 20}), ints({big, big}), g().boolean(false), hooks(),
                  g().global("torch", "float64")});
  EXPECT_EQ(ck_->tensor(u)->view_problem(), "view reaches past any storage");
}

TEST_F(TensorInfoTest, ConjAndNegBitsFromTheMetadataDict) {
  Node* md = g().dict();
  md->entries.emplace_back(g().str("neg"), g().boolean(true));
  auto t = ck_->tensor(float_tensor("0", {2}, 4, md));
  ASSERT_TRUE(t);
  EXPECT_TRUE(t->neg);
  EXPECT_FALSE(t->conj);
  EXPECT_FALSE(t->is_plain());
  EXPECT_EQ(t->form(), "neg");

  Node* odd = g().dict();
  odd->entries.emplace_back(g().str("zero"), g().boolean(true));
  EXPECT_THROW(ck_->tensor(float_tensor("1", {2}, 2, odd)), FormatError);
}

TEST_F(TensorInfoTest, QuantizedPerTensorAndPerChannel) {
  Node* q = call("torch._utils", "_rebuild_qtensor",
                 {storage("torch", "QUInt8Storage", "0", DType::QUInt8, 4), g().integer(0), ints({4}), ints({1}),
                  g().tuple({g().global("torch", "per_tensor_affine"), g().real(0.1), g().integer(2)}),
                  g().boolean(false), hooks()});
  auto t = ck_->tensor(q);
  ASSERT_TRUE(t);
  EXPECT_STREQ(t->dtype->name, "quint8");
  ASSERT_TRUE(t->quantization);
  EXPECT_EQ(t->quantization->scheme, "per_tensor_affine");
  EXPECT_DOUBLE_EQ(t->quantization->scale, 0.1);
  EXPECT_EQ(t->quantization->zero_point, 2);
  EXPECT_EQ(t->form(), "quantized per_tensor_affine (scale 0.1, zero_point 2)");

  auto per_channel = [&](const std::string& k, int64_t channels) {
    return call("torch._utils", "_rebuild_qtensor",
                {storage("torch", "QInt8Storage", k, DType::QInt8, 6), g().integer(0), ints({2, 3}), ints({3, 1}),
                 g().tuple({g().global("torch", "per_channel_affine"),
                            typed_tensor(k + "s", "DoubleStorage", DType::Float64, {channels}),
                            typed_tensor(k + "z", "LongStorage", DType::Int64, {channels}), g().integer(0)}),
                 g().boolean(false), hooks()});
  };
  auto c = ck_->tensor(per_channel("1", 2));
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->part("scales"));
  EXPECT_STREQ(c->part("scales")->dtype->name, "float64");
  EXPECT_EQ(c->nbytes(), 6u + 16u + 16u);
  EXPECT_TRUE(c->problems().empty());
  auto wrong = ck_->tensor(per_channel("2", 3));
  ASSERT_EQ(wrong->problems().size(), 1u);
  EXPECT_NE(wrong->problems()[0].find("along axis 0"), std::string::npos);

  Node* unknown = call("torch._utils", "_rebuild_qtensor",
                       {storage("torch", "QUInt8Storage", "3", DType::QUInt8, 1), g().integer(0), ints({1}), ints({1}),
                        g().tuple({g().global("torch", "per_tensor_symmetric"), g().real(1), g().integer(0)}),
                        g().boolean(false), hooks()});
  EXPECT_THROW(ck_->tensor(unknown), FormatError);
}

TEST_F(TensorInfoTest, SparseCooAndCsr) {
  Node* layout = call("torch.serialization", "_get_layout", {g().str("torch.sparse_coo")});
  Node* size = call("torch", "Size", {ints({3, 4})});
  Node* coo = call("torch._utils", "_rebuild_sparse_tensor",
                   {layout, g().tuple({typed_tensor("0", "LongStorage", DType::Int64, {2, 5}),
                                       float_tensor("1", {5}, 5), size, g().boolean(true)})});
  auto t = ck_->tensor(coo);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->layout, TensorLayout::SparseCoo);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(t->nnz(), 5u);
  EXPECT_TRUE(t->coalesced);
  EXPECT_EQ(t->numel(), 12u);
  EXPECT_EQ(t->nbytes(), 80u + 20u);
  EXPECT_STREQ(t->dtype->name, "float32");
  EXPECT_TRUE(t->problems().empty());
  EXPECT_EQ(t->form(), "sparse_coo, nnz 5");

  // torch 1.13: three items (no coalesced flag), values not matching nnz.
  Node* odd = call("torch._utils", "_rebuild_sparse_tensor",
                   {g().global("torch", "sparse_coo"),
                    g().tuple({typed_tensor("2", "LongStorage", DType::Int64, {2, 5}), float_tensor("3", {4}, 4),
                               call("torch", "Size", {ints({3, 4})})})});
  auto o = ck_->tensor(odd);
  ASSERT_TRUE(o);
  EXPECT_FALSE(o->coalesced);
  EXPECT_EQ(o->problems().size(), 1u);

  Node* csr = call("torch._utils", "_rebuild_sparse_csr_tensor",
                   {call("torch.serialization", "_get_layout", {g().str("torch.sparse_csr")}),
                    g().tuple({typed_tensor("4", "LongStorage", DType::Int64, {4}),
                               typed_tensor("5", "LongStorage", DType::Int64, {2}), float_tensor("6", {2}, 2),
                               call("torch", "Size", {ints({3, 3})})})});
  auto c = ck_->tensor(csr);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->layout, TensorLayout::SparseCsr);
  EXPECT_TRUE(c->part("crow_indices"));
  EXPECT_TRUE(c->problems().empty());

  Node* unknown = call("torch._utils", "_rebuild_sparse_tensor",
                       {call("torch.serialization", "_get_layout", {g().str("torch.jagged")}), g().tuple()});
  EXPECT_THROW(ck_->tensor(unknown), FormatError);
}

TEST_F(TensorInfoTest, MetaSubclassAndParameterWithState) {
  auto m = ck_->tensor(call("torch._utils", "_rebuild_meta_tensor_no_storage",
                            {g().global("torch", "bfloat16"), ints({3, 2}), ints({2, 1}), g().boolean(false)}));
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->is_meta);
  EXPECT_EQ(m->nbytes(), 0u);
  EXPECT_STREQ(m->dtype->name, "bfloat16");
  EXPECT_TRUE(m->problems().empty());

  // _rebuild_from_type_v2(func, new_type, args, state)
  Node* inner_args = g().tuple({storage("torch", "FloatStorage", "0", DType::Float32, 2), g().integer(0), ints({2}),
                                ints({1}), g().boolean(false), hooks()});
  Node* state = g().dict();
  state->entries.emplace_back(g().str("tag"), g().integer(1));
  Node* sub = call("torch._tensor", "_rebuild_from_type_v2",
                   {g().global("torch._utils", "_rebuild_tensor_v2"), g().global("mylib", "Marked"), inner_args, state});
  auto s = ck_->tensor(sub);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->subclass, "mylib.Marked");
  EXPECT_TRUE(s->has_state);
  EXPECT_EQ(s->object, sub);
  EXPECT_TRUE(s->is_plain());

  Node* pstate = g().dict();
  pstate->entries.emplace_back(g().str("note"), g().str("kept"));
  auto p = ck_->tensor(call("torch._utils", "_rebuild_parameter_with_state",
                            {float_tensor("1", {2}, 2), g().boolean(true), hooks(), pstate}));
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->is_parameter);
  EXPECT_TRUE(p->requires_grad);
  EXPECT_TRUE(p->has_state);
}

TEST_F(TensorInfoTest, UnreadableKindsAreRefusedByName) {
  Node* w = call("torch._utils", "_rebuild_wrapper_subclass",
                 {g().global("mylib", "Fake"), g().global("torch", "float32"), ints({2}), ints({1}), g().integer(0)});
  try {
    ck_->tensor(w);
    FAIL() << "no error";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("_rebuild_wrapper_subclass"), std::string::npos);
  }
}

TEST_F(TensorInfoTest, DeeplyNestedWrappersStopWithAnError) {
  Node* n = float_tensor("0", {1}, 1);
  for (int i = 0; i < 1000; ++i) n = call("torch._utils", "_rebuild_parameter", {n, g().boolean(false), hooks()});
  EXPECT_THROW(ck_->tensor(n), FormatError);
}

}  // namespace
}  // namespace ckpt::torch
