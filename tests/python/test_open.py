"""ckpt.open: the lazy handle's structure, config and tensor metadata against
the CLI and torch.load, tensor values bit for bit, zero-copy memory maps,
copy-on-write, and errors with the CLI's messages."""

import json
import os
import shutil
import struct
import subprocess

import numpy as np
import pytest

from conftest import EXAMPLE, FIXTURE_ENTRIES, HAVE_TORCH, cli_error, needs_omegaconf, needs_torch

import ckpt

WITH_STATE = [pytest.param(e, id=e["name"]) for e in FIXTURE_ENTRIES
              if e["kind"] in ("good", "legacy") and e["state"] is not None]


def _resolve(obj, path):
    for part in [p for p in path.split("/") if p]:
        obj = obj[part]
    return obj


def test_structure_matches_cli(ckpt_command):
    info = json.loads(subprocess.run([ckpt_command, "info", "--json", EXAMPLE], capture_output=True,
                                     text=True, check=True).stdout)
    with ckpt.open(EXAMPLE) as c:
        assert c.format == info["format"] == "zip"
        assert c.dialect == info["dialect"]
        assert c.layout == info["layout"] == "audiocraft-training"
        assert c.best_state == info["best_state"] == "best_state/model"
        assert c.top_level_keys == [k["key"] for k in info["keys"]]
        assert c.file_size == info["file_size"]
        assert len(c.tensors()) == info["state_dicts"][0]["tensors"]
        assert sum(t.numel for t in c.tensors() if t.parameter or True) > 0


def test_cfg_text_and_plain_tree(ckpt_command):
    yaml_text = subprocess.run([ckpt_command, "cfg", EXAMPLE], capture_output=True, text=True,
                               check=True).stdout
    with ckpt.open(EXAMPLE) as c:
        assert c.cfg == yaml_text
        tree = c.cfg_dict()
        assert isinstance(tree, dict) and tree["solver"] == "musicgen"
        assert isinstance(tree["optim"], dict)


@needs_torch
@needs_omegaconf
def test_cfg_equals_omegaconf(fixtures_dir):
    import torch
    from omegaconf import DictConfig, OmegaConf
    path = os.path.join(fixtures_dir, "checkpoint.th")
    cfg = torch.load(path, weights_only=False)["xp.cfg"]
    with ckpt.open(path) as c:
        assert c.cfg == OmegaConf.to_yaml(cfg)
        assert c.cfg_dict() == OmegaConf.to_container(cfg, resolve=False)
        as_config = c.cfg_omegaconf()
        assert isinstance(as_config, DictConfig) and as_config == cfg


@needs_torch
@pytest.mark.parametrize("entry", WITH_STATE)
def test_tensors_match_torch_load(fixtures_dir, entry):
    import torch
    path = os.path.join(fixtures_dir, entry["file"])
    state = _resolve(torch.load(path, weights_only=False), entry["state"])
    expected = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    with ckpt.open(path) as c:
        infos = c.tensors(entry["state"] or "/")
        assert [t.name for t in infos] == list(expected)
        torch_sd = c.state_dict(framework="torch", state=entry["state"] or "/")
        for info in infos:
            ref = expected[info.name]
            assert info.dtype == str(ref.dtype).replace("torch.", "")
            assert tuple(info.shape) == tuple(ref.shape) and tuple(info.stride) == ref.stride()
            assert info.storage_offset == ref.storage_offset()
            assert info.requires_grad == ref.requires_grad
            assert info.parameter == isinstance(ref, torch.nn.Parameter)
            got = torch_sd[info.name]
            assert type(got) is type(ref) and got.dtype == ref.dtype and got.stride() == ref.stride()
            assert torch.equal(_bits(got), _bits(ref))
            one = c.get_tensor(info.name, framework="torch", state=entry["state"] or "/")
            assert torch.equal(one, got) or (one.isnan() == got.isnan()).all()
            if ref.dtype in (torch.bfloat16,):
                continue
            arr = c.get_tensor(info.name, state=entry["state"] or "/")
            assert arr.shape == tuple(ref.shape)
            if arr.size:
                assert np.ascontiguousarray(arr).tobytes() == ref.detach().contiguous().numpy().tobytes()


def _bits(t):
    """A tensor's elements as bytes, in row-major order (any dtype, any strides)."""
    import torch
    dense = torch.empty(t.shape, dtype=t.dtype).copy_(t.detach())
    return dense.reshape(-1).view(torch.uint8)


def _mapped_files():
    with open("/proc/self/maps") as f:
        return [line.split() for line in f]


def _mapping_of(address):
    for fields in _mapped_files():
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        if lo <= address < hi:
            return fields[5] if len(fields) > 5 else ""
    return None


@needs_torch
def test_state_dict_is_zero_copy_and_shares_storages(fixtures_dir):
    path = os.path.join(fixtures_dir, "sharing.pt")
    with ckpt.open(path) as c:
        sd = c.state_dict(framework="torch")
        by_key = {}
        for info in c.tensors():
            t = sd[info.name]
            ptr = t.untyped_storage().data_ptr() if hasattr(t, "untyped_storage") else t.storage().data_ptr()
            if info.nbytes:
                assert _mapping_of(ptr) == os.path.realpath(path), info.name  # the file itself, mapped
            by_key.setdefault(info.storage, set()).add(ptr)
        assert all(len(ptrs) == 1 for ptrs in by_key.values())
        assert any(len([i for i in c.tensors() if i.storage == k]) > 1 for k in by_key)


def test_numpy_arrays_are_zero_copy(fixtures_dir):
    path = os.path.join(fixtures_dir, "checkpoint.th")
    with ckpt.open(path) as c:
        arr = c.get_tensor(c.keys()[0])
        base = arr
        while getattr(base, "base", None) is not None and not isinstance(base, memoryview):
            base = base.base
        assert _mapping_of(arr.__array_interface__["data"][0]) == os.path.realpath(path)


def test_writes_stay_private(tmp_path, fixtures_dir):
    path = tmp_path / "c.th"
    shutil.copy(os.path.join(fixtures_dir, "checkpoint.th"), path)
    before = path.read_bytes()
    with ckpt.open(path) as c:
        sd = c.state_dict()
        for arr in sd.values():
            if arr.flags.writeable:
                arr[...] = 0
    assert path.read_bytes() == before


@needs_torch
def test_torch_writes_stay_private(tmp_path, fixtures_dir):
    """state_dict(framework="torch") and ckpt.load: under torch >= 2 the
    tensors are slices of one copy-on-write mapping of the file (as
    torch.load(mmap=True)); writing them leaves the file as it was."""
    import torch
    path = tmp_path / "c.th"
    shutil.copy(os.path.join(fixtures_dir, "checkpoint.th"), path)
    before = path.read_bytes()
    with ckpt.open(path) as c:
        sd = c.state_dict(framework="torch")
        if int(torch.__version__.split(".")[0]) >= 2:
            assert c._storages._file_storage  # the one mapping, not a buffer per storage
        for t in sd.values():
            if t.is_floating_point():
                t.data.fill_(7)
        assert all(bool((t == 7).all()) for t in sd.values() if t.is_floating_point())
    loaded = ckpt.load(path, unsafe_globals="placeholder")["best_state"]["model"]
    for t in loaded.values():
        if t.is_floating_point():
            t.data.fill_(3)
    del sd, loaded
    assert path.read_bytes() == before


def _read_safetensors(path):
    """A .safetensors file parsed by hand: name -> (dtype, shape, bytes)."""
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"], data[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
            for k, v in header.items()}


def test_values_match_the_cli_safetensors_export(tmp_path, ckpt_command):
    out = tmp_path / "m.safetensors"
    subprocess.run([ckpt_command, "safetensors", EXAMPLE, "-o", out], check=True, capture_output=True)
    exported = _read_safetensors(out)
    with ckpt.open(EXAMPLE) as c:
        sd = c.state_dict()
        assert sorted(sd) == sorted(exported)
        for name, arr in sd.items():
            dtype, shape, raw = exported[name]
            assert list(arr.shape) == shape
            assert np.ascontiguousarray(arr).tobytes() == raw, name
    with ckpt.open(out) as s:  # a safetensors file opens as a plain state dict
        assert s.format == "safetensors"
        assert sorted(s.keys("/")) == sorted(exported)
        for name in s.keys("/"):
            assert np.ascontiguousarray(s.get_tensor(name, state="/")).tobytes() == exported[name][2]


def test_errors_carry_the_cli_message(tmp_path, ckpt_command):
    missing = tmp_path / "missing.th"
    with pytest.raises(ckpt.IoError) as e:
        ckpt.open(missing)
    assert str(e.value) == cli_error(ckpt_command, "info", missing)
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint\n")
    with pytest.raises(ckpt.FormatError) as e:
        ckpt.open(text)
    assert str(e.value) == cli_error(ckpt_command, "info", text)
    assert isinstance(e.value, ckpt.Error)
    with ckpt.open(EXAMPLE) as c:
        with pytest.raises(ckpt.UsageError, match="no tensor 'nope'"):
            c.get_tensor("nope")
        with pytest.raises(ckpt.UsageError, match="no object at 'nowhere'"):
            c.tensors("nowhere")
        with pytest.raises(ckpt.UsageError, match="framework"):
            c.get_tensor(c.keys()[0], framework="jax")


def test_a_misspelt_tensor_name_suggests_the_closest():
    # `ckpt show` suggests it; get_tensor / c[name] / get_slice did not.
    with ckpt.open(EXAMPLE) as c:
        for read in (c.get_tensor, c.__getitem__, c.get_slice):
            with pytest.raises(ckpt.UsageError, match=r"no tensor 'emb\.0\.weigth'.*did you mean 'emb\.0\.weight'\?"):
                read("emb.0.weigth")
        with pytest.raises(ckpt.UsageError) as e:
            c.get_tensor("zzz")
        assert "did you mean" not in str(e.value)


@pytest.mark.skipif(HAVE_TORCH, reason="checks the numpy-only install")
def test_torch_framework_without_torch_is_a_usage_error():
    # A bare ModuleNotFoundError from deep inside before; now the fix is named.
    with ckpt.open(EXAMPLE) as c:
        with pytest.raises(ckpt.UsageError, match=r"needs torch.*framework='numpy'"):
            c.state_dict(framework="torch")
        with pytest.raises(ckpt.UsageError, match=r"needs torch"):
            c.get_tensor(c.keys()[0], framework="pt")
    with pytest.raises(ckpt.UsageError, match=r"needs torch"):
        ckpt.open(EXAMPLE, framework="torch")
    with pytest.raises(ckpt.UsageError, match=r"needs torch"):
        ckpt.load(EXAMPLE, framework="torch")


def _rows_the_generic_way(path, state):
    """ckpt.tensors(path)'s rows (the operation: JSON from the api, each field through the generic
    _wrap/_empty): what ckpt.open(path).tensors() gave before it took the extension's direct rows."""
    from ckpt._operations import TYPES, _empty, _wrap
    rows = ckpt.tensors(path, state=state)
    fields = TYPES["TensorEntry"]["fields"]
    return rows, [{f["name"]: _wrap(f["type"], r.to_dict()[f["name"]]) if f["name"] in r.to_dict()
                   else _empty(f["type"]) for f in fields} for r in rows]


def _assert_same_rows(path, state):
    rows, attrs = _rows_the_generic_way(path, state)
    with ckpt.open(path) as c:
        got = c.tensors(state)
    assert type(got) is type(rows) and len(got) == len(rows) > 0
    for g, r, a in zip(got, rows, attrs):
        assert type(g) is type(r) is ckpt.TensorEntry
        assert g == r and g.to_dict() == r.to_dict()  # the same data, field order included
        assert list(g.to_dict()) == list(r.to_dict())
        for name, value in a.items():
            mine = getattr(g, name)
            assert type(mine) is type(value) and mine == value, (g.name, name)
        # An attribute is the row's own: changing it leaves the data as it was.
        g.shape.append(7)
        assert g.to_dict()["shape"] == r.to_dict()["shape"]


def test_tensors_rows_equal_the_operations_rows():
    _assert_same_rows(EXAMPLE, None)
    _assert_same_rows(EXAMPLE, "best_state/model")


@pytest.mark.parametrize("entry", WITH_STATE)
def test_tensors_rows_equal_the_operations_rows_on_every_fixture(fixtures_dir, entry):
    _assert_same_rows(os.path.join(fixtures_dir, entry["file"]), entry["state"] or "/")


@needs_torch
def test_tensors_rows_of_tensor_kinds_equal_the_operations_rows(tmp_path):
    """Rows with parts (sparse, quantized: nested TensorPartEntry results) and optional fields."""
    import torch
    path = tmp_path / "kinds.pt"
    dense = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    torch.save({"dense": dense, "view": dense[:, 1:], "coo": dense.to_sparse(),
                "csr": dense.to_sparse_csr(), "q": torch.quantize_per_tensor(dense, 0.5, 3, torch.quint8),
                "p": torch.nn.Parameter(dense.clone()), "meta": torch.empty(2, device="meta")}, path)
    _assert_same_rows(str(path), "/")
    with ckpt.open(path) as c:
        assert any(r.parts for r in c.tensors("/"))
