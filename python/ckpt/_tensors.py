"""Tensor bytes as numpy arrays or torch tensors: one buffer per storage,
memory-mapped copy-on-write from the file where the bytes are stored
uncompressed and aligned (zero-copy, as ``torch.load(mmap=True)``), read into
memory otherwise (deflated records, legacy files, remote files: https://,
http:// and hf://, read by range requests)."""

from __future__ import annotations

import functools
import importlib.util
import mmap
import os
from typing import Any

from ckpt._errors import FormatError, UsageError

# torch dtype name -> numpy dtype string; bfloat16 and the float8s have no
# numpy dtype: ml_dtypes' when it is installed, else their raw bits.
_NUMPY_DTYPES = {
    "float64": "<f8", "float32": "<f4", "float16": "<f2",
    "int64": "<i8", "int32": "<i4", "int16": "<i2", "int8": "i1", "uint8": "u1", "bool": "?",
    "uint16": "<u2", "uint32": "<u4", "uint64": "<u8",
    "complex64": "<c8", "complex128": "<c16",
}
_ML_DTYPES = {
    "bfloat16": ("bfloat16", "<u2"),
    "float8_e5m2": ("float8_e5m2", "u1"), "float8_e4m3fn": ("float8_e4m3fn", "u1"),
    "float8_e4m3fnuz": ("float8_e4m3fnuz", "u1"), "float8_e5m2fnuz": ("float8_e5m2fnuz", "u1"),
}


@functools.lru_cache(maxsize=None)
def _torch_importable() -> bool:
    return importlib.util.find_spec("torch") is not None


def require_torch() -> None:
    """framework='torch' asked for: a UsageError naming the fix when this
    Python cannot import torch (not a ModuleNotFoundError from inside)."""
    if not _torch_importable():
        raise UsageError("framework='torch' needs torch, which this Python cannot import "
                         "(pip install torch); framework='numpy' works without it")


def numpy_dtype(name: str):
    import numpy as np
    if name in _NUMPY_DTYPES:
        return np.dtype(_NUMPY_DTYPES[name])
    if name in _ML_DTYPES:
        ml_name, raw = _ML_DTYPES[name]
        try:
            import ml_dtypes
            return np.dtype(getattr(ml_dtypes, ml_name))
        except (ImportError, AttributeError):
            return np.dtype(raw)
    raise UsageError(f"dtype {name} has no numpy equivalent: use framework='torch'")


def torch_dtype(name: str):
    import torch
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise UsageError(f"dtype {name} is not known to torch {torch.__version__}")
    return dtype


def _is_remote(path: str) -> bool:
    """https://, http:// and hf:// names (docs/REMOTE.md): no file to map;
    their storages are read (by HTTP range requests) into memory."""
    return path.lower().startswith(("http://", "https://", "hf://"))


def _untyped_storage(byte_tensor):
    """The UntypedStorage of a uint8 tensor (torch 2.x and 1.13)."""
    if hasattr(byte_tensor, "untyped_storage"):
        return byte_tensor.untyped_storage()
    return byte_tensor.storage().untyped()


class StorageBytes:
    """One buffer per storage key of an opened checkpoint, and the torch
    UntypedStorage over it, each made once (tensors sharing a storage share
    it, as torch.load's do)."""

    def __init__(self, opened: Any):
        self._opened = opened
        self._info: dict[str, dict] | None = None
        self._map: mmap.mmap | None = None
        self._buffers: dict[str, Any] = {}
        self._torch: dict[str, Any] = {}
        self._file_storage: Any = None  # the whole file as one UntypedStorage (None: not yet; False: none)

    def info(self, key: str) -> dict:
        if self._info is None:
            self._info = self._opened.storages()
        try:
            return self._info[key]
        except KeyError:
            raise FormatError(f"{self._opened.path}: no storage '{key}'") from None

    def _mapped(self) -> mmap.mmap:
        if self._map is None:
            fd = os.open(self._opened.path, os.O_RDONLY)
            try:
                self._map = mmap.mmap(fd, 0, access=mmap.ACCESS_COPY)
            finally:
                os.close(fd)
        return self._map

    def buffer(self, key: str):
        """The storage's bytes: a writable memoryview (copy-on-write map or a
        private copy)."""
        buf = self._buffers.get(key)
        if buf is not None:
            return buf
        s = self.info(key)
        if not s["present"]:
            raise FormatError(f"{self._opened.path}: storage '{key}' has no bytes in the file")
        n, offset = s["nbytes"], s["file_offset"]
        if n == 0:
            buf = memoryview(bytearray())
        elif (offset is not None and offset % 8 == 0 and offset + n <= self._opened.file_size
              and not _is_remote(self._opened.path)):
            buf = memoryview(self._mapped())[offset:offset + n]
        else:
            buf = memoryview(self._opened.read_storage(key, 0, n))
        self._buffers[key] = buf
        return buf

    def torch_storage(self, key: str):
        """The torch.UntypedStorage of a key (shared by every tensor on it)."""
        storage = self._torch.get(key)
        if storage is None and self._file_storage is None:
            self._map_file()
            storage = self._torch.get(key)
        if storage is None:
            import torch
            if self.info(key)["location"] == "meta":  # no bytes: torch.load makes a meta storage
                storage = torch.UntypedStorage(self.info(key)["nbytes"], device="meta")
                self._torch[key] = storage
                return storage
            buf = self.buffer(key)
            if len(buf) == 0:
                storage = torch.UntypedStorage(0)
            else:
                storage = _untyped_storage(torch.frombuffer(buf, dtype=torch.uint8))
            self._torch[key] = storage
        return storage

    def _map_file(self) -> None:
        """torch >= 2: every mappable storage as a slice of one UntypedStorage
        mapping the whole file copy-on-write (``from_file(shared=False)``: a
        private mapping, writes never reach the file), as
        ``torch.load(mmap=True)`` makes them (the slices made by the
        extension, all at once). Storages it leaves out take the buffer path."""
        self._file_storage = False
        import torch
        if int(torch.__version__.split(".")[0]) < 2 or _is_remote(self._opened.path):
            return  # torch 1.x: storage slicing copies
        try:
            whole = torch.UntypedStorage.from_file(self._opened.path, shared=False, nbytes=self._opened.file_size)
        except (RuntimeError, OSError, TypeError):
            return
        self._file_storage = whole
        for key, storage in self._opened.file_slices(whole).items():
            self._torch.setdefault(key, storage)

    def typed_storage(self, key: str):
        """torch.storage.TypedStorage, what torch.load gives for a storage."""
        import torch
        dtype = torch_dtype(self.info(key)["dtype"])
        untyped = self.torch_storage(key)
        try:
            return torch.storage.TypedStorage(wrap_storage=untyped, dtype=dtype, _internal=True)
        except TypeError:  # torch 1.13: no _internal
            return torch.storage.TypedStorage(wrap_storage=untyped, dtype=dtype)

    def close(self) -> None:
        self._buffers.clear()
        self._torch.clear()
        self._file_storage = None
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:
                pass  # arrays or tensors still use it; it closes when they go
            self._map = None


def _check_view(name: str, t: dict) -> None:
    if t.get("problem"):
        raise FormatError(f"tensor '{name}': {t['problem']}")


def make_numpy(storages: StorageBytes, name: str, t: dict):
    """A numpy array viewing the storage (a plain strided tensor)."""
    import numpy as np
    _check_view(name, t)
    dtype = numpy_dtype(t["dtype"])
    es = dtype.itemsize
    shape, stride = tuple(t["shape"]), tuple(t["stride"])
    if t["nbytes"] == 0 or any(d == 0 for d in shape):
        return np.zeros(shape, dtype=dtype)
    flat = np.frombuffer(storages.buffer(t["storage_key"]), dtype=np.uint8)
    start = t["storage_offset"] * es
    usable = (len(flat) - start) // es * es
    base = flat[start:start + usable].view(dtype)
    return np.lib.stride_tricks.as_strided(base, shape=shape, strides=tuple(s * es for s in stride))


def make_torch(storages: StorageBytes, name: str, t: dict):
    """A torch tensor on the storage's shared UntypedStorage (set_), with
    requires_grad as stored (a Parameter is made by the caller)."""
    import torch
    _check_view(name, t)
    dtype = torch_dtype(t["dtype"])
    key = t["storage_key"]
    storage = storages.torch_storage(key) if key is not None else torch.UntypedStorage(0)
    tensor = torch.empty((0,), dtype=dtype).set_(storage, t["storage_offset"], t["shape"], t["stride"])
    if t["requires_grad"]:
        tensor.requires_grad_(True)
    return tensor
