"""The ckpt command's operations as functions (the api layer of the C++
core, src/api): each takes paths and keyword options as the command does and
returns a result object; nothing is printed. Outputs are written beside the
target under a temporary name, fsynced and renamed; an existing output is
replaced only with ``force=True``; Ctrl-C (KeyboardInterrupt) during a write
leaves no temporary file. The GIL is released while they run."""

from __future__ import annotations

import os
from typing import Iterable, Sequence

from ckpt import _ckpt


class Result:
    """Fields of an operation's result as attributes (``vars(result)`` gives them all)."""

    def __init__(self, fields: dict):
        self.__dict__.update(fields)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items())
        return f"{type(self).__name__}({inner})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)


class EditResult(Result):
    """config_changes ("key: old -> new" lines), states (per state dict edited:
    path, before, dropped keys, renamed (old, new) pairs), dtype (the
    conversion plan or None), changes (count), bytes (of the output, or what
    it would be with dry_run), appended (in place: True when appended, False
    when rewritten; None otherwise), rewrite_reason."""

    config_changes: list[str]
    states: list[dict]
    dtype: dict | None
    changes: int
    bytes: int
    appended: bool | None
    rewrite_reason: str


class ExportResult(Result):
    """out, exported_from (the best state's path)."""

    out: str
    exported_from: str


class WriteResult(Result):
    """out: the file written."""

    out: str


class BundleResult(Result):
    """dir, state_dict and compression_state_dict (the files written),
    compression_pretrained, compression_from_config."""

    dir: str
    state_dict: str
    compression_state_dict: str
    compression_pretrained: bool
    compression_from_config: str


class SanitizeResult(Result):
    """out, written, refused (globals outside torch's weights_only list: when
    any, nothing was written)."""

    out: str
    written: bool
    refused: list[str]


class VerifyResult(Result):
    """file, records, tensors, problems (one line each); ok is True without problems."""

    file: str
    records: int
    tensors: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


class ScanResult(Result):
    """path, container ("zip", "legacy", "pickle"), verdict ("safe", "unsafe",
    "unreadable"), problem, pickles, globals (module, name, allowed, record,
    called, instantiated, built, in_persistent_id, file_offset)."""

    path: str
    container: str
    verdict: str
    problem: str
    pickles: list[dict]
    globals: list[dict]

    @property
    def unsafe_globals(self) -> list[str]:
        return [f"{g['module']}.{g['name']}" for g in self.globals if not g["allowed"]]


class DiffResult(Result):
    """equal, compared (tensors), only_in_a / only_in_b (tensor names),
    changed (dtype/shape/form changes), values (value differences: name,
    numel, differing, max_abs_diff, beyond_tolerance), top_only_in_a,
    top_only_in_b, top_changed, config_diff (unified diff of xp.cfg), tensors_only."""

    a: tuple[str, str, str]
    b: tuple[str, str, str]
    equal: bool
    compared: int
    only_in_a: list[str]
    only_in_b: list[str]
    changed: list[dict]
    values: list[dict]
    top_only_in_a: list[str]
    top_only_in_b: list[str]
    top_changed: list[tuple[str, str, str]]
    config_diff: str
    tensors_only: bool


class StatsRow(Result):
    """name, dtype, form, shape, numel, note; nan, inf, min, max, mean, std,
    norm when the tensor has statistics (min/max/mean/std None without finite values)."""

    name: str
    dtype: str
    form: str
    shape: tuple
    numel: int
    note: str
    nan: int
    inf: int
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    norm: float


class SafetensorsResult(Result):
    """to_safetensors: out, state, tensors, bytes, skipped, non_tensors,
    sharded, files, wrote_index. from_safetensors: out, tensors, state,
    replaced, dtype_changes."""

    out: str
    state: str
    tensors: int
    bytes: int
    skipped: list[str]
    non_tensors: int
    sharded: bool
    files: int
    wrote_index: bool
    replaced: int
    dtype_changes: list[str]


def _path(p: "str | os.PathLike[str]") -> str:
    return os.fspath(p)


def _list(values: "str | Iterable[str] | None") -> list[str]:
    if values is None:
        return []
    if isinstance(values, (str, os.PathLike)):
        return [os.fspath(values)]
    return [os.fspath(v) for v in values]


def edit(file: "str | os.PathLike[str]", out: "str | os.PathLike[str] | None" = None, *,
         overrides: Sequence[str] = (), keep: "str | Iterable[str]" = (), drop: "str | Iterable[str]" = (),
         rename: "str | Iterable[str]" = (), states: "str | Iterable[str]" = (), dtype: str = "",
         dtype_match: "str | Iterable[str]" = (), in_place: bool = False, dry_run: bool = False,
         allow_no_match: bool = False, allow_empty: bool = False, force: bool = False,
         compact: bool = False, dialect: str | None = None) -> EditResult:
    """``ckpt edit``: Hydra overrides on xp.cfg ("optim.lr=1e-5", "+k=v",
    "++k=v", "~k"), key surgery on state dicts (keep / drop fnmatch globs,
    rename "REGEX=REPLACEMENT" in re.sub's syntax: \\1, \\g<name>), dtype conversion of floating tensors
    (dtype="float16", optionally only those matching dtype_match), written to
    ``out`` or, with in_place=True, appended to ``file`` (crash-safe).
    ``states``: the state dicts edited (default: the best state). An edit
    that does nothing, a glob or regex matching no key (unless
    allow_no_match), or one that empties a state dict (unless allow_empty)
    raises ckpt.UsageError and writes nothing."""
    if (out is None) == (not in_place):
        from ckpt._errors import UsageError
        raise UsageError("edit needs out=PATH or in_place=True (one of them)")
    r = _ckpt.edit(_path(file), None if out is None else _path(out), in_place, list(overrides), _list(keep),
                   _list(drop), _list(rename), _list(states), dtype, _list(dtype_match), dry_run, allow_no_match,
                   allow_empty, force, compact, dialect)
    return EditResult(r)


def export(file: "str | os.PathLike[str]", out: "str | os.PathLike[str]", *, version: str = "",
           force: bool = False, dialect: str | None = None) -> ExportResult:
    """``ckpt export``: AudioCraft's export_lm / export_encodec (best state,
    xp.cfg as YAML, version, exported)."""
    return ExportResult(_ckpt.export(_path(file), _path(out), version, force, dialect))


def wrap(file: "str | os.PathLike[str]", out: "str | os.PathLike[str]", *, force: bool = False,
         dialect: str | None = None) -> WriteResult:
    """``ckpt wrap``: an exported checkpoint back into the training layout."""
    return WriteResult(_ckpt.wrap(_path(file), _path(out), force, dialect))


def rewrite(file: "str | os.PathLike[str]", out: "str | os.PathLike[str]", *, force: bool = False,
            dialect: str | None = None) -> WriteResult:
    """``ckpt rewrite``: load and save unchanged, as torch.save(torch.load(file))."""
    return WriteResult(_ckpt.rewrite(_path(file), _path(out), force, dialect))


def bundle(file: "str | os.PathLike[str]", dir: "str | os.PathLike[str]", *, compression: str = "",
           version: str = "", force: bool = False, dialect: str | None = None) -> BundleResult:
    """``ckpt bundle``: the folder ``MusicGen.get_pretrained(dir)`` loads
    (state_dict.bin and compression_state_dict.bin; ``compression``: a
    compression checkpoint or pretrained name, default the one xp.cfg names)."""
    return BundleResult(_ckpt.bundle(_path(file), _path(dir), compression, version, force, dialect))


def sanitize(file: "str | os.PathLike[str]", out: "str | os.PathLike[str]", *, force: bool = False,
             dialect: str | None = None) -> SanitizeResult:
    """``ckpt sanitize``: xp.cfg to YAML and defaultdicts to dicts, so that
    torch >= 2.6 loads the output with weights_only=True. When the file names
    other globals outside torch's list, ``refused`` lists them and nothing is written."""
    return SanitizeResult(_ckpt.sanitize(_path(file), _path(out), force, dialect))


def verify(file: "str | os.PathLike[str]") -> VerifyResult:
    """``ckpt verify``: CRCs, storage sizes, tensor views; ``ok`` and ``problems``."""
    return VerifyResult(_ckpt.verify(_path(file)))


def scan(file: "str | os.PathLike[str]") -> ScanResult:
    """``ckpt scan``: every global the file's pickles name, against the
    allowlist ckpt.load uses, without unpickling anything."""
    return ScanResult(_ckpt.scan(_path(file)))


def diff(a: "str | os.PathLike[str]", b: "str | os.PathLike[str]", *, state: str | None = None,
         atol: float = 0.0, rtol: float = 0.0) -> DiffResult:
    """``ckpt diff``: tensors by name (dtype, shape, values within
    ``|a-b| <= atol + rtol*|b|``), top-level keys, xp.cfg; ``equal``."""
    return DiffResult(_ckpt.diff(_path(a), _path(b), state, atol, rtol))


def stats(file: "str | os.PathLike[str]", *, state: str | None = None,
          match: "str | Iterable[str]" = ()) -> list[StatsRow]:
    """``ckpt stats``: per tensor numel, NaN, Inf, min, max, mean, std, L2 norm
    (float64 over finite values), streamed from the file."""
    return [StatsRow(r) for r in _ckpt.stats(_path(file), state, _list(match))]


def to_safetensors(file: "str | os.PathLike[str]", out: "str | os.PathLike[str]", *, state: str = "",
                   skip_unsupported: bool = False, max_shard_size: str = "",
                   force: bool = False) -> SafetensorsResult:
    """``ckpt safetensors``: a state dict (default: the best state) as a
    .safetensors file, or with max_shard_size ("5GB") Hugging Face shards and
    their index in the folder ``out``."""
    return SafetensorsResult(_ckpt.to_safetensors(_path(file), _path(out), state, skip_unsupported,
                                                  max_shard_size, force))


def from_safetensors(file: "str | os.PathLike[str]", out: "str | os.PathLike[str]", *,
                     into: "str | os.PathLike[str]" = "", state: str = "", force: bool = False,
                     dialect: str | None = None) -> SafetensorsResult:
    """``ckpt from-safetensors``: a .safetensors file (or a sharded model's
    index) as a torch.save checkpoint, or put into the template ``into``
    (its best state, or ``state``, replaced)."""
    return SafetensorsResult(_ckpt.from_safetensors(_path(file), _path(out), _path(into) if into else "",
                                                    state, force, dialect))


