#include "pickle/allowlist.h"

#include <array>
#include <string>

namespace ckpt::pickle {

namespace {

std::string_view py3_module(std::string_view module) {
  return module == "__builtin__" ? std::string_view("builtins") : module;
}

template <size_t N>
bool contains(const std::array<std::string_view, N>& list, std::string_view v) {
  for (auto s : list)
    if (s == v) return true;
  return false;
}

constexpr std::array<std::string_view, 16> kTorchFixed{
    "collections.OrderedDict", "collections.Counter", "torch.nn.parameter.Parameter",
    "torch.serialization._get_layout", "torch.Size", "torch.Tensor", "torch.device",
    "_codecs.encode", "builtins.bytearray", "builtins.set", "builtins.complex",
    // torch 2.x: the storage of every _rebuild_tensor_v3 tensor.
    "torch.storage.UntypedStorage", "torch.storage.TypedStorage",
    // torch 2.x jagged nested tensors (torch/_weights_only_unpickler.py allows them once imported).
    "torch.nested._internal.nested_tensor.NestedTensor", "torch.nested._internal.nested_tensor._rebuild_njt",
    "torch._dynamo.decorators._DimRange"};

constexpr std::array<std::string_view, 14> kRebuildFunctions{
    "_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
    "_rebuild_parameter_with_state", "_rebuild_qtensor", "_rebuild_sparse_tensor",
    "_rebuild_xla_tensor", "_rebuild_mtia_tensor", "_rebuild_meta_tensor_no_storage",
    "_rebuild_nested_tensor", "_rebuild_device_tensor_from_cpu_tensor",
    "_rebuild_device_tensor_from_numpy", "_rebuild_wrapper_subclass"};

// torch.<name> globals: dtypes, storage and tensor classes, quantization schemes.
constexpr std::array<std::string_view, 79> kTorchNames{
    // dtypes
    "float32", "float", "float64", "double", "float16", "half", "bfloat16", "int64", "long",
    "int32", "int", "int16", "short", "int8", "uint8", "bool", "complex64", "cfloat",
    "complex128", "cdouble", "complex32", "chalf", "qint8", "quint8", "qint32", "quint4x2",
    "quint2x4", "float8_e5m2", "float8_e4m3fn", "float8_e5m2fnuz", "float8_e4m3fnuz", "uint16",
    "uint32", "uint64", "bits8", "bits16",
    // torch 2.13's newer dtypes (torch.storage._new_dtypes())
    "float8_e8m0fnu", "float4_e2m1fn_x2", "bits1x8", "bits2x4", "bits4x2",
    // storage classes
    "DoubleStorage", "FloatStorage", "HalfStorage", "BFloat16Storage", "LongStorage", "IntStorage",
    "ShortStorage", "CharStorage", "ByteStorage", "BoolStorage", "ComplexFloatStorage",
    "ComplexDoubleStorage", "QInt8Storage", "QUInt8Storage", "QInt32Storage", "QUInt4x2Storage",
    "QUInt2x4Storage", "UntypedStorage", "TypedStorage",
    // tensor classes
    "DoubleTensor", "FloatTensor", "HalfTensor", "BFloat16Tensor", "LongTensor", "IntTensor",
    "ShortTensor", "CharTensor", "ByteTensor", "BoolTensor",
    // quantization schemes
    "per_tensor_affine", "per_channel_affine", "per_tensor_symmetric", "per_channel_symmetric",
    "per_channel_affine_float_qparams",
    // layouts / memory formats
    "strided", "sparse_coo", "contiguous_format"};

constexpr std::array<std::string_view, 18> kAudiocraftExtra{
    "omegaconf.dictconfig.DictConfig", "omegaconf.listconfig.ListConfig",
    "omegaconf.base.Metadata", "omegaconf.base.ContainerMetadata", "omegaconf.nodes.AnyNode",
    "omegaconf.nodes.StringNode", "omegaconf.nodes.IntegerNode", "omegaconf.nodes.FloatNode",
    "omegaconf.nodes.BooleanNode", "omegaconf.nodes.EnumNode", "omegaconf.nodes.BytesNode",
    "omegaconf.nodes.PathNode", "typing.Any", "collections.defaultdict", "builtins.dict",
    "builtins.list", "builtins.int", "builtins.long"};

// What torch.distributed.checkpoint's .metadata pickle names (torch 2.x
// FileSystemWriter): plain dataclasses whose construction and __setstate__
// only assign their fields, an Enum looked up by value, and the path type of
// StorageMeta.checkpoint_id.
constexpr std::array<std::string_view, 13> kDcpMetadata{
    "torch.distributed.checkpoint.metadata.Metadata",
    "torch.distributed.checkpoint.metadata.TensorStorageMetadata",
    "torch.distributed.checkpoint.metadata.TensorProperties",
    "torch.distributed.checkpoint.metadata.ChunkStorageMetadata",
    "torch.distributed.checkpoint.metadata.BytesStorageMetadata",
    "torch.distributed.checkpoint.metadata.MetadataIndex",
    "torch.distributed.checkpoint.metadata.StorageMeta",
    "torch.distributed.checkpoint.metadata._MEM_FORMAT_ENCODING",
    "torch.distributed.checkpoint.filesystem._StorageInfo",
    "pathlib.PosixPath", "pathlib.PurePosixPath", "pathlib.WindowsPath", "pathlib.PureWindowsPath"};

}  // namespace

bool torch_weights_only_allows(std::string_view module, std::string_view name) {
  module = py3_module(module);
  std::string full = std::string(module) + "." + std::string(name);
  if (contains(kTorchFixed, full)) return true;
  if (module == "torch._utils") return contains(kRebuildFunctions, name);
  if (module == "torch._tensor") return name == "_rebuild_from_type_v2";
  if (module == "torch") return contains(kTorchNames, name);
  return false;
}

bool audiocraft_allows(std::string_view module, std::string_view name) {
  if (torch_weights_only_allows(module, name)) return true;
  module = py3_module(module);
  std::string full = std::string(module) + "." + std::string(name);
  // bytes() is how protocol 2 writes b'': harmless, and Python's own data.
  if (full == "builtins.set" || full == "builtins.frozenset" || full == "builtins.bytes") return true;
  return contains(kAudiocraftExtra, full);
}

bool dcp_metadata_allows(std::string_view module, std::string_view name) {
  if (audiocraft_allows(module, name)) return true;
  return contains(kDcpMetadata, std::string(py3_module(module)) + "." + std::string(name));
}

}  // namespace ckpt::pickle
