"""Issue 14's hostile checkpoints (tests/fixtures/make_hostile.py, made by the running torch),
each checked against what this torch actually does with it:

- torch.load (weights_only=False, the seed's route) ran the payload -> `scan` never exits 0;
- torch.load refused the file, or loaded something other than what the bytes say -> `verify`
  exits 1;
- and each gets the exact verdicts below (so a regression in either direction shows).
"""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, run_ckpt

MAKE_HOSTILE = os.path.join(REPO_ROOT, "tests", "fixtures", "make_hostile.py")

# name: (verify exit, scan exit)
EXPECTED = {
    "no_version": (1, 0),            # torch refuses; no code in it
    "setitem_tensor": (1, 0),        # torch loads w as [99,1,2,3]; no code runs
    "storage_short": (1, 0),         # 1.13 reads past the record, 2.13 refuses
    "legacy_storage_short": (1, 2),  # torch refuses
    "zip_flag_0x1": (1, 2),          # torch refuses (encrypted flag)
    "zip_flag_0x20": (1, 1),         # torch refuses; the payload is still named
    "zip_flag_0x40": (1, 1),
    "hidden_pickle": (1, 0),         # torch never unpickles archive/extra.bin
    "odd_extension": (0, 1),         # intact, but torch runs its payload
    "polyglot_legacy_zip": (1, 1),   # torch runs the legacy payload
    "tar_form": (1, 1),              # torch runs the tar form's payload; scan names it
    "tar_form_benign": (1, 0),       # torch loads it; only scan reads the tar form
    "magic_as_text": (0, 1),         # torch takes the text magic number and runs the payload
    "magic_padded": (0, 1),          # the same, the magic pickle padded past 4 KB
}

LOADER = """
import json, sys, torch
try:
    obj = torch.load(sys.argv[1], weights_only=False)
    w = obj.get("w") if isinstance(obj, dict) else None
    print(json.dumps({"refused": False,
                      "w": w.tolist() if isinstance(w, torch.Tensor) else None}))
except Exception as e:
    print(json.dumps({"refused": True, "error": type(e).__name__}))
"""


@pytest.fixture(scope="session")
def hostile_dir(tmp_path_factory):
    outdir = tmp_path_factory.mktemp("hostile")
    subprocess.run([sys.executable, MAKE_HOSTILE, str(outdir)], check=True, capture_output=True,
                   stdin=subprocess.DEVNULL)
    with open(outdir / "hostile.json") as f:
        entries = {e["name"]: e for e in json.load(f)["fixtures"]}
    return outdir, entries


def torch_outcome(path, marker):
    """What this torch does with the file: (result dict, whether the payload ran)."""
    if os.path.exists(marker):
        os.remove(marker)
    proc = subprocess.run([sys.executable, "-c", LOADER, str(path)], capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), os.path.exists(marker)


def test_every_fixture_is_listed(hostile_dir):
    assert sorted(hostile_dir[1]) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_verdicts_follow_what_torch_does(ckpt, hostile_dir, name):
    outdir, entries = hostile_dir
    entry = entries[name]
    path = outdir / entry["file"]
    result, ran_code = torch_outcome(path, outdir / ("marker_" + name))
    verify = run_ckpt("verify", path)
    scan = run_ckpt("scan", path, "--json")
    for r in (verify, scan):
        assert r.returncode in (0, 1, 2), (r.returncode, r.stderr)
    if ran_code:
        assert scan.returncode != 0, scan.stdout
    if result["refused"] or entry["misbehaves"]:
        assert verify.returncode == 1, (result, verify.stdout, verify.stderr)
    if name == "setitem_tensor":
        # The misbehaviour is real: the bytes hold [0,1,2,3], torch returns [99,1,2,3].
        assert result == {"refused": False, "w": [99.0, 1.0, 2.0, 3.0]}
        assert "SETITEM" in verify.stdout
    assert (verify.returncode, scan.returncode) == EXPECTED[name], (
        result, ran_code, verify.stdout, verify.stderr, scan.stdout, scan.stderr)
    doc = json.loads(scan.stdout)
    if scan.returncode == 1:
        assert any(not g["allowed"] for g in doc["globals"])
    if scan.returncode == 2:
        assert doc["problem"]


def test_hidden_pickle_is_not_run_by_torch(ckpt, hostile_dir):
    """torch.load never unpickles a record outside data.pkl: scan's safe verdict is right."""
    outdir, entries = hostile_dir
    result, ran_code = torch_outcome(outdir / entries["hidden_pickle"]["file"],
                                     outdir / "marker_hidden_pickle")
    assert not result["refused"] and not ran_code


def test_verify_refuses_archive_without_version_record(ckpt, hostile_dir):
    """Issue 14: `verify` passed an archive with no version record, which torch refuses."""
    outdir, entries = hostile_dir
    result, _ = torch_outcome(outdir / "no_version.pt", outdir / "marker_no_version")
    assert result["refused"]
    r = run_ckpt("verify", outdir / "no_version.pt")
    assert r.returncode == 1 and "no 'version' record" in r.stdout, r.stdout
