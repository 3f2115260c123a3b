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
