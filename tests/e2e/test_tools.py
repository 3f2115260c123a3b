"""End-to-end tests of `ckpt diff`, `ckpt stats` and `ckpt edit --dtype` against real torch 1.13.

Fixtures are made in-test with torch.save; expectations come from torch itself
(torch.std, .to(), torch.load) and from Python's difflib / OmegaConf.to_yaml.
"""

import difflib
import json
import math
import struct

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from conftest import run_ckpt


def ok(result, code=0):
    assert result.returncode == code, \
        f"exit {result.returncode}\nstdout: {result.stdout[-3000:]}\nstderr: {result.stderr[-3000:]}"
    return result.stdout


def f32_from_bits(bits):
    return torch.from_numpy(np.array(bits, dtype=np.uint32).view(np.int32).copy()).view(torch.float32)


def every_float32_class():
    """±0, ±Inf, NaN payloads, subnormals, ties for bfloat16 and float16, random normals."""
    bits = [0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7F800001,
            0x7FA00001, 0xFFC12345, 0x7FFFFFFF, 0x00000001, 0x807FFFFF, 0x00400000, 0x00800000,
            0x7F7FFFFF, 0x3F808000, 0x3F818000, 0x3F808001, 0x477FF000, 0x477FEFFF, 0x33000000,
            0x33000001, 0x387FF000, 0x38801000, 0x3F801000, 0x3F803000]
    rng = np.random.default_rng(5)
    bits += [int(x) for x in rng.integers(0, 2**32, 3000, dtype=np.uint64)]
    return f32_from_bits(bits)


@pytest.fixture(scope="module")
def values_ckpt(tmp_path_factory):
    d = tmp_path_factory.mktemp("tools")
    g = torch.Generator().manual_seed(3)
    base = torch.randn(6, 8, generator=g)
    sd = {
        "f32_classes": every_float32_class(),
        "f64": torch.randn(50, generator=g, dtype=torch.float64) * 1e3,
        "f64_specials": torch.tensor([0.0, -0.0, math.inf, -math.inf, 1e-310, 1e39, 65519.99, 1 + 2**-11 + 2**-40],
                                     dtype=torch.float64),
        "f16": torch.randn(40, generator=g).half(),
        "bf16": torch.randn(40, generator=g).bfloat16(),
        "base": base,
        "view": base[2:4],                # shares base's storage
        "transposed": base.t(),           # non-contiguous view of the same storage
        "ints": torch.arange(-5, 7, dtype=torch.int64),
        "mask": torch.tensor([True, False, True]),
        "with_nan": torch.tensor([1.0, float("nan"), 3.0, float("inf"), -2.0, float("-inf")]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0),
    }
    path = d / "values.pt"
    torch.save(sd, path)
    return path


def finite_stats(t):
    x = t.double().flatten()
    fin = x[torch.isfinite(x)]
    n = fin.numel()
    return {
        "numel": t.numel(),
        "nan": int(torch.isnan(x).sum()),
        "inf": int(torch.isinf(x).sum()),
        "min": float(fin.min()) if n else None,
        "max": float(fin.max()) if n else None,
        "mean": float(fin.mean()) if n else None,
        "std": float(fin.std()) if n > 1 else None,               # torch default: unbiased
        "std_population": float(fin.std(unbiased=False)) if n else None,
        "norm": float(fin.norm()) if n else 0.0,
    }


def test_stats_match_torch(values_ckpt):
    rows = json.loads(ok(run_ckpt("stats", values_ckpt, "--json")))
    sd = torch.load(values_ckpt)
    assert [r["name"] for r in rows] == list(sd)
    for r in rows:
        want = finite_stats(sd[r["name"]])
        assert r["dtype"] == str(sd[r["name"]].dtype).replace("torch.", "")
        assert r["shape"] == list(sd[r["name"]].shape)
        for key, value in want.items():
            if value is None:
                assert r[key] is None, (r["name"], key, r[key])
            elif isinstance(value, int):
                assert r[key] == value, (r["name"], key)
            else:
                assert r[key] == pytest.approx(value, rel=1e-9, abs=1e-12), (r["name"], key, r[key], value)


def test_stats_check_finite_and_match(values_ckpt):
    res = run_ckpt("stats", values_ckpt, "--check-finite")
    ok(res, 1)
    assert "with_nan" in res.stderr and "f32_classes" in res.stderr
    out = ok(run_ckpt("stats", values_ckpt, "--check-finite", "--match", "f16", "--match", "b*", "--json"))
    assert [r["name"] for r in json.loads(out)] == ["f16", "bf16", "base"]


DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def bits_of(t):
    view = {torch.float16: torch.int16, torch.bfloat16: torch.int16, torch.float32: torch.int32,
            torch.float64: torch.int64}[t.dtype]
    return t.contiguous().view(view)


@pytest.mark.parametrize("target", list(DTYPES))
def test_dtype_conversion_bit_for_bit(values_ckpt, tmp_path, target):
    out = tmp_path / f"to_{target}.pt"
    res = run_ckpt("edit", values_ckpt, "-o", out, "--dtype", target)
    ok(res)
    src, got = torch.load(values_ckpt), torch.load(out)
    assert list(got) == list(src)
    for name, t in src.items():
        g = got[name]
        if not t.is_floating_point():
            assert torch.equal(g, t), name
            continue
        want = t.to(DTYPES[target])
        assert g.dtype == want.dtype and g.shape == want.shape and g.stride() == t.stride(), name
        # torch's own NaN bits depend on the element's position for float64 ->
        # bfloat16; for -> float16, torch 2.x keeps NaN payloads (the CPU's
        # conversion) where 1.13 writes sign | 0x7E00, as ckpt does.
        nan_bits_vary = (t.dtype == torch.float64 and target == "bfloat16") or (
            target == "float16" and not torch.__version__.startswith("1."))
        if nan_bits_vary:
            nan = torch.isnan(want)
            assert torch.equal(torch.isnan(g), nan), name
            assert torch.equal(bits_of(g)[~nan], bits_of(want)[~nan]), name
        else:
            assert torch.equal(bits_of(g), bits_of(want)), name
    # Views still share one storage.
    assert got["view"].storage().data_ptr() == got["base"].storage().data_ptr()
    assert got["transposed"].storage().data_ptr() == got["base"].storage().data_ptr()


def test_dtype_match_converts_a_shared_storage_once(values_ckpt, tmp_path):
    out = tmp_path / "match.pt"
    res = run_ckpt("edit", values_ckpt, "-o", out, "--dtype", "float16", "--match", "view", "--match", "f32_*")
    ok(res)
    assert "share a converted storage" in res.stderr
    got = torch.load(out)
    assert got["f32_classes"].dtype == torch.float16 and got["f64"].dtype == torch.float64
    assert got["base"].dtype == torch.float16  # same storage as "view"
    assert got["view"].storage().data_ptr() == got["base"].storage().data_ptr()
    bad = run_ckpt("edit", values_ckpt, "-o", tmp_path / "x.pt", "--dtype", "int8")
    ok(bad, 2)
    assert "ckpt: error: --dtype 'int8'" in bad.stderr


def test_diff_equal_and_value_changes(values_ckpt, tmp_path):
    same = tmp_path / "same.pt"
    ok(run_ckpt("rewrite", values_ckpt, "-o", same))
    res = run_ckpt("diff", values_ckpt, same, "--json")
    assert json.loads(ok(res, 0))["equal"] is True

    sd = torch.load(values_ckpt)
    sd["f16"][3] += 0.5
    sd["f16"][7] = float("nan")
    sd["ints"] = sd["ints"].reshape(3, 4)
    del sd["mask"]
    sd["new"] = torch.ones(2)
    changed = tmp_path / "changed.pt"
    torch.save(sd, changed)
    j = json.loads(ok(run_ckpt("diff", values_ckpt, changed, "--json"), 1))
    t = j["tensors"]
    assert t["only_in_a"] == ["mask"] and t["only_in_b"] == ["new"]
    assert [c["name"] for c in t["changed"]] == ["ints"]
    assert t["changed"][0]["shape_b"] == [3, 4]
    (v,) = t["values"]
    orig = torch.load(values_ckpt)["f16"]
    assert v["name"] == "f16" and v["differing"] == 2 and v["nonfinite_differing"] == 1
    assert v["max_abs_diff"] == pytest.approx(abs(float(sd["f16"][3]) - float(orig[3])))


def test_diff_after_dtype_conversion_reports_rounding(values_ckpt, tmp_path):
    out = tmp_path / "bf.pt"
    ok(run_ckpt("edit", values_ckpt, "-o", out, "--dtype", "bfloat16", "--match", "base"))
    j = json.loads(ok(run_ckpt("diff", values_ckpt, out, "--json"), 1))
    names = {c["name"] for c in j["tensors"]["changed"]}
    assert names == {"base", "view", "transposed"}
    vals = {v["name"]: v for v in j["tensors"]["values"]}
    a, b = torch.load(values_ckpt)["base"], torch.load(out)["base"]
    assert vals["base"]["max_abs_diff"] == pytest.approx(float((a.double() - b.double()).abs().max()), rel=1e-12)


def test_diff_on_edited_audiocraft_pair(fixture_path, tmp_path):
    src = fixture_path("training")
    edited = tmp_path / "edited.th"
    ok(run_ckpt("edit", src, "-o", edited, "optim.lr=0.5", "+extra.flag=true", "--drop", "*.bias"))
    res = run_ckpt("diff", src, edited)
    text = ok(res, 1)
    j = json.loads(ok(run_ckpt("diff", src, edited, "--json"), 1))
    a, b = torch.load(src), torch.load(edited)
    dropped = [k for k in a["best_state"]["model"] if k not in b["best_state"]["model"]]
    assert dropped and j["tensors"]["only_in_a"] == dropped
    assert j["tensors"]["values"] == [] and j["tensors"]["changed"] == []
    want = "".join(line + "\n" for line in difflib.unified_diff(
        OmegaConf.to_yaml(a["xp.cfg"]).splitlines(), OmegaConf.to_yaml(b["xp.cfg"]).splitlines(),
        "a/xp.cfg", "b/xp.cfg", lineterm=""))
    assert j["config"]["diff"] == want
    # The text names changed keys as edit's summary does (issue 24).
    assert "xp.cfg: optim.lr: " in text and "-> 0.5" in text and "xp.cfg: extra: (absent) -> " in text


def test_diff_top_level_scalars(fixture_path, tmp_path):
    src = fixture_path("exported")
    other = tmp_path / "other.bin"
    obj = torch.load(src)
    obj["version"] = "9.9"
    obj["exported"] = False
    torch.save(obj, other)
    j = json.loads(ok(run_ckpt("diff", src, other, "--json"), 1))
    keys = {c["key"]: c for c in j["top_level"]["changed"]}
    assert {"version", "exported"} <= set(keys)
    assert keys["exported"]["b"] == "False"
