"""End-to-end tests of ckpt's foundation commands: info, ls, tensors, rewrite, verify.

Every expectation comes from real torch (Debian python3-torch 1.13) on the
fixtures tests/fixtures/make_fixtures.py writes.
"""

import fnmatch
import json
import os
import struct

import pytest
import torch

from ckpt_testlib import dialect_of_torch
from conftest import (
    assert_same_objects, canonical_pickle, compare_zip_layouts, diff_canonical, fixture_params,
    json_strings, pickle_of, read_zip_records, run_ckpt, write_torch_zip, zip_layout,
)

GOOD = fixture_params(lambda e: e["kind"] in ("good", "legacy"))
ZIP_GOOD = fixture_params(lambda e: e["kind"] == "good")
WITH_STATE = fixture_params(lambda e: e["kind"] in ("good", "legacy") and e["state"] is not None)


def ok(result):
    """Asserts a ckpt run succeeded; returns its stdout."""
    assert result.returncode == 0, \
        f"exit {result.returncode}\nstdout: {result.stdout[-2000:]}\nstderr: {result.stderr[-2000:]}"
    return result.stdout


def assert_usage_error(result, *words):
    """Exit 2 with one `ckpt: error: ...` line on stderr (no traceback or abort)."""
    assert result.returncode == 2, \
        f"exit {result.returncode}, expected 2\nstdout: {result.stdout}\nstderr: {result.stderr}"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, "no error message on stderr"
    assert lines[-1].startswith("ckpt: error: "), f"stderr: {result.stderr!r}"
    for bad in ("Traceback", "terminate called", "what():", "AddressSanitizer", "runtime error"):
        assert bad not in result.stderr, f"stderr: {result.stderr!r}"
    for word in words:
        assert word in result.stderr, f"{word!r} not in {result.stderr!r}"


def state_of(obj, path):
    """The object at a '/'-separated path ('' = the root)."""
    for part in [p for p in path.split("/") if p]:
        if isinstance(obj, (list, tuple)):
            obj = obj[int(part)]
        else:
            obj = obj[part]
    return obj


def tensor_rows(state):
    """What `ckpt tensors --json` must print for a state dict, from torch."""
    rows = []
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        rows.append({
            "name": name,
            "dtype": str(value.dtype).replace("torch.", ""),
            "shape": list(value.shape),
            "numel": value.numel(),
            "nbytes": value.numel() * value.element_size(),
            "stride": list(value.stride()),
            "storage_offset": value.storage_offset(),
            "requires_grad": value.requires_grad,
            "parameter": isinstance(value, torch.nn.Parameter),
        })
    return rows


# ---------------------------------------------------------------- rewrite

@pytest.mark.parametrize("entry", GOOD)
def test_rewrite_matches_torch_save(ckpt, entry, fixture_path, tmp_path):
    """ckpt rewrite == torch.save(torch.load(fixture)), with the same base name."""
    src = fixture_path(entry)
    ours = tmp_path / "ours" / src.name
    ref = tmp_path / "ref" / src.name
    ours.parent.mkdir()
    ref.parent.mkdir()
    # A legacy input has no dialect to keep: ask for the running torch's.
    dialect = ["--dialect", dialect_of_torch()] if entry["kind"] == "legacy" else []
    ok(run_ckpt("rewrite", src, "-o", ours, *dialect))
    torch.save(torch.load(src), ref)
    compare_zip_layouts(zip_layout(ours), zip_layout(ref))
    canon_ours, canon_ref = canonical_pickle(pickle_of(ours)), canonical_pickle(pickle_of(ref))
    assert canon_ours == canon_ref, diff_canonical(canon_ours, canon_ref)
    assert_same_objects(torch.load(ours), torch.load(src))


@pytest.mark.parametrize("entry", ZIP_GOOD)
def test_rewrite_keeps_pickle_and_records(ckpt, entry, fixture_path, tmp_path):
    """A rewrite of a torch-written file keeps every storage record byte for byte."""
    src = fixture_path(entry)
    out = tmp_path / src.name
    ok(run_ckpt("rewrite", src, "-o", out))
    ours = dict(read_zip_records(out))
    for name, payload in read_zip_records(src):
        if not name.endswith("data.pkl"):
            assert ours.get(name) == payload, f"record {name} differs"
    assert canonical_pickle(pickle_of(out)) == canonical_pickle(pickle_of(src))


def test_rewrite_twice_is_identical(ckpt, fixture_path, tmp_path):
    src = fixture_path("training")
    first = tmp_path / "a" / src.name
    second = tmp_path / "b" / src.name
    first.parent.mkdir()
    second.parent.mkdir()
    ok(run_ckpt("rewrite", src, "-o", first))
    ok(run_ckpt("rewrite", first, "-o", second))
    assert first.read_bytes() == second.read_bytes()


def test_rewrite_other_base_name_renames_archive(ckpt, fixture_path, tmp_path):
    src = fixture_path("dtypes")
    out = tmp_path / "renamed.pt"
    ok(run_ckpt("rewrite", src, "-o", out))
    names = [e["name"] for e in zip_layout(out)["entries"]]
    assert names[0] == "renamed/data.pkl", names
    assert all(n.startswith("renamed/") for n in names), names
    assert_same_objects(torch.load(out), torch.load(src))


def test_rewrite_refuses_to_overwrite(ckpt, fixture_path, tmp_path):
    src = fixture_path("dtypes")
    out = tmp_path / "exists.pt"
    out.write_bytes(b"precious")
    assert_usage_error(run_ckpt("rewrite", src, "-o", out))
    assert out.read_bytes() == b"precious"
    ok(run_ckpt("rewrite", src, "-o", out, "--force"))
    assert_same_objects(torch.load(out), torch.load(src))


def test_rewrite_of_truncated_leaves_no_output(ckpt, fixture_path, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    assert_usage_error(run_ckpt("rewrite", fixture_path("truncated"), "-o", out_dir / "x.th"))
    assert list(out_dir.iterdir()) == [], "partial or temporary output left behind"


def test_rewrite_into_missing_folder_fails_cleanly(ckpt, fixture_path, tmp_path):
    assert_usage_error(run_ckpt("rewrite", fixture_path("dtypes"), "-o",
                                tmp_path / "no" / "such" / "dir" / "x.pt"))


# ---------------------------------------------------------------- info

def info_json(path):
    return json.loads(ok(run_ckpt("info", path, "--json")))


@pytest.mark.parametrize("entry", GOOD)
def test_info_json(ckpt, entry, fixture_path):
    src = fixture_path(entry)
    info = info_json(src)
    assert info["layout"] == entry["layout"]
    assert info["best_state"] == entry["state"]
    loaded = torch.load(src)
    top_keys = [str(k) for k in loaded.keys()]
    assert [k["key"] for k in info["keys"]] == top_keys
    if entry["kind"] == "legacy":
        assert info["format"] == "legacy"
        return
    assert info["format"] == "zip"
    assert info["archive"] == src.stem
    expected_records = [e["name"] for e in zip_layout(src)["entries"]]
    got_records = [r["name"] for r in info["records"]]
    assert got_records in (expected_records,
                           [n.split("/", 1)[1] for n in expected_records]), got_records
    sizes = [e["size"] for e in zip_layout(src)["entries"]]
    assert [r["size"] for r in info["records"]] == sizes


@pytest.mark.parametrize("entry", fixture_params(
    lambda e: e["state"] is not None and e["kind"] == "good" and e["name"] != "sharing"))
def test_info_state_dict_counts(ckpt, entry, fixture_path):
    src = fixture_path(entry)
    info = info_json(src)
    state = state_of(torch.load(src), entry["state"])
    by_path = {s["path"]: s for s in info["state_dicts"]}
    assert entry["state"] in by_path, list(by_path)
    summary = by_path[entry["state"]]
    tensors = [v for v in state.values() if isinstance(v, torch.Tensor)]
    assert summary["tensors"] == len(tensors)
    assert summary["parameters"] == sum(t.numel() for t in tensors)
    by_dtype = {}
    for t in tensors:
        name = str(t.dtype).replace("torch.", "")
        by_dtype[name] = by_dtype.get(name, 0) + t.numel() * t.element_size()
    assert summary["bytes_by_dtype"] == by_dtype


@pytest.mark.parametrize("entry", GOOD)
def test_info_text(ckpt, entry, fixture_path):
    out = ok(run_ckpt("info", fixture_path(entry)))
    assert entry["layout"] in out


def test_info_training_mentions_best_state(ckpt, fixture_path):
    out = ok(run_ckpt("info", fixture_path("training_fsdp")))
    assert "fsdp_best_state/model" in out


# ---------------------------------------------------------------- ls

@pytest.mark.parametrize("entry", GOOD)
def test_ls_top_level(ckpt, entry, fixture_path):
    src = fixture_path(entry)
    listing = json.loads(ok(run_ckpt("ls", src, "--depth", "1", "--json")))
    strings = json_strings(listing)
    for key in torch.load(src).keys():
        assert str(key) in strings, f"top-level key {key!r} missing from ls"


def test_ls_paths_into_training(ckpt, fixture_path):
    src = fixture_path("training")
    loaded = torch.load(src)
    listing = json_strings(json.loads(ok(run_ckpt("ls", src, "history/3/train", "--json"))))
    for metric in loaded["history"][3]["train"]:
        assert metric in listing
    listing = json_strings(json.loads(ok(run_ckpt("ls", src, "best_state/model", "--json"))))
    for name in loaded["best_state"]["model"]:
        assert name in listing
    text = ok(run_ckpt("ls", src, "best_state/model"))
    assert "emb.0.weight" in text
    listing = json_strings(json.loads(ok(run_ckpt("ls", src, "optimizer", "--depth", "1",
                                                  "--json"))))
    assert "state" in listing and "param_groups" in listing


def test_ls_dictconfig_shows_config_keys(ckpt, fixture_path):
    src = fixture_path("dictconfig")
    listing = json_strings(json.loads(ok(run_ckpt("ls", src, "cfg", "--json"))))
    for key in ("optim", "schedule", "nested", "seed"):
        assert key in listing, f"{key} missing from ls of a DictConfig"


def test_ls_missing_path(ckpt, fixture_path):
    assert_usage_error(run_ckpt("ls", fixture_path("training"), "no/such/path"))


# ---------------------------------------------------------------- tensors

@pytest.mark.parametrize("entry", WITH_STATE)
def test_tensors_json_default_state(ckpt, entry, fixture_path):
    src = fixture_path(entry)
    rows = json.loads(ok(run_ckpt("tensors", src, "--json")))
    expected = tensor_rows(state_of(torch.load(src), entry["state"]))
    assert [r["name"] for r in rows] == [r["name"] for r in expected]
    for got, want in zip(rows, expected):
        for key, value in want.items():
            if key in ("name", "dtype", "shape", "numel", "nbytes") or key in got:
                assert got[key] == value, f"{want['name']}: {key} {got.get(key)!r} != {value!r}"


@pytest.mark.parametrize("state", ["model", "best_state/model", "ema/state/model"])
def test_tensors_explicit_state(ckpt, fixture_path, state):
    src = fixture_path("training")
    rows = json.loads(ok(run_ckpt("tensors", src, "--state", state, "--json")))
    expected = tensor_rows(state_of(torch.load(src), state))
    assert [(r["name"], r["dtype"], r["shape"]) for r in rows] == \
        [(r["name"], r["dtype"], r["shape"]) for r in expected]


@pytest.mark.parametrize("pattern", ["emb.*", "*.norm1.*", "transformer.layers.1.*", "nothing*"])
def test_tensors_match(ckpt, fixture_path, pattern):
    src = fixture_path("training")
    rows = json.loads(ok(run_ckpt("tensors", src, "--match", pattern, "--json")))
    names = list(torch.load(src)["best_state"]["model"])
    assert [r["name"] for r in rows] == [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def test_tensors_text(ckpt, fixture_path):
    out = ok(run_ckpt("tensors", fixture_path("dtypes")))
    for dtype in ("float32", "bfloat16", "complex128", "bool", "uint8"):
        assert dtype in out


def test_tensors_of_missing_state(ckpt, fixture_path):
    assert_usage_error(run_ckpt("tensors", fixture_path("training"), "--state", "no/such"))


# ---------------------------------------------------------------- verify

def verify(path):
    result = run_ckpt("verify", path)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize("entry", GOOD)
def test_verify_good(ckpt, entry, fixture_path):
    code, message = verify(fixture_path(entry))
    assert code == 0, message


def test_verify_truncated(ckpt, fixture_path):
    code, message = verify(fixture_path("truncated"))
    assert code == 1, message
    assert message.strip()


def records_of(fixture_path, name):
    src = fixture_path(name)
    return src, read_zip_records(src)


def first_storage_index(records):
    return next(i for i, (n, payload) in enumerate(records)
                if "/data/" in n and len(payload) >= 8)


def test_verify_bad_crc(ckpt, fixture_path, tmp_path):
    src, records = records_of(fixture_path, "dtypes")
    bad = tmp_path / src.name
    write_torch_zip(bad, records)
    data = bytearray(bad.read_bytes())
    entry = zip_layout(bad)["entries"][first_storage_index(records)]
    data[entry["data_offset"]] ^= 0xFF  # the directory's CRC no longer matches
    bad.write_bytes(bytes(data))
    code, message = verify(bad)
    assert code == 1, message
    assert "CRC" in message.upper() or "crc" in message
    assert entry["name"].split("/", 1)[1] in message, message


def test_verify_short_storage_record(ckpt, fixture_path, tmp_path):
    src, records = records_of(fixture_path, "dtypes")
    index = first_storage_index(records)
    name, payload = records[index]
    records[index] = (name, payload[:-4])
    bad = tmp_path / src.name
    write_torch_zip(bad, records)
    code, message = verify(bad)
    assert code == 1, message
    assert name.split("/", 1)[1] in message, message


def test_verify_view_out_of_storage(ckpt, tmp_path):
    class OutOfRangeView:
        """Pickles like a tensor whose view runs past its storage's end."""

        def __init__(self, storage):
            self.storage = storage

        def __reduce__(self):
            import collections
            return (torch._utils._rebuild_tensor_v2,
                    (self.storage, 2, (8,), (1,), False, collections.OrderedDict()))

    storage = torch.arange(6, dtype=torch.float32).storage()
    bad = tmp_path / "view.pt"
    torch.save({"ok": torch.arange(3), "bad": OutOfRangeView(storage)}, bad)
    code, message = verify(bad)
    assert code == 1, message
    assert message.strip()


def test_verify_duplicate_names(ckpt, fixture_path, tmp_path):
    src, records = records_of(fixture_path, "dtypes")
    index = first_storage_index(records)
    records.insert(index + 1, records[index])
    bad = tmp_path / src.name
    write_torch_zip(bad, records)
    code, message = verify(bad)
    assert code == 1, message
    assert records[index][0].split("/", 1)[1] in message, message


def test_verify_local_central_name_mismatch(ckpt, fixture_path, tmp_path):
    src, records = records_of(fixture_path, "dtypes")
    index = first_storage_index(records)
    local_names = [n for n, _ in records]
    local_names[index] = local_names[index][:-1] + "X"
    bad = tmp_path / src.name
    write_torch_zip(bad, records, local_names=local_names)
    code, message = verify(bad)
    assert code == 1, message
    assert message.strip()


def test_verify_truncated_by_one_byte(ckpt, fixture_path, tmp_path):
    src = fixture_path("module_state_dict")
    bad = tmp_path / src.name
    bad.write_bytes(src.read_bytes()[:-1])
    code, message = verify(bad)
    assert code == 1, message


def test_verify_storage_zero_padded_record_size(ckpt, fixture_path, tmp_path):
    """A record longer than its storage is as wrong as a shorter one."""
    src, records = records_of(fixture_path, "dtypes")
    index = first_storage_index(records)
    name, payload = records[index]
    records[index] = (name, payload + b"\x00" * 8)
    bad = tmp_path / src.name
    write_torch_zip(bad, records)
    code, message = verify(bad)
    assert code == 1, message


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("command", [["info"], ["ls"], ["tensors"], ["verify"],
                                     ["rewrite", "-o", "OUT"]])
def test_missing_file(ckpt, tmp_path, command):
    missing = tmp_path / "does-not-exist.th"
    args = [command[0], missing] + [a.replace("OUT", str(tmp_path / "o.th")) for a in command[1:]]
    result = run_ckpt(*args)
    assert_usage_error(result, "does-not-exist.th")
    assert not (tmp_path / "o.th").exists()


@pytest.mark.parametrize("command", ["info", "ls", "tensors"])
def test_truncated_input_is_an_error(ckpt, fixture_path, command):
    assert_usage_error(run_ckpt(command, fixture_path("truncated")))


@pytest.mark.parametrize("payload", [b"", b"not a checkpoint at all\n", b"PK\x03\x04" + b"\x00" * 40,
                                     struct.pack("<Q", 0) * 8])
def test_garbage_input_is_an_error(ckpt, tmp_path, payload):
    path = tmp_path / "garbage.th"
    path.write_bytes(payload)
    assert_usage_error(run_ckpt("info", path))
    code, _ = verify(path)
    assert code == 1


def test_usage_errors(ckpt, fixture_path):
    assert run_ckpt().returncode == 2
    assert_usage_error(run_ckpt("no-such-command"))
    assert_usage_error(run_ckpt("info"))
    assert_usage_error(run_ckpt("rewrite", fixture_path("dtypes")))  # no -o
    assert_usage_error(run_ckpt("ls", fixture_path("dtypes"), "--depth", "lots"))


def test_help(ckpt):
    result = run_ckpt("--help")
    assert result.returncode == 0
    for command in ("info", "ls", "tensors", "rewrite", "verify"):
        assert command in result.stdout


def test_directory_as_input(ckpt, tmp_path):
    assert_usage_error(run_ckpt("info", tmp_path))


def test_unreadable_output_dir_leaves_nothing(ckpt, fixture_path, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    out_dir = tmp_path / "ro"
    out_dir.mkdir()
    out_dir.chmod(0o500)
    try:
        assert_usage_error(run_ckpt("rewrite", fixture_path("dtypes"), "-o", out_dir / "x.pt"))
        assert list(out_dir.iterdir()) == []
    finally:
        out_dir.chmod(0o700)
