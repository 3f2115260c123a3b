"""Write paths (issues 19 and 24): what rewrite/sanitize write for a dotted
global name; safetensors shard sets replaced whole, mixed folders refused;
in-place operations through a symlink edit the target; full rewrites keep
the file's mode."""

import json
import os
import stat
import subprocess
import sys

import pytest
import torch

from ckpt_testlib import read_zip_records, run_ckpt, write_torch_zip

# ------------------------------------------------- dotted global names (19, class 5)

CANONICAL = b"\x8c\x12torch.nn.parameter\x94\x8c\tParameter\x94\x93"
DOTTED = b"\x8c\x05torch\x94\x8c\x16nn.parameter.Parameter\x94\x93"


def _dotted_global_file(tmp_path):
    """A protocol-4 checkpoint naming the class Parameter as module 'torch',
    name 'nn.parameter.Parameter' (a STACK_GLOBAL CPython resolves with
    getattr along the dots)."""
    plain = tmp_path / "plain.th"
    torch.save({"w": torch.arange(4.0), "cls": torch.nn.parameter.Parameter}, plain, pickle_protocol=4)
    records = read_zip_records(plain)
    out = []
    for name, payload in records:
        if name.endswith("data.pkl"):
            assert CANONICAL in payload, payload
            payload = payload.replace(CANONICAL, DOTTED)
        out.append((name, payload))
    path = tmp_path / "dotted.th"
    write_torch_zip(path, out)
    loaded = torch.load(path, weights_only=False)
    assert loaded["cls"] is torch.nn.parameter.Parameter
    return path


@pytest.mark.parametrize("command", ["rewrite", "sanitize"])
def test_dotted_global_written_as_torch_writes_it(ckpt, tmp_path, command):
    src = _dotted_global_file(tmp_path)
    out = tmp_path / f"{command}.th"
    args = [command, src, "-o", out]
    r = run_ckpt(*args)
    assert r.returncode == 0, r.stderr
    pkl = [p for n, p in read_zip_records(out) if n.endswith("data.pkl")][0]
    assert b"getattr" not in pkl
    assert b"ctorch.nn.parameter\nParameter\n" in pkl
    s = run_ckpt("scan", out)
    assert s.returncode == 0, s.stdout + s.stderr
    loaded = torch.load(out, weights_only=True)
    assert loaded["cls"] is torch.nn.parameter.Parameter
    assert torch.equal(loaded["w"], torch.arange(4.0))


# ------------------------------------------- safetensors shard sets (24, item 1)

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "musicgen_tiny_training.th")
SET_NAMES = ("model.safetensors", "model.safetensors.index.json")


def _set_files(folder):
    return sorted(n for n in os.listdir(folder) if n.startswith("model"))


def _to_safetensors(out, size, *extra):
    return run_ckpt("safetensors", EXAMPLE, "-o", out, "--max-shard-size", size, *extra)


def test_shard_set_replaced_whole(ckpt, tmp_path):
    """--max-shard-size 20KB, then 1GB --force, then 20KB --force: each time
    the folder holds exactly the new set (and the files it held besides)."""
    out = tmp_path / "hf"
    out.mkdir()
    (out / "config.json").write_text("{}")
    r = _to_safetensors(out, "20KB")
    assert r.returncode == 0, r.stderr
    shards = _set_files(out)
    assert "model.safetensors.index.json" in shards and len(shards) > 2
    r = _to_safetensors(out, "1GB")
    assert r.returncode == 2 and "--force" in r.stderr
    r = _to_safetensors(out, "1GB", "--force")
    assert r.returncode == 0, r.stderr
    assert _set_files(out) == ["model.safetensors"]
    assert (out / "config.json").read_text() == "{}"
    r = _to_safetensors(out, "20KB", "--force")
    assert r.returncode == 0, r.stderr
    assert _set_files(out) == shards
    r = run_ckpt("from-safetensors", out, "-o", tmp_path / "back.th")
    assert r.returncode == 0, r.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_mixed_shard_folder_is_refused_by_readers(ckpt, tmp_path):
    sharded, single, mixed = tmp_path / "sharded", tmp_path / "single", tmp_path / "mixed"
    assert _to_safetensors(sharded, "20KB").returncode == 0
    assert _to_safetensors(single, "1GB").returncode == 0
    mixed.mkdir()
    for f in sharded.iterdir():
        (mixed / f.name).write_bytes(f.read_bytes())
    (mixed / "model.safetensors").write_bytes((single / "model.safetensors").read_bytes())
    for args in (("from-safetensors", mixed, "-o", tmp_path / "x.th"), ("info", mixed)):
        r = run_ckpt(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "model.safetensors" in r.stderr and "mixes" in r.stderr, r.stderr
    assert not (tmp_path / "x.th").exists()
    # Stale shards beside a single file: named too.
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes((single / "model.safetensors").read_bytes())
    first = sorted(n for n in os.listdir(sharded) if "-of-" in n)[0]
    (stale / first).write_bytes((sharded / first).read_bytes())
    r = run_ckpt("from-safetensors", stale, "-o", tmp_path / "y.th")
    assert r.returncode == 2 and first in r.stderr, r.stderr


# ------------------------------------- symlinks, mode and owner (24, item 4)

def _linked_copy(tmp_path):
    """A Hugging Face cache's shape: snapshots/x/model.th -> ../../blobs/abc."""
    blobs = tmp_path / "blobs"
    snap = tmp_path / "snapshots" / "x"
    blobs.mkdir()
    snap.mkdir(parents=True)
    target = blobs / "abc"
    target.write_bytes(open(EXAMPLE, "rb").read())
    link = snap / "model.th"
    os.symlink("../../blobs/abc", link)
    return link, target


@pytest.mark.parametrize("args", [
    ("edit", "--in-place", "optim.lr=0.25"),
    ("edit", "--in-place", "--dtype", "float32"),
    ("edit", "--in-place", "--compact", "optim.lr=0.25"),
    ("compact",),
])
def test_in_place_through_a_symlink_edits_the_target(ckpt, tmp_path, args):
    link, target = _linked_copy(tmp_path)
    before = target.read_bytes()
    cmd = [args[0], link, *args[1:]]
    if args[0] == "compact":  # compact an edited file, so that there is something to reclaim
        assert run_ckpt("edit", link, "--in-place", "optim.lr=0.5").returncode == 0
        before = target.read_bytes()
    r = run_ckpt(*cmd)
    assert r.returncode == 0, r.stderr
    assert os.path.islink(link) and os.readlink(link) == "../../blobs/abc"
    assert target.read_bytes() != before
    obj = torch.load(target, weights_only=False)
    if "optim.lr=0.25" in args:
        assert obj["xp.cfg"].optim.lr == 0.25
    if "float32" in args:  # the example's tensors are float16
        assert all(t.dtype == torch.float32 for t in obj["best_state"]["model"].values() if t.is_floating_point())
    assert sorted(os.listdir(link.parent)) == ["model.th"]
    assert sorted(os.listdir(target.parent)) == ["abc"]


@pytest.mark.parametrize("args", [
    ("edit", "--in-place", "--dtype", "float32"),
    ("compact",),
    ("rewrite", "-o", "{file}", "--force"),
    ("edit", "optim.lr=0.25", "-o", "{file}", "--force"),
])
def test_full_rewrite_keeps_the_mode(ckpt, tmp_path, args):
    f = tmp_path / "ck.th"
    f.write_bytes(open(EXAMPLE, "rb").read())
    if args[0] == "compact":
        assert run_ckpt("edit", f, "--in-place", "optim.lr=0.5").returncode == 0
    os.chmod(f, 0o640)
    if os.getuid() == 0:  # root may keep another owner: it must
        os.chown(f, 1234, 1234)
    src = f
    if args[0] in ("rewrite",) or "-o" in args:
        src = tmp_path / "src.th"
        src.write_bytes(open(EXAMPLE, "rb").read())
    before = f.read_bytes()
    cmd = [args[0], src, *[a.replace("{file}", str(f)) for a in args[1:]]]
    r = run_ckpt(*cmd)
    assert r.returncode == 0, r.stderr
    assert f.read_bytes() != before or args[0] == "rewrite"
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o640
    st = os.stat(f)
    if os.getuid() == 0:
        assert (st.st_uid, st.st_gid) == (1234, 1234)


def test_a_new_output_gets_the_mode_open_gives(ckpt, tmp_path):
    """A new output file is made as torch.save's open() makes it: 0666 less the
    umask (0644 under umask 022, 0664 under a group-sharing umask 002)."""
    out = tmp_path / "new.th"
    r = subprocess.run(["sh", "-c", 'umask 002 && exec "$0" rewrite "$1" -o "$2" -q', ckpt, EXAMPLE, str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o664
