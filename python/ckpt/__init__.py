"""ckpt: inspect, load safely and edit PyTorch checkpoints (AudioCraft's
above all) without running pickled code.

- ``ckpt.open(path)``: a lazy handle: layout, best state, config, tensor
  metadata, ``get_tensor`` / ``state_dict`` from a copy-on-write memory map.
- ``ckpt.load(path)``: what ``torch.load(path, weights_only=False)`` returns,
  rebuilt without running pickled code.
- ``ckpt.info``, ``ls``, ``tensors``, ``show``, ``cfg``, ``verify``, ``scan``,
  ``stats``, ``diff``, ``edit``, ``compact``, ``rewrite``, ``export``, ``wrap``,
  ``bundle``, ``sanitize``, ``to_safetensors``, ``from_safetensors``,
  ``to_dcp``, ``consolidate``: the command's operations (same names, same
  options), returning result objects whose ``to_dict()`` is the command's
  ``--json``.
- The ``ckpt`` command is installed with the package (``python -m ckpt``).
"""

from __future__ import annotations

import os
from typing import Any, Iterable

from ckpt._errors import Error, FormatError, IoError, UnsafeGlobalError, UsageError  # noqa: F401  (first: _ckpt imports it)
from ckpt import _ckpt  # noqa: E402
from ckpt._handle import Checkpoint  # noqa: E402,F401
from ckpt._load import Loader, Placeholder, PlaceholderGlobal  # noqa: E402,F401
from ckpt import _operations  # noqa: E402
from ckpt._operations import Result, ResultList  # noqa: E402,F401

__version__ = _ckpt.version()

globals().update(_operations.FUNCTIONS)
globals().update(_operations.RESULT_CLASSES)


def open(path: "str | os.PathLike[str]", framework: str = "numpy") -> Checkpoint:  # noqa: A001  (as safe_open)
    """Opens a checkpoint lazily (see ``ckpt.Checkpoint``): a torch zip or
    legacy file, a .safetensors file, or a DCP folder (consolidated into a
    temporary file first). ``framework`` ("numpy"/"np" or "torch"/"pt") is
    what ``c[name]`` and ``get_tensor`` return, as in safetensors'
    ``safe_open(path, framework)``. Raises ``ckpt.FormatError`` for a file
    that is not one, ``ckpt.IoError`` when it cannot be read."""
    return Checkpoint(path, framework)


def load(path: "str | os.PathLike[str]", *, unsafe_globals: str = "error",
         allowed_globals: Iterable[str] = (), framework: str | None = None) -> Any:
    """The object graph ``torch.load(path, weights_only=False)`` returns,
    rebuilt without running any pickled code.

    Tensors share storage as torch's do (one ``torch.UntypedStorage`` per
    storage key, mapped copy-on-write where the file allows), Parameters keep
    ``requires_grad``, OrderedDicts their ``_metadata``, DictConfig/ListConfig
    their content, flags and parents; defaultdicts, containers, scalars and
    bytes come back as they were. Only allowlisted globals are resolved
    (``ckpt scan``'s list: torch's weights_only list plus OmegaConf and
    AudioCraft's needs); any other raises ``ckpt.UnsafeGlobalError`` naming
    them all, unless ``unsafe_globals="placeholder"``, which puts inert
    ``ckpt.Placeholder`` objects in their place. ``allowed_globals`` adds
    "module.name" entries you trust (as ``torch.serialization.add_safe_globals``),
    e.g. a Tensor subclass of your own; they are imported and called.

    ``framework``: "torch" (default when torch is importable) or "numpy".
    Without torch installed, tensors come back as numpy arrays (bfloat16 and
    float8 as ml_dtypes types when ml_dtypes is installed, else their raw
    bits), Parameters as plain arrays, and tensors other than plain strided
    ones raise ``ckpt.UsageError``. Storages are always loaded on the CPU.
    """
    if framework is None:
        try:
            import torch  # noqa: F401
            framework = "torch"
        except ImportError:
            framework = "numpy"
    opened = _ckpt.Opened(os.fspath(path))
    return Loader(opened, framework, unsafe_globals, allowed_globals).load()


__all__ = ["open", "load", "Checkpoint", "Placeholder", "PlaceholderGlobal", "Result", "ResultList",
           "Error", "FormatError", "IoError", "UsageError", "UnsafeGlobalError",
           *_operations.FUNCTIONS, *_operations.RESULT_CLASSES]


def __dir__() -> list[str]:
    """Public names only (help(ckpt), tab completion)."""
    return sorted(__all__ + ["__version__"])
