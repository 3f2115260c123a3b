"""torch.save's zip dialects (docs/dialects.md): detected, kept, converted with
--dialect, byte for byte as the running torch writes them, loadable by the
other torch of the test matrix, and weights_only / mmap loadable in torch 2.x."""

import json
import os
import subprocess

import pytest
import torch

from ckpt_testlib import REPO_ROOT, dialect_of_torch, read_zip_records, write_torch_zip, zip_layout
from conftest import run_ckpt
from test_foundation import ok

TORCH2 = not torch.__version__.startswith("1.")
STATE_DICT_FIXTURES = ["dtypes", "sharing", "module_state_dict"]

# Record names (without the archive folder) each dialect writes, storages
# written as "data/*" (their order is checked separately).
LAYOUT = {
    "1.6": ["data.pkl", "data/*", "version"],
    "2.1": ["data.pkl", "byteorder", "data/*", "version", ".data/serialization_id"],
    "2.7": ["data.pkl", ".format_version", ".storage_alignment", "byteorder", "data/*", "version",
            ".data/serialization_id"],
}


def record_names(path):
    return [e["name"].split("/", 1)[1] for e in zip_layout(path)["entries"]]


def assert_dialect_layout(path, dialect):
    names = record_names(path)
    skeleton = []
    for n in names:
        n = "data/*" if n.startswith("data/") else n
        if not skeleton or skeleton[-1] != n:
            skeleton.append(n)
    if "data/*" not in skeleton:  # no storages at all
        skeleton.insert(LAYOUT[dialect].index("data/*"), "data/*")
    assert skeleton == LAYOUT[dialect], names
    keys = [n[5:] for n in names if n.startswith("data/")]
    numeric = [str(i) for i in range(len(keys))]
    assert keys == (numeric if dialect == "2.7" else sorted(numeric)), keys


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def torch_resave(src, dst, **load_kwargs):
    torch.save(torch.load(src, **load_kwargs), dst)


def same_named_paths(tmp_path, file_name, *folders):
    """tmp_path/<folder>/<file_name> per folder (one archive name for all)."""
    paths = []
    for folder in folders:
        (tmp_path / folder).mkdir()
        paths.append(tmp_path / folder / file_name)
    return paths


# ---------------------------------------------------------------- detection and layout

@pytest.mark.parametrize("name", STATE_DICT_FIXTURES + ["training"])
def test_fixture_dialect_is_the_running_torch(ckpt, fixture_path, name):
    """Fixtures are made by the running torch; info reports its dialect."""
    info = json.loads(ok(run_ckpt("info", fixture_path(name), "--json")))
    assert info["dialect"] == "torch-" + dialect_of_torch()
    assert_dialect_layout(fixture_path(name), dialect_of_torch())


@pytest.mark.parametrize("dialect", list(LAYOUT))
def test_rewrite_into_each_dialect(ckpt, fixture_path, tmp_path, dialect):
    out = tmp_path / "x" / "checkpoint.th"
    out.parent.mkdir()
    ok(run_ckpt("rewrite", fixture_path("training"), "-o", out, "--dialect", dialect))
    assert_dialect_layout(out, dialect)
    assert json.loads(ok(run_ckpt("info", out, "--json")))["dialect"] == "torch-" + dialect
    # Kept on a further rewrite, edit and export.
    again = tmp_path / "again.th"
    ok(run_ckpt("edit", out, "-o", again, "optim.lr=0.5"))
    assert_dialect_layout(again, dialect)
    exported = tmp_path / "exported.bin"
    ok(run_ckpt("export", out, "-o", exported))
    assert_dialect_layout(exported, dialect)
    ok(run_ckpt("verify", again))
    assert torch.load(again)["xp.cfg"].optim.lr == 0.5


def many_storages():
    """12 storages: string order (0, 1, 10, 11, 2...) differs from numeric."""
    return {f"t{i}": torch.arange(i + 1, dtype=torch.float32) * 0.5 for i in range(12)}


@pytest.mark.parametrize("dialect", list(LAYOUT))
def test_converted_back_equals_torch_save_bytes(ckpt, tmp_path, dialect):
    """Through any dialect and back to the running torch's: torch.save's bytes
    (record order, offsets, CRCs, .data/serialization_id)."""
    src, ref, mid, back = same_named_paths(tmp_path, "model.pt", "src", "ref", "mid", "back")
    torch.save(many_storages(), src)
    torch_resave(src, ref)
    ok(run_ckpt("rewrite", src, "-o", mid, "--dialect", dialect))
    assert_dialect_layout(mid, dialect)
    ok(run_ckpt("rewrite", mid, "-o", back, "--dialect", dialect_of_torch()))
    assert read_bytes(back) == read_bytes(ref)


@pytest.mark.parametrize("name", STATE_DICT_FIXTURES)
def test_rewrite_is_torch_save_byte_for_byte(ckpt, fixture_path, tmp_path, name):
    src = fixture_path(name)
    ours, ref = same_named_paths(tmp_path, src.name, "ours", "ref")
    ok(run_ckpt("rewrite", src, "-o", ours))
    torch_resave(src, ref)
    assert read_bytes(ours) == read_bytes(ref)


def test_serialization_id_counts_data_that_looks_like_a_descriptor(ckpt, tmp_path):
    """torch folds bytes 4..7 of a record that starts with PK\\x07\\x08 into the id."""
    src, ours, ref = same_named_paths(tmp_path, "m.pt", "src", "ours", "ref")
    data = torch.tensor(list(b"PK\x07\x08\x11\x22\x33\x44 and more"), dtype=torch.uint8)
    torch.save({"sig": data, "other": torch.ones(3)}, src)
    torch_resave(src, ref)
    ok(run_ckpt("rewrite", src, "-o", ours))
    assert read_bytes(ours) == read_bytes(ref)


@pytest.mark.skipif(dialect_of_torch() != "2.7", reason="storage_alignment is torch 2.7+'s")
def test_storage_alignment_is_kept(ckpt, tmp_path):
    from torch.utils.serialization import config
    src, ours, ref = same_named_paths(tmp_path, "m.pt", "src", "ours", "ref")
    old = config.save.storage_alignment
    config.save.storage_alignment = 4096
    try:
        torch.save(many_storages(), src)
        torch_resave(src, ref)
    finally:
        config.save.storage_alignment = old
    ok(run_ckpt("rewrite", src, "-o", ours))
    assert read_bytes(ours) == read_bytes(ref)
    assert all(e["data_offset"] % 4096 == 0 for e in zip_layout(ours)["entries"])
    ok(run_ckpt("edit", src, "--in-place", "--drop", "t1"))
    assert all(e["data_offset"] % 4096 == 0 for e in zip_layout(src)["entries"])
    assert list(torch.load(src, mmap=True, weights_only=True)) == [f"t{i}" for i in range(12) if i != 1]


def test_files_made_from_nothing_get_2_7(ckpt, fixture_path, tmp_path):
    """A legacy input and from-safetensors have no dialect to keep: 2.7 (docs/dialects.md)."""
    ok(run_ckpt("rewrite", fixture_path("legacy"), "-o", tmp_path / "legacy.pt"))
    assert_dialect_layout(tmp_path / "legacy.pt", "2.7")
    ok(run_ckpt("safetensors", fixture_path("module_state_dict"), "-o", tmp_path / "d.safetensors"))
    ok(run_ckpt("from-safetensors", tmp_path / "d.safetensors", "-o", tmp_path / "d.pt"))
    assert_dialect_layout(tmp_path / "d.pt", "2.7")


@pytest.mark.parametrize("value", [b"0", b"-64", b"x", b"99999999", b""])
def test_unusable_storage_alignment_is_refused_on_write(ckpt, fixture_path, tmp_path, value):
    src = tmp_path / "src.pt"
    ok(run_ckpt("rewrite", fixture_path("dtypes"), "-o", src, "--dialect", "2.7"))
    bad = tmp_path / "bad.pt"
    write_torch_zip(bad, [(n, value if n.endswith(".storage_alignment") else b)
                          for n, b in read_zip_records(src)])
    ok(run_ckpt("info", bad))  # reading does not need it
    res = run_ckpt("rewrite", bad, "-o", tmp_path / "out.pt")
    assert res.returncode == 2 and ".storage_alignment" in res.stderr, res.stderr
    assert res.stderr.count("\n") == 1 and not (tmp_path / "out.pt").exists()
    ok(run_ckpt("rewrite", bad, "-o", tmp_path / "out.pt", "--dialect", "2.1"))  # a dialect without it
    assert_dialect_layout(tmp_path / "out.pt", "2.1")


def test_bad_dialect_is_usage_error(ckpt, fixture_path, tmp_path):
    res = run_ckpt("rewrite", fixture_path("dtypes"), "-o", tmp_path / "x.pt", "--dialect", "3.0")
    assert res.returncode == 2 and "--dialect" in res.stderr
    assert not (tmp_path / "x.pt").exists()


# ---------------------------------------------------------------- the other torch

DIGEST = r'''
import hashlib, json, sys, torch
def digest(obj):
    if isinstance(obj, torch.Tensor):
        raw = obj.detach().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes()
        return [str(obj.dtype), list(obj.shape), hashlib.sha256(raw).hexdigest()]
    if isinstance(obj, dict):
        return {str(k): digest(v) for k, v in obj.items()}
    return None
def load(path, **kw):
    try:
        return torch.load(path, **kw)
    except TypeError:  # torch 1.x: no weights_only/mmap for this call
        return torch.load(path)
'''


def other_torch_python():
    """The python of the other torch in the test matrix, or skip."""
    if TORCH2:
        candidates = [os.environ.get("CKPT_TORCH1_PYTHON") or "/usr/bin/python3"]
    else:
        candidates = [os.environ.get("CKPT_TORCH2_PYTHON") or os.path.join(REPO_ROOT, ".venv-torch2", "bin", "python"),
                      "/work/venv213/bin/python"]
    for py in candidates:
        if not os.access(py, os.X_OK):
            continue
        res = subprocess.run([py, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True)
        if res.returncode == 0 and res.stdout.strip().startswith("1.") == TORCH2:
            return py
    pytest.skip("no python with the other torch (set CKPT_TORCH2_PYTHON / CKPT_TORCH1_PYTHON): tried "
                + ", ".join(candidates))


def digest_here(path):
    ns = {}
    exec(DIGEST, ns)
    return ns["digest"](torch.load(path))


def digest_there(python, paths, strict):
    """Loads each file in `python`; strict: weights_only=True and mmap=True there (torch 2.x)."""
    kw = "weights_only=True, mmap=True" if strict else "weights_only=False"
    script = DIGEST + f"print(json.dumps([digest(load(p, {kw})) for p in sys.argv[1:]]))"
    res = subprocess.run([python, "-c", script, *map(str, paths)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout)


def test_each_dialect_loads_in_the_other_torch(ckpt, fixture_path, tmp_path):
    other = other_torch_python()
    outs, want = [], []
    for dialect in LAYOUT:
        for name in STATE_DICT_FIXTURES:
            src = fixture_path(name)
            out = tmp_path / dialect / src.name
            out.parent.mkdir(exist_ok=True)
            ok(run_ckpt("rewrite", src, "-o", out, "--dialect", dialect))
            outs.append(out)
            want.append(digest_here(src))
    assert digest_there(other, outs, strict=not TORCH2) == want


# ---------------------------------------------------------------- weights_only and mmap

def written_from_weights_only_inputs(fixture_path, tmp_path):
    """Every kind of file ckpt writes from an input torch.load(weights_only=True) takes."""
    outs = []

    def out(name):
        p = tmp_path / name
        outs.append(p)
        return p
    for name in STATE_DICT_FIXTURES:
        src = fixture_path(name)
        for dialect in LAYOUT:
            ok(run_ckpt("rewrite", src, "-o", out(f"{name}_{dialect}.pt"), "--dialect", dialect))
    ok(run_ckpt("edit", fixture_path("sharing"), "-o", out("f16.pt"), "--dtype", "float16"))
    ok(run_ckpt("edit", fixture_path("module_state_dict"), "-o", out("dropped.pt"), "--drop", "*bias*"))
    ok(run_ckpt("edit", fixture_path("exported"), "-o", out("exported_bf16.bin"), "--dtype", "bfloat16"))
    ok(run_ckpt("rewrite", fixture_path("exported"), "-o", out("exported.bin")))
    st = tmp_path / "m.safetensors"
    ok(run_ckpt("safetensors", fixture_path("module_state_dict"), "-o", st))
    for dialect in LAYOUT:
        ok(run_ckpt("from-safetensors", st, "-o", out(f"from_st_{dialect}.pt"), "--dialect", dialect))
    return outs


@pytest.mark.skipif(not TORCH2, reason="weights_only + mmap are checked in the torch 2.x run")
def test_outputs_load_weights_only_and_mmap(ckpt, fixture_path, tmp_path):
    for name in ["dtypes", "sharing", "module_state_dict", "exported"]:
        torch.load(fixture_path(name), weights_only=True)  # the inputs qualify
    for path in written_from_weights_only_inputs(fixture_path, tmp_path):
        plain = torch.load(path, weights_only=False)
        strict = torch.load(path, weights_only=True, mmap=True)
        ns = {}
        exec(DIGEST, ns)
        assert ns["digest"](strict) == ns["digest"](plain), path.name


def test_sanitize_outputs_load_weights_only(ckpt, fixture_path, tmp_path):
    if not TORCH2:
        pytest.skip("sanitize targets torch 2.x's weights_only loader")
    for name in ["training", "training_fsdp", "training_nostruct", "exported", "module_state_dict", "dtypes"]:
        out = tmp_path / f"{name}.th"
        ok(run_ckpt("sanitize", fixture_path(name), "-o", out))
        torch.load(out, weights_only=True)
        torch.load(out, weights_only=True, mmap=True)


@pytest.mark.skipif(not TORCH2, reason="weights_only + mmap are checked in the torch 2.x run")
@pytest.mark.parametrize("name", ["training", "training_fsdp", "training_nostruct"])
def test_export_and_bundle_outputs_load_weights_only(ckpt, fixture_path, tmp_path, name):
    """AudioCraft's loaders call torch.load with torch's default, weights_only=True
    from 2.6: exported files must load so, from any training input. (wrap's
    output is a training file: its DictConfig needs weights_only=False.)"""
    ok(run_ckpt("export", fixture_path(name), "-o", tmp_path / "exported.bin"))
    ok(run_ckpt("bundle", fixture_path(name), "-o", tmp_path / "bundle"))
    paths = [tmp_path / "exported.bin", tmp_path / "bundle" / "state_dict.bin",
             tmp_path / "bundle" / "compression_state_dict.bin"]
    for path in paths:
        loaded = torch.load(path, weights_only=True, mmap=True)
        assert isinstance(loaded, dict) and loaded, path
