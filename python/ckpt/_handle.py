"""ckpt.open: a lazy handle on a checkpoint (in the style of
safetensors.safe_open): structure, config and tensor metadata from the
pickle alone; tensor bytes only when asked, memory-mapped copy-on-write."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from ckpt import _ckpt
from ckpt._errors import UsageError
from ckpt._tensors import StorageBytes, make_numpy, make_torch


@dataclass(frozen=True)
class TensorInfo:
    """A tensor's metadata as stored: ``storage_offset`` in elements,
    ``nbytes`` the bytes its data takes in the file; ``form`` is empty for a
    plain strided tensor, else what it is ("sparse_coo, nnz 5", "meta")."""

    name: str
    dtype: str
    shape: tuple
    stride: tuple
    storage_key: str | None
    storage_offset: int
    nbytes: int
    requires_grad: bool
    is_parameter: bool
    form: str

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


def _info(name: str, t: dict) -> TensorInfo:
    return TensorInfo(name, t["dtype"], tuple(t["shape"]), tuple(t["stride"]), t["storage_key"],
                      t["storage_offset"], t["nbytes"], t["requires_grad"], t["is_parameter"], t["form"])


class Checkpoint:
    """An opened checkpoint (``ckpt.open(path)``): a torch zip or legacy
    file, or a ``.safetensors`` file (a plain state dict).

    Opening reads the file's directory and pickle only; ``get_tensor`` and
    ``state_dict`` read tensor bytes, zero-copy from a copy-on-write memory
    map where they are stored uncompressed and aligned (writes to the
    results never reach the file). Use it as a context manager, or call
    ``close()``; tensors already returned stay valid after closing.
    """

    def __init__(self, path: str | "os.PathLike[str]"):
        import os
        self._opened = _ckpt.Opened(os.fspath(path))
        self._storages = StorageBytes(self._opened)
        self._rows: dict[str | None, list] = {}

    # -- structure -----------------------------------------------------
    @property
    def path(self) -> str:
        return self._opened.path

    @property
    def format(self) -> str:
        """"zip", "legacy" or "safetensors"."""
        return self._opened.format

    @property
    def dialect(self) -> str | None:
        """The torch that wrote a zip checkpoint: "torch-1.6", "torch-2.1", "torch-2.7"."""
        return self._opened.dialect

    @property
    def layout(self) -> str:
        """AudioCraft layout: "audiocraft-training", "audiocraft-exported", "state-dict", ..."""
        return self._opened.layout

    @property
    def best_state(self) -> str | None:
        """'/'-separated path of the best state dict ("best_state/model"), None when there is none."""
        return self._opened.best_state

    @property
    def top_level_keys(self) -> list[str]:
        """The keys of the top-level mapping (empty when the top level is not one)."""
        return self._opened.top_level_keys()

    @property
    def file_size(self) -> int:
        return self._opened.file_size

    # -- config --------------------------------------------------------
    @property
    def cfg(self) -> str:
        """xp.cfg as ``OmegaConf.to_yaml`` prints it (UsageError when there is none)."""
        return self._opened.cfg_yaml("")

    def cfg_dict(self, path: str = "") -> Any:
        """xp.cfg (or the config at object path ``path``, e.g. "0/cfg") as plain
        dicts and lists: ``OmegaConf.to_container(cfg, resolve=False)``."""
        return self._opened.cfg_tree(path)

    def cfg_omegaconf(self, path: str = "") -> Any:
        """xp.cfg as a DictConfig (``OmegaConf.create`` of its content; flags
        not carried: ``ckpt.load`` gives the pickled DictConfig itself). Needs omegaconf."""
        try:
            from omegaconf import OmegaConf
        except ImportError:
            raise UsageError("cfg_omegaconf() needs omegaconf (pip install omegaconf); "
                             "cfg_dict() gives plain dicts") from None
        return OmegaConf.create(self.cfg_dict(path))

    # -- tensors -------------------------------------------------------
    def _tensor_rows(self, state: str | None) -> list:
        rows = self._rows.get(state)
        if rows is None:
            rows = self._rows[state] = self._opened.tensors(state)
        return rows

    def tensors(self, state: str | None = None) -> list[TensorInfo]:
        """Metadata of every tensor of a state dict (default: the best state; a
        '/'-separated path such as "best_state/model", or "/" for the top level), in file order."""
        return [_info(name, t) for name, t in self._tensor_rows(state)]

    def keys(self, state: str | None = None) -> list[str]:
        """Tensor names of the state dict (default: the best state)."""
        return [name for name, _ in self._tensor_rows(state)]

    def _row(self, name: str, state: str | None) -> dict:
        for n, t in self._tensor_rows(state):
            if n == name:
                return t
        raise UsageError(f"{self.path}: no tensor '{name}' in "
                         f"'{state or self.best_state or '/'}'")

    def _make(self, name: str, t: dict, framework: str) -> Any:
        if not t["plain"]:
            raise UsageError(f"{self.path}: tensor '{name}' is {t['form'] or t['subclass'] or 'not plain'}: "
                             "get_tensor/state_dict read plain tensors; ckpt.load(path) rebuilds it")
        if framework == "torch":
            tensor = make_torch(self._storages, name, t)
            if t["is_parameter"]:
                import torch
                tensor = torch.nn.Parameter(tensor, requires_grad=t["requires_grad"])
            return tensor
        if framework == "numpy":
            return make_numpy(self._storages, name, t)
        raise UsageError(f"framework must be 'numpy' or 'torch', not {framework!r}")

    def get_tensor(self, name: str, framework: str = "numpy", state: str | None = None) -> Any:
        """One tensor of a state dict (default: the best state) as a numpy
        array or (framework="torch") a torch tensor, reading only its storage."""
        return self._make(name, self._row(name, state), framework)

    def state_dict(self, framework: str = "numpy", state: str | None = None) -> "OrderedDict[str, Any]":
        """Every tensor of a state dict (default: the best state), name ->
        array/tensor in file order; tensors that share a storage share memory."""
        return OrderedDict((name, self._make(name, t, framework)) for name, t in self._tensor_rows(state))

    # -- lifetime ------------------------------------------------------
    def close(self) -> None:
        self._storages.close()

    def __enter__(self) -> "Checkpoint":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ckpt.Checkpoint {self.path!r} {self.format} {self.layout}>"
