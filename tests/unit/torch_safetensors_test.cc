// safetensors: the header writer against the reference implementation's own
// test vectors, the validator against every rule the reference checks, and
// the tensor writer (contiguous copies, strided gathers, shared storages,
// order) and reader (to a checkpoint) on small files.
#include "torch/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "pickle/value.h"
#include "util/error.h"
#include "util/fault_env.h"

#include "fixed_bytes.h"
#include "temp_dir.h"

namespace ckpt::torch {
namespace {

using pickle::Node;

using ckpt_test::TempDir;
using ckpt_test::u64;

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// ---------------------------------------------------------------- header text

TEST(SafetensorsHeader, MatchesReferenceSerialization) {
  // safetensors/src/tensor.rs test_serialization: 64-byte header, no padding.
  std::string h = safetensors_header_json({{"attn.0", "F32", {1, 2, 3}, 24}}, {});
  EXPECT_EQ(h, R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})");
  EXPECT_EQ(h.size(), 64u);
  // test_serialization_forced_alignement: padded with 7 spaces to 72.
  h = safetensors_header_json({{"attn0", "F32", {1, 1, 2, 3}, 24}}, {});
  EXPECT_EQ(h.size(), 72u);
  EXPECT_EQ(h.substr(h.size() - 7), std::string(7, ' '));
  // test_empty: "{}" padded to 8; with metadata, 40 bytes.
  EXPECT_EQ(safetensors_header_json({}, {}), "{}      ");
  EXPECT_EQ(safetensors_header_json({}, {{"framework", "pt"}}),
            std::string(R"({"__metadata__":{"framework":"pt"}})") + "     ");
}

TEST(SafetensorsHeader, EscapesAsSerdeJson) {
  std::string h = safetensors_header_json({{"a\"b\\c\n\x01/\xc3\xa9", "U8", {}, 1}}, {});
  EXPECT_EQ(h.substr(0, h.find(':')), R"({"a\"b\\c\n\u0001/)" + std::string("\xc3\xa9\""));
}

TEST(SafetensorsDtypes, NamesAndRanks) {
  EXPECT_STREQ(safetensors_dtype_name(DType::BFloat16), "BF16");
  EXPECT_STREQ(safetensors_dtype_name(DType::Bool), "BOOL");
  EXPECT_EQ(safetensors_dtype_name(DType::QInt8), nullptr);
  EXPECT_EQ(dtype_from_safetensors("F16")->dtype, DType::Float16);
  EXPECT_EQ(dtype_from_safetensors("f16"), nullptr);
  // The reference's enum order: BOOL < U8 < I8 < I16 < F16 < BF16 < I32 < F32 < F64 < I64.
  DType order[] = {DType::Bool, DType::UInt8, DType::Int8, DType::Int16, DType::Float16,
                   DType::BFloat16, DType::Int32, DType::Float32, DType::Float64, DType::Int64};
  for (size_t i = 1; i < std::size(order); ++i)
    EXPECT_LT(safetensors_dtype_rank(order[i - 1]), safetensors_dtype_rank(order[i]));
}

TEST(SafetensorsHeader, ContiguousStridesAsTorch) {
  EXPECT_EQ(contiguous_strides({2, 3, 4}), (std::vector<int64_t>{12, 4, 1}));
  EXPECT_EQ(contiguous_strides({3, 0, 2}), (std::vector<int64_t>{2, 2, 1}));
  EXPECT_EQ(contiguous_strides({}), (std::vector<int64_t>{}));
}

// ---------------------------------------------------------------- validation

std::string parse_error(const std::string& json, uint64_t data_size) {
  try {
    parse_safetensors_header(json, data_size, "x.safetensors");
  } catch (const FormatError& e) {
    return e.what();
  }
  return "";
}

TEST(SafetensorsValidate, AcceptsReferenceFiles) {
  auto h = parse_safetensors_header(
      R"({"__metadata__":{"format":"pt"},"b":{"dtype":"F16","shape":[2],"data_offsets":[8,12]},)"
      R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":[1,{"x":2}]},"e":{"dtype":"I64","shape":[0,5],"data_offsets":[12,12]}}  )",
      12, "x");
  ASSERT_EQ(h.tensors.size(), 3u);
  EXPECT_EQ(h.tensors[0].name, "b");  // header order kept
  EXPECT_EQ(h.tensors[1].name, "a");
  EXPECT_EQ(h.tensors[2].shape, (std::vector<int64_t>{0, 5}));
  ASSERT_EQ(h.metadata.size(), 1u);
  EXPECT_EQ(h.metadata[0].second, "pt");
  EXPECT_TRUE(parse_safetensors_header("{}", 0, "x").tensors.empty());
  EXPECT_TRUE(parse_safetensors_header(R"({"__metadata__":null})", 0, "x").tensors.empty());
}

TEST(SafetensorsValidate, RejectsWhatTheReferenceRejects) {
  struct Case {
    std::string json;
    uint64_t data;
    std::string words;
  };
  const std::string a = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const Case cases[] = {
      {"", 8, "not valid JSON"},
      {"{", 8, "not valid JSON"},
      {"[1]", 8, "not a JSON object"},
      {"{" + a + std::string("}\0", 2), 8, "not valid JSON"},
      {"{" + a + "," + a + "}", 8, "names 'a' twice"},
      {"{\"a\":" + std::string(70, '[') + std::string(70, ']') + "}", 8, "nests deeper"},
      {"{\"a\xff\":1}", 8, "UTF-8"},
      {R"({"a":{"dtype":"F32","shape":[2]}})", 8, "lacks"},
      {R"({"a":{"dtype":"Q8","shape":[2],"data_offsets":[0,8]}})", 8, "unknown or unsupported dtype 'Q8'"},
      {R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8, "non-negative"},
      {R"({"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", 8, "non-negative"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}})", 8, "not a pair"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 4, "needs 8 bytes"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12, "leave a hole"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8, "end before"},
      {"{" + a + R"(,"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12, "overlap"},
      {"{" + a + "}", 9, "cover 8 bytes of a data section of 9"},
      {"{" + a + "}", 7, "cover 8 bytes"},
      {R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8, "overflows"},
      {R"({"a":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,8]}})", 8, "too large"},
      {R"({"__metadata__":{"format":1}})", 0, "not a string"},
      {R"({"__metadata__":[]})", 0, "not a map"},
      {R"({"a":3})", 0, "not a tensor description"},
  };
  for (const auto& c : cases) {
    std::string msg = parse_error(c.json, c.data);
    EXPECT_NE(msg.find(c.words), std::string::npos) << c.json << " -> " << msg;
    EXPECT_EQ(msg.rfind("x.safetensors: ", 0), 0u) << msg;
  }
}

TEST(SafetensorsValidate, FileLevelChecks) {
  TempDir dir;
  auto error_of = [&](const std::string& bytes) -> std::string {
    auto f = Env::Default().open_read(dir.write("f.safetensors", bytes));
    try {
      read_safetensors(*f);
    } catch (const FormatError& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(error_of("1234").find("too short"), std::string::npos);
  EXPECT_NE(error_of(u64(100'000'001) + "{}").find("over the limit"), std::string::npos);
  EXPECT_NE(error_of(u64(16) + "{}").find("past the end"), std::string::npos);
  EXPECT_NE(error_of(u64(uint64_t{1} << 63) + "{}").find("over the limit"), std::string::npos);
  std::string good = u64(8) + "{}      ";
  EXPECT_EQ(error_of(good), "");
  EXPECT_NE(error_of(good + "x").find("cover 0 bytes of a data section of 1"), std::string::npos);
  auto f = Env::Default().open_read(dir.write("g.safetensors",
                                              u64(64) + R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})" +
                                                  std::string(24, 'x')));
  auto h = read_safetensors(*f);
  EXPECT_EQ(h.data_start, 72u);
  EXPECT_EQ(h.tensors.at(0).nbytes(), 24u);
}

// ---------------------------------------------------------------- writing

// A checkpoint over one external storage file of float32 0, 1, 2, ...
struct Fixture {
  TempDir dir;
  std::unique_ptr<Checkpoint> ck;
  const Storage* floats = nullptr;
  const Storage* halves = nullptr;

  explicit Fixture(uint64_t count = 24) {
    std::string bytes;
    for (uint64_t i = 0; i < count; ++i) {
      float f = static_cast<float>(i);
      bytes.append(reinterpret_cast<const char*>(&f), 4);
    }
    std::string halfbytes("\x00\x3c\x00\x40", 4);  // 1.0, 2.0
    std::string path = dir.write("storage.bin", "PAD" + bytes + halfbytes);
    ck = Checkpoint::create(dir.file("made.th"));
    std::shared_ptr<RandomAccessFile> file = Env::Default().open_read(path);
    floats = &ck->add_external_storage("f", &info(DType::Float32), "cpu", count, file, 3);
    halves = &ck->add_external_storage("h", &info(DType::Float16), "cpu", 2, file, 3 + 4 * count);
  }

  TensorInfo view(const Storage* s, int64_t offset, std::vector<int64_t> shape, std::vector<int64_t> stride) const {
    TensorInfo t;
    t.storage = s;
    t.dtype = s->dtype;
    t.storage_offset = offset;
    t.shape = std::move(shape);
    t.stride = std::move(stride);
    return t;
  }
};

std::vector<float> floats_of(std::string_view bytes) {
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}

TEST(SafetensorsWrite, OrderGathersAndShares) {
  Fixture fx;
  std::vector<std::pair<std::string, TensorInfo>> tensors{
      {"z.contig", fx.view(fx.floats, 2, {2, 3}, {3, 1})},
      {"a.transposed", fx.view(fx.floats, 0, {3, 2}, {1, 3})},  // shares the storage
      {"h", fx.view(fx.halves, 0, {2}, {1})},
      {"m.strided3d", fx.view(fx.floats, 1, {2, 2, 2}, {12, 1, 5})},
      {"s.scalar", fx.view(fx.floats, 23, {}, {})},
      {"e.empty", fx.view(fx.floats, 0, {0, 4}, {4, 1})},
  };
  std::string out = fx.dir.file("out.safetensors");
  uint64_t last_done = 0, last_total = 0;
  SafetensorsWriteOptions opts;
  opts.progress = [&](uint64_t d, uint64_t t) {
    EXPECT_GE(d, last_done);
    last_done = d;
    last_total = t;
  };
  write_safetensors(*fx.ck, tensors, Env::Default(), out, opts);
  EXPECT_EQ(last_total, (6 + 6 + 8 + 1) * 4u + 4u);
  EXPECT_EQ(last_done, last_total);

  auto f = Env::Default().open_read(out);
  auto h = read_safetensors(*f);
  ASSERT_EQ(h.metadata.size(), 1u);
  EXPECT_EQ(h.metadata[0].first, "format");
  std::vector<std::string> names;
  for (const auto& t : h.tensors) names.push_back(t.name);
  // F32 (rank above F16) by name, then F16.
  EXPECT_EQ(names, (std::vector<std::string>{"a.transposed", "e.empty", "m.strided3d", "s.scalar", "z.contig", "h"}));
  std::string data = slurp(out).substr(h.data_start);
  auto tensor = [&](const std::string& name) {
    for (const auto& t : h.tensors)
      if (t.name == name) return data.substr(t.begin, t.nbytes());
    return std::string("missing");
  };
  EXPECT_EQ(floats_of(tensor("z.contig")), (std::vector<float>{2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(floats_of(tensor("a.transposed")), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(floats_of(tensor("m.strided3d")), (std::vector<float>{1, 6, 2, 7, 13, 18, 14, 19}));
  EXPECT_EQ(floats_of(tensor("s.scalar")), (std::vector<float>{23}));
  EXPECT_EQ(tensor("e.empty"), "");
  EXPECT_EQ(tensor("h"), std::string("\x00\x3c\x00\x40", 4));
  EXPECT_EQ(h.tensors[0].shape, (std::vector<int64_t>{3, 2}));
}

TEST(SafetensorsWrite, LargeStridedGatherThroughChunks) {
  // 600 x 600 float32 = 1.4 MB storage, more than one 1 MiB chunk, transposed.
  const int64_t n = 600;
  Fixture fx(n * n);
  std::vector<std::pair<std::string, TensorInfo>> tensors{{"t", fx.view(fx.floats, 0, {n, n}, {1, n})}};
  std::string out = fx.dir.file("big.safetensors");
  write_safetensors(*fx.ck, tensors, Env::Default(), out);
  auto f = Env::Default().open_read(out);
  auto h = read_safetensors(*f);
  auto v = floats_of(slurp(out).substr(h.data_start));
  ASSERT_EQ(v.size(), static_cast<size_t>(n * n));
  bool all = true;
  for (int64_t i = 0; i < n && all; ++i)
    for (int64_t j = 0; j < n; ++j)
      if (v[i * n + j] != static_cast<float>(j * n + i)) {
        all = false;
        ADD_FAILURE() << "element " << i << "," << j;
        break;
      }
}

TEST(SafetensorsWrite, SparseViewOfAHugeSpanReadsChunks) {
  // Two rows 16 Mi elements apart (a 64 MiB span for 8 KB of data): read
  // through chunks, not by loading the span.
  const int64_t rows_apart = int64_t{16} << 20;
  Fixture fx(static_cast<uint64_t>(rows_apart) + 1003);
  std::vector<std::pair<std::string, TensorInfo>> tensors{
      {"t", fx.view(fx.floats, 3, {1000, 2}, {1, rows_apart})}};
  std::string out = fx.dir.file("sparse.safetensors");
  write_safetensors(*fx.ck, tensors, Env::Default(), out);
  auto f = Env::Default().open_read(out);
  auto h = read_safetensors(*f);
  auto v = floats_of(slurp(out).substr(h.data_start));
  ASSERT_EQ(v.size(), 2000u);
  EXPECT_EQ(v[0], 3.0f);
  EXPECT_EQ(v[1], static_cast<float>(rows_apart + 3));
  EXPECT_EQ(v[1998], 1002.0f);
  EXPECT_EQ(v[1999], static_cast<float>(rows_apart + 1002));
}

TEST(SafetensorsWrite, RefusesBadInput) {
  Fixture fx;
  auto fails = [&](std::vector<std::pair<std::string, TensorInfo>> tensors, const std::string& words) {
    try {
      write_safetensors(*fx.ck, tensors, Env::Default(), fx.dir.file("bad.safetensors"));
      ADD_FAILURE() << "no error, expected " << words;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
    EXPECT_FALSE(Env::Default().exists(fx.dir.file("bad.safetensors")));
  };
  fails({{"a", fx.view(fx.floats, 0, {2}, {1})}, {"a", fx.view(fx.floats, 0, {2}, {1})}}, "appears twice");
  fails({{"a", fx.view(fx.floats, 20, {2, 3}, {3, 1})}}, "past the end of storage");
  fails({{"a", fx.view(fx.floats, 20, {2, 3}, {1, 2})}}, "past the end of storage");
  TensorInfo q = fx.view(fx.floats, 0, {2}, {1});
  q.dtype = &info(DType::QInt8);
  fails({{"q", q}}, "cannot hold");
  fails({{"bad\xff", fx.view(fx.floats, 0, {2}, {1})}}, "UTF-8");
}

TEST(SafetensorsWrite, EveryInjectedFaultLeavesNothing) {
  Fixture fx;
  std::vector<std::pair<std::string, TensorInfo>> tensors{{"a", fx.view(fx.floats, 0, {3, 2}, {1, 3})},
                                                          {"b", fx.view(fx.floats, 0, {24}, {1})}};
  FaultInjectingEnv env(Env::Default());
  std::string out = fx.dir.file("faulty.safetensors");
  write_safetensors(*fx.ck, tensors, env, out);
  uint64_t steps = env.steps();
  std::string good = slurp(out);
  std::filesystem::remove(out);
  for (uint64_t i = 1; i <= steps; ++i) {
    env.reset();
    env.fail_at(i, ENOSPC);
    EXPECT_THROW(write_safetensors(*fx.ck, tensors, env, out), IoError) << "step " << i;
    if (i == steps) {  // renamed into place; only the directory fsync failed
      EXPECT_EQ(slurp(out), good);
      std::filesystem::remove(out);
    }
    EXPECT_FALSE(std::filesystem::exists(out)) << "step " << i;
    for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(out).parent_path()))
      EXPECT_EQ(e.path().string().find("ckpt-tmp"), std::string::npos) << e.path() << " left at step " << i;
  }
  env.reset();
  write_safetensors(*fx.ck, tensors, env, out);
  EXPECT_EQ(slurp(out), good);
}

// ---------------------------------------------------------------- reading into a checkpoint

TEST(SafetensorsRead, CheckpointRoundTrip) {
  Fixture fx;
  std::vector<std::pair<std::string, TensorInfo>> tensors{{"w", fx.view(fx.floats, 0, {3, 2}, {1, 3})},
                                                          {"h", fx.view(fx.halves, 0, {2}, {1})}};
  std::string st = fx.dir.file("x.safetensors");
  write_safetensors(*fx.ck, tensors, Env::Default(), st);

  auto made = checkpoint_from_safetensors(Env::Default(), st);
  ASSERT_TRUE(pickle::is_mapping(made->root()));
  auto* entries = pickle::entries_of(made->root());
  ASSERT_EQ(entries->size(), 2u);
  EXPECT_EQ((*entries)[0].first->text, "w");
  std::string th = fx.dir.file("x.th");
  save(*made, made->root(), Env::Default(), th);

  auto back = Checkpoint::open(Env::Default(), th);
  EXPECT_EQ(back->archive_name(), "x");
  EXPECT_EQ(back->dialect(), kDefaultDialect);
  auto* e = pickle::entries_of(back->root());
  ASSERT_EQ(e->size(), 2u);
  auto w = back->tensor((*e)[0].second);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->shape, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(w->stride, (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(w->storage->numel, 6u);
  std::string bytes = back->file().read_string(w->storage->record->data_offset, 24);
  EXPECT_EQ(floats_of(bytes), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  auto hh = back->tensor((*e)[1].second);
  EXPECT_EQ(hh->dtype->dtype, DType::Float16);
}

TEST(SafetensorsRead, ReplaceIntoTemplate) {
  Fixture fx;
  // A template: {"sd": OrderedDict(w: tensor, n: 3, p: Parameter)}.
  pickle::Graph& g = fx.ck->graph();
  Node* storage_word = g.str("storage");
  Node* cpu = g.str("cpu");
  Node* sd = g.object(pickle::How::Reduce, g.global("collections", "OrderedDict"), g.tuple());
  sd->entries.emplace_back(g.str("w"), make_tensor_node(g, *fx.floats, {24}, false, storage_word, cpu));
  sd->entries.emplace_back(g.str("n"), g.integer(3));
  Node* inner = make_tensor_node(g, *fx.halves, {2}, false, storage_word, cpu);
  sd->entries.emplace_back(
      g.str("p"), g.object(pickle::How::Reduce, g.global("torch._utils", "_rebuild_parameter"),
                           g.tuple({inner, g.boolean(true), g.object(pickle::How::Reduce,
                                                                     g.global("collections", "OrderedDict"), g.tuple())})));
  Node* root = g.dict();
  pickle::set_item(g, root, "sd", sd);
  g.root = root;

  // A safetensors file with p as F32 (a dtype change) and w reversed.
  std::string st = fx.dir.file("in.safetensors");
  write_safetensors(*fx.ck, {{"w", fx.view(fx.floats, 23, {24}, {0})}, {"p", fx.view(fx.floats, 4, {2}, {1})}},
                    Env::Default(), st);
  std::shared_ptr<RandomAccessFile> file = Env::Default().open_read(st);
  auto header = read_safetensors(*file);

  // Mismatches first: nothing may change.
  Fixture other;
  {
    std::string bad = fx.dir.file("bad.safetensors");
    write_safetensors(*fx.ck, {{"w", fx.view(fx.floats, 0, {4, 6}, {6, 1})}, {"q", fx.view(fx.floats, 0, {2}, {1})}},
                      Env::Default(), bad);
    std::shared_ptr<RandomAccessFile> bf = Env::Default().open_read(bad);
    auto bh = read_safetensors(*bf);
    Node* before = pickle::get_item(sd, "w");
    auto r = replace_tensors_from_safetensors(*fx.ck, sd, bh, bf, "bad.safetensors");
    ASSERT_EQ(r.differences.size(), 3u);
    EXPECT_NE(r.differences[0].find("'w' has shape [24]"), std::string::npos) << r.differences[0];
    EXPECT_NE(r.differences[1].find("'p' only in"), std::string::npos) << r.differences[1];
    EXPECT_NE(r.differences[2].find("'q' only in bad.safetensors"), std::string::npos) << r.differences[2];
    EXPECT_EQ(r.replaced, 0u);
    EXPECT_EQ(pickle::get_item(sd, "w"), before);
  }

  auto r = replace_tensors_from_safetensors(*fx.ck, sd, header, file, "in.safetensors");
  EXPECT_TRUE(r.differences.empty());
  EXPECT_EQ(r.replaced, 2u);
  ASSERT_EQ(r.dtype_changes.size(), 1u);
  EXPECT_EQ(r.dtype_changes[0], "p: float16 -> float32");
  auto p = fx.ck->tensor(pickle::get_item(sd, "p"));
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->is_parameter);
  EXPECT_TRUE(p->requires_grad);
  EXPECT_EQ(p->dtype->dtype, DType::Float32);
  EXPECT_EQ(pickle::get_item(sd, "n")->integer, 3);

  std::string th = fx.dir.file("into.th");
  save(*fx.ck, root, Env::Default(), th);
  auto back = Checkpoint::open(Env::Default(), th);
  Node* bsd = pickle::get_item(back->root(), "sd");
  auto w = back->tensor(pickle::get_item(bsd, "w"));
  ASSERT_TRUE(w);
  auto v = floats_of(back->file().read_string(w->storage->record->data_offset, 96));
  EXPECT_EQ(v.front(), 23.0f);  // a stride-0 view, written as 24 copies of element 23
  EXPECT_EQ(v.back(), 23.0f);
  auto bp = back->tensor(pickle::get_item(bsd, "p"));
  EXPECT_EQ(floats_of(back->file().read_string(bp->storage->record->data_offset, 8)), (std::vector<float>{4, 5}));
}

}  // namespace
}  // namespace ckpt::torch
