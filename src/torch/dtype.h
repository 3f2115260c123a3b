// Torch dtypes as they appear in checkpoints: the storage class a persistent
// id names (torch.FloatStorage), the dtype global of _rebuild_tensor_v3
// (torch.float32), and the element size in bytes.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace ckpt::torch {

enum class DType : uint8_t {
  Float64, Float32, Float16, BFloat16, Int64, Int32, Int16, Int8, UInt8, Bool,
  Complex64, Complex128, QInt8, QUInt8, QInt32, QUInt4x2, QUInt2x4,
  Float8E5M2, Float8E4M3FN, UInt16, UInt32, UInt64, Untyped,
  // torch 2.x dtypes pickled with _rebuild_tensor_v3 on untyped storages.
  Float8E4M3FNUZ, Float8E5M2FNUZ, Float8E8M0FNU, Float4E2M1FNx2, Complex32,
  Bits8, Bits16, Bits1x8, Bits2x4, Bits4x2,
};

struct DTypeInfo {
  DType dtype;
  const char* name;           // torch's name: "float32"
  const char* storage_class;  // "FloatStorage" ("" when none)
  uint32_t element_size;
  bool is_floating;
};

const DTypeInfo& info(DType d);
// From a storage class name ("FloatStorage"); nullptr if unknown.
const DTypeInfo* from_storage_class(std::string_view name);
// From torch's dtype attribute name ("float32", also aliases "float", "half").
const DTypeInfo* from_name(std::string_view name);

}  // namespace ckpt::torch
