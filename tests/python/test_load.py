"""ckpt.load against torch.load(weights_only=False) on every fixture: the same
objects (types, order, tensors bit for bit, storage and object sharing,
DictConfig content, flags and parents), without running pickled code."""

import os
import pickle
import sys

import pytest

from conftest import FIXTURE_ENTRIES, HAVE_OMEGACONF, REPO_ROOT, needs_omegaconf, needs_torch

import ckpt

GOOD = [pytest.param(e, id=e["name"]) for e in FIXTURE_ENTRIES if e["kind"] != "truncated"]


def _testlib():
    sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "e2e"))
    try:
        import ckpt_testlib
    finally:
        sys.path.pop(0)
    return ckpt_testlib


@needs_torch
@needs_omegaconf
@pytest.mark.parametrize("entry", GOOD)
def test_load_equals_torch_load(fixtures_dir, entry):
    import torch
    path = os.path.join(fixtures_dir, entry["file"])
    ours = ckpt.load(path)
    theirs = torch.load(path, weights_only=False)
    _testlib().assert_same_objects(ours, theirs)


@needs_torch
def test_shared_storage_is_one_untyped_storage(fixtures_dir):
    import torch
    path = os.path.join(fixtures_dir, "sharing.pt")
    ours = ckpt.load(path)
    theirs = torch.load(path, weights_only=False)

    def storages(obj):
        tensors = [v for v in obj.values() if isinstance(v, torch.Tensor)]
        return [t.untyped_storage().data_ptr() if hasattr(t, "untyped_storage")
                else t.storage().data_ptr() for t in tensors]

    ptrs_ours, ptrs_theirs = storages(ours), storages(theirs)
    assert len(set(ptrs_ours)) < len(ptrs_ours)  # the fixture shares storages
    # The same partition of tensors into storages.
    def partition(ptrs):
        return sorted(sorted(i for i, p in enumerate(ptrs) if p == q) for q in set(ptrs))
    assert partition(ptrs_ours) == partition(ptrs_theirs)


@needs_torch
def test_tensors_are_copy_on_write(tmp_path, fixtures_dir):
    import shutil
    path = tmp_path / "c.th"
    shutil.copy(os.path.join(fixtures_dir, "checkpoint.th"), path)
    before = path.read_bytes()
    state = ckpt.load(path, unsafe_globals="placeholder")["best_state"]["model"]
    for t in state.values():
        t.data.fill_(1) if t.is_floating_point() else None
    del state
    assert path.read_bytes() == before


def test_truncated_file_is_a_format_error(fixtures_dir):
    path = os.path.join(fixtures_dir, "truncated.th")
    with pytest.raises(ckpt.FormatError) as e:
        ckpt.load(path)
    assert "truncated.th" in str(e.value)


class NotAllowed:
    """Stands for a class a hostile file would name (os.system, ...)."""

    def __init__(self, x):
        self.x = x

    def __reduce__(self):
        return (NotAllowed, (self.x,))


def _unsafe_pickle(tmp_path):
    """A legacy-format torch file (as torch.save(..., _use_new_zipfile_serialization=False)
    writes one: magic, protocol, sys info, the object, storage keys) naming a
    class outside the allowlist; written without torch."""
    path = tmp_path / "unsafe.pt"
    with open(path, "wb") as f:
        for part in (0x1950A86A20F9469CFC6C, 1001,
                     {"protocol_version": 1001, "little_endian": True,
                      "type_sizes": {"short": 2, "int": 4, "long": 4}},
                     {"weights": [1, 2], "evil": NotAllowed(3)}, []):
            pickle.dump(part, f, protocol=2)
    return path


def test_unsafe_global_is_refused_and_named(tmp_path, monkeypatch):
    path = _unsafe_pickle(tmp_path)
    called = []
    monkeypatch.setattr(NotAllowed, "__init__", lambda self, x: called.append(x))
    with pytest.raises(ckpt.UnsafeGlobalError) as e:
        ckpt.load(path)
    assert e.value.globals == ["test_load.NotAllowed"]
    assert "test_load.NotAllowed" in str(e.value)
    assert "allowed_globals=['test_load.NotAllowed']" in str(e.value)  # the way to proceed
    assert isinstance(e.value, ckpt.Error)
    assert called == []


def test_unsafe_global_as_placeholder(tmp_path, monkeypatch):
    path = _unsafe_pickle(tmp_path)
    called = []
    monkeypatch.setattr(NotAllowed, "__init__", lambda self, x: called.append(x))
    obj = ckpt.load(path, unsafe_globals="placeholder")
    assert obj["weights"] == [1, 2]
    evil = obj["evil"]
    assert isinstance(evil, ckpt.Placeholder)
    assert evil.name == "test_load.NotAllowed" and evil.args == (3,)
    assert called == []


def test_bad_option_is_a_usage_error(fixtures_dir):
    with pytest.raises(ckpt.UsageError):
        ckpt.load(os.path.join(fixtures_dir, "dtypes.pt"), unsafe_globals="run")


def test_without_torch_tensors_are_numpy(fixtures_dir):
    import numpy as np
    obj = ckpt.load(os.path.join(fixtures_dir, "sharing.pt"), framework="numpy")
    arrays = [v for v in obj.values() if isinstance(v, np.ndarray)]
    assert arrays
    with ckpt.open(os.path.join(fixtures_dir, "sharing.pt")) as c:
        for name in c.keys("/"):
            assert np.array_equal(obj[name], c.get_tensor(name, state="/"), equal_nan=True)


def _same_special_tensor(x, y, where):
    """Sparse, nested and jagged tensors have no storage to compare: their
    dense values (or components) bit for bit, layout and type."""
    import torch
    testlib = _testlib()
    assert type(x) is type(y), where
    assert x.layout == y.layout and x.dtype == y.dtype and x.device == y.device, where
    if x.is_meta:
        assert y.is_meta and x.shape == y.shape and x.stride() == y.stride(), where
    elif x.is_nested:
        xs, ys = x.unbind(), y.unbind()
        assert len(xs) == len(ys), where
        for i, (a, b) in enumerate(zip(xs, ys)):
            assert torch.equal(a.contiguous().view(torch.uint8), b.contiguous().view(torch.uint8)), f"{where}[{i}]"
    elif x.layout != torch.strided:  # sparse
        testlib.assert_same_objects(x.to_dense(), y.to_dense(), where)
    else:
        testlib.assert_same_objects(x, y, where)


@needs_torch
def test_load_tensor_kinds_equal_torch_load(tmp_path):
    """Every tensor kind torch pickles specially (tests/fixtures/tensor_kinds.py)."""
    import subprocess
    import torch
    fixtures = os.path.join(REPO_ROOT, "tests", "fixtures")
    path = tmp_path / "kinds.pt"
    subprocess.run([sys.executable, os.path.join(fixtures, "tensor_kinds.py"), str(path)], check=True,
                   cwd=fixtures, capture_output=True)
    sys.path.insert(0, fixtures)
    try:
        import tensor_kinds  # noqa: F401  (the subclass torch.load imports)
        theirs = torch.load(path, weights_only=False)
    finally:
        sys.path.pop(0)
    # torch 1.13 pickles CSR tensors with a function torch 2.x's allowlist (ckpt's) no longer has.
    ours = ckpt.load(path, allowed_globals=["tensor_kinds.Marked", "torch._utils._rebuild_sparse_csr_tensor"])
    assert list(ours) == list(theirs)
    special = [k for k, t in theirs.items() if t.layout != torch.strided or t.is_nested or t.is_meta]
    assert special  # sparse and nested kinds are there to check
    for key in theirs:
        _same_special_tensor(ours[key], theirs[key], key)
    plain = [k for k in theirs if k not in special]
    _testlib().assert_same_objects({k: ours[k] for k in plain}, {k: theirs[k] for k in plain})


@pytest.mark.skipif(HAVE_OMEGACONF, reason="omegaconf is installed")
def test_without_omegaconf_the_dictconfig_is_named():
    from conftest import EXAMPLE
    with pytest.raises(ckpt.UsageError, match="omegaconf.dictconfig.DictConfig cannot be imported"):
        ckpt.load(EXAMPLE, framework="numpy")
    obj = ckpt.load(EXAMPLE, framework="numpy", unsafe_globals="placeholder")
    assert isinstance(obj["xp.cfg"], ckpt.Placeholder)
    assert obj["best_state"]["model"]["emb.0.weight"].shape == (33, 16)


@needs_torch
def test_hostile_files_raise_or_load_inertly(tmp_path):
    """Issue 14's hostile corpus (tests/fixtures/make_hostile.py): ckpt.load raises a
    ckpt.Error or loads, in both modes, and no payload ever runs (no marker file)."""
    import json
    import subprocess
    out = tmp_path / "hostile"
    subprocess.run([sys.executable, os.path.join(REPO_ROOT, "tests", "fixtures", "make_hostile.py"), str(out)],
                   check=True, capture_output=True)
    fixtures = json.loads((out / "hostile.json").read_text())["fixtures"]
    refused = []
    for entry in fixtures:
        for mode in ("error", "placeholder"):
            try:
                ckpt.load(out / entry["file"], unsafe_globals=mode)
            except ckpt.UnsafeGlobalError as e:
                refused.append(entry["file"])
                assert mode == "error" and e.globals, entry
            except ckpt.Error:
                pass
    assert refused  # the corpus names os.system in several files
    assert not [name for name in os.listdir(out) if name.startswith("marker")]


def test_impossible_objects_are_a_format_error(tmp_path):
    """A pickle that sets an item on a set (allowlisted, but no __setitem__):
    ckpt.Error, not a TypeError."""
    path = tmp_path / "set_item_on_set.pt"
    # set() then SETITEM 1 -> 2: GLOBAL builtins.set, EMPTY_TUPLE, REDUCE, 1, 2, SETITEM, STOP.
    body = b"\x80\x02c__builtin__\nset\n)RK\x01K\x02s."
    with open(path, "wb") as f:
        for part in (0x1950A86A20F9469CFC6C, 1001,
                     {"protocol_version": 1001, "little_endian": True,
                      "type_sizes": {"short": 2, "int": 4, "long": 4}}):
            pickle.dump(part, f, protocol=2)
        f.write(body)
        pickle.dump([], f, protocol=2)
    with pytest.raises(ckpt.FormatError, match="cannot be rebuilt: TypeError"):
        ckpt.load(path)
