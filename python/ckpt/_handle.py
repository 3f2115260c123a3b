"""ckpt.open: a lazy handle on a checkpoint (in the style of
safetensors.safe_open): structure, config and tensor metadata from the
pickle alone; tensor bytes only when asked, memory-mapped copy-on-write."""

from __future__ import annotations

import difflib
from collections import OrderedDict
from typing import Any

from ckpt import _ckpt
from ckpt._errors import UsageError
from ckpt._tensors import StorageBytes, make_numpy, make_torch, require_torch


_FRAMEWORKS = {"numpy": "numpy", "np": "numpy", "torch": "torch", "pt": "torch"}


def _framework(name: str) -> str:
    try:
        framework = _FRAMEWORKS[name]
    except KeyError:
        raise UsageError(f"framework must be 'numpy' (or 'np') or 'torch' (or 'pt'), not {name!r}") from None
    if framework == "torch":
        require_torch()
    return framework


class TensorSlice:
    """``get_slice(name)``: a tensor's shape and dtype without reading it;
    ``[...]`` reads it and indexes (as safetensors' slices)."""

    def __init__(self, handle: "Checkpoint", name: str, state: str | None):
        self._handle, self._name, self._state = handle, name, state

    def get_shape(self) -> list[int]:
        return list(self._handle._row(self._name, self._state)[1]["shape"])

    def get_dtype(self) -> str:
        return self._handle._row(self._name, self._state)[1]["dtype"]

    def __getitem__(self, index: Any) -> Any:
        return self._handle.get_tensor(self._name, state=self._state)[index]


class Checkpoint:
    """An opened checkpoint (``ckpt.open(path)``): a torch zip or legacy
    file, or a ``.safetensors`` file (a plain state dict).

    Opening reads the file's directory and pickle only; ``get_tensor`` and
    ``state_dict`` read tensor bytes, zero-copy from a copy-on-write memory
    map where they are stored uncompressed and aligned (writes to the
    results never reach the file). Use it as a context manager, or call
    ``close()``; tensors already returned stay valid after closing.
    """

    def __init__(self, path: str | "os.PathLike[str]", framework: str = "numpy"):
        import os
        self._framework = _framework(framework)
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

    def tensors(self, state: str | None = None) -> Any:
        """Metadata of every tensor of a state dict (default: the best state; a
        '/'-separated path such as "best_state/model", or "/" for the top level),
        in file order: ``ckpt.TensorEntry`` rows, as ``ckpt.tensors(path)`` gives."""
        from ckpt._operations import ResultList, result_class
        # The rows as Python data made by the extension (no JSON text per row).
        cls = result_class("TensorEntry")
        return ResultList([cls(d) for d in self._opened.tensor_entries(state)])

    def keys(self, state: str | None = None) -> list[str]:
        """Tensor names of the state dict (default: the best state)."""
        return [row[0] for row in self._tensor_rows(state)]

    # -- safetensors' safe_open habits -----------------------------------
    def __contains__(self, name: object) -> bool:
        return name in self.keys()

    def __len__(self) -> int:
        return len(self._tensor_rows(None))

    def __iter__(self):
        return iter(self.keys())

    def __getitem__(self, name: str) -> Any:
        return self.get_tensor(name)

    def get_slice(self, name: str, state: str | None = None) -> TensorSlice:
        """A tensor's shape and dtype without reading it; index it to read."""
        self._row(name, state)
        return TensorSlice(self, name, state)

    def metadata(self) -> dict[str, str]:
        """What the file is, as strings (safe_open's metadata() gives the
        header's __metadata__; a checkpoint has none, so: format, layout,
        best state)."""
        return {"format": self.format, "layout": self.layout, "best_state": self.best_state or ""}

    def _row(self, name: str, state: str | None) -> tuple:
        if not isinstance(name, str):  # c[0] said "'int' object is not iterable"
            raise TypeError(f"a tensor name is a string, not {type(name).__name__} (keys() lists them)")
        rows = self._tensor_rows(state)
        for row in rows:
            if row[0] == name:
                return row
        # "did you mean", as the command's `show` says it (a misspelt name).
        close = difflib.get_close_matches(name, [row[0] for row in rows], n=1, cutoff=0.8)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise UsageError(f"{self.path}: no tensor '{name}' in "
                         f"'{state or self.best_state or '/'}'{hint} (keys() lists them)")

    def _t(self, name: str, state: str | None) -> dict:
        return self._row(name, state)[1]

    def _make(self, name: str, t: dict, framework: str | None) -> Any:
        framework = self._framework if framework is None else _framework(framework)
        if not t["plain"]:
            raise UsageError(f"{self.path}: tensor '{name}' is {t['form'] or t['subclass'] or 'not plain'}: "
                             "get_tensor/state_dict read plain tensors; ckpt.load(path) rebuilds it")
        if framework == "torch":
            tensor = make_torch(self._storages, name, t)
            if t["is_parameter"]:
                import torch
                tensor = torch.nn.Parameter(tensor, requires_grad=t["requires_grad"])
            return tensor
        return make_numpy(self._storages, name, t)

    def get_tensor(self, name: str, framework: str | None = None, state: str | None = None) -> Any:
        """One tensor of a state dict (default: the best state) as a numpy
        array or (framework="torch"/"pt") a torch tensor, reading only its
        storage (default framework: the one ckpt.open was given)."""
        return self._make(name, self._t(name, state), framework)

    def state_dict(self, framework: str | None = None, state: str | None = None) -> "OrderedDict[str, Any]":
        """Every tensor of a state dict (default: the best state), name ->
        array/tensor in file order; tensors that share a storage share memory."""
        if (self._framework if framework is None else _framework(framework)) == "torch":
            # Made by the extension (no Python frame per tensor); None when a
            # tensor needs the Python path below (which makes or refuses it).
            made = _ckpt.torch_state_dict(self._opened, state, self._storages.torch_storage)
            if made is not None:
                return made
        return OrderedDict((name, self._make(name, t, framework)) for name, t in self._tensor_rows(state))

    # -- lifetime ------------------------------------------------------
    def close(self) -> None:
        self._storages.close()

    def __enter__(self) -> "Checkpoint":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        best = f", best state {self.best_state!r}" if self.best_state is not None else ""
        return f"<ckpt.Checkpoint {self._opened.source!r}: {self.format}, {self.layout}{best}>"

    def _repr_html_(self) -> str:
        import html
        rows = [("file", self._opened.source), ("format", self.format), ("dialect", self.dialect or ""),
                ("layout", self.layout), ("best state", self.best_state or ""), ("size", f"{self.file_size:,} bytes")]
        body = "".join(f"<tr><th style='text-align:left'>{k}</th><td style='text-align:left'>{html.escape(str(v))}"
                       "</td></tr>" for k, v in rows)
        return f"<table><caption>ckpt.Checkpoint</caption>{body}</table>"
