"""Self-tests of the comparison helpers, against torch.save itself (no ckpt needed)."""

import collections
import io
import pickle

import pytest
import torch

from conftest import (
    FIXTURE_ENTRIES, assert_same_objects, canonical_pickle, compare_zip_layouts, fixture_params,
    pickle_of, read_zip_records, torch_resave, write_torch_zip, zip_layout,
)


def pickle2(obj):
    return pickle.dumps(obj, protocol=2)


def test_canonical_pickle_ignores_string_sharing():
    s1 = "abc"
    s2 = "".join(["ab", "c"])
    assert s1 is not s2
    shared = pickle2([s1, s1, {"k": s1}])
    unshared = pickle2([s1, s2, {"k": "".join(["a", "bc"])}])
    assert shared != unshared  # BINGET vs a second BINUNICODE
    assert canonical_pickle(shared) == canonical_pickle(unshared)


def test_canonical_pickle_sees_object_sharing():
    inner = [1, 2]
    shared = pickle2([inner, inner])
    separate = pickle2([[1, 2], [1, 2]])
    assert canonical_pickle(shared) != canonical_pickle(separate)


def test_canonical_pickle_renumbers_memo():
    # An unshared equal string takes a memo slot, shifting the list's memo id.
    s1, s2, inner = "abc", "".join(["ab", "c"]), [1]
    shared = pickle2([s1, s1, inner, inner])
    unshared = pickle2([s1, s2, inner, inner])
    assert shared != unshared
    assert canonical_pickle(shared) == canonical_pickle(unshared)
    assert canonical_pickle(shared) != canonical_pickle(pickle2([s1, s1, [1], [1]]))


def test_canonical_pickle_distinguishes_values():
    assert canonical_pickle(pickle2([0.0])) != canonical_pickle(pickle2([-0.0]))
    assert canonical_pickle(pickle2({"a": 1})) != canonical_pickle(pickle2({"a": 2}))
    assert canonical_pickle(pickle2("a")) != canonical_pickle(pickle2(b"a"))


def test_canonical_pickle_of_torch_resave(tmp_path):
    # torch.save(torch.load(x)) shares strings differently (interned keys) but
    # must encode the same graph.
    sd = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.LayerNorm(3)).state_dict()
    first = tmp_path / "a" / "model.pt"
    second = tmp_path / "b" / "model.pt"
    first.parent.mkdir()
    second.parent.mkdir()
    torch.save({"sd": sd, "again": sd, "cfg": {"weight": "weight"}}, first)
    torch_resave(first, second)
    assert canonical_pickle(pickle_of(first)) == canonical_pickle(pickle_of(second))


def test_zip_writer_reproduces_torch_save(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"a": torch.arange(5), "e": torch.empty(0), "b": torch.ones(3, 3)}, path)
    copy = tmp_path / "copy.pt"
    write_torch_zip(copy, read_zip_records(path))
    assert copy.read_bytes() == path.read_bytes()


def test_compare_zip_layouts_tolerates_pickle_size_only(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"a": torch.arange(5), "b": torch.ones(3)}, path)
    records = read_zip_records(path)
    longer = tmp_path / "longer" / "model.pt"
    longer.parent.mkdir()
    write_torch_zip(longer, [(records[0][0], records[0][1] + b"\x00" * 7)] + records[1:])
    compare_zip_layouts(zip_layout(longer), zip_layout(path))
    changed = tmp_path / "changed" / "model.pt"
    changed.parent.mkdir()
    write_torch_zip(changed, records[:1] + [(records[1][0], b"\x01" + records[1][1][1:])]
                    + records[2:])
    with pytest.raises(AssertionError):
        compare_zip_layouts(zip_layout(changed), zip_layout(path))


@pytest.mark.parametrize("entry", fixture_params(lambda e: e["kind"] == "good"))
def test_torch_resave_is_stable(entry, fixture_path, tmp_path):
    """torch.save(torch.load(f)) twice gives the same layout, pickle and objects."""
    src = fixture_path(entry)
    once = tmp_path / "once" / src.name
    twice = tmp_path / "twice" / src.name
    once.parent.mkdir()
    twice.parent.mkdir()
    torch_resave(src, once)
    torch_resave(once, twice)
    compare_zip_layouts(zip_layout(once), zip_layout(src))
    compare_zip_layouts(zip_layout(twice), zip_layout(once))
    assert canonical_pickle(pickle_of(once)) == canonical_pickle(pickle_of(src))
    assert_same_objects(torch.load(src), torch.load(once))
    assert_same_objects(torch.load(once), torch.load(twice))


def test_assert_same_objects_catches_differences():
    base = torch.arange(4.0)
    a = {"x": base, "y": base[1:]}
    b = {"x": base.clone(), "y": base.clone()[1:]}
    with pytest.raises(AssertionError, match="storage sharing"):
        assert_same_objects(a, b)
    with pytest.raises(AssertionError, match="type"):
        assert_same_objects(collections.OrderedDict(a), dict(a))
    with pytest.raises(AssertionError):
        assert_same_objects({"x": 1, "y": 2}, {"y": 2, "x": 1})
    with pytest.raises(AssertionError):
        assert_same_objects([0.0], [-0.0])
    assert_same_objects([float("nan")], [float("nan")])
    with pytest.raises(AssertionError, match="stride"):
        assert_same_objects(torch.zeros(2, 3).t(), torch.zeros(3, 2))
    with pytest.raises(AssertionError, match="type"):
        assert_same_objects(torch.nn.Parameter(torch.zeros(2)), torch.zeros(2))
    with pytest.raises(AssertionError, match="contents"):
        t = torch.zeros(3)
        assert_same_objects(t[:2], torch.tensor([0.0, 0.0, 1.0])[:2])
    shared = [1]
    with pytest.raises(AssertionError, match="sharing"):
        assert_same_objects([shared, shared], [[1], [1]])
    sd = torch.nn.Linear(2, 2).state_dict()
    plain = collections.OrderedDict(sd)
    with pytest.raises(AssertionError, match="attributes"):
        assert_same_objects(sd, plain)
    recursive = [1]
    recursive.append(recursive)
    recursive2 = [1]
    recursive2.append(recursive2)
    assert_same_objects(recursive, recursive2)


def test_assert_same_objects_dictconfig():
    from omegaconf import OmegaConf
    a = OmegaConf.create({"a": 1, "b": "${a}", "c": [1, {"d": "???"}]})
    b = OmegaConf.create({"a": 1, "b": "${a}", "c": [1, {"d": "???"}]})
    assert_same_objects(a, b)
    OmegaConf.set_struct(b, True)
    with pytest.raises(AssertionError, match="flags"):
        assert_same_objects(a, b)
    c = OmegaConf.create({"a": 1, "b": "${a}", "c": [1, {"d": "x"}]})
    with pytest.raises(AssertionError):
        assert_same_objects(a, c)
    buf = io.BytesIO()
    torch.save(a, buf)
    buf.seek(0)
    assert_same_objects(a, torch.load(buf))


def test_manifest_matches_fixture_list(manifest):
    assert [e["name"] for e in FIXTURE_ENTRIES] == list(manifest)
    for entry in manifest.values():
        assert entry["size"] < 2_000_000, entry


def test_committed_example_is_reproducible(tmp_path):
    """examples/musicgen_tiny_training.th is exactly what make_fixtures.py --example writes."""
    if not torch.__version__.startswith("1.13"):
        pytest.skip("the committed example is torch 1.13 + omegaconf 2.2's output (Debian's), "
                    "other versions pickle the config differently")
    import os
    import subprocess
    import sys
    from conftest import MAKE_FIXTURES, REPO_ROOT
    committed = os.path.join(REPO_ROOT, "examples", "musicgen_tiny_training.th")
    fresh = tmp_path / "musicgen_tiny_training.th"
    subprocess.run([sys.executable, MAKE_FIXTURES, "--example", str(fresh)], check=True,
                   stdin=subprocess.DEVNULL)
    with open(committed, "rb") as f:
        assert f.read() == fresh.read_bytes()
    assert fresh.stat().st_size < 500_000
