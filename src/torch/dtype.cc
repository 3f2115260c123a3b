#include "torch/dtype.h"

#include <array>

namespace ckpt::torch {

namespace {

constexpr std::array<DTypeInfo, 33> kDTypes{{
    {DType::Float64, "float64", "DoubleStorage", 8, true},
    {DType::Float32, "float32", "FloatStorage", 4, true},
    {DType::Float16, "float16", "HalfStorage", 2, true},
    {DType::BFloat16, "bfloat16", "BFloat16Storage", 2, true},
    {DType::Int64, "int64", "LongStorage", 8, false},
    {DType::Int32, "int32", "IntStorage", 4, false},
    {DType::Int16, "int16", "ShortStorage", 2, false},
    {DType::Int8, "int8", "CharStorage", 1, false},
    {DType::UInt8, "uint8", "ByteStorage", 1, false},
    {DType::Bool, "bool", "BoolStorage", 1, false},
    {DType::Complex64, "complex64", "ComplexFloatStorage", 8, false},
    {DType::Complex128, "complex128", "ComplexDoubleStorage", 16, false},
    {DType::QInt8, "qint8", "QInt8Storage", 1, false},
    {DType::QUInt8, "quint8", "QUInt8Storage", 1, false},
    {DType::QInt32, "qint32", "QInt32Storage", 4, false},
    {DType::QUInt4x2, "quint4x2", "QUInt4x2Storage", 1, false},
    {DType::QUInt2x4, "quint2x4", "QUInt2x4Storage", 1, false},
    {DType::Float8E5M2, "float8_e5m2", "", 1, true},
    {DType::Float8E4M3FN, "float8_e4m3fn", "", 1, true},
    {DType::UInt16, "uint16", "", 2, false},
    {DType::UInt32, "uint32", "", 4, false},
    {DType::UInt64, "uint64", "", 8, false},
    {DType::Untyped, "uint8", "UntypedStorage", 1, false},
    {DType::Float8E4M3FNUZ, "float8_e4m3fnuz", "", 1, true},
    {DType::Float8E5M2FNUZ, "float8_e5m2fnuz", "", 1, true},
    {DType::Float8E8M0FNU, "float8_e8m0fnu", "", 1, true},
    {DType::Float4E2M1FNx2, "float4_e2m1fn_x2", "", 1, false},  // two values a byte
    {DType::Complex32, "complex32", "", 4, false},
    {DType::Bits8, "bits8", "", 1, false},
    {DType::Bits16, "bits16", "", 2, false},
    {DType::Bits1x8, "bits1x8", "", 1, false},
    {DType::Bits2x4, "bits2x4", "", 1, false},
    {DType::Bits4x2, "bits4x2", "", 1, false},
}};

static_assert(kDTypes[static_cast<size_t>(DType::Bits4x2)].dtype == DType::Bits4x2, "table order is the enum's");

}  // namespace

const DTypeInfo& info(DType d) { return kDTypes[static_cast<size_t>(d)]; }

const DTypeInfo* from_storage_class(std::string_view name) {
  for (const auto& d : kDTypes)
    if (*d.storage_class && name == d.storage_class) return &d;
  return nullptr;
}

const DTypeInfo* from_name(std::string_view name) {
  struct Alias { std::string_view alias; DType d; };
  static constexpr Alias kAliases[] = {
      {"float", DType::Float32}, {"double", DType::Float64}, {"half", DType::Float16},
      {"long", DType::Int64},    {"int", DType::Int32},      {"short", DType::Int16},
      {"cfloat", DType::Complex64}, {"cdouble", DType::Complex128}, {"chalf", DType::Complex32},
  };
  for (const auto& a : kAliases)
    if (a.alias == name) return &info(a.d);
  for (const auto& d : kDTypes)
    if (d.dtype != DType::Untyped && name == d.name) return &d;
  return nullptr;
}

}  // namespace ckpt::torch
