"""End-to-end tests of session 10's polish: tensor patterns read as Python's
fnmatch by every option that takes one; read-only files never replaced;
stats and show check the CRC-32 of the records they read.
"""

import fnmatch
import json
import os
import stat

import pytest
import torch

from conftest import run_ckpt
from test_foundation import assert_usage_error, ok


def load(path):
    return torch.load(str(path), map_location="cpu", weights_only=False)


# ------------------------------------------------ tensor patterns (fnmatch)

NAMES = ["[abc", "a.w", "b", "^x", "é.w", ":]"]


@pytest.fixture
def named(tmp_path):
    path = tmp_path / "named.th"
    torch.save({n: torch.arange(float(i + 1)) for i, n in enumerate(NAMES)}, str(path))
    return path


def tensors_selected(path, pattern):
    rows = json.loads(ok(run_ckpt("tensors", path, "--match", pattern, "--json")))
    return [r["name"] for r in rows]


# Python's fnmatch.fnmatchcase decides each: an unclosed "[" is a literal,
# "[^...]" no negation, "[[:alpha:]]" no class, "?" one character (é).
@pytest.mark.parametrize("pattern", ["[abc", "[^a]*", "[[:alpha:]]*", "?.w", "[!^]*", "[a-]*"])
def test_every_tensor_pattern_option_reads_it_as_python_fnmatch(ckpt, named, tmp_path, pattern):
    want = [n for n in NAMES if fnmatch.fnmatchcase(n, pattern)]
    assert want, pattern  # each pattern selects something
    assert tensors_selected(named, pattern) == want
    stats = json.loads(ok(run_ckpt("stats", named, "--match", pattern, "--json")))
    assert [r["name"] for r in stats] == want
    ok(run_ckpt("edit", named, "-o", tmp_path / "drop.th", "--drop", pattern))
    assert sorted(load(tmp_path / "drop.th")) == sorted(set(NAMES) - set(want))
    ok(run_ckpt("edit", named, "-o", tmp_path / "keep.th", "--keep", pattern))
    assert sorted(load(tmp_path / "keep.th")) == sorted(want)
    ok(run_ckpt("edit", named, "-o", tmp_path / "half.th", "--dtype", "bf16", "--match", pattern))
    half = load(tmp_path / "half.th")
    assert {n for n in NAMES if half[n].dtype == torch.bfloat16} == set(want)


def test_an_unclosed_bracket_that_selects_nothing_gets_the_note_every_pattern_gets(ckpt, named, tmp_path):
    for command in ("tensors", "stats"):
        r = run_ckpt(command, named, "--match", "[xyz")
        assert r.returncode == 0 and "--match '[xyz' selects no tensor" in r.stderr
    assert_usage_error(run_ckpt("edit", named, "-o", tmp_path / "o.th", "--dtype", "bf16", "--match", "[xyz"),
                       "--match '[xyz' selects no tensor")
    assert_usage_error(run_ckpt("edit", named, "-o", tmp_path / "o.th", "--drop", "[xyz"), "--drop '[xyz' matches no key")
    assert not (tmp_path / "o.th").exists()


# ------------------------------------------------ read-only files: one policy

EXAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "musicgen_tiny_training.th")


def read_only_copy(path):
    with open(EXAMPLE, "rb") as src, open(path, "wb") as dst:
        dst.write(src.read())
    os.chmod(path, 0o444)
    return path


# Each command that replaces or updates an existing file: the source itself
# (in place, compact, -o SOURCE --force) and another read-only file (-o
# EXISTING --force, through a link too). Said nothing and replaced it (all
# but a plain --in-place, which said "open: Permission denied" as a user and
# wrote as root).
@pytest.mark.parametrize("args,target", [
    (["compact", "ro.th"], "ro.th"),
    (["edit", "ro.th", "--in-place", "optim.lr=1e-5"], "ro.th"),
    (["edit", "ro.th", "--in-place", "--compact", "optim.lr=1e-5"], "ro.th"),
    (["edit", "ro.th", "--in-place", "--dtype", "bf16"], "ro.th"),
    (["edit", "ro.th", "-o", "ro.th", "--force", "optim.lr=1e-5"], "ro.th"),
    (["edit", "ro.th", "-o", "other.th", "--force", "optim.lr=1e-5"], "other.th"),
    (["edit", "ro.th", "-o", "link.th", "--force", "optim.lr=1e-5"], "other.th"),
    (["edit", "ro.th", "-o", "other.th", "--force", "--dry-run", "optim.lr=1e-5"], "other.th"),
    (["rewrite", "ro.th", "-o", "other.th", "--force"], "other.th"),
    (["export", "ro.th", "-o", "other.th", "--force"], "other.th"),
    (["safetensors", "ro.th", "-o", "ro.safetensors", "--force"], "ro.safetensors"),
    (["safetensors", "ro.th", "-o", "shards", "--max-shard-size", "100KB", "--force"], "shards/model.safetensors"),
])
def test_a_read_only_file_is_never_replaced(ckpt, tmp_path, args, target):
    read_only_copy(tmp_path / "ro.th")
    read_only_copy(tmp_path / "other.th")
    os.symlink("other.th", tmp_path / "link.th")
    (tmp_path / "ro.safetensors").write_bytes(b"not replaced")
    os.chmod(tmp_path / "ro.safetensors", 0o444)
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "model.safetensors").write_bytes(b"not replaced")
    os.chmod(tmp_path / "shards" / "model.safetensors", 0o444)
    before = {p: (p.read_bytes(), p.stat().st_mode) for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink()}
    assert_usage_error(run_ckpt(*args, cwd=tmp_path), target + " is read-only", "chmod u+w " + target)
    after = {p: (p.read_bytes(), p.stat().st_mode) for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink()}
    assert after == before  # nothing replaced, nothing left beside
    # The fix the message names works.
    os.chmod(tmp_path / target, 0o644)
    ok(run_ckpt(*args, cwd=tmp_path))
    if args[0] != "compact" and "--dry-run" not in args:  # (compact: the example is compact already)
        assert (tmp_path / target).read_bytes() != before[tmp_path / target][0]
