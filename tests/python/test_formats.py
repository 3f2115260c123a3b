"""Issue 20 in the Python package: ckpt.open and ckpt.load on the forms other projects ship
(Python 2 OrderedDicts, torch 0.3's _rebuild_tensor, Lightning, whole pickled modules), compared
with torch.load. Fixtures: tests/fixtures/make_formats.py, written by the running torch."""

import os
import sys

import pytest

from conftest import REPO_ROOT, needs_torch

pytestmark = needs_torch


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "fixtures"))
    import make_formats
    d = tmp_path_factory.mktemp("formats")
    make_formats.make_all(str(d))
    return d


def _torch_load(path):
    import torch
    try:
        return torch.load(path, weights_only=False)
    except TypeError:
        return torch.load(path)


@pytest.mark.parametrize("name", ["py2_od_a.pt", "rebuild_v1.pt", "rebuild_v1_py2.pt"])
def test_open_and_load_old_forms(fx, name):
    import ckpt
    import torch
    ref = _torch_load(fx / name)
    with ckpt.open(str(fx / name)) as c:
        assert [t.name for t in c.tensors()] == list(ref)
        sd = c.state_dict(framework="torch")
        assert all(torch.equal(sd[k], ref[k]) for k in ref)
    got = ckpt.load(str(fx / name))
    assert type(got) is type(ref) and list(got) == list(ref)
    assert all(torch.equal(got[k], ref[k]) and got[k].stride() == ref[k].stride() for k in ref)
    assert got._metadata == ref._metadata


@pytest.mark.parametrize("name,layout,state", [("lightning.ckpt", "lightning", "state_dict"),
                                               ("module.pt", "torch-module", "")])
def test_open_picks_the_state_dict(fx, name, layout, state):
    import ckpt
    ref = _torch_load(fx / name)
    expected = ref["state_dict"] if state else ref.state_dict()
    with ckpt.open(str(fx / name)) as c:
        assert c.layout == layout and c.best_state == state
        assert [t.name for t in c.tensors()] == list(expected)


def test_load_refuses_a_torchscript_archive_with_the_reason(fx):
    # torch.load hands it to torch.jit.load, which compiles and runs code/:
    # the refusal says so rather than listing the archive's __torch__ globals.
    import ckpt
    for mode in ("error", "placeholder"):
        with pytest.raises(ckpt.UnsafeGlobalError, match="TorchScript archive.*code/"):
            ckpt.load(str(fx / "script_a.pt"), unsafe_globals=mode)
