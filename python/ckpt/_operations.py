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

    def __init__(self, data: dict):
        self._data = data
        for f in TYPES[self._type]["fields"]:
            if f["name"] in data:
                object.__setattr__(self, f["name"], _wrap(f["type"], data[f["name"]]))
            else:  # a field left out when empty
                object.__setattr__(self, f["name"], _empty(f["type"]))

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
                                     "_fields": tuple(f["name"] for f in desc["fields"])})
        _CLASSES[name] = cls
    return cls


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
