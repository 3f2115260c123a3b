"""torch distributed checkpoints (DCP folders): info / tensors / verify, `ckpt consolidate` against
torch's dcp_to_torch_save, and hostile folders.

The folders are made at test time by tests/fixtures/make_dcp.py with torch 2.x (a single-process
dcp.save, and a two-process gloo run on loopback saving DTensor shards); the checks that need
torch.distributed.checkpoint run tests/e2e/dcp_torch2.py under that torch 2 Python, so this file
runs the same under either test Python.
"""

import io
import json
import os
import shutil
import struct
import subprocess
import zipfile

import pytest

from ckpt_testlib import REPO_ROOT, run_ckpt

MAKE_DCP = os.path.join(REPO_ROOT, "tests", "fixtures", "make_dcp.py")
DCP_TORCH2 = os.path.join(REPO_ROOT, "tests", "e2e", "dcp_torch2.py")


def torch2_python():
    """The torch 2.x Python: $CKPT_TORCH2_PYTHON, else the repo's .venv-torch2, else /work/venv213."""
    for p in (os.environ.get("CKPT_TORCH2_PYTHON"), os.path.join(REPO_ROOT, ".venv-torch2", "bin", "python"),
              "/work/venv213/bin/python"):
        if p and os.access(p, os.X_OK):
            return p
    pytest.skip("no torch 2.x Python (set CKPT_TORCH2_PYTHON)")


def torch2(*args, check=True):
    r = subprocess.run([torch2_python(), *[str(a) for a in args]], capture_output=True, text=True,
                       timeout=300, stdin=subprocess.DEVNULL)
    if check:
        assert r.returncode == 0, r.stdout + r.stderr
    return r


@pytest.fixture(scope="module")
def dcp_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("dcp")
    for kind in ("single", "sharded"):
        torch2(MAKE_DCP, kind, root / kind)
    return root


def fresh_copy(dcp_dirs, tmp_path, kind="sharded"):
    dst = tmp_path / kind
    shutil.copytree(dcp_dirs / kind, dst)
    return dst


@pytest.mark.parametrize("kind", ["single", "sharded"])
def test_consolidate_equals_dcp_to_torch_save(dcp_dirs, tmp_path, kind):
    out = tmp_path / "consolidated.pt"
    r = run_ckpt("consolidate", dcp_dirs / kind, "-o", out)
    assert r.returncode == 0, r.stderr
    torch2(DCP_TORCH2, "same", out, f"{dcp_dirs / kind}.expected.pt")
    # and back: the DCP folder loads into the consolidated file's values
    torch2(DCP_TORCH2, "dcp-equals", dcp_dirs / kind, out)


def test_consolidate_refuses_to_overwrite(dcp_dirs, tmp_path):
    out = tmp_path / "c.pt"
    out.write_bytes(b"keep")
    r = run_ckpt("consolidate", dcp_dirs / "single", "-o", out)
    assert r.returncode == 2 and "ckpt: error:" in r.stderr
    assert out.read_bytes() == b"keep"
    assert run_ckpt("consolidate", dcp_dirs / "single", "-o", out, "--force").returncode == 0


def test_info_tensors_verify_sharded(dcp_dirs):
    d = dcp_dirs / "sharded"
    info = json.loads(run_ckpt("info", d, "--json").stdout)
    assert info["format"] == "dcp"
    assert [f["name"] for f in info["files"]] == ["__0_0.distcp", "__1_0.distcp"]
    assert info["tensors"] == 6 and info["parameters"] == 60 + 10 + 84 + 7 + 12 + 6
    assert [b["fqn"] for b in info["byte_items"]] == ["step"]
    rows = {t["name"]: t for t in json.loads(run_ckpt("tensors", d, "--json").stdout)}
    w = rows["model.layers.1.weight"]
    assert w["shape"] == [7, 12] and w["dtype"] == "float32"
    assert sorted((c["offsets"], c["sizes"]) for c in w["chunks"]) == [([0, 0], [7, 6]), ([0, 6], [7, 6])]
    assert {c["file"] for c in w["chunks"]} == {"__0_0.distcp", "__1_0.distcp"}
    assert rows["model.layers.1.bias"]["dtype"] == "float16"
    text = run_ckpt("tensors", d).stdout
    assert "2 chunks in __0_0.distcp,__1_0.distcp" in text
    r = run_ckpt("verify", d)
    assert r.returncode == 0 and "ok" in r.stdout, r.stdout + r.stderr


def test_verify_finds_a_flipped_byte(dcp_dirs, tmp_path):
    d = fresh_copy(dcp_dirs, tmp_path)
    tensors = json.loads(run_ckpt("tensors", d, "--json").stdout)
    chunk = tensors[0]["chunks"][0]
    path = d / chunk["file"]
    data = bytearray(path.read_bytes())
    # flip a byte of the chunk's tensor data (record data/0 of the torch.save zip at the chunk's offset)
    item = bytes(data[chunk["offset"]:chunk["offset"] + chunk["length"]])
    z = zipfile.ZipFile(io.BytesIO(item))
    rec = next(i for i in z.infolist() if i.filename.endswith("/data/0"))
    h = rec.header_offset
    name_len, extra_len = struct.unpack("<HH", item[h + 26:h + 30])
    pos = chunk["offset"] + h + 30 + name_len + extra_len + 1
    data[pos] ^= 0xFF
    path.write_bytes(bytes(data))
    r = run_ckpt("verify", d)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "problem" in r.stdout


def assert_refused(d, tmp_path, *needles):
    """consolidate fails with one clear error (exit 2), writes nothing, leaves the folder as it was."""
    before = {p: p.read_bytes() for p in d.parent.rglob("*") if p.is_file()}
    out = tmp_path / "out" / "c.pt"
    out.parent.mkdir()
    r = run_ckpt("consolidate", d, "-o", out)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ckpt: error:"), r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    assert list(out.parent.iterdir()) == []
    after = {p: p.read_bytes() for p in d.parent.rglob("*") if p.is_file() and p.parent != out.parent}
    assert after == before
    assert run_ckpt("info", d).returncode == 2 or "float64" in needles  # info reads only .metadata


def test_hostile_missing_shard(dcp_dirs, tmp_path):
    d = fresh_copy(dcp_dirs, tmp_path)
    (d / "__1_0.distcp").unlink()
    assert_refused(d, tmp_path, "__1_0.distcp", "missing")


def test_hostile_truncated_shard(dcp_dirs, tmp_path):
    d = fresh_copy(dcp_dirs, tmp_path)
    p = d / "__1_0.distcp"
    p.write_bytes(p.read_bytes()[:-100])
    assert_refused(d, tmp_path, "truncated")


@pytest.mark.parametrize("how,needle", [("overlap", "overlap"), ("gap", "no chunk holds"),
                                        ("escape", "not a plain file name"), ("dtype", "float64")])
def test_hostile_metadata(dcp_dirs, tmp_path, how, needle):
    d = fresh_copy(dcp_dirs, tmp_path)
    if how == "escape":  # a real shard outside the folder: reading it would succeed
        shutil.copy(d / "__1_0.distcp", tmp_path / "__1_0.distcp")
    torch2(DCP_TORCH2, "tamper", d, how)
    assert_refused(d, tmp_path, needle)
    if how == "dtype":
        r = run_ckpt("verify", d)
        assert r.returncode == 1 and "float64" in r.stdout


def test_not_a_dcp_folder(tmp_path):
    (tmp_path / ".metadata").write_bytes(b"\x80\x02}q\x00.")
    r = run_ckpt("consolidate", tmp_path, "-o", tmp_path / "x.pt")
    assert r.returncode == 2 and "not a pickled torch.distributed.checkpoint Metadata" in r.stderr
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize("kind", ["single", "sharded"])
def test_round_trip_dcp_file_dcp(dcp_dirs, tmp_path, kind):
    """DCP -> file (consolidate) -> DCP (to-dcp, 1 and 2 ranks) -> file: torch reads the same state dict
    throughout, resharded both ways (2-rank folder into a 1-process load, 1-rank folder into 2 ranks)."""
    first = tmp_path / "first.pt"
    assert run_ckpt("consolidate", dcp_dirs / kind, "-o", first).returncode == 0
    for ranks in (1, 2):
        d = tmp_path / f"ranks{ranks}"
        r = run_ckpt("to-dcp", first, "-o", d, "--ranks", ranks)
        assert r.returncode == 0, r.stderr
        assert sorted(p.name for p in d.iterdir()) == [".metadata"] + [f"__{i}_0.distcp" for i in range(ranks)]
        assert run_ckpt("verify", d).returncode == 0
        torch2(DCP_TORCH2, "dcp-equals", d, first)
        again = tmp_path / f"again{ranks}.pt"
        assert run_ckpt("consolidate", d, "-o", again).returncode == 0
        torch2(DCP_TORCH2, "same", again, first)
    torch2(DCP_TORCH2, "dcp-equals-2ranks", tmp_path / "ranks1", first)


def test_to_dcp_splits_rows_like_shard0(dcp_dirs, tmp_path):
    first = tmp_path / "first.pt"
    assert run_ckpt("consolidate", dcp_dirs / "sharded", "-o", first).returncode == 0
    d = tmp_path / "three"
    assert run_ckpt("to-dcp", first, "-o", d, "--ranks", "3").returncode == 0
    rows = {t["name"]: t for t in json.loads(run_ckpt("tensors", d, "--json").stdout)}
    # 10 rows over 3 ranks: torch.chunk's split, 4 + 4 + 2
    assert [(c["offsets"], c["sizes"], c["file"]) for c in rows["model.layers.0.weight"]["chunks"]] == [
        ([0, 0], [4, 6], "__0_0.distcp"), ([4, 0], [4, 6], "__1_0.distcp"), ([8, 0], [2, 6], "__2_0.distcp")]


def test_to_dcp_refuses_existing_and_leaves_nothing_on_error(dcp_dirs, tmp_path):
    first = tmp_path / "first.pt"
    assert run_ckpt("consolidate", dcp_dirs / "single", "-o", first).returncode == 0
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    r = run_ckpt("to-dcp", first, "-o", other)
    assert r.returncode == 2 and "exists" in r.stderr
    r = run_ckpt("to-dcp", first, "-o", other, "--force")
    assert r.returncode == 2 and "not a DCP folder" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.pt", "other"]
    d = tmp_path / "d"
    assert run_ckpt("to-dcp", first, "-o", d).returncode == 0
    assert run_ckpt("to-dcp", first, "-o", d, "--ranks", "2", "--force").returncode == 0
    assert (d / "__1_0.distcp").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "first.pt", "other"]


def test_stats_and_diff_on_dcp_folders(dcp_dirs, tmp_path):
    d = dcp_dirs / "sharded"
    rows = {r["name"]: r for r in json.loads(run_ckpt("stats", d, "--state", "model", "--json").stdout)}
    assert rows["layers.1.weight"]["numel"] == 84 and rows["layers.1.weight"]["nan"] == 0
    # the same figures as for the consolidated file
    out = tmp_path / "c.pt"
    assert run_ckpt("consolidate", d, "-o", out).returncode == 0
    assert json.loads(run_ckpt("stats", out, "--state", "model", "--json").stdout) == list(rows.values())
    two = tmp_path / "two"
    assert run_ckpt("to-dcp", out, "-o", two, "--ranks", "3").returncode == 0
    r = run_ckpt("diff", d, two, "--state", "model")
    assert r.returncode == 0 and "no differences" in r.stdout, r.stdout + r.stderr
    r = run_ckpt("diff", d, dcp_dirs / "single", "--state", "model")
    assert r.returncode == 1 and "only in a" in r.stdout
    assert not [p for p in os.listdir(os.environ.get("TMPDIR", "/tmp")) if p.startswith("ckpt-dcp-")]


def scan_json(folder):
    r = run_ckpt("scan", folder, "--json")
    return r, json.loads(r.stdout)


@pytest.mark.parametrize("kind", ["single", "sharded"])
def test_scan_reads_what_torch_dcp_load_unpickles(dcp_dirs, kind):
    """scan of a DCP folder: .metadata (torch reads it with pickle.load) and every item slice
    (torch.load each): safe, and naming every global torch's own DCP load resolved."""
    folder = dcp_dirs / kind
    r, report = scan_json(folder)
    assert r.returncode == 0, r.stdout + r.stderr
    assert report["verdict"] == "safe" and report["container"] == "dcp"
    names = [p["name"] for p in report["pickles"]]
    assert names[0] == ".metadata" and len(names) > 1
    assert all(".distcp [item at " in n and n.endswith("data.pkl") for n in names[1:]), names
    scanned = {(g["module"], g["name"]) for g in report["globals"]}
    torch_saw = json.loads(torch2(DCP_TORCH2, "globals", folder).stdout)
    assert torch_saw["error"] is None
    assert ("torch.distributed.checkpoint.metadata", "Metadata") in map(tuple, torch_saw["globals"])
    assert {tuple(g) for g in torch_saw["globals"]} <= scanned
    # Offsets point into the .distcp files: each item's pickle starts with PROTO.
    for p in report["pickles"][1:]:
        with open(folder / p["name"].split(" [")[0], "rb") as f:
            f.seek(p["offset"])
            assert f.read(1) == b"\x80"


@pytest.mark.parametrize("where", ["byte-item", "metadata"])
def test_scan_of_dcp_names_an_unsafe_global(tmp_path, where):
    folder = tmp_path / "unsafe"
    torch2(DCP_TORCH2, "make-unsafe", folder, where)
    torch_saw = json.loads(torch2(DCP_TORCH2, "globals", folder).stdout)
    assert ["argparse", "Namespace"] in torch_saw["globals"]
    r, report = scan_json(folder)
    assert r.returncode == 1, r.stdout + r.stderr
    assert report["verdict"] == "unsafe"
    bad = [g for g in report["globals"] if not g["allowed"]]
    assert [(g["module"], g["name"]) for g in bad] == [("argparse", "Namespace")]
    assert bad[0]["record"] == ".metadata" if where == "metadata" else ".distcp [item at " in bad[0]["record"]
    text = run_ckpt("scan", folder)
    assert text.returncode == 1 and "NOT ALLOWED argparse.Namespace" in text.stdout


def test_scan_of_a_plain_folder_says_what_to_scan(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"")
    r = run_ckpt("scan", tmp_path)
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "neither a DCP .metadata nor a safetensors index" in lines[0], r.stderr
