"""A checkpoint whose pickle is large (3,000 tensors: data.pkl ~200 KB, as a real model's):
the CLI reads such a graph over a heap it grows at once for it (pickle::Graph::before_large_graph,
past 32 KiB of pickle), so `tensors` and `edit -o` on it are checked against torch here.
The repository's other fixtures have small pickles.
"""

import json

import pytest
import torch

from conftest import run_ckpt

COUNT = 3000


def ok(result):
    assert result.returncode == 0, \
        f"exit {result.returncode}\nstdout: {result.stdout[-2000:]}\nstderr: {result.stderr[-2000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    d = tmp_path_factory.mktemp("many")
    gen = torch.Generator().manual_seed(11)
    model = {}
    for i in range(COUNT):
        shape = [(i % 5) + 1, (i % 3) + 2]
        dtype = torch.float16 if i % 4 == 0 else torch.float32
        model[f"transformer.layers.{i // 10}.block_{i % 10}.weight"] = torch.randn(*shape, generator=gen).to(dtype)
    pkg = {"best_state": {"model": model}, "xp.sig": "abc", "version": "1.3.0", "history": [{"train": {"loss": 1.5}}]}
    path = d / "many.th"
    torch.save(pkg, str(path))
    return path, model


def test_tensors_lists_what_torch_loads(many):
    path, model = many
    rows = json.loads(ok(run_ckpt("tensors", "--json", str(path))))
    assert [r["name"] for r in rows] == list(model)
    for row, (name, t) in zip(rows, model.items()):
        assert row["shape"] == list(t.shape), name
        assert row["dtype"] == str(t.dtype).replace("torch.", ""), name
        assert row["nbytes"] == t.numel() * t.element_size(), name


def test_edit_output_loads_in_torch_with_the_same_tensors(many, tmp_path):
    path, model = many
    out = tmp_path / "edited.th"
    ok(run_ckpt("edit", str(path), "-o", str(out), "-q", "--drop", "transformer.layers.0.*",
                "--rename", r"^transformer\.=lm."))
    loaded = torch.load(str(out), map_location="cpu")
    expected = {"lm." + k[len("transformer."):]: v for k, v in model.items()
                if not k.startswith("transformer.layers.0.")}
    got = loaded["best_state"]["model"]
    assert list(got) == list(expected)
    for name, t in expected.items():
        assert got[name].dtype == t.dtype and torch.equal(got[name], t), name
    assert loaded["history"] == [{"train": {"loss": 1.5}}] and loaded["version"] == "1.3.0"
