"""The ckpt command's operations as Python functions, made from the C++
api's description of them (src/api/operations.h, src/api/schema.h): one
function per command with the same name and option names, keyword options
turned into the operation's options, the call made without the GIL, and a
result object whose ``to_dict()`` is what the command's ``--json`` prints.
Docstrings and the type stubs (``_operations.pyi``, ``python -m
ckpt._stubs``) come from the same description.

Outputs are written beside the target under a temporary name, fsynced and
renamed; an existing output is replaced only with ``force=True``; Ctrl-C
(KeyboardInterrupt) during a write leaves no temporary file."""

from __future__ import annotations

import copy
import html
import inspect
import json
import math
import os
from typing import Any, Callable

from ckpt import _ckpt

OPERATIONS: list[dict] = json.loads(_ckpt.operations())
TYPES: dict[str, dict] = json.loads(_ckpt.types())


# ---------------------------------------------------------------- results

class Result:
    """A result of an operation: its fields as attributes (nested results as
    result objects, lists of them as lists); ``to_dict()`` gives the JSON
    data the command's ``--json`` prints."""

    _type: str = ""
    _fields: tuple[str, ...] = ()

    # Made once per class (result_class): every field's (name, empty value), and those not taken
    # as they are: (name, type text, kind) of lists of scalars (copied, so that the attribute is not
    # _data's list) and of anything else (nested results, unions: through _wrap).
    _all: tuple = ()
    _names: frozenset = frozenset()
    _wrapped: tuple = ()

    def __init__(self, data: dict):
        attrs = self.__dict__
        if data.keys() <= self._names:  # scalars as they are (what _wrap returns for them)
            attrs.update(data)
        else:
            attrs.update((k, v) for k, v in data.items() if k in self._names)
        attrs["_data"] = data
        for name, type_text, kind in self._wrapped:
            if name in data:
                v = data[name]
                attrs[name] = list(v) if kind == _SCALARS and v is not None else _wrap(type_text, v)
        if len(data) < len(self._all):
            for name, empty in self._all:
                if name not in data:  # a field left out when empty: a new [] or {}, else the value
                    attrs[name] = empty.copy() if isinstance(empty, (list, dict)) else empty

    def to_dict(self) -> dict:
        """The result as the command's ``--json`` prints it."""
        return copy.deepcopy(self._data)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._data == self._data  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={_short(getattr(self, n))}" for n in self._fields if n in self._data)
        return f"{type(self).__name__}({inner})"

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th style='text-align:left'>{html.escape(n)}</th><td style='text-align:left'>"
                       f"{_html(getattr(self, n))}</td></tr>" for n in self._fields if n in self._data)
        return f"<table><caption>{type(self).__name__}</caption>{rows}</table>"


class ResultList(list):
    """A list of result rows (stats, tensors): ``to_dict()`` gives the JSON
    array the command's ``--json`` prints; a notebook shows it as a table."""

    def to_dict(self) -> list:
        return [r.to_dict() if isinstance(r, Result) else r for r in self]

    def _repr_html_(self) -> str:
        if not self or not isinstance(self[0], Result):
            return html.escape(repr(list(self)))
        cols = [n for n in self[0]._fields if any(n in r._data for r in self)]
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = "".join("<tr>" + "".join(f"<td>{_html(getattr(r, c))}</td>" for c in cols) + "</tr>" for r in self)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _short(v: Any) -> str:
    if isinstance(v, list) and len(v) > 4:
        return f"[{', '.join(_short(x) for x in v[:3])}, ... ({len(v)} items)]"
    if isinstance(v, str) and len(v) > 60:
        return repr(v[:57] + "...")
    return repr(v)


def _html(v: Any) -> str:
    if isinstance(v, ResultList) or (isinstance(v, list) and v and isinstance(v[0], Result)):
        return ResultList(v)._repr_html_()
    if isinstance(v, Result):
        return v._repr_html_()
    if isinstance(v, str) and "\n" in v:
        return f"<pre>{html.escape(v)}</pre>"
    return html.escape(_short(v))


_CLASSES: dict[str, type] = {}


def result_class(name: str) -> type:
    """The Python class of a described type (made once)."""
    cls = _CLASSES.get(name)
    if cls is None:
        desc = TYPES[name]
        doc = desc["doc"][:1].upper() + desc["doc"][1:] + ".\n\nFields:\n" + "".join(
            f"    {f['name']} ({f['type']}): {f['doc']}\n" for f in desc["fields"])
        cls = type(name, (Result,), {"__doc__": doc, "__module__": "ckpt", "_type": name,
                                     "_fields": tuple(f["name"] for f in desc["fields"]),
                                     "_all": tuple((f["name"], _empty(f["type"])) for f in desc["fields"]),
                                     "_names": frozenset(f["name"] for f in desc["fields"]),
                                     "_wrapped": tuple((f["name"], f["type"], _field_kind(f["type"]))
                                                       for f in desc["fields"]
                                                       if _field_kind(f["type"]) != _SCALAR)})
        _CLASSES[name] = cls
    return cls


_SCALAR_TYPES = {"str", "int", "float", "bool", "Any", "str | None", "int | None", "float | None", "bool | None"}
_SCALAR, _SCALARS, _OTHER = 0, 1, 2


def _field_kind(type_text: str) -> int:
    """How Result.__init__ takes a field: as it is (_SCALAR: what _wrap returns unchanged), as a copy
    of its list (_SCALARS: a list of scalars, which _wrap copies), or through _wrap (_OTHER)."""
    if type_text in _SCALAR_TYPES:
        return _SCALAR
    if type_text.startswith("list[") and type_text[5:-1] in _SCALAR_TYPES:
        return _SCALARS
    return _OTHER


def _wrap(type_text: str, value: Any) -> Any:
    """JSON data as the Python value of a field of type_text."""
    if value is None:
        return None
    alternatives = [t.strip() for t in _split_union(type_text)]
    if len(alternatives) > 1:
        alternatives = [t for t in alternatives if t != "None"]
        if len(alternatives) == 1:
            return _wrap(alternatives[0], value)
        return value
    if type_text.startswith("list[") and isinstance(value, list):
        inner = type_text[5:-1]
        items = [_wrap(inner, v) for v in value]
        return ResultList(items) if inner in TYPES else items
    if type_text.startswith("dict[str, ") and isinstance(value, dict):
        inner = type_text[len("dict[str, "):-1]
        return {k: _wrap(inner, v) for k, v in value.items()}
    if type_text in TYPES and isinstance(value, dict):
        return result_class(type_text)(value)
    return value


def _empty(type_text: str) -> Any:
    if type_text.endswith("| None"):
        return None
    return {"str": "", "bool": False, "int": 0, "float": 0.0}.get(type_text, [] if type_text.startswith("list[") else
                                                                   {} if type_text.startswith("dict[") else None)


def _split_union(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch == "["
        depth -= ch == "]"
        if ch == "|" and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


# ------------------------------------------------------------- functions

def _jsonable(v: Any) -> Any:
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    if isinstance(v, (tuple, set, frozenset)):
        return list(v)
    raise TypeError(f"{type(v).__name__} is not an option value")


def _progress_callback(progress: Any) -> Callable[[str, int, int], None] | None:
    """progress: a callable(output, done, total), or a tqdm-like bar (has
    update() and n): its total is set and it is advanced."""
    if progress is None or not hasattr(progress, "update") or not hasattr(progress, "n"):
        if progress is not None and not callable(progress):  # said "'int' object is not callable" mid-write
            raise TypeError(f"progress: expected a callable(output, done, total) or a tqdm bar, "
                            f"not {type(progress).__name__}")
        return progress

    def advance(output: str, done: int, total: int) -> None:
        if progress.total != total:
            progress.total = total
        progress.update(done - progress.n)
    return advance


def _signature(op: dict) -> inspect.Signature:
    options = TYPES[op["options"]]
    defaults = options.get("defaults", {})
    P = inspect.Parameter
    params = [P(name, P.POSITIONAL_OR_KEYWORD) for name in op["inputs"]]
    for name in op["positional"]:
        params.append(P(name, P.POSITIONAL_OR_KEYWORD, default=defaults.get(name)))
    for f in options["fields"]:
        if f["name"] not in op["positional"]:
            params.append(P(f["name"], P.KEYWORD_ONLY, default=defaults.get(f["name"])))
    if op["progress"]:
        params.append(P("progress", P.KEYWORD_ONLY, default=None))
    return inspect.Signature(params)


def _docstring(op: dict) -> str:
    options = TYPES[op["options"]]
    lines = [op["doc"][:1].upper() + op["doc"][1:] + ".", "",
             f"The command ``ckpt {op['cli']}``; the result's to_dict() is what its --json prints.", ""]
    lines.append("Arguments:")
    for name in op["inputs"]:
        lines.append(f"    {name} (str | os.PathLike): {'a DCP folder' if name == 'dir' else 'the checkpoint'}")
    for f in options["fields"]:
        lines.append(f"    {f['name']} ({f['type']}): {f['doc']}")
    if op["progress"]:
        lines.append("    progress: a callable(output, done, total) called as the write goes on, or a "
                     "tqdm bar (its total is set and it is advanced)")
    lines += ["", f"Returns {op['result']}."]
    return "\n".join(lines)


def _make(op: dict) -> Callable[..., Any]:
    sig = _signature(op)
    fields = {f["name"] for f in TYPES[op["options"]]["fields"]}

    def operation(*args: Any, **kwargs: Any) -> Any:
        bound = sig.bind(*args, **kwargs)
        inputs = [os.fspath(bound.arguments[n]) for n in op["inputs"]]
        # JSON has no NaN or Inf: such a float goes as its repr ('nan', 'inf'), which the operation checks.
        options = {k: repr(v) if isinstance(v, float) and not math.isfinite(v) else v
                   for k, v in bound.arguments.items() if k in fields}
        progress = _progress_callback(bound.arguments.get("progress"))
        type_name, text = _ckpt.call(op["name"], inputs, json.dumps(options, default=_jsonable), progress)
        data = json.loads(text)
        if type_name.startswith("list["):
            inner = type_name[5:-1]
            return ResultList(result_class(inner)(d) for d in data)
        return result_class(type_name)(data)

    operation.__name__ = operation.__qualname__ = op["name"]
    operation.__module__ = "ckpt"
    operation.__doc__ = _docstring(op)
    operation.__signature__ = sig  # type: ignore[attr-defined]
    return operation


FUNCTIONS: dict[str, Callable[..., Any]] = {op["name"]: _make(op) for op in OPERATIONS}
RESULT_CLASSES: dict[str, type] = {name: result_class(name) for name in TYPES if not name.endswith("Options")}
