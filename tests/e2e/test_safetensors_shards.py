"""Sharded safetensors: `ckpt safetensors FILE -o DIR --max-shard-size SIZE` against huggingface_hub's
split_torch_state_dict_into_shards and safetensors' save_file (checked under the torch 2 Python, which
has both), and `ckpt from-safetensors` reading the index or its folder."""

import json
import os
import subprocess

import pytest
import torch

from ckpt_testlib import REPO_ROOT, run_ckpt
from test_dcp import torch2_python

HF_CHECK = os.path.join(REPO_ROOT, "tests", "e2e", "hf_shards_torch2.py")


@pytest.fixture(scope="module")
def state_file(tmp_path_factory):
    g = torch.Generator().manual_seed(5)
    sd = {}
    for i, n in enumerate([300, 17, 600, 40, 1200, 8, 250, 250, 90, 3000, 64, 5]):
        dtype = [torch.float32, torch.float16, torch.bfloat16, torch.int64][i % 4]
        sd[f"layers.{i}.weight"] = (torch.randn(n, generator=g) * 100).to(dtype)
    sd["head.weight"] = torch.randn(12, 10, generator=g)
    path = tmp_path_factory.mktemp("shards") / "model.pt"
    torch.save(sd, path)
    return path


def hf_check(path, folder, size):
    r = subprocess.run([torch2_python(), HF_CHECK, "check", path, folder, size], capture_output=True, text=True,
                       timeout=300, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout + r.stderr
    return int(r.stdout.split()[-1])


@pytest.mark.parametrize("size,files", [("2KB", None), ("1000", None), ("4KB", None), ("1GB", 1)])
def test_shards_as_huggingface_hub_splits(state_file, tmp_path, size, files):
    out = tmp_path / "hf"
    r = run_ckpt("safetensors", state_file, "-o", out, "--max-shard-size", size, "--state", "")
    assert r.returncode == 0, r.stderr
    n = hf_check(state_file, out, size)
    assert n > 1 if files is None else n == files


def test_from_sharded_index_and_folder_round_trip(state_file, tmp_path):
    out = tmp_path / "hf"
    assert run_ckpt("safetensors", state_file, "-o", out, "--max-shard-size", "2KB", "--state", "").returncode == 0
    index = json.loads((out / "model.safetensors.index.json").read_text())
    want = torch.load(state_file)
    for src in (out, out / "model.safetensors.index.json"):
        back = tmp_path / "back.pt"
        r = run_ckpt("from-safetensors", src, "-o", back, "--force")
        assert r.returncode == 0, r.stderr
        got = torch.load(back)
        assert list(got) == list(index["weight_map"])
        assert sorted(got) == sorted(want)
        for k in want:
            assert got[k].dtype == want[k].dtype and torch.equal(got[k], want[k]), k
    # shards -> file -> shards: split as huggingface_hub splits the file (its order is the index's,
    # so tensors over the limit may move), and the same tensors come back
    again = tmp_path / "again"
    assert run_ckpt("safetensors", back, "-o", again, "--max-shard-size", "2KB", "--state", "").returncode == 0
    hf_check(back, again, "2KB")
    third = tmp_path / "third.pt"
    assert run_ckpt("from-safetensors", again, "-o", third).returncode == 0
    got = torch.load(third)
    assert sorted(got) == sorted(want) and all(torch.equal(got[k], want[k]) for k in want)


def test_refuses_existing_shards(state_file, tmp_path):
    out = tmp_path / "hf"
    assert run_ckpt("safetensors", state_file, "-o", out, "--max-shard-size", "2KB", "--state", "").returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    r = run_ckpt("safetensors", state_file, "-o", out, "--max-shard-size", "2KB", "--state", "")
    assert r.returncode == 2 and "exists" in r.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert run_ckpt("safetensors", state_file, "-o", out, "--max-shard-size", "2KB", "--state", "",
                    "--force").returncode == 0
    r = run_ckpt("safetensors", state_file, "-o", tmp_path / "x", "--max-shard-size", "5XB", "--state", "")
    assert r.returncode == 2 and "--max-shard-size" in r.stderr


@pytest.mark.parametrize("how,needle", [("escape", "not a plain file name"), ("missing", "missing"),
                                        ("unmapped", "is not in its shard"), ("notjson", "not JSON")])
def test_hostile_index(state_file, tmp_path, how, needle):
    out = tmp_path / "hf"
    assert run_ckpt("safetensors", state_file, "-o", out, "--max-shard-size", "2KB", "--state", "").returncode == 0
    ipath = out / "model.safetensors.index.json"
    index = json.loads(ipath.read_text())
    first = next(iter(index["weight_map"]))
    if how == "escape":  # a real shard outside the folder
        (tmp_path / "evil.safetensors").write_bytes((out / index["weight_map"][first]).read_bytes())
        index["weight_map"][first] = "../evil.safetensors"
    elif how == "missing":
        os.remove(out / index["weight_map"][first])
    elif how == "unmapped":
        index["weight_map"]["not.a.tensor"] = index["weight_map"][first]
    if how == "notjson":
        ipath.write_text("{")
    else:
        ipath.write_text(json.dumps(index))
    back = tmp_path / "back.pt"
    r = run_ckpt("from-safetensors", out, "-o", back)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ckpt: error:") and needle in lines[0], r.stderr
    assert not back.exists()
