"""ckpt.load: the objects ``torch.load(path, weights_only=False)`` returns,
rebuilt from the pickle graph the C++ core parsed, without running pickled
code. Globals are resolved only from the allowlist ``ckpt scan`` uses
(torch's weights_only list plus what AudioCraft checkpoints need); the
objects they name are then made as pickle would (call, ``__new__``,
``__setstate__``), so containers, DictConfig/ListConfig (omegaconf's own
unpickling: same content, flags and ``_parent`` links) and defaultdicts come
out as torch.load makes them. Plain tensors are views (``set_``) onto one
UntypedStorage per storage key; other tensor kinds go through torch's own
``torch._utils`` rebuild functions."""

from __future__ import annotations

import _compat_pickle
import gc
import importlib
from typing import Any, Iterable

from ckpt import _ckpt
from ckpt._errors import Error, FormatError, UnsafeGlobalError, UsageError
from ckpt._tensors import StorageBytes, make_numpy, make_torch, require_torch

# Node tuple tags (python/src/graph.cc).
_VALUE, _BIGINT, _TUPLE, _LIST, _DICT, _SET, _FROZENSET, _GLOBAL, _OBJECT, _PERSID = range(10)
_REDUCE, _NEWOBJ, _NEWOBJ_EX = range(3)

# Bounds on the work a hostile graph can ask of ckpt.load (issue 19): hashing
# a dict key or set member visits every object inside it, once per path (a
# tuple's hash is not cached, so a DAG of shared tuples costs 2^depth);
# bytearray(n) / bytes(n) allocate n bytes a file of a few bytes asks for.
MAX_HASH_WORK = 1_000_000
MAX_ALLOCATION = 256 << 20


class Placeholder:
    """An inert stand-in for an object whose class or function is not on the
    allowlist (``ckpt.load(..., unsafe_globals="placeholder")``): what the
    pickle says, never called."""

    def __init__(self, name: str, args: tuple = (), kwargs: dict | None = None):
        self.name = name
        self.args = args
        self.kwargs = kwargs or {}
        self.state: Any = None
        self.items: list = []
        self.entries: list = []

    def __repr__(self) -> str:
        return f"<ckpt.Placeholder {self.name}>"


class PlaceholderGlobal:
    """A global outside the allowlist, by name (never imported)."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"<ckpt.PlaceholderGlobal {self.name}>"


class Loader:
    def __init__(self, opened: Any, framework: str, unsafe_globals: str,
                 allowed_globals: Iterable[str] = (), storages: StorageBytes | None = None):
        if framework not in ("torch", "numpy"):
            raise UsageError(f"framework must be 'torch' or 'numpy', not {framework!r}")
        if framework == "torch":
            require_torch()
        if unsafe_globals not in ("error", "placeholder"):
            raise UsageError(f"unsafe_globals must be 'error' or 'placeholder', not {unsafe_globals!r}")
        self._opened = opened
        self._framework = framework
        self._placeholders = unsafe_globals == "placeholder"
        self._allowed = set(allowed_globals)
        self._storages = storages or StorageBytes(opened)
        self._graph = _ckpt.Builder(opened, self._storages.torch_storage if framework == "torch" else None)
        if getattr(opened, "layout", "") == "torchscript":
            # torch.load hands such an archive to torch.jit.load, which compiles
            # and runs its code/ records: no object graph stands for that.
            raise UnsafeGlobalError(
                f"{opened.path}: a TorchScript archive (torch.jit.save): torch.load hands it to torch.jit.load, "
                "which compiles and runs the Python code in its code/ records; ckpt.load does not run code "
                "(`ckpt tensors FILE` lists its parameters and buffers without running anything)",
                [])
        if not self._placeholders:
            self._refuse_unsafe_globals()

    def _refuse_unsafe_globals(self) -> None:
        names = []
        for module, name in self._graph.globals():
            if not self._allows(module, name):
                name = f"{module}.{name}"
                if name not in names:
                    names.append(name)
        if names:
            raise UnsafeGlobalError(
                f"{self._opened.path}: the pickle names {len(names)} global(s) outside the allowlist: "
                + ", ".join(names) + " (allowed_globals=" + repr(names)
                + " allows the ones you trust: they run as torch.load would run them; "
                "unsafe_globals='placeholder' loads inert placeholders)", names)

    def _allows(self, module: str, name: str) -> bool:
        return _ckpt.allowed_global(module, name) or f"{module}.{name}" in self._allowed

    def load(self) -> Any:
        # Python's cyclic garbage collector paused while the graph is made:
        # the thousands of containers made here would each count towards a
        # collection that walks every object of the process (torch's too),
        # and none of them is garbage yet. Restored whatever happens.
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._check_hash_work()
            obj = self.build(0)
            self._validate_sparse()
            return obj
        except RecursionError:
            raise FormatError(f"{self._opened.path}: objects nested deeper than Python's recursion limit") from None
        except Error:
            raise
        except Exception as e:  # what the pickle asks is impossible (an unhashable key, a bad BUILD)
            raise FormatError(f"{self._opened.path}: the pickle's objects cannot be rebuilt: "
                              f"{type(e).__name__}: {e}") from None
        finally:
            if collecting:
                gc.enable()
            self._forget_sparse()

    def _sparse_list(self) -> list | None:
        if self._framework != "torch":
            return None
        import sys
        utils = sys.modules.get("torch._utils")
        return getattr(utils, "_sparse_tensors_to_validate", None) if utils is not None else None

    def _validate_sparse(self) -> None:
        """torch.load's last step: the sparse tensors torch._utils' rebuild
        functions queued are checked (an index out of range is refused), with
        the invariant checks on whatever torch's global setting is."""
        pending = self._sparse_list()
        if not pending:
            return
        import torch
        check = getattr(torch.sparse, "check_sparse_tensor_invariants", None)
        try:
            if check is None:  # torch 1.x validates always
                torch._utils._validate_loaded_sparse_tensors()
            else:
                with check(enable=True):
                    torch._utils._validate_loaded_sparse_tensors()
        except (RuntimeError, ValueError, IndexError) as e:
            raise FormatError(f"{self._opened.path}: a sparse tensor fails torch's invariant checks: {e}") from None

    def _forget_sparse(self) -> None:
        """No global state left behind: torch's queue of sparse tensors to
        validate is emptied whatever happened."""
        pending = self._sparse_list()
        if pending:
            pending.clear()

    def _check_hash_work(self) -> None:
        """Refuses, before anything is built, a dict key or set member whose
        hashing would visit more than MAX_HASH_WORK objects (counted by the
        extension: a tuple or frozenset costs 1 + its members, an object 1 +
        its callable and arguments, a cycle the limit)."""
        if self._graph.hash_work_exceeds(MAX_HASH_WORK):
            raise FormatError(
                f"{self._opened.path}: a dict key or set member whose hashing visits more than "
                f"{MAX_HASH_WORK:,} objects (ckpt.load's limit on hashing work: a graph of shared "
                "tuples that torch.load would hash for ever)")

    def build(self, i: int) -> Any:
        """The object of node i, made once. The extension's Builder makes
        scalars, containers and calls of resolved globals itself and calls
        back _global, _persistent, _tensor and _object for the rest."""
        return self._graph.build(i, self)

    # What the Builder hands to _object and _set_state (set below the class).
    _placeholder_global: type

    def _call_failed(self, fn: Any, e: BaseException) -> FormatError:
        return FormatError(f"{self._opened.path}: calling {_qualname(fn)} as the pickle says failed: {e}")

    def _global(self, module: str, name: str) -> Any:
        if not self._allows(module, name):
            if self._placeholders:
                return PlaceholderGlobal(f"{module}.{name}")
            raise UnsafeGlobalError(f"{self._opened.path}: global {module}.{name} is outside the allowlist "
                                    f"(allowed_globals=['{module}.{name}'] allows it if you trust it; "
                                    "unsafe_globals='placeholder' loads an inert placeholder)",
                                    [f"{module}.{name}"])
        # Python 2 spellings, as pickle's find_class maps them (__builtin__.long -> builtins.int).
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        try:
            obj = importlib.import_module(module)
            for part in name.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as e:
            if self._placeholders:
                return PlaceholderGlobal(f"{module}.{name}")
            hint = (f"; install the package that provides it (pip install {module.split('.')[0]})"
                    " or pass unsafe_globals='placeholder' for inert stand-ins")
            raise UsageError(f"{self._opened.path}: global {module}.{name} cannot be imported here ({e}){hint}") from None
        return obj

    def _persistent(self, pid_index: int) -> Any:
        pid = self._graph.node(pid_index)
        if pid[0] != _TUPLE or len(pid[1]) < 3:
            raise FormatError(f"{self._opened.path}: a persistent id that is not a storage tuple")
        key = self.build(pid[1][2])
        if self._framework != "torch":
            return self._storages.buffer(str(key))
        return self._storages.typed_storage(str(key))

    def _tensor(self, i: int, t: dict) -> Any:
        if t["is_parameter"]:
            data = self.build(t["object"])
            if self._framework != "torch":
                return data
            import torch
            return torch.nn.Parameter(data, requires_grad=t["requires_grad"])
        if self._framework == "torch":
            return make_torch(self._storages, f"node {i}", t)
        return make_numpy(self._storages, f"node {i}", t)

    def _object(self, i: int, node: tuple) -> Any:
        t = self._graph.tensor(i)
        if t is not None and t["plain"]:
            obj = self._tensor(i, t)
            self._graph.remember(i, obj)
            return obj
        error = self._graph.tensor_error(i)
        if error is not None:
            raise FormatError(f"{self._opened.path}: {error}")
        if t is not None and self._framework != "torch":
            raise UsageError(f"{self._opened.path}: a {t['form'] or t['subclass'] or 'special'} tensor "
                             "needs torch (framework='torch')")
        _, how, callable_i, args_i, kwargs_i, state_i, items, entries = node
        fn = self.build(callable_i)
        args = self.build(args_i) if args_i >= 0 else ()
        if not isinstance(args, tuple):
            raise FormatError(f"{self._opened.path}: call arguments that are not a tuple")
        if isinstance(fn, PlaceholderGlobal):
            obj = Placeholder(fn.name, args)
            self._graph.remember(i, obj)
            obj.items = [self.build(c) for c in items]
            obj.entries = [(self.build(k), self.build(v)) for k, v in entries]
            obj.state = self.build(state_i) if state_i >= 0 else None
            return obj
        if (fn is bytearray or fn is bytes) and args and isinstance(args[0], int) and args[0] > MAX_ALLOCATION:
            raise FormatError(f"{self._opened.path}: the pickle asks {_qualname(fn)}({args[0]:,}): over ckpt.load's "
                              f"limit of {MAX_ALLOCATION:,} bytes for one allocation the file does not hold")
        try:
            if how == _REDUCE:
                obj = fn(*args)
            else:
                kwargs = self.build(kwargs_i) if how == _NEWOBJ_EX and kwargs_i >= 0 else {}
                obj = fn.__new__(fn, *args, **kwargs)
        except (TypeError, ValueError, AttributeError, RuntimeError) as e:
            raise self._call_failed(fn, e) from None
        self._graph.remember(i, obj)
        if items:
            # Looked up on the class, never the instance: an instance lookup
            # on a DictConfig is a key lookup that resolves interpolations
            # (oc.env, registered resolvers). pickle's APPENDS on an object
            # whose class has neither method fails in torch.load too.
            cls = type(obj)
            extend = getattr(cls, "extend", None)
            values = [self.build(c) for c in items]
            if extend is not None:
                extend(obj, values)
            else:
                append = getattr(cls, "append", None)
                if append is None:
                    raise FormatError(f"{self._opened.path}: the pickle appends items to a {_qualname(cls)}, "
                                      "which has no append or extend")
                for v in values:
                    append(obj, v)
        for k, v in entries:
            obj[self.build(k)] = self.build(v)
        if state_i >= 0:
            _set_state(obj, self.build(state_i))
        return obj


def _set_state(obj: Any, state: Any) -> None:
    """pickle's BUILD (methods looked up on the class, as special methods
    are: no instance attribute lookup, which on a DictConfig would resolve)."""
    setstate = getattr(type(obj), "__setstate__", None)
    if setstate is not None and setstate is not getattr(object, "__setstate__", None):
        setstate(obj, state)
        return
    slotstate = None
    if isinstance(state, tuple) and len(state) == 2:
        state, slotstate = state
    if state:
        obj.__dict__.update(state)
    if slotstate:
        for k, v in slotstate.items():
            setattr(obj, k, v)


Loader._placeholder_global = PlaceholderGlobal
Loader._set_state = staticmethod(_set_state)  # type: ignore[attr-defined]


def _qualname(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
