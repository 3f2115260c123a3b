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
    (["edit", "ro.th", "--in-place", "--dry-run", "optim.lr=1e-5"], "ro.th"),
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



def test_a_dry_run_that_would_replace_nothing_reads_a_read_only_file(ckpt, tmp_path):
    # Without --force a dry run reports an existing output; without -o it counts bytes: no refusal.
    read_only_copy(tmp_path / "ro.th")
    read_only_copy(tmp_path / "other.th")
    ok(run_ckpt("edit", "ro.th", "-n", "optim.lr=1e-5", cwd=tmp_path))
    ok(run_ckpt("edit", "ro.th", "-o", "other.th", "-n", "optim.lr=1e-5", cwd=tmp_path))
    ok(run_ckpt("edit", "ro.th", "-o", "new.th", "optim.lr=1e-5", cwd=tmp_path))  # reading it is fine
    assert load(tmp_path / "new.th")["xp.cfg"].optim.lr == 1e-5

# ------------------------------------------------ stats and show check the CRC-32 of what they read

def damaged(tmp_path, flip):
    """A torch-written checkpoint and a copy with one data byte of storage `flip`'s record flipped;
    returns (good, bad, the damaged storage's bytes as the bad file holds them)."""
    import struct
    import zipfile
    good = tmp_path / "good.th"
    torch.save({"w": torch.arange(1000, dtype=torch.float32), "v": torch.ones(10)[2:5], "b": torch.zeros(3)},
               str(good))
    data = bytearray(good.read_bytes())
    info = next(i for i in zipfile.ZipFile(good).infolist() if i.filename.endswith("/data/" + flip))
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    assert info.compress_type == zipfile.ZIP_STORED
    data[start + info.file_size - 1] ^= 0x40  # the last byte: past what `show` prints, outside v's view
    bad = tmp_path / "bad.th"
    bad.write_bytes(bytes(data))
    return good, bad, bytes(data[start:start + info.file_size])


def assert_crc_refusal(result, bad):
    assert_usage_error(result, str(bad) + ": record ", "fails its CRC-32 check", "the values read from it would be wrong",
                       "pass --ignore-crc to read it as it is")


@pytest.mark.parametrize("args", [["stats"], ["stats", "--match", "w"], ["stats", "--json"], ["show", "{bad}", "w"],
                                  ["show", "{bad}", "w", "--json"], ["show", "{bad}", "w", "--head", "0"]])
def test_stats_and_show_refuse_a_record_that_fails_its_crc(ckpt, tmp_path, args):
    good, bad, _ = damaged(tmp_path, "0")  # w's record
    argv = [a.format(bad=bad) for a in args] if "{bad}" in args else [args[0], bad, *args[1:]]
    result = run_ckpt(*argv)
    assert_crc_refusal(result, bad)
    assert result.stdout == ""  # nothing printed before the refusal
    ok(run_ckpt(*[str(good) if a == str(bad) else a for a in map(str, argv)]))  # the intact file reads


def test_a_view_checks_its_whole_storage_and_ignore_crc_reads_the_bytes_as_they_are(ckpt, tmp_path):
    good, bad, raw = damaged(tmp_path, "1")  # v's storage: ones(10), the flipped byte outside v = [2:5]
    assert_crc_refusal(run_ckpt("stats", bad, "--match", "v"), bad)
    ok(run_ckpt("stats", bad, "--match", "b"))  # records not read are not checked (b's is intact)
    rows = json.loads(ok(run_ckpt("stats", bad, "--ignore-crc", "--json")))
    assert {r["name"]: r["max"] for r in rows} == {"w": 999.0, "v": 1.0, "b": 0.0}
    # w's record damaged: the values --ignore-crc reads are the bytes as they are.
    _, bad_w, raw_w = damaged(tmp_path, "0")  # (rewrites good.th and bad.th)
    w = torch.frombuffer(bytearray(raw_w), dtype=torch.float32).double()
    (row,) = json.loads(ok(run_ckpt("stats", bad_w, "--ignore-crc", "--match", "w", "--json")))
    assert row["max"] == w.max().item() and row["max"] != 999.0
    assert row["mean"] == pytest.approx(w.mean().item(), rel=1e-12)
    shown = json.loads(ok(run_ckpt("show", bad_w, "w", "--ignore-crc", "--head", "0", "--json")))
    assert torch.tensor(float(shown["values"][-1]), dtype=torch.float32).item() == w[-1].item()


def test_diff_checks_the_crc_of_what_it_compares(ckpt, tmp_path):
    # Said "1 of 1,000 elements differ" of a damaged file, as if it had been changed.
    good, bad, _ = damaged(tmp_path, "0")
    for a, b in ((good, bad), (bad, good)):
        result = run_ckpt("diff", a, b)
        assert_crc_refusal(result, bad)
        assert result.stdout == ""
    result = run_ckpt("diff", good, bad, "--ignore-crc")
    assert result.returncode == 1 and "w: 1 of 1,000 elements differ" in result.stdout
    ok(run_ckpt("diff", good, good))
