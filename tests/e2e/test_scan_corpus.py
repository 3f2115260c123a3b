"""`ckpt scan` against the picklescan corpus (../shared/corpora/picklescan) and our fixtures.

Every corpus row must get its verdict: 'safe' -> exit 0; 'not-safe' -> exit 1 (a global
outside the allowlist, named on stdout) or 2 (the file cannot be read whole). Never a
signal, never more than 10 s.
"""

import json
import os
import subprocess
import time

import pytest

from conftest import REPO_ROOT, ckpt_bin, fixture_params, run_ckpt

CORPUS = os.path.join(REPO_ROOT, "..", "shared", "corpora", "picklescan")
MANIFEST = os.path.join(CORPUS, "MANIFEST.tsv")


def corpus_rows():
    if not os.path.isfile(MANIFEST):
        return []
    rows = []
    with open(MANIFEST) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            name, verdict = line.split("\t")[:2]
            rows.append(pytest.param(name, verdict, id=name))
    return rows


ROWS = corpus_rows()


def scan(path, *extra):
    start = time.monotonic()
    result = subprocess.run([ckpt_bin(), "scan", str(path), *extra], capture_output=True,
                            text=True, timeout=10, stdin=subprocess.DEVNULL)
    elapsed = time.monotonic() - start
    assert result.returncode >= 0, f"{path}: killed by signal {-result.returncode}"
    assert elapsed < 10, f"{path}: scan took {elapsed:.1f} s"
    for bad in ("Traceback", "terminate called", "AddressSanitizer", "runtime error"):
        assert bad not in result.stderr, result.stderr
    return result


@pytest.mark.skipif(not ROWS, reason=f"picklescan corpus not found at {MANIFEST}")
def test_corpus_has_all_rows():
    assert len(ROWS) >= 108


@pytest.mark.skipif(not ROWS, reason=f"picklescan corpus not found at {MANIFEST}")
@pytest.mark.parametrize("name,verdict", ROWS or [pytest.param("-", "-", id="no-corpus")])
def test_corpus_verdict(ckpt, name, verdict):
    path = os.path.join(CORPUS, name)
    result = scan(path)
    if verdict == "safe":
        assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
        assert "NOT ALLOWED" not in result.stdout
    else:
        assert result.returncode in (1, 2), f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
        if result.returncode == 1:
            assert "NOT ALLOWED" in result.stdout, result.stdout
        else:
            lines = [x for x in result.stderr.splitlines() if x.strip()]
            assert len(lines) == 1 and lines[0].startswith("ckpt: error: "), result.stderr
    # The JSON form agrees with the exit code.
    as_json = scan(path, "--json")
    assert as_json.returncode == result.returncode
    report = json.loads(as_json.stdout)
    expected = {0: "safe", 1: "unsafe", 2: "unreadable"}[result.returncode]
    assert report["verdict"] == expected
    if result.returncode in (0, 1):
        assert all(g["allowed"] for g in report["globals"]) == (result.returncode == 0)


@pytest.mark.skipif(not ROWS, reason=f"picklescan corpus not found at {MANIFEST}")
def test_corpus_names_payloads(ckpt):
    """A few payloads, named exactly, with how they are used."""
    result = scan(os.path.join(CORPUS, "malicious2_v4.pkl"), "--json")
    report = json.loads(result.stdout)
    refused = [(g["module"], g["name"], g["called"]) for g in report["globals"] if not g["allowed"]]
    assert ("posix", "system", True) in refused
    text = scan(os.path.join(CORPUS, "malicious1.zip")).stdout
    assert "NOT ALLOWED builtins.eval (called) in record data.pkl" in text


SCANNABLE = fixture_params(lambda e: e["kind"] in ("good", "legacy") and e["name"] != "pyvalues")


@pytest.mark.parametrize("entry", SCANNABLE)
def test_fixtures_scan_safe(ckpt, fixture_path, entry):
    result = scan(fixture_path(entry))
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert "NOT ALLOWED" not in result.stdout
    report = json.loads(scan(fixture_path(entry), "--json").stdout)
    assert report["verdict"] == "safe"
    if entry["layout"] != "audiocraft-exported-pointer":  # {pretrained, exported, version}: no global
        assert report["globals"], "a checkpoint names at least its rebuild functions"
    assert all(p["complete"] for p in report["pickles"])


def test_example_scans_safe(ckpt):
    result = scan(os.path.join(REPO_ROOT, "examples", "musicgen_tiny_training.th"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ALLOWED omegaconf.dictconfig.DictConfig" in result.stdout


def test_pyvalues_bytes_is_allowlisted(ckpt, fixture_path):
    """Empty bytes pickle as __builtin__.bytes(): harmless, so the scan allows it."""
    result = scan(fixture_path("pyvalues"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ALLOWED __builtin__.bytes (called)" in result.stdout
    assert "NOT ALLOWED" not in result.stdout


def test_truncated_fixture_is_unreadable(ckpt, fixture_path):
    result = scan(fixture_path("truncated"))
    assert result.returncode == 2
    assert result.stderr.startswith("ckpt: error: ")


def test_every_pkl_record_and_stack_global(ckpt, tmp_path):
    """A zip with a hostile second .pkl record; STACK_GLOBAL through the memo."""
    import zipfile
    # protocol 4: 'os' 'system' via MEMOIZE/BINGET, then STACK_GLOBAL, called.
    hostile = (b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94h\x00h\x01\x93\x8c\x02id\x85R.")
    path = tmp_path / "two.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("two/data.pkl", b"\x80\x02}q\x00.")
        z.writestr("two/extra/constants.pkl", hostile)
    report = json.loads(scan(path, "--json").stdout)
    assert report["verdict"] == "unsafe"
    assert [p["name"] for p in report["pickles"]] == ["two/data.pkl", "two/extra/constants.pkl"]
    bad = [g for g in report["globals"] if not g["allowed"]]
    assert bad == [{"module": "os", "name": "system", "called": True, "instantiated": False,
                    "built": False, "persistent_id": False, "allowed": False,
                    "record": "two/extra/constants.pkl", "pickle_offset": 20,
                    "file_offset": report["pickles"][1]["offset"] + 20}]
    assert hostile[20] == 0x93  # the STACK_GLOBAL


def test_bare_pickles_every_protocol(ckpt, tmp_path):
    import collections
    import pickle
    for proto in range(0, 6):
        path = tmp_path / f"p{proto}.pkl"
        path.write_bytes(pickle.dumps(collections.OrderedDict(a=[1, 2], b={3}), protocol=proto))
        result = scan(path)
        assert result.returncode == 0, (proto, result.stdout, result.stderr)
        path.write_bytes(pickle.dumps(collections.Counter("ab"), protocol=proto)[:-1])  # no STOP
        result = scan(path)
        assert result.returncode == 2, (proto, result.stdout, result.stderr)
