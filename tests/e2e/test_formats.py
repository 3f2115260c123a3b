"""Issue 20: the checkpoints other projects ship, answered as torch.load answers them by every
command. Fixtures: tests/fixtures/make_formats.py, written by the running torch (1.13 or 2.x)
at test time; the Python 2 and torch 0.3 forms by torch.save with their writers' reduce.

Each class fails on the binary before issue 20:
  1. mapping constructor forms (Python 2 OrderedDict, dict/defaultdict from pairs,
     copyreg._reconstructor) read as empty mappings; diff of differing files said "no differences";
  2. torch 0.3's _rebuild_tensor: "a tensor of a kind ckpt cannot read";
  3. paths ls prints (object attributes, optimizer/state/0/...) refused by ls/show/--state; a
     pickled nn.Module had no state dict;
  4. no state dict picked without an AudioCraft best state;
  5. scan/verify of .safetensors, shard folders and indexes refused;
  6. TorchScript archives not named, no state dict;
  7. Lightning not named, its state dict not picked, edit refused.
"""

import collections
import json
import os
import struct
import sys

import pytest
import torch

from conftest import REPO_ROOT, assert_same_objects, run_ckpt

sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "fixtures"))
import make_formats  # noqa: E402

DTYPES = {"F32": torch.float32, "F16": torch.float16, "I64": torch.int64, "BF16": torch.bfloat16}


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    d = tmp_path_factory.mktemp("formats")
    make_formats.make_all(str(d))
    return d


def ok(r, code=0):
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    return r.stdout


def load(path):
    return torch.load(path, weights_only=False) if "weights_only" in torch.load.__code__.co_varnames \
        else torch.load(path)


def assert_rows_match(rows, state):
    """`tensors --json` rows against a state dict: names, order, dtypes, shapes, strides, offsets."""
    assert [r["name"] for r in rows] == list(state)
    for r in rows:
        t = state[r["name"]]
        assert r["dtype"] == str(t.dtype).replace("torch.", ""), r["name"]
        assert r["shape"] == list(t.shape), r["name"]
        assert r["stride"] == list(t.stride()), r["name"]
        assert r["storage_offset"] == t.storage_offset(), r["name"]


def tensors_json(path, *extra):
    return json.loads(ok(run_ckpt("tensors", path, "--json", *extra)))


def shown_values(path, name, *extra):
    """`show --head 0` values as a tensor of the dtype it names."""
    out = ok(run_ckpt("show", path, name, "--head", "0", *extra)).split("\n")
    dtype = getattr(torch, out[0].split(": ", 1)[1].split()[0])
    body = " ".join(out[1:]).replace("[", " ").replace("]", " ").replace(",", " ")  # a 2-D tensor prints as a matrix
    vals = [float(v) for v in body.split()]
    return torch.tensor(vals, dtype=torch.float64).to(dtype)


def same_bits(a, b):
    a, b = a.contiguous().reshape(-1), b.contiguous().reshape(-1)
    return a.dtype == b.dtype and a.numel() == b.numel() and bytes(a.numpy().tobytes()) == bytes(b.numpy().tobytes())


def read_safetensors(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, d in header.items():
        b, e = d["data_offsets"]
        raw = bytearray(data[8 + n + b:8 + n + e])
        t = torch.frombuffer(raw, dtype=DTYPES[d["dtype"]]) if raw else torch.empty(0, dtype=DTYPES[d["dtype"]])
        out[name] = t.reshape(d["shape"])
    return out


def check_every_reader(path, state, tmp_path, extra=()):
    """tensors, stats, show, safetensors of `path` against the state dict torch gives."""
    assert_rows_match(tensors_json(path, *extra), state)
    stats = json.loads(ok(run_ckpt("stats", path, "--json", *extra)))
    assert [s["name"] for s in stats] == list(state)
    for s in stats:
        assert s["numel"] == state[s["name"]].numel()
    for name, t in state.items():
        assert same_bits(shown_values(path, name, *extra), t.detach()), name
    out = tmp_path / "out.safetensors"
    ok(run_ckpt("safetensors", path, "-o", out, "--force", *extra))
    st = read_safetensors(out)
    assert sorted(st) == sorted(state)
    for name, t in state.items():
        assert same_bits(st[name], t.detach()), name


# ---------------------------------------------------------------- 1. mapping constructor forms

def test_python2_ordereddict_every_command(ckpt, fx, tmp_path):
    src = fx / "py2_od_a.pt"
    state = load(src)
    info = json.loads(ok(run_ckpt("info", src, "--json")))
    assert [k["key"] for k in info["keys"]] == list(state)
    assert info["layout"] == "state-dict"
    ls = ok(run_ckpt("ls", src, "--depth", "1"))
    assert all(f"\n  {k}: " in ls for k in state), ls
    check_every_reader(src, state, tmp_path)
    # rewrite: what torch.save(torch.load(f)) holds, _metadata included
    out = tmp_path / "resaved.pt"
    ok(run_ckpt("rewrite", src, "-o", out))
    again = load(out)
    assert_same_objects(again, state)
    assert again._metadata == state._metadata


def test_python2_ordereddict_diff_exit_codes(ckpt, fx):
    r = run_ckpt("diff", fx / "py2_od_a.pt", fx / "py2_od_b.pt", "--json")
    assert r.returncode == 1, (r.stdout, r.stderr)
    d = json.loads(r.stdout)
    t = d.get("tensors", d)
    assert d["equal"] is False and t["compared"] == 5 and len(t["values"]) == 5
    ok(run_ckpt("diff", fx / "py2_od_a.pt", fx / "py2_od_a2.pt"))


@pytest.mark.parametrize("form", ["dict_pairs", "dict_of_dict", "od_tuples", "defaultdict_pairs", "reconstructor"])
def test_mapping_constructor_forms(ckpt, fx, tmp_path, form):
    src = fx / "mapping_forms.pt"
    obj = load(src)
    assert len(obj[form]) == 5
    assert_rows_match(tensors_json(src, "--state", form), obj[form])
    ls = ok(run_ckpt("ls", src, form, "--depth", "1"))
    assert "layer.weight: tensor" in ls
    out = tmp_path / "resaved.pt"
    ok(run_ckpt("rewrite", src, "-o", out))
    again = load(out)
    assert type(again[form]) is type(obj[form])
    assert_same_objects(dict(again[form]), dict(obj[form]))


# ---------------------------------------------------------------- 2. torch 0.3's _rebuild_tensor

@pytest.mark.parametrize("name", ["rebuild_v1.pt", "rebuild_v1_py2.pt"])
def test_rebuild_tensor_v1(ckpt, fx, tmp_path, name):
    src = fx / name
    state = load(src)
    ok(run_ckpt("verify", src))
    info = json.loads(ok(run_ckpt("info", src, "--json")))
    assert info["layout"] == "state-dict"
    check_every_reader(src, state, tmp_path)
    assert ok(run_ckpt("scan", src)).startswith(str(src) + ": safe") or "safe" in ok(run_ckpt("scan", src))
    r = run_ckpt("diff", src, fx / "rebuild_v1_py2_b.pt")
    assert r.returncode == 1, (r.stdout, r.stderr)


# ---------------------------------------------------------------- 3. paths and whole modules

def test_pickled_module_state_dict(ckpt, fx, tmp_path):
    src = fx / "module.pt"
    model = load(src)
    state = model.state_dict()
    assert "0.scratch" not in state and "0.counter" in state  # non-persistent buffer left out
    info = json.loads(ok(run_ckpt("info", src, "--json")))
    assert info["layout"] == "torch-module"
    r = run_ckpt("tensors", src)
    assert "nn.Module" in r.stderr
    check_every_reader(src, state, tmp_path)
    r = run_ckpt("diff", src, fx / "module_b.pt")
    assert r.returncode == 1, (r.stdout, r.stderr)
    ok(run_ckpt("diff", src, src))
    # A module under a key, and a submodule by the path ls prints.
    assert_rows_match(tensors_json(fx / "model_in_dict.pt"), state)
    assert_rows_match(tensors_json(src, "--state", "_modules/2"), model[2].state_dict())
    # edit's key surgery refuses a module (it edits mappings).
    r = run_ckpt("edit", src, "-o", tmp_path / "e.pt", "--drop", "0.*")
    assert r.returncode == 2 and "nn.Module" in r.stderr


def test_every_path_ls_prints_is_accepted(ckpt, fx):
    src = fx / "model_in_dict.pt"
    obj = load(src)
    listing = ok(run_ckpt("ls", src, "--depth", "3"))
    assert "model/_modules" in listing or "_modules:" in listing
    mods = ok(run_ckpt("ls", src, "model/_modules", "--depth", "1"))
    assert [line.split(":")[0].strip() for line in mods.splitlines()[1:]] == list(obj["model"]._modules)
    args = ok(run_ckpt("ls", src, "args", "--depth", "1"))
    assert "lr: " in args and "layers: 2" in args
    ok(run_ckpt("ls", src, "args/layers"))
    w = obj["model"][0].weight.detach()
    assert same_bits(shown_values(src, "model/_modules/0/_parameters/weight"), w)
    # optimizer state by the path ls prints
    src = fx / "model_state_dict.pt"
    opt = load(src)["optimizer_state_dict"]
    assert "exp_avg" in ok(run_ckpt("ls", src, "optimizer_state_dict/state/0"))
    assert same_bits(shown_values(src, "optimizer_state_dict/state/0/exp_avg"), opt["state"][0]["exp_avg"])
    assert same_bits(shown_values(src, "exp_avg", "--state", "optimizer_state_dict/state/0"),
                     opt["state"][0]["exp_avg"])


# ---------------------------------------------------------------- 4. the state dict users mean

@pytest.mark.parametrize("name,path", [
    ("model_state_dict.pt", "model_state_dict"),
    ("model_key.pt", "model"),
    ("model_nested.pt", "model/state_dict"),
    ("single_deep.pt", "weights/net"),
    ("lightning.ckpt", "state_dict"),
])
def test_state_dict_picked(ckpt, fx, tmp_path, name, path):
    src = fx / name
    obj = load(src)
    state = obj
    for part in path.split("/"):
        state = state[part]
    r = run_ckpt("tensors", src, "--json")
    assert r.returncode == 0, r.stderr
    assert f"'{path}'" in r.stderr  # said on stderr
    assert_rows_match(json.loads(r.stdout), state)
    check_every_reader(src, state, tmp_path)


def test_ambiguous_state_dicts_listed(ckpt, fx):
    r = run_ckpt("tensors", fx / "ambiguous.pt")
    assert r.returncode == 2
    assert "'teacher'" in r.stderr and "'student'" in r.stderr and "--state" in r.stderr
    ok(run_ckpt("tensors", fx / "ambiguous.pt", "--state", "student"))
    assert run_ckpt("diff", fx / "ambiguous.pt", fx / "ambiguous.pt", "--state", "teacher").returncode == 0


# ---------------------------------------------------------------- 5. safetensors in every command

def test_safetensors_scan_verify_and_folders(ckpt, fx, tmp_path):
    src = fx / "module.pt"
    state = load(src).state_dict()
    st = tmp_path / "m.safetensors"
    ok(run_ckpt("safetensors", src, "-o", st))
    assert "safe" in ok(run_ckpt("scan", st))
    assert json.loads(ok(run_ckpt("scan", st, "--json")))["container"] == "safetensors"
    ok(run_ckpt("verify", st))
    # A header whose offsets run past the data: verify finds it, scan does not call it safe.
    data = bytearray(st.read_bytes())
    n = struct.unpack("<Q", data[:8])[0]
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(data[:8 + n]) + bytes(data[8 + n:-4]))
    assert run_ckpt("verify", bad).returncode == 1
    assert run_ckpt("scan", bad).returncode == 2
    # Hugging Face shards: the folder and its index, in info, tensors, verify, diff.
    shards = tmp_path / "shards"
    ok(run_ckpt("safetensors", src, "-o", shards, "--max-shard-size", "100"))
    for p in (shards, shards / "model.safetensors.index.json"):
        info = json.loads(ok(run_ckpt("info", p, "--json")))
        assert info["format"] == "safetensors"
        rows = tensors_json(p)
        assert sorted(r["name"] for r in rows) == sorted(state)
        ok(run_ckpt("verify", p))
        ok(run_ckpt("diff", p, st))
    assert run_ckpt("diff", shards, fx / "module_b.pt").returncode == 1
    # A folder holding one model.safetensors.
    one = tmp_path / "one"
    ok(run_ckpt("safetensors", src, "-o", one, "--max-shard-size", "1GB"))
    assert sorted(r["name"] for r in tensors_json(one)) == sorted(state)


# ---------------------------------------------------------------- 6. TorchScript

def test_torchscript_archive(ckpt, fx, tmp_path):
    src = fx / "script_a.pt"
    state = torch.jit.load(str(src)).state_dict()
    info = json.loads(ok(run_ckpt("info", src, "--json")))
    assert info["layout"] == "torchscript" and "TorchScript" in info["kind"]
    assert "torch.jit.load" in ok(run_ckpt("info", src))
    check_every_reader(src, state, tmp_path)
    assert run_ckpt("diff", src, fx / "script_b.pt").returncode == 1
    ok(run_ckpt("diff", src, src))
    assert run_ckpt("scan", src).returncode != 0  # never safe: torch.jit.load runs its code/


# ---------------------------------------------------------------- 7. Lightning

def test_lightning_info_and_edit(ckpt, fx, tmp_path):
    src = fx / "lightning.ckpt"
    obj = load(src)
    info = json.loads(ok(run_ckpt("info", src, "--json")))
    assert info["layout"] == "lightning"
    assert info["best_state"] == "state_dict"
    text = ok(run_ckpt("info", src))
    for part in ("Lightning 2.4.0", "epoch 4", "global step 120", "hyper-parameters (lr, hidden)",
                 "ModelCheckpoint", "1 optimizer state", "1 lr scheduler"):
        assert part in text, part
    out = tmp_path / "renamed.ckpt"
    ok(run_ckpt("edit", src, "-o", out, "--rename", r"^model\.="))
    got = load(out)
    assert list(got["state_dict"]) == [k[len("model."):] for k in obj["state_dict"]]
    assert got["epoch"] == 4 and got["global_step"] == 120
    out2 = tmp_path / "dropped.ckpt"
    ok(run_ckpt("edit", src, "-o", out2, "--drop", "model.2.*"))
    assert list(load(out2)["state_dict"]) == [k for k in obj["state_dict"] if not k.startswith("model.2.")]
