"""ckpt.load on hostile graphs (issue 19, class 2 and 4): no OmegaConf
resolver runs (oc.env or a registered one), sparse tensors are validated as
torch.load validates them and torch's global queue is left empty, and the
work a small file can ask for is bounded, with an error naming the limit."""

import os
import pickle
import time

import pytest

from conftest import needs_omegaconf, needs_torch

import ckpt

LEGACY_HEADER = (0x1950A86A20F9469CFC6C, 1001,
                 {"protocol_version": 1001, "little_endian": True,
                  "type_sizes": {"short": 2, "int": 4, "long": 4}})


def _legacy_file(path, body: bytes, keys=()):
    """A legacy-format torch file whose object pickle is `body`."""
    with open(path, "wb") as f:
        for part in LEGACY_HEADER:
            pickle.dump(part, f, protocol=2)
        f.write(body)
        pickle.dump(list(keys), f, protocol=2)
    return path


@pytest.fixture
def resolver_calls(monkeypatch):
    """Counts calls of a registered resolver `ckpt_side` and of `oc.env`
    (replaced by a counting one); OmegaConf's resolvers are restored after."""
    from omegaconf import OmegaConf
    from omegaconf.basecontainer import BaseContainer
    saved = dict(BaseContainer._resolvers)
    calls = []
    OmegaConf.register_new_resolver("ckpt_side", lambda *a: calls.append(("ckpt_side", a)) or "side", replace=True)
    OmegaConf.register_new_resolver("oc.env", lambda *a: calls.append(("oc.env", a)) or "env", replace=True)
    monkeypatch.setenv("CKPT_TEST_SECRET", "secret")
    # The counters count: resolving by hand runs them.
    assert OmegaConf.create({"x": "${ckpt_side:0}", "y": "${oc.env:CKPT_TEST_SECRET}"}).x == "side"
    assert OmegaConf.create({"y": "${oc.env:CKPT_TEST_SECRET}"}).y == "env"
    calls.clear()
    yield calls
    BaseContainer._resolvers.clear()
    BaseContainer._resolvers.update(saved)


INTERPOLATED = {"extend": "${ckpt_side:1}", "append": "${oc.env:CKPT_TEST_SECRET}",
                "a": "${ckpt_side:2}", "b": "${oc.env:CKPT_TEST_SECRET}", "c": {"d": "${a}"}}


@needs_torch
@needs_omegaconf
def test_dictconfig_with_interpolations_loads_unresolved(tmp_path, resolver_calls):
    """A DictConfig whose values are interpolations loads as torch.load's
    object (content, flags, parents) and no resolver runs."""
    import sys

    import torch
    from omegaconf import OmegaConf
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
    import ckpt_testlib
    sys.path.pop(0)
    cfg = OmegaConf.create(INTERPOLATED)
    OmegaConf.set_struct(cfg, True)
    path = tmp_path / "cfg.th"
    torch.save({"cfg": cfg, "w": torch.ones(2)}, path)
    ours = ckpt.load(path)
    assert resolver_calls == []
    theirs = torch.load(path, weights_only=False)
    assert resolver_calls == []
    ckpt_testlib.assert_same_objects(ours, theirs)
    assert resolver_calls == []


class _AppendToDictConfig:
    """Pickles as DictConfig(INTERPOLATED) followed by APPENDS: CPython's
    load_appends looks up `extend` on the instance, a DictConfig key lookup
    that resolves `${ckpt_side:1}`."""

    def __reduce__(self):
        from omegaconf import DictConfig
        return (DictConfig, (INTERPOLATED,), None, iter([1, 2]))


class _SetItemsOnDictConfig:
    def __reduce__(self):
        from omegaconf import DictConfig
        return (DictConfig, (INTERPOLATED,), None, None, iter([("e", "${ckpt_side:3}")]))


@needs_torch
@needs_omegaconf
@pytest.mark.parametrize("maker", [_AppendToDictConfig, _SetItemsOnDictConfig])
def test_no_resolver_runs_on_appends_to_a_dictconfig(tmp_path, resolver_calls, maker):
    path = _legacy_file(tmp_path / "append.pt", pickle.dumps({"cfg": maker()}, protocol=2))
    try:
        obj = ckpt.load(path)
    except ckpt.FormatError as e:
        assert "DictConfig" in str(e)
    else:
        assert obj["cfg"]._get_node("e") is not None
    assert resolver_calls == []


def _sparse_file(path, index):
    import torch
    indices = torch.tensor([[0, index]])
    values = torch.tensor([1.0, 2.0])
    try:
        t = torch.sparse_coo_tensor(indices, values, (3,), check_invariants=False)
    except TypeError:  # torch 1.x
        t = torch._sparse_coo_tensor_unsafe(indices, values, (3,))
    torch.save({"s": t}, path)
    return path


@needs_torch
def test_sparse_tensor_out_of_range_index_is_refused(tmp_path):
    import torch
    path = _sparse_file(tmp_path / "bad_sparse.th", 7)
    with pytest.raises(ckpt.FormatError, match="sparse"):
        ckpt.load(path)
    assert torch._utils._sparse_tensors_to_validate == []
    good = _sparse_file(tmp_path / "good_sparse.th", 2)
    s = ckpt.load(good)["s"]
    assert torch.equal(s.to_dense(), torch.tensor([1.0, 0.0, 2.0]))
    assert torch._utils._sparse_tensors_to_validate == []
    # torch.load refuses it too once invariant checks are on.
    check = getattr(torch.sparse, "check_sparse_tensor_invariants", None)
    if check is not None:
        with check(enable=True), pytest.raises(RuntimeError):
            torch.load(path, weights_only=False)
    else:
        with pytest.raises(RuntimeError):
            torch.load(path, weights_only=False)
    torch._utils._sparse_tensors_to_validate.clear()


def _tuple_dag_pickle(depth):
    """t_0 = (); t_i = (t_{i-1}, t_{i-1}); {t_depth: 1}: hashing the key
    visits 2^depth tuples."""
    body = b"\x80\x02)q\x00"
    for i in range(1, depth + 1):
        body += b"h" + bytes([i - 1]) + b"h" + bytes([i - 1]) + b"\x86q" + bytes([i])
    body += b"}h" + bytes([depth]) + b"K\x01s."
    return body


def test_tuple_dag_hashing_is_bounded(tmp_path):
    path = _legacy_file(tmp_path / "dag.pt", _tuple_dag_pickle(64))
    start = time.monotonic()
    with pytest.raises(ckpt.FormatError, match="1,000,000"):
        ckpt.load(path)
    assert time.monotonic() - start < 10
    small = _legacy_file(tmp_path / "dag_small.pt", _tuple_dag_pickle(8))
    obj = ckpt.load(small)
    assert list(obj.values()) == [1]


def test_huge_bytearray_is_refused(tmp_path):
    # bytearray(1 << 30) from a file of a few bytes.
    body = b"\x80\x02c__builtin__\nbytearray\nJ\x00\x00\x00@\x85R."
    path = _legacy_file(tmp_path / "bytearray.pt", body)
    start = time.monotonic()
    with pytest.raises(ckpt.FormatError, match="268,435,456"):
        ckpt.load(path)
    assert time.monotonic() - start < 10
    ok = _legacy_file(tmp_path / "bytearray_ok.pt", b"\x80\x02c__builtin__\nbytearray\nK\x04\x85R.")
    assert ckpt.load(ok) == bytearray(4)
