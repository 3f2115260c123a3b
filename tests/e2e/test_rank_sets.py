"""AudioCraft FSDP rank sets (checkpoint.th, checkpoint.th.1, ...): `info` on a rank file says its set
and rank; `info` on the folder lists the sets. Files made by torch.save under the running torch."""

import json

import torch

from ckpt_testlib import run_ckpt


def make_set(folder, names):
    folder.mkdir()
    for i, n in enumerate(names):
        torch.save({"model": {"w": torch.full((2, 2), float(i))}, "xp.sig": "abc", "best_state": {}},
                   folder / n)


def test_info_on_a_rank_file_and_on_the_folder(tmp_path):
    d = tmp_path / "xp"
    make_set(d, ["checkpoint.th", "checkpoint.th.1", "checkpoint.th.3", "checkpoint_best.th", "notes.txt.1"])
    r = run_ckpt("info", d / "checkpoint.th.1")
    assert r.returncode == 0, r.stderr
    assert "rank set    AudioCraft FSDP rank 1 of set checkpoint.th (ranks 0, 1, 3); missing ranks 2" in r.stdout
    j = json.loads(run_ckpt("info", d / "checkpoint.th", "--json").stdout)
    assert j["rank_set"] == {"set": "checkpoint.th", "rank": 0, "ranks": [0, 1, 3], "missing": [2]}
    j = json.loads(run_ckpt("info", d / "checkpoint_best.th", "--json").stdout)
    assert "rank_set" not in j  # a lone rank-0 file is not a set
    r = run_ckpt("info", d)
    assert r.returncode == 0, r.stderr
    assert "rank set    checkpoint.th: 3 files (ranks 0, 1, 3); missing ranks 2" in r.stdout
    assert "rank set    checkpoint_best.th: 1 file (ranks 0)" in r.stdout
    j = json.loads(run_ckpt("info", d, "--json").stdout)
    assert [s["set"] for s in j["rank_sets"]] == ["checkpoint.th", "checkpoint_best.th"]


def test_info_on_a_folder_without_checkpoints(tmp_path):
    r = run_ckpt("info", tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("ckpt: error:") and "neither" in r.stderr
