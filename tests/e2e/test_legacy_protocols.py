"""The legacy format (torch.save(..., _use_new_zipfile_serialization=False)) with every pickle
protocol torch writes (2..5), read as torch reads it, by every command and by `scan`.

Issue 9 item 4: a protocol 3/4/5 legacy file was "not a PyTorch checkpoint" for every command.
Issue 14: such a file holding os.system(...) was called safe by `scan` (exit 0) while torch.load
ran the command.
"""

import json
import os
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

from conftest import assert_same_objects, run_ckpt

PROTOCOLS = [2, 3, 4, 5]
STATE_FIXTURES = ["legacy", "legacy_p3", "legacy_p4", "legacy_p5"]


def ok(result):
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


@pytest.mark.parametrize("name", STATE_FIXTURES + ["training_legacy_p4"])
def test_info_and_tensors_match_torch(ckpt, fixture_path, name):
    src = fixture_path(name)
    info = json.loads(ok(run_ckpt("info", src, "--json")))
    assert info["format"] == "legacy"
    obj = torch.load(src)
    state = obj if name != "training_legacy_p4" else obj["best_state"]["model"]
    rows = json.loads(ok(run_ckpt("tensors", src, "--json")))
    assert [r["name"] for r in rows] == list(state)
    for r in rows:
        t = state[r["name"]]
        assert r["shape"] == list(t.shape)
        assert r["dtype"] == str(t.dtype).replace("torch.", "")
        assert r["stride"] == list(t.stride())
        assert r["storage_offset"] == t.storage_offset()
    ok(run_ckpt("verify", src))
    assert run_ckpt("scan", src).returncode == 0


@pytest.mark.parametrize("name", STATE_FIXTURES + ["training_legacy_p4"])
def test_rewrite_loads_as_the_same_objects(ckpt, fixture_path, tmp_path, name):
    src = fixture_path(name)
    out = tmp_path / "resaved.pt"
    ok(run_ckpt("rewrite", src, "-o", out))
    assert_same_objects(torch.load(out), torch.load(src))


def test_training_legacy_cfg_edit_export(ckpt, fixture_path, tmp_path):
    src = fixture_path("training_legacy_p4")
    pkg = torch.load(src)
    assert ok(run_ckpt("cfg", src)) == OmegaConf.to_yaml(pkg["xp.cfg"])
    out = tmp_path / "init.th"
    ok(run_ckpt("edit", src, "-o", out, "optim.lr=1e-5"))
    pkg["xp.cfg"].optim.lr = 1e-5
    got = torch.load(out)
    assert OmegaConf.to_yaml(got["xp.cfg"]) == OmegaConf.to_yaml(pkg["xp.cfg"])
    assert_same_objects(got["best_state"], pkg["best_state"])
    exported = tmp_path / "state_dict.bin"
    ok(run_ckpt("export", src, "-o", exported, "--version", "1.4.0a2"))
    ex = torch.load(exported)
    assert_same_objects(ex["best_state"], pkg["best_state"]["model"])
    assert ex["xp.cfg"] == OmegaConf.to_yaml(torch.load(src)["xp.cfg"])


PAYLOAD_WRITER = r"""
import os, sys, torch
class Payload:
    def __reduce__(self):
        return (os.system, ("touch " + sys.argv[2],))
torch.save({"weight": torch.ones(2), "x": Payload()}, sys.argv[1],
           _use_new_zipfile_serialization=False, pickle_protocol=int(sys.argv[3]))
"""


def torch_load_runs_code(path, marker):
    """Loads `path` with this torch (weights_only=False, the seed's route) in a child process;
    True when the payload ran (the marker file exists)."""
    if os.path.exists(marker):
        os.remove(marker)
    subprocess.run([sys.executable, "-c",
                    "import sys, torch; torch.load(sys.argv[1], weights_only=False)", str(path)],
                   capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    return os.path.exists(marker)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_scan_flags_payload_in_legacy_file_of_any_protocol(ckpt, tmp_path, protocol):
    path = tmp_path / f"evil_p{protocol}.pt"
    marker = tmp_path / "marker"
    subprocess.run([sys.executable, "-c", PAYLOAD_WRITER, str(path), str(marker), str(protocol)],
                   check=True, capture_output=True, stdin=subprocess.DEVNULL)
    assert torch_load_runs_code(path, marker), "the fixture must run code in torch.load"
    result = run_ckpt("scan", path, "--json")
    assert result.returncode == 1, (result.stdout, result.stderr)
    doc = json.loads(result.stdout)
    assert doc["container"] == "legacy"
    bad = [g for g in doc["globals"] if not g["allowed"]]
    assert [(g["module"], g["name"]) for g in bad] == [("posix", "system")]
    assert bad[0]["called"] and bad[0]["record"] == "legacy object pickle"
    # Where: the GLOBAL / STACK_GLOBAL opcode that names it, in the object pickle.
    obj_pickle = doc["pickles"][3]
    assert bad[0]["file_offset"] == obj_pickle["offset"] + bad[0]["pickle_offset"]
    assert path.read_bytes()[bad[0]["file_offset"]] in (ord("c"), 0x93)
    storage_classes = [g for g in doc["globals"] if g["name"] == "FloatStorage"]
    assert storage_classes and all(g["persistent_id"] and g["allowed"] for g in storage_classes)
    # torch's five pickles, in torch's order, all read.
    assert [p["name"] for p in doc["pickles"]] == [
        "legacy magic pickle", "legacy protocol pickle", "legacy sys_info pickle",
        "legacy object pickle", "legacy storage keys pickle"]
    assert all(p["complete"] for p in doc["pickles"])


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_legacy_magic_in_any_encoding_is_legacy(ckpt, tmp_path, protocol):
    """torch compares the first pickle's value, not its bytes: a magic number written with
    other opcodes (protocol 0 text LONG) still makes the rest a legacy file that torch reads."""
    src = tmp_path / "p.pt"
    torch.save({"w": torch.ones(2)}, src, _use_new_zipfile_serialization=False,
               pickle_protocol=protocol)
    data = src.read_bytes()
    # Replace the magic pickle by a protocol-0 one with the same value.
    import pickle
    import pickletools
    first_len = next(pos for op, arg, pos in pickletools.genops(data) if op.name == "STOP") + 1
    magic = pickle.loads(data[:first_len])
    odd = pickle.dumps(magic, protocol=0)
    assert odd[:1] != b"\x80"
    path = tmp_path / "odd_magic.pt"
    path.write_bytes(odd + data[first_len:])
    assert_same_objects(torch.load(path), torch.load(src))
    info = json.loads(ok(run_ckpt("info", path, "--json")))
    assert info["format"] == "legacy"
    assert json.loads(ok(run_ckpt("scan", path, "--json")))["container"] == "legacy"
