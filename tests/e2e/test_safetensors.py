"""End-to-end tests of `ckpt safetensors` and `ckpt from-safetensors`.

safetensors (the Python package) is not in Debian 12, so the tests carry an
independent reader and writer of the format (struct + json + torch), written
from the format's specification and the reference implementation's rules
(huggingface/safetensors, safetensors/src/tensor.rs: `prepare` orders tensors
by dtype alignment descending then name; `serialize` pads the header with
spaces to 8 bytes; `read_metadata`/`validate` check the header).
"""

import collections
import json
import struct

import pytest
import torch

from conftest import run_ckpt
from ckpt_testlib import _storage_bytes, assert_like_torch_save, dialect_of_torch
from test_foundation import assert_usage_error, ok, state_of

DTYPES = {
    "BOOL": torch.bool, "U8": torch.uint8, "I8": torch.int8, "I16": torch.int16,
    "F16": torch.float16, "BF16": torch.bfloat16, "I32": torch.int32, "F32": torch.float32,
    "F64": torch.float64, "I64": torch.int64, "C64": torch.complex64,
}
NAMES = {v: k for k, v in DTYPES.items()}
# The reference's Dtype enum order (its "alignment" order), for these types.
RANK = {name: i for i, name in enumerate(
    ["BOOL", "U8", "I8", "I16", "F16", "BF16", "I32", "F32", "C64", "F64", "I64"])}


def tensor_bytes(t):
    """The row-major little-endian bytes of a tensor."""
    return _storage_bytes(t.detach().contiguous().clone())[1]


def read_safetensors(path):
    """(metadata, OrderedDict name -> tensor in header order, header text)."""
    with open(path, "rb") as f:
        data = f.read()
    n, = struct.unpack("<Q", data[:8])
    header_text = data[8:8 + n].decode("utf-8")
    header = json.loads(header_text, object_pairs_hook=collections.OrderedDict)
    metadata = header.pop("__metadata__", None)
    base = 8 + n
    tensors = collections.OrderedDict()
    end = 0
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
        begin, stop = info["data_offsets"]
        assert begin == end, f"{name}: hole or overlap at {begin}"
        end = stop
    assert base + end == len(data), "data section not covered exactly"
    for name, info in header.items():
        begin, stop = info["data_offsets"]
        dtype = DTYPES[info["dtype"]]
        raw = bytearray(data[base + begin:base + stop])
        if raw:
            t = torch.frombuffer(raw, dtype=dtype).reshape(info["shape"])
        else:
            t = torch.empty(info["shape"], dtype=dtype)
        tensors[name] = t
    return metadata, tensors, header_text


def reference_safetensors_bytes(tensors, metadata=(("format", "pt"),)):
    """What the reference serializer writes for {name: tensor}."""
    items = sorted(tensors.items(), key=lambda kv: (-RANK[NAMES[kv[1].dtype]], kv[0].encode()))
    header = collections.OrderedDict()
    if metadata:
        header["__metadata__"] = collections.OrderedDict(metadata)
    offset = 0
    blobs = []
    for name, t in items:
        raw = tensor_bytes(t)
        header[name] = collections.OrderedDict(
            [("dtype", NAMES[t.dtype]), ("shape", list(t.shape)),
             ("data_offsets", [offset, offset + len(raw)])])
        offset += len(raw)
        blobs.append(raw)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def write_safetensors(path, tensors, header_order=None, metadata=None):
    """A safetensors file with the header in `header_order` (default: data order)."""
    entries, blobs, offset = collections.OrderedDict(), [], 0
    for name, t in tensors.items():
        raw = tensor_bytes(t)
        entries[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape),
                         "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    header = collections.OrderedDict()
    if metadata is not None:
        header["__metadata__"] = metadata
    for name in header_order or entries:
        header[name] = entries[name]
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def assert_tensors_equal(ours, theirs):
    assert list(ours) == list(theirs)
    for name in ours:
        a, b = ours[name], theirs[name]
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert tensor_bytes(a) == tensor_bytes(b), f"{name}: values differ"


def plain_tensors(state):
    return collections.OrderedDict(
        (k, v.detach()) for k, v in state.items() if isinstance(v, torch.Tensor))


# ---------------------------------------------------------------- ckpt safetensors

@pytest.mark.parametrize("name", ["sharing", "training", "training_fsdp", "exported",
                                  "module_state_dict", "legacy"])
def test_safetensors_matches_reference_writer(ckpt, fixture_path, manifest, tmp_path, name):
    src = fixture_path(name)
    out = tmp_path / "out.safetensors"
    result = run_ckpt("safetensors", src, "-o", out)
    ok(result)
    state = plain_tensors(state_of(torch.load(src), manifest[name]["state"]))
    metadata, tensors, _ = read_safetensors(out)
    assert metadata == {"format": "pt"}
    # Every tensor, bit for bit, with its shape and dtype (non-contiguous
    # views, stride-0 expansions and shared storages as contiguous copies).
    assert sorted(tensors) == sorted(state)
    for k, t in state.items():
        assert tensors[k].dtype == t.dtype and tensors[k].shape == t.shape, k
        assert tensor_bytes(tensors[k]) == tensor_bytes(t), k
    # Byte for byte what the reference serializer writes (its order and padding).
    assert out.read_bytes() == reference_safetensors_bytes(state)
    assert "wrote" in result.stderr


def test_safetensors_state_option_and_summary(ckpt, fixture_path, tmp_path):
    src = fixture_path("training")
    out = tmp_path / "model.safetensors"
    ok(run_ckpt("safetensors", src, "--state", "model", "-o", out))
    _, tensors, _ = read_safetensors(out)
    assert sorted(tensors) == sorted(plain_tensors(torch.load(src)["model"]))


def test_safetensors_refuses_what_it_cannot_hold(ckpt, fixture_path, tmp_path):
    out = tmp_path / "x.safetensors"
    assert_usage_error(run_ckpt("safetensors", fixture_path("dtypes"), "-o", out), "complex128")
    assert not out.exists()
    assert_usage_error(run_ckpt("safetensors", fixture_path("training"), "--state", "nope", "-o", out),
                       "nope")
    out.write_bytes(b"old")
    assert_usage_error(run_ckpt("safetensors", fixture_path("sharing"), "-o", out), "--force")
    assert out.read_bytes() == b"old"
    ok(run_ckpt("safetensors", fixture_path("sharing"), "-o", out, "--force", "-q"))
    assert read_safetensors(out)[0] == {"format": "pt"}


# ---------------------------------------------------------------- ckpt from-safetensors

def loaded_state(path):
    """What a safetensors loader gives, in header order, each tensor with its own storage."""
    return collections.OrderedDict(
        (k, v.clone()) for k, v in read_safetensors(path)[1].items())


def test_from_safetensors_equals_torch_save(ckpt, tmp_path):
    gen = torch.Generator().manual_seed(7)
    tensors = collections.OrderedDict([
        ("z.weight", torch.randn(4, 3, generator=gen)),
        ("a.bias", torch.randn(3, generator=gen).half()),
        ("m.bf16", torch.randn(2, 2, generator=gen).bfloat16()),
        ("count", torch.tensor(5, dtype=torch.int64)),
        ("mask", torch.tensor([True, False, True])),
        ("bytes", torch.arange(6, dtype=torch.uint8).reshape(2, 3)),
        ("i8", torch.tensor([-1, 2], dtype=torch.int8)),
        ("i16", torch.tensor([-300, 2], dtype=torch.int16)),
        ("i32", torch.tensor([7], dtype=torch.int32)),
        ("f64", torch.tensor([1.5, -0.0], dtype=torch.float64)),
        ("c64", torch.tensor([1 + 2j], dtype=torch.complex64)),
        ("empty", torch.empty(0, 4)),
        ("nan", torch.tensor([float("nan"), float("inf")])),
    ])
    src = tmp_path / "in.safetensors"
    # Header order differs from data order: the state dict follows the header.
    order = sorted(tensors, key=lambda k: k[::-1])
    write_safetensors(src, tensors, header_order=order, metadata={"format": "pt"})
    out = tmp_path / "state.th"
    ok(run_ckpt("from-safetensors", src, "-o", out, "--dialect", dialect_of_torch()))
    expected = loaded_state(src)
    assert list(expected) == order
    assert_like_torch_save(out, expected, tmp_path)


def test_round_trip_through_safetensors(ckpt, fixture_path, tmp_path):
    """checkpoint -> safetensors -> checkpoint keeps every tensor bit for bit."""
    st = tmp_path / "m.safetensors"
    ok(run_ckpt("safetensors", fixture_path("exported"), "-o", st))
    out = tmp_path / "m.th"
    ok(run_ckpt("from-safetensors", st, "-o", out, "--dialect", dialect_of_torch()))
    assert_like_torch_save(out, loaded_state(st), tmp_path)
    original = plain_tensors(torch.load(fixture_path("exported"))["best_state"])
    back = torch.load(out)
    assert sorted(back) == sorted(original)
    for k in original:
        assert tensor_bytes(back[k]) == tensor_bytes(original[k]), k


@pytest.mark.parametrize("name", ["training", "training_fsdp", "exported"])
def test_from_safetensors_into_audiocraft_template(ckpt, fixture_path, manifest, tmp_path, name):
    template = fixture_path(name)
    pkg = torch.load(template)
    path = manifest[name]["state"]
    state = state_of(pkg, path)
    # New weights from elsewhere: every tensor changed, one in another dtype.
    new = collections.OrderedDict()
    for i, (k, v) in enumerate(state.items()):
        if isinstance(v, torch.Tensor):
            new[k] = (v.detach().float() + 1).to(v.dtype) if v.is_floating_point() else v.detach().clone()
    changed_dtype = next(k for k, v in new.items() if v.is_floating_point())
    new[changed_dtype] = new[changed_dtype].double()
    st = tmp_path / "new.safetensors"
    write_safetensors(st, new, header_order=sorted(new))
    out = tmp_path / "finetuned.th"
    result = run_ckpt("from-safetensors", st, "--into", template, "-o", out)
    ok(result)
    assert "dtype changed" in result.stderr

    # Expected: the template with the state's tensors replaced (same keys,
    # same order, Parameters kept), as torch.save writes it.
    expected = pkg
    target = state_of(expected, path)
    for k in list(target):
        if isinstance(target[k], torch.Tensor):
            value = new[k].clone()
            if isinstance(target[k], torch.nn.Parameter):
                value = torch.nn.Parameter(value, requires_grad=target[k].requires_grad)
            target[k] = value
    assert_like_torch_save(out, expected, tmp_path)


def test_from_safetensors_into_mismatch_lists_differences(ckpt, fixture_path, manifest, tmp_path):
    template = fixture_path("training")
    state = plain_tensors(state_of(torch.load(template), manifest["training"]["state"]))
    names = list(state)
    new = collections.OrderedDict((k, v.clone()) for k, v in state.items())
    del new[names[0]]
    new["extra.weight"] = torch.zeros(2)
    new[names[1]] = torch.zeros(*state[names[1]].shape, 2, dtype=state[names[1]].dtype)
    st = tmp_path / "bad.safetensors"
    write_safetensors(st, new)
    out = tmp_path / "out.th"
    result = run_ckpt("from-safetensors", st, "--into", template, "-o", out)
    assert_usage_error(result, "3 difference(s)", "nothing written", names[0], "extra.weight",
                       names[1], "has shape")
    assert not out.exists()


@pytest.mark.parametrize("damage, words", [
    (lambda d: d[:5], "too short"),
    (lambda d: struct.pack("<Q", 100_000_001) + d[8:], "over the limit"),
    (lambda d: struct.pack("<Q", len(d)) + d[8:], "past the end"),
    (lambda d: d[:8] + b"[" + d[9:], "not valid JSON"),
    (lambda d: d + b"\0", "cover"),
    (lambda d: d[:-1], "truncated"),  # issue 24: a cut file says so
    (lambda d: d.replace(b'"F32"', b'"F99"', 1), "F99"),
    (lambda d: d.replace(b'[0,48]', b'[0,44]', 1), "needs 48 bytes"),
    (lambda d: d.replace(b'[0,48]', b'[4,52]', 1), "hole"),
    (lambda d: d.replace(b'"shape":[4,3]', b'"shape":[3,4]', 1) + b"", None),
])
def test_from_safetensors_validates_like_the_reference(ckpt, tmp_path, damage, words):
    src = tmp_path / "d.safetensors"
    write_safetensors(src, collections.OrderedDict([("w", torch.zeros(4, 3)), ("b", torch.ones(2))]))
    data = src.read_bytes()
    assert b"[0,48]" in data
    src.write_bytes(damage(data))
    out = tmp_path / "out.th"
    result = run_ckpt("from-safetensors", src, "-o", out)
    if words is None:  # a shape with the same element count is valid
        ok(result)
        assert torch.load(out)["w"].shape == (3, 4)
        return
    assert_usage_error(result, words, str(src))
    assert not out.exists()


def test_from_safetensors_refuses_non_safetensors(ckpt, fixture_path, tmp_path):
    # A torch zip starts with "PK\x03\x04..." read as a huge header length.
    assert_usage_error(run_ckpt("from-safetensors", fixture_path("training"), "-o", tmp_path / "o.th"),
                       "over the limit")
