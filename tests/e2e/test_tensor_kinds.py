"""Every tensor kind torch pickles specially, checked against the running torch.

The fixture (tests/fixtures/tensor_kinds.py) holds what the running torch can
save: float8 kinds, uint16/32/64, complex32 and bits types (torch 2.x, on
untyped storages), a Parameter with state, a Tensor subclass, quantized
tensors (per tensor, per channel), sparse COO and CSR, conj and neg bits,
a meta tensor and a nested tensor. Each command lists, converts or refuses
each one by name, and `rewrite` gives torch back the same tensors.
"""

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from conftest import run_ckpt
from ckpt_testlib import _storage_bytes
from test_foundation import assert_usage_error, ok

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")
sys.path.insert(0, FIXTURES)
import tensor_kinds  # noqa: E402  (the subclass must be importable to load the fixture)


def make(path, variant="a"):
    subprocess.run([sys.executable, os.path.join(FIXTURES, "tensor_kinds.py"), str(path), variant], check=True,
                   capture_output=True, stdin=subprocess.DEVNULL)
    return path


@pytest.fixture(scope="module")
def kinds(tmp_path_factory):
    d = tmp_path_factory.mktemp("kinds")
    a = make(d / "kinds.pt")
    return a, torch.load(a)


@pytest.fixture(scope="module")
def kinds_b(tmp_path_factory):
    d = tmp_path_factory.mktemp("kinds_b")
    return make(d / "kinds_b.pt", "b")


def dtype_name(dtype):
    return str(dtype).replace("torch.", "")


def raw_bytes(t):
    """A dense tensor's elements, row-major, as bytes (any dtype)."""
    t = t.contiguous()
    return t.view(torch.uint8).numpy().tobytes() if t.numel() else b""


def same_tensor(x, y, where):
    """Bit-for-bit equality as torch sees it: dtype, layout, shape, flags, qparams, components."""
    assert type(x) is type(y), f"{where}: {type(x)} != {type(y)}"
    assert x.is_nested == y.is_nested, f"{where}: nested"
    for attr in ("dtype", "layout", "device", "requires_grad", "is_quantized") + (() if x.is_nested else ("shape",)):
        assert getattr(x, attr) == getattr(y, attr), f"{where}: {attr}"
    assert x.is_conj() == y.is_conj() and x.is_neg() == y.is_neg(), f"{where}: conj/neg bits"
    if not x.is_nested:  # a jagged tensor's __dict__ holds its components, compared below
        assert x.__dict__ == y.__dict__, f"{where}: Python state"
    if x.is_meta:
        assert x.stride() == y.stride()
        return
    if x.is_nested:
        for i, (a, b) in enumerate(zip(x.unbind(), y.unbind())):
            assert raw_bytes(a) == raw_bytes(b), f"{where}[{i}]"
        return
    if x.layout == torch.sparse_coo:
        assert x.is_coalesced() == y.is_coalesced()
        same_tensor(x._indices(), y._indices(), where + " indices")
        same_tensor(x._values(), y._values(), where + " values")
        return
    if x.layout == torch.sparse_csr:
        for f in ("crow_indices", "col_indices", "values"):
            same_tensor(getattr(x, f)(), getattr(y, f)(), f"{where} {f}")
        return
    if x.is_quantized:
        assert x.qscheme() == y.qscheme()
        if x.qscheme() == torch.per_tensor_affine:
            assert x.q_scale() == y.q_scale() and x.q_zero_point() == y.q_zero_point()
        else:
            assert x.q_per_channel_axis() == y.q_per_channel_axis()
            assert raw_bytes(x.q_per_channel_scales()) == raw_bytes(y.q_per_channel_scales())
            assert raw_bytes(x.q_per_channel_zero_points()) == raw_bytes(y.q_per_channel_zero_points())
        assert raw_bytes(x.int_repr()) == raw_bytes(y.int_repr()), f"{where}: int_repr"
        return
    assert x.stride() == y.stride() and x.storage_offset() == y.storage_offset(), f"{where}: view"
    assert _storage_bytes(x)[1] == _storage_bytes(y)[1], f"{where}: storage bytes"


def dense_values(t):
    """What stats summarizes: the tensor's values as torch shows them, float64."""
    if t.is_nested:
        return torch.cat([c.reshape(-1) for c in t.unbind()]).double()
    if t.is_quantized:
        return t.dequantize().double().reshape(-1)
    if t.layout != torch.strided:
        return t.to_dense().double().reshape(-1)
    return t.resolve_neg().double().reshape(-1)


def has_stats(t):
    if t.is_meta or t.is_complex() or (not t.is_quantized and t.dtype in _NO_VALUES):
        return False
    return True


_NO_VALUES = {getattr(torch, n) for n in ("bits8", "bits16", "float4_e2m1fn_x2", "complex32") if hasattr(torch, n)}


def test_tensors_lists_every_kind_as_torch_has_it(kinds, ckpt):
    path, objs = kinds
    rows = {r["name"]: r for r in json.loads(ok(run_ckpt("tensors", path, "--state", "", "--json")))}
    assert list(rows) == list(objs)
    for name, t in objs.items():
        r = rows[name]
        assert r["dtype"] == dtype_name(t.dtype), name
        assert r["parameter"] == isinstance(t, torch.nn.Parameter), name
        if t.is_nested:
            assert r["layout"] == ("jagged" if t.layout == getattr(torch, "jagged", None) else "nested"), name
            assert r["numel"] == sum(c.numel() for c in t.unbind()) and r["shape"] == [len(t.unbind())], name
            continue
        assert r["shape"] == list(t.shape), name
        assert r["layout"] == str(t.layout).replace("torch.", ""), name
        assert r.get("device") == ("meta" if t.is_meta else None), name
        assert r.get("conj", False) == t.is_conj() and r.get("neg", False) == t.is_neg(), name
        if t.layout != torch.strided:
            assert r["nnz"] == t._nnz(), name
        if type(t) not in (torch.Tensor, torch.nn.Parameter):
            assert r["subclass"] == f"{type(t).__module__}.{type(t).__name__}"
        if t.is_quantized:
            assert r["qscheme"] == str(t.qscheme()).replace("torch.", "")
            if t.qscheme() == torch.per_tensor_affine:
                assert r["scale"] == t.q_scale() and r["zero_point"] == t.q_zero_point()
            else:
                assert r["axis"] == t.q_per_channel_axis()
    if hasattr(objs["param_state"], "note"):
        assert rows["param_state"].get("has_state") is True
    text = ok(run_ckpt("tensors", path, "--state", ""))
    assert "quantized per_tensor_affine (scale 0.1, zero_point 3)" in text
    assert "sparse_coo, nnz %d" % objs["coo"]._nnz() in text
    ls = ok(run_ckpt("ls", path))
    assert "meta" in ls and "sparse_csr" in ls and "conj" in ls


def test_stats_match_torch_values(kinds, ckpt):
    path, objs = kinds
    rows = {r["name"]: r for r in json.loads(ok(run_ckpt("stats", path, "--state", "", "--json")))}
    assert list(rows) == list(objs)
    for name, t in objs.items():
        r = rows[name]
        if not has_stats(t):
            assert r["mean"] is None and r["note"], name  # said why, not skipped
            continue
        v = dense_values(t)
        finite = v[torch.isfinite(v)]
        assert r["numel"] == v.numel(), name
        assert r["nan"] == int(torch.isnan(v).sum()), name
        assert r["min"] == float(finite.min()) and r["max"] == float(finite.max()), name
        assert math.isclose(r["mean"], float(finite.mean()), rel_tol=1e-12, abs_tol=1e-12), name
        assert math.isclose(r["std"], float(finite.std()), rel_tol=1e-9, abs_tol=1e-12), name
        assert math.isclose(r["norm"], float(finite.norm()), rel_tol=1e-12), name


def differs(x, y):
    try:
        same_tensor(x, y, "")
        return False
    except AssertionError:
        return True


def test_diff_finds_every_changed_special_tensor(kinds, kinds_b, ckpt):
    path, objs = kinds
    same = run_ckpt("diff", path, path, "--state", "")
    assert same.returncode == 0 and "no differences" in same.stdout
    r = run_ckpt("diff", path, kinds_b, "--state", "", "--json")
    assert r.returncode == 1, r.stderr
    j = json.loads(r.stdout)
    reported = {c["name"] for c in j["tensors"]["changed"]} | {v["name"] for v in j["tensors"]["values"]}
    # Variant b changes a scale, int values, per-channel scales, sparse
    # values, the conj bit (torch 1.13 saves it resolved), a meta shape:
    # ckpt reports exactly the tensors torch loads differently.
    objs_b = torch.load(kinds_b)
    expected = {n for n in objs if differs(objs[n], objs_b[n])}
    assert {"qt", "qt_int", "qc", "coo", "csr", "meta", "shared_qt"} <= expected
    assert reported == expected, j["tensors"]
    parts = {(v["name"], v.get("part")) for v in j["tensors"]["values"]}
    assert ("qc", "scales") in parts and ("coo", "values") in parts
    text = run_ckpt("diff", path, kinds_b, "--state", "").stdout
    assert "scale 0.1, zero_point 3) -> quantized per_tensor_affine (scale 0.2" in text
    assert "different" in text


def test_rewrite_gives_torch_the_same_tensors(kinds, ckpt, tmp_path):
    path, objs = kinds
    out = tmp_path / "rewritten.pt"
    ok(run_ckpt("rewrite", path, "-o", out))
    back = torch.load(out)
    assert list(back) == list(objs)
    for name in objs:
        same_tensor(objs[name], back[name], name)
    assert back["shared_qt"] is back["qt"]  # sharing kept
    if hasattr(torch, "float8_e4m3fn"):
        assert _storage_bytes(back["view_f8"])[0].data_ptr() == _storage_bytes(back["float8_e4m3fn"])[0].data_ptr()
    # The pickle is torch's own for the same objects.
    ref = tmp_path / "resaved.pt"
    torch.save(torch.load(path), ref)
    import zipfile
    with zipfile.ZipFile(out) as zo, zipfile.ZipFile(ref) as zr:
        assert zo.read("rewritten/data.pkl") == zr.read("resaved/data.pkl")


def test_verify_checks_every_kind(kinds, ckpt):
    path, objs = kinds
    j = json.loads(ok(run_ckpt("verify", path, "--json")))
    assert j["ok"] and j["tensors"] >= len(objs) - 1  # shared_qt is one tensor


def test_safetensors_refuses_by_name_or_skips_listing(kinds, ckpt, tmp_path):
    path, objs = kinds
    out = tmp_path / "out.safetensors"
    unsupported = [n for n, t in objs.items()
                   if t.is_quantized or t.is_meta or t.is_nested or t.layout != torch.strided or t.is_conj()
                   or t.is_neg() or t.dtype in _NO_VALUES or dtype_name(t.dtype) == "float8_e8m0fnu"]
    r = run_ckpt("safetensors", path, "--state", "", "-o", out)
    assert_usage_error(r)
    assert f"tensor '{unsupported[0]}'" in r.stderr and f"and {len(unsupported) - 1} more" in r.stderr
    assert not out.exists()
    r = run_ckpt("safetensors", path, "--state", "", "-o", out, "--skip-unsupported")
    ok(r)
    for name in unsupported:
        assert f"skipped tensor '{name}'" in r.stderr, name
    try:  # the safetensors package (torch 2.x venv), else the tests' own reader
        from safetensors.torch import load_file
        tensors = load_file(str(out))
    except ImportError:
        from test_safetensors import read_safetensors
        _, tensors, _ = read_safetensors(out)
    assert sorted(tensors) == sorted(n for n in objs if n not in unsupported)
    for name, t in tensors.items():
        assert t.dtype == objs[name].dtype and raw_bytes(t) == raw_bytes(objs[name].as_subclass(torch.Tensor)), name


def test_edit_dtype_names_what_it_leaves(kinds, ckpt, tmp_path):
    path, objs = kinds
    out = tmp_path / "half.pt"
    r = run_ckpt("edit", path, "--dtype", "float16", "-o", out)
    ok(r)
    for name in ("coo", "csr", "meta"):
        assert f"'{name}'" in r.stderr, r.stderr
    back = torch.load(out)
    assert back["plain"].dtype == torch.float16 and back["neg"].dtype == torch.float16
    assert back["neg"].is_neg() == objs["neg"].is_neg()
    assert torch.equal(back["neg"].float(), objs["neg"].half().float())
    same_tensor(objs["coo"], back["coo"], "coo")
    same_tensor(objs["qc"], back["qc"], "qc")


def test_stats_of_uncoalesced_sparse(ckpt, tmp_path):
    """Duplicate indices add up in torch: stats say so rather than guess; without duplicates they are exact."""
    dup = torch.sparse_coo_tensor(torch.tensor([[0, 0, 1]]), torch.tensor([1.0, 2.0, 5.0]), (3,))
    unique = torch.sparse_coo_tensor(torch.tensor([[2, 0]]), torch.tensor([4.0, -1.0]), (3,))
    path = tmp_path / "uncoalesced.pt"
    torch.save({"dup": dup, "unique": unique}, path)
    rows = {r["name"]: r for r in json.loads(ok(run_ckpt("stats", path, "--state", "", "--json")))}
    assert rows["dup"]["mean"] is None and "coalesce" in rows["dup"]["note"]
    assert rows["unique"]["min"] == -1.0 and rows["unique"]["max"] == 4.0
    assert math.isclose(rows["unique"]["mean"], 1.0)
    r = run_ckpt("diff", path, path, "--state", "")
    assert r.returncode == 0, r.stdout


@pytest.mark.skipif(not hasattr(torch, "float8_e4m3fn"), reason="the scanner models torch 2.x's weights_only")
def test_scan_agrees_with_weights_only(kinds, ckpt, tmp_path):
    """Every kind but the user's subclass loads with weights_only=True in torch 2.x: scan calls the file safe."""
    path, objs = kinds
    plain = tmp_path / "no_subclass.pt"
    torch.save({k: v for k, v in objs.items() if k != "subclass"}, plain)
    torch.load(plain, weights_only=True)
    r = run_ckpt("scan", plain)
    assert r.returncode == 0, r.stdout + r.stderr
    r = run_ckpt("scan", path)
    assert r.returncode == 1 and "tensor_kinds.Marked" in r.stdout
    with pytest.raises(Exception):
        torch.load(path, weights_only=True)
