"""Helpers for the end-to-end tests: running ckpt, comparing checkpoints.

- run_ckpt(*args): runs the ckpt binary (env CKPT_BIN, default build/ckpt).
- zip_layout(path) / read_zip_records(path) / write_torch_zip(path, records):
  byte-level view of a torch.save zip, and a writer that reproduces torch 1.13's
  layout byte for byte (used to build damaged files for `ckpt verify`).
- canonical_pickle(data): a pickle's opcode stream "up to string identity".
- assert_same_objects(a, b): deep equality of two torch.load results.
"""

import collections
import io
import math
import os
import pickletools
import struct
import subprocess
import sys
import zlib

import torch

# torch >= 2.6 loads with weights_only=True by default; the route these tests
# compare against is the seed's, which loads AudioCraft files (DictConfig in
# xp.cfg) with weights_only=False. Tests that check weights_only pass it.
_torch_load = torch.load


def _load_like_the_seed(*args, **kwargs):
    kwargs.setdefault("weights_only", False)
    return _torch_load(*args, **kwargs)


torch.load = _load_like_the_seed

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def ckpt_bin():
    path = os.environ.get("CKPT_BIN", os.path.join(REPO_ROOT, "build", "ckpt"))
    return os.path.abspath(path)


MAKE_FIXTURES = os.path.join(REPO_ROOT, "tests", "fixtures", "make_fixtures.py")


def made_by_kind(work, kinds, flag, stem):
    """{kind: path} of `make_fixtures.py FLAG KIND work/STEM_KIND.bin` for each kind (real torch)."""
    out = {}
    for kind in kinds:
        path = os.path.join(str(work), f"{stem}_{kind}.bin")
        subprocess.run([sys.executable, MAKE_FIXTURES, flag, kind, path], check=True)
        out[kind] = path
    return out


def saved_by_kind(work, kinds, make_model, stem):
    """{kind: folder} of make_model(kind).save_pretrained(work/STEM_KIND) for each kind."""
    out = {}
    for kind in kinds:
        folder = os.path.join(str(work), f"{stem}_{kind}")
        make_model(kind).save_pretrained(folder)
        out[kind] = folder
    return out


def run_ckpt(*args, timeout=120, cwd=None):
    """Runs ckpt with `args`; returns the CompletedProcess (text stdout/stderr)."""
    return subprocess.run([ckpt_bin(), *[str(a) for a in args]], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL)


# ---------------------------------------------------------------- zip layout

SIG_LOCAL = b"PK\x03\x04"
SIG_CENTRAL = b"PK\x01\x02"
SIG_DESCRIPTOR = b"PK\x07\x08"
SIG_EOCD = b"PK\x05\x06"
SIG_ZIP64_EOCD = b"PK\x06\x06"
SIG_ZIP64_LOCATOR = b"PK\x06\x07"


def _extra_fields(extra):
    """Splits a zip extra field into [(id, payload)]."""
    fields = []
    pos = 0
    while pos + 4 <= len(extra):
        field_id, size = struct.unpack_from("<HH", extra, pos)
        fields.append((field_id, extra[pos + 4:pos + 4 + size]))
        pos += 4 + size
    return fields


def zip_layout(path):
    """Everything about a zip's structure except the record contents.

    Returns {"entries": [dict per central-directory entry, in order],
    "end": dict of the end records, "file_size": int}. Each entry holds: name,
    header_offset, data_offset, size, usize, crc, flags, method, version_made,
    version_needed, time, date, int_attr, ext_attr, local_extra (bytes),
    central_extra (bytes), comment, local_name, local_flags, local_crc,
    local_sizes, descriptor (the bytes after the data, b"" if none).
    """
    with open(path, "rb") as f:
        data = f.read()
    eocd_pos = data.rfind(SIG_EOCD)
    if eocd_pos < 0:
        raise ValueError(f"{path}: no end-of-central-directory record")
    (_, disk, cd_disk, count_disk, count, cd_size, cd_offset,
     comment_len) = struct.unpack_from("<4sHHHHIIH", data, eocd_pos)
    end = {"eocd_offset": eocd_pos, "eocd": data[eocd_pos:eocd_pos + 22 + comment_len]}
    loc_pos = eocd_pos - 20
    if loc_pos >= 0 and data[loc_pos:loc_pos + 4] == SIG_ZIP64_LOCATOR:
        _, _, z64_offset, _ = struct.unpack_from("<4sIQI", data, loc_pos)
        end["locator_offset"] = loc_pos
        end["locator"] = data[loc_pos:loc_pos + 20]
        end["zip64_eocd_offset"] = z64_offset
        end["zip64_eocd"] = data[z64_offset:z64_offset + 56]
        (_, _, _, _, _, _, count, _, cd_size, cd_offset) = struct.unpack_from(
            "<4sQHHIIQQQQ", data, z64_offset)
    end["cd_offset"] = cd_offset
    end["cd_size"] = cd_size
    end["count"] = count
    entries = []
    pos = cd_offset
    for _ in range(count):
        if data[pos:pos + 4] != SIG_CENTRAL:
            raise ValueError(f"{path}: bad central directory entry at {pos}")
        (_, made, needed, flags, method, mtime, mdate, crc, csize, usize, nlen, xlen,
         clen, _, int_attr, ext_attr, header_offset) = struct.unpack_from(
            "<4sHHHHHHIIIHHHHHII", data, pos)
        name = data[pos + 46:pos + 46 + nlen]
        central_extra = data[pos + 46 + nlen:pos + 46 + nlen + xlen]
        comment = data[pos + 46 + nlen + xlen:pos + 46 + nlen + xlen + clen]
        pos += 46 + nlen + xlen + clen
        for field_id, payload in _extra_fields(central_extra):
            if field_id == 1:  # ZIP64: the fields that overflowed, in this order
                values = list(struct.unpack(f"<{len(payload) // 8}Q", payload))
                if usize == 0xFFFFFFFF:
                    usize = values.pop(0)
                if csize == 0xFFFFFFFF:
                    csize = values.pop(0)
                if header_offset == 0xFFFFFFFF:
                    header_offset = values.pop(0)
        (_, _, local_flags, _, _, _, local_crc, local_csize, local_usize, lnlen,
         lxlen) = struct.unpack_from("<4sHHHHHIIIHH", data, header_offset)
        local_name = data[header_offset + 30:header_offset + 30 + lnlen]
        local_extra = data[header_offset + 30 + lnlen:header_offset + 30 + lnlen + lxlen]
        data_offset = header_offset + 30 + lnlen + lxlen
        descriptor = b""
        if local_flags & 0x08:
            wide = any(fid == 1 for fid, _ in _extra_fields(local_extra))
            dlen = 24 if wide else 16
            start = data_offset + csize
            if data[start:start + 4] != SIG_DESCRIPTOR:
                dlen -= 4  # the signature is optional
            descriptor = data[start:start + dlen]
        entries.append({
            "name": name.decode("utf-8", "replace"), "header_offset": header_offset,
            "data_offset": data_offset, "size": csize, "usize": usize, "crc": crc,
            "flags": flags, "method": method, "version_made": made,
            "version_needed": needed, "time": mtime, "date": mdate,
            "int_attr": int_attr, "ext_attr": ext_attr, "local_extra": local_extra,
            "central_extra": central_extra, "comment": comment,
            "local_name": local_name.decode("utf-8", "replace"),
            "local_flags": local_flags, "local_crc": local_crc,
            "local_sizes": (local_csize, local_usize), "descriptor": descriptor,
        })
        if name.endswith(b".data/serialization_id"):
            entries[-1]["payload"] = data[data_offset:data_offset + csize]
    return {"entries": entries, "end": end, "file_size": len(data)}


_MASK64 = (1 << 64) - 1


def _hash_combine(seed, value):
    """c10::hash_combine on 64-bit size_t."""
    return seed ^ ((value + 0x9e3779b9 + ((seed << 6) & _MASK64) + (seed >> 2)) & _MASK64)


def serialization_id_crc_part(layout):
    """The last 20 digits torch writes in .data/serialization_id: the
    hash_combine of the CRC-32 of every record with data (those that get a
    data descriptor) before it, in file order."""
    seed = 0
    for e in layout["entries"]:
        if e["name"].endswith(".data/serialization_id"):
            break
        if e["size"]:
            seed = _hash_combine(seed, e["crc"])
    return seed


def dialect_of_torch():
    """The `ckpt --dialect` whose layout the running torch's torch.save writes."""
    major, minor = (int(x) for x in torch.__version__.split(".")[:2])
    if (major, minor) >= (2, 7):
        return "2.7"
    if (major, minor) >= (2, 1):
        return "2.1"
    return "1.6"



def read_zip_records(path):
    """[(name, bytes)] in central-directory order (STORED records only)."""
    with open(path, "rb") as f:
        data = f.read()
    return [(e["name"], data[e["data_offset"]:e["data_offset"] + e["size"]])
            for e in zip_layout(path)["entries"]]


def _alignment_padding(header_offset, name_len):
    start = header_offset + 30 + name_len + 4
    return (-start) % 64


def write_torch_zip(path, records, local_names=None):
    """Writes `records` [(name, bytes)] laid out exactly as torch 1.13 does.

    local_names optionally gives a different name for a local header (to build
    files whose local and central names disagree). Sizes must stay < 4 GiB.
    A .data/serialization_id record (torch 2.1+) gets its CRC half recomputed
    from the records before it, as torch would; its name half is kept.
    """
    out = io.BytesIO()
    central = []
    crc_seed = 0
    for index, (name, payload) in enumerate(records):
        if name.endswith(".data/serialization_id") and len(payload) == 40:
            payload = payload[:20] + b"%020d" % crc_seed
        if payload:
            crc_seed = _hash_combine(crc_seed, zlib.crc32(payload) & 0xFFFFFFFF)
        name_b = name.encode("utf-8")
        local_b = (local_names[index] if local_names else name).encode("utf-8")
        header_offset = out.tell()
        pad = _alignment_padding(header_offset, len(local_b))
        flags = 0x0808 if payload else 0x0800
        extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
        out.write(struct.pack("<4sHHHHHIIIHH", SIG_LOCAL, 0, flags, 0, 0, 0, 0, 0, 0,
                              len(local_b), len(extra)))
        out.write(local_b + extra + payload)
        crc = zlib.crc32(payload) & 0xFFFFFFFF
        if payload:
            out.write(struct.pack("<4sIII", SIG_DESCRIPTOR, crc, len(payload), len(payload)))
        central.append(struct.pack("<4sHHHHHHIIIHHHHHII", SIG_CENTRAL, 0, 0, flags, 0, 0, 0,
                                   crc, len(payload), len(payload), len(name_b), 0, 0, 0, 0,
                                   0, header_offset) + name_b)
    cd_offset = out.tell()
    for entry in central:
        out.write(entry)
    cd_size = out.tell() - cd_offset
    z64_offset = out.tell()
    count = len(records)
    out.write(struct.pack("<4sQHHIIQQQQ", SIG_ZIP64_EOCD, 44, 0x031E, 0x2D, 0, 0, count,
                          count, cd_size, cd_offset))
    out.write(struct.pack("<4sIQI", SIG_ZIP64_LOCATOR, 0, z64_offset, 1))
    out.write(struct.pack("<4sHHHHIIH", SIG_EOCD, 0, 0, min(count, 0xFFFF),
                          min(count, 0xFFFF), min(cd_size, 0xFFFFFFFF),
                          min(cd_offset, 0xFFFFFFFF), 0))
    with open(path, "wb") as f:
        f.write(out.getvalue())


def compare_zip_layouts(ours, ref, pickle_name_suffix="data.pkl"):
    """Asserts two torch zip layouts match, up to data.pkl's size.

    data.pkl may legitimately differ in length when equal strings are shared
    differently (see canonical_pickle); then later offsets and alignment
    padding shift, so those are checked against the 64-byte rule instead.
    """
    a, b = ours["entries"], ref["entries"]
    assert [e["name"] for e in a] == [e["name"] for e in b], "record names/order differ"
    same_pickle_size = True
    same_pickle_bytes = True
    for ea, eb in zip(a, b):
        where = f"record {ea['name']}"
        is_pickle = ea["name"].endswith(pickle_name_suffix)
        if is_pickle and ea["crc"] != eb["crc"]:
            same_pickle_bytes = False
        if ea["name"].endswith(".data/serialization_id") and not same_pickle_bytes:
            # Its second half combines every record's CRC, data.pkl's too:
            # check each side against its own records, the names half as equal.
            id_a, id_b = ea["payload"].decode(), eb["payload"].decode()
            assert id_a[:20] == id_b[:20], f"{where}: record-name hash {id_a[:20]} != {id_b[:20]}"
            assert int(id_a[20:]) == serialization_id_crc_part(ours), f"{where}: {id_a} does not match the CRCs"
            assert int(id_b[20:]) == serialization_id_crc_part(ref), f"{where}: {id_b} does not match the CRCs"
            is_pickle = True  # its size is fixed, its CRC follows its content
        keys = ["flags", "method", "version_made", "version_needed", "time", "date",
                "int_attr", "ext_attr", "central_extra", "comment", "local_name",
                "local_flags", "local_crc", "local_sizes"]
        if not is_pickle:
            keys += ["size", "usize", "crc"]
        if same_pickle_size:
            keys += ["header_offset", "data_offset", "local_extra"]
            if not is_pickle:
                keys.append("descriptor")
        for key in keys:
            assert ea[key] == eb[key], f"{where}: {key} {ea[key]!r} != {eb[key]!r}"
        if is_pickle and ea["size"] != eb["size"]:
            same_pickle_size = False
        # Alignment rule, whatever the offsets are.
        assert ea["data_offset"] % 64 == 0, f"{where}: data at {ea['data_offset']} not 64-aligned"
        pad = _alignment_padding(ea["header_offset"], len(ea["local_name"].encode()))
        assert ea["local_extra"] == b"FB" + struct.pack("<H", pad) + b"Z" * pad, \
            f"{where}: unexpected local extra field {ea['local_extra'][:8]!r}..."
        assert ea["size"] == ea["usize"], f"{where}: compressed record"
        if ea["size"]:
            assert ea["descriptor"] == struct.pack("<4sIII", SIG_DESCRIPTOR, ea["crc"],
                                                   ea["size"], ea["size"]), \
                f"{where}: bad data descriptor"
    if same_pickle_size:
        assert ours["end"] == ref["end"], f"end records differ: {ours['end']} != {ref['end']}"
        assert ours["file_size"] == ref["file_size"]
    else:
        for key in ("eocd", "locator", "zip64_eocd"):
            assert (key in ours["end"]) == (key in ref["end"]), f"{key} presence differs"
        assert ours["end"]["count"] == ref["end"]["count"]


# ---------------------------------------------------------------- canonical pickle

_STRING_OPS = {"UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8",
               "STRING", "BINSTRING", "SHORT_BINSTRING"}
_PUT_OPS = {"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"}
_GET_OPS = {"GET", "BINGET", "LONG_BINGET"}


class _Opaque:
    """A stack slot holding something that is not a string."""
    __slots__ = ()


_OPAQUE = _Opaque()


def canonical_pickle(data):
    """The opcode stream of a pickle "up to string identity", as a list of tuples.

    Memo PUTs are dropped; a GET of a string becomes the string itself (so
    whether equal strings were shared does not matter); a GET of anything else
    becomes ("REF", n), n numbering the referenced objects in the order they
    were memoized (counting only objects that are referenced later). All string
    opcodes compare as ("STR", value). Two pickles give equal results iff they
    build the same object graph up to which equal strings are shared, and use
    the same opcodes otherwise.
    """
    ops = list(pickletools.genops(data))
    # Pass 1: simulate the stack (string or not) to know what each PUT memoizes,
    # and which PUTs are referenced by a later GET.
    memo = {}          # memo key -> (put index, value: str or _OPAQUE)
    put_value = {}     # put index -> value
    referenced = set()
    stack, marks = [], []
    for index, (op, arg, _) in enumerate(ops):
        name = op.name
        if name in _PUT_OPS:
            key = len(memo) if name == "MEMOIZE" else arg
            memo[key] = (index, stack[-1])
            put_value[index] = stack[-1]
            continue
        if name in _GET_OPS:
            put_index, value = memo[arg]
            if not isinstance(value, str):
                referenced.add(put_index)
            stack.append(value)
            continue
        if name == "MARK":
            marks.append(len(stack))
            continue
        if name == "DUP":
            stack.append(stack[-1])
            continue
        before = op.stack_before
        if pickletools.markobject in before:
            del stack[marks.pop():]
            before = before[:before.index(pickletools.markobject)]
        if before:
            del stack[len(stack) - len(before):]
        if name in _STRING_OPS:
            stack.append(arg if isinstance(arg, str) else str(arg))
        else:
            stack.extend(_OPAQUE for _ in op.stack_after)
    # Pass 2: emit.
    tokens = []
    number = {}
    memo = {}
    for index, (op, arg, _) in enumerate(ops):
        name = op.name
        if name in _PUT_OPS:
            key = len(memo) if name == "MEMOIZE" else arg
            memo[key] = index
            if index in referenced and index not in number:
                number[index] = len(number)
            continue
        if name in _GET_OPS:
            put_index = memo[arg]
            value = put_value[put_index]
            tokens.append(("STR", value) if isinstance(value, str)
                          else ("REF", number[put_index]))
            continue
        if name in _STRING_OPS:
            tokens.append(("STR", arg if isinstance(arg, str) else str(arg)))
        elif name == "BINFLOAT" or name == "FLOAT":
            tokens.append((name, struct.pack(">d", arg)))  # keeps -0.0 and NaN exact
        else:
            tokens.append((name, arg))
    return tokens


def diff_canonical(a, b, context=3):
    """A short description of where two canonical pickles first differ."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            lo = max(0, i - context)
            return (f"first difference at op {i}: {x!r} != {y!r}; before: {a[lo:i]!r}")
    return f"lengths differ: {len(a)} != {len(b)}"


def pickle_of(path):
    """The data.pkl bytes of a zip checkpoint."""
    for name, payload in read_zip_records(path):
        if name.endswith("/data.pkl") or name == "data.pkl":
            return payload
    raise AssertionError(f"{path}: no data.pkl record")


# ---------------------------------------------------------------- object equality

def _float_bits(x):
    return struct.pack(">d", x)


def _storage_bytes(tensor):
    storage = tensor.storage().untyped()
    flat = torch.empty(0, dtype=torch.uint8)
    flat.set_(storage)
    return storage, flat.numpy().tobytes()


_SCALARS = (type(None), bool, int, str, bytes)


def assert_same_objects(a, b, path="root"):
    """Asserts two torch.load results are the same objects.

    Checks exact types, dict key order, values (NaN-aware, -0.0 sign), tensors
    bit for bit (dtype, shape, stride, storage offset, requires_grad,
    Parameter-ness, whole storage bytes), the sharing structure (the same
    object / storage in `a` is the same in `b`, and vice versa), OrderedDict
    _metadata, defaultdict factories, and DictConfig nodes (content, metadata,
    flags, parent links). Strings are compared by value only.
    """
    import omegaconf
    from omegaconf.base import Node

    seen_ab, seen_ba = {}, {}            # id(a object) <-> id(b object)
    storage_ab, storage_ba = {}, {}      # storage data_ptr a <-> b
    keep_alive = []
    work = [(a, b, path)]

    def same_identity(x, y, where):
        """Returns True if (x, y) was already compared; checks sharing is consistent."""
        ix, iy = id(x), id(y)
        if ix in seen_ab or iy in seen_ba:
            assert seen_ab.get(ix) == iy and seen_ba.get(iy) == ix, \
                f"{where}: object sharing differs"
            return True
        seen_ab[ix], seen_ba[iy] = iy, ix
        keep_alive.append((x, y))
        return False

    while work:
        x, y, where = work.pop()
        assert type(x) is type(y), f"{where}: type {type(x).__name__} != {type(y).__name__}"
        if isinstance(x, float):
            assert _float_bits(x) == _float_bits(y) or (math.isnan(x) and math.isnan(y)), \
                f"{where}: {x!r} != {y!r}"
            continue
        if isinstance(x, complex):
            assert _float_bits(x.real) == _float_bits(y.real) and \
                _float_bits(x.imag) == _float_bits(y.imag), f"{where}: {x!r} != {y!r}"
            continue
        if isinstance(x, _SCALARS) or x is Ellipsis:
            assert x == y, f"{where}: {x!r} != {y!r}"
            continue
        if isinstance(x, (torch.dtype, torch.device, torch.Size)):
            assert x == y, f"{where}: {x!r} != {y!r}"
            continue
        if isinstance(x, tuple) and not hasattr(x, "_fields"):
            assert len(x) == len(y), f"{where}: tuple length {len(x)} != {len(y)}"
            work.extend((xi, yi, f"{where}[{i}]") for i, (xi, yi) in
                        reversed(list(enumerate(zip(x, y)))))
            continue
        if isinstance(x, (set, frozenset)):
            if isinstance(x, set) and same_identity(x, y, where):
                continue
            assert x == y, f"{where}: {x!r} != {y!r}"
            assert sorted(map(repr, map(type, x))) == sorted(map(repr, map(type, y)))
            continue
        if isinstance(x, torch.Tensor):
            if same_identity(x, y, where):
                continue
            _compare_tensors(x, y, where, storage_ab, storage_ba, keep_alive)
            if x.__dict__ or y.__dict__:
                work.append((dict(x.__dict__), dict(y.__dict__), f"{where}.__dict__"))
            continue
        if isinstance(x, (omegaconf.DictConfig, omegaconf.ListConfig)) or isinstance(x, Node):
            if same_identity(x, y, where):
                continue
            _compare_omegaconf_node(x, y, where, work)
            continue
        if isinstance(x, dict):
            if same_identity(x, y, where):
                continue
            assert len(x) == len(y), f"{where}: {len(x)} keys != {len(y)} keys"
            xkeys, ykeys = list(x.keys()), list(y.keys())
            for i, (kx, ky) in enumerate(zip(xkeys, ykeys)):
                assert type(kx) is type(ky) and (kx == ky or kx != kx), \
                    f"{where}: key #{i} {kx!r} != {ky!r} (order or value)"
            if isinstance(x, collections.defaultdict):
                assert x.default_factory is y.default_factory, \
                    f"{where}: default_factory {x.default_factory} != {y.default_factory}"
            xattrs = getattr(x, "__dict__", {})
            yattrs = getattr(y, "__dict__", {})
            assert list(xattrs) == list(yattrs), \
                f"{where}: attributes {list(xattrs)} != {list(yattrs)}"
            for attr in reversed(list(xattrs)):
                work.append((xattrs[attr], yattrs[attr], f"{where}.{attr}"))
            for kx, ky in reversed(list(zip(xkeys, ykeys))):
                work.append((kx, ky, f"{where} key {kx!r}"))
                work.append((x[kx], y[ky], f"{where}/{kx}"))
            continue
        if isinstance(x, (list, bytearray)):
            if same_identity(x, y, where):
                continue
            assert len(x) == len(y), f"{where}: length {len(x)} != {len(y)}"
            if isinstance(x, bytearray):
                assert x == y, f"{where}: {x!r} != {y!r}"
                continue
            work.extend((xi, yi, f"{where}/{i}") for i, (xi, yi) in
                        reversed(list(enumerate(zip(x, y)))))
            continue
        if isinstance(x, (type, type(len))):
            assert x is y, f"{where}: {x!r} is not {y!r}"
            continue
        # Any other object: compare its state.
        if same_identity(x, y, where):
            continue
        assert hasattr(x, "__dict__"), f"{where}: cannot compare {type(x).__name__}"
        work.append((dict(x.__dict__), dict(y.__dict__), f"{where}.__dict__"))


def _compare_tensors(x, y, where, storage_ab, storage_ba, keep_alive):
    for attr in ("dtype", "shape", "requires_grad", "is_leaf", "layout", "device"):
        assert getattr(x, attr) == getattr(y, attr), \
            f"{where}: tensor {attr} {getattr(x, attr)} != {getattr(y, attr)}"
    assert x.stride() == y.stride(), f"{where}: stride {x.stride()} != {y.stride()}"
    assert x.storage_offset() == y.storage_offset(), \
        f"{where}: storage_offset {x.storage_offset()} != {y.storage_offset()}"
    sx, bx = _storage_bytes(x)
    sy, by = _storage_bytes(y)
    assert sx.nbytes() == sy.nbytes(), f"{where}: storage bytes {sx.nbytes()} != {sy.nbytes()}"
    assert bx == by, f"{where}: storage contents differ"
    if sx.nbytes():  # empty storages all have data_ptr 0: nothing to share
        px, py = sx.data_ptr(), sy.data_ptr()
        if px in storage_ab or py in storage_ba:
            assert storage_ab.get(px) == py and storage_ba.get(py) == px, \
                f"{where}: storage sharing differs"
        storage_ab[px], storage_ba[py] = py, px
        keep_alive.append((sx, sy))


def _compare_omegaconf_node(x, y, where, work):
    mx, my = x._metadata, y._metadata
    assert type(mx) is type(my), f"{where}: metadata type differs"
    fields_x, fields_y = vars(mx), vars(my)
    assert list(fields_x) == list(fields_y), f"{where}: metadata fields differ"
    for field in fields_x:
        if field == "resolver_cache":
            assert type(fields_x[field]) is type(fields_y[field])
            continue
        assert fields_x[field] == fields_y[field], \
            f"{where}: metadata {field} {fields_x[field]!r} != {fields_y[field]!r}"
    # _parent: both None, or both point to the node compared as the parent.
    px, py = x.__dict__.get("_parent"), y.__dict__.get("_parent")
    assert (px is None) == (py is None), f"{where}: _parent presence differs"
    if px is not None:
        work.append((px, py, f"{where}._parent"))
    if "_val" in x.__dict__:
        work.append((x.__dict__["_val"], y.__dict__["_val"], f"{where}._val"))
        return
    cx, cy = x.__dict__["_content"], y.__dict__["_content"]
    if isinstance(cx, dict):
        assert isinstance(cy, dict), f"{where}: _content kind differs"
        assert list(cx) == list(cy), f"{where}: keys {list(cx)} != {list(cy)}"
        for key in reversed(list(cx)):
            px_child = cx[key].__dict__.get("_parent")
            assert px_child is x, f"{where}/{key}: _parent does not point to its container"
            assert cy[key].__dict__.get("_parent") is y, \
                f"{where}/{key}: _parent does not point to its container"
            work.append((cx[key], cy[key], f"{where}/{key}"))
    elif isinstance(cx, list):
        assert isinstance(cy, list) and len(cx) == len(cy), f"{where}: _content differs"
        for i in reversed(range(len(cx))):
            assert cx[i].__dict__.get("_parent") is x and cy[i].__dict__.get("_parent") is y, \
                f"{where}/{i}: _parent does not point to its container"
            work.append((cx[i], cy[i], f"{where}/{i}"))
    else:
        work.append((cx, cy, f"{where}._content"))


def dictconfig_summary(cfg):
    """OmegaConf.to_container(resolve=False) plus the root flags, for messages."""
    from omegaconf import OmegaConf
    return OmegaConf.to_container(cfg, resolve=False), dict(cfg._metadata.flags)


def torch_resave(src, dst):
    """What torch.save(torch.load(src)) writes, at dst."""
    torch.save(torch.load(src), dst)


def json_strings(obj):
    """Every string (keys and values) in a JSON document."""
    out, work = set(), [obj]
    while work:
        item = work.pop()
        if isinstance(item, str):
            out.add(item)
        elif isinstance(item, dict):
            out.update(k for k in item)
            work.extend(item.values())
        elif isinstance(item, list):
            work.extend(item)
    return out


def json_numbers(obj):
    out, work = set(), [obj]
    while work:
        item = work.pop()
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            out.add(item)
        elif isinstance(item, dict):
            work.extend(item.values())
        elif isinstance(item, list):
            work.extend(item)
    return out


# ---------------------------------------------------------------- weights_only (torch >= 2.6)

WEIGHTS_ONLY_OPCODES = {
    "GLOBAL", "NEWOBJ", "REDUCE", "BUILD", "APPEND", "APPENDS", "SETITEM", "SETITEMS", "MARK",
    "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "NONE", "NEWTRUE", "NEWFALSE", "EMPTY_TUPLE",
    "EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET", "BININT", "BININT1", "BININT2", "BINFLOAT",
    "BINUNICODE", "SHORT_BINSTRING", "BINPERSID", "BINGET", "LONG_BINGET", "BINPUT",
    "LONG_BINPUT", "LONG1", "PROTO", "STOP",
}
_STORAGE_TYPES = ("Double", "Float", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte",
                  "Bool", "ComplexFloat", "ComplexDouble", "QInt8", "QUInt8", "QInt32",
                  "QUInt4x2", "QUInt2x4")
WEIGHTS_ONLY_GLOBALS = {
    "collections OrderedDict", "collections Counter", "_codecs encode",
    "torch._utils _rebuild_tensor", "torch._utils _rebuild_tensor_v2",
    "torch._utils _rebuild_tensor_v3", "torch._utils _rebuild_parameter",
    "torch._utils _rebuild_parameter_with_state", "torch._utils _rebuild_qtensor",
    "torch._utils _rebuild_sparse_tensor", "torch Size", "torch Tensor", "torch device",
    "torch.nn.parameter Parameter", "torch UntypedStorage",
    *(f"{m} {n}" for m in ("builtins", "__builtin__") for n in ("set", "complex", "bytearray")),
    *(f"torch {t}Storage" for t in _STORAGE_TYPES),
}


def weights_only_problems(data):
    """What torch >= 2.6's default weights_only loader would refuse in a pickle.

    Torch 1.13's own weights_only loader is stricter (no BINFLOAT), so tests
    check sanitized files against the newer rules, from its allow lists.
    """
    problems = []
    for op, arg, pos in pickletools.genops(data):
        if op.name not in WEIGHTS_ONLY_OPCODES:
            problems.append(f"opcode {op.name} at {pos}")
        elif op.name == "GLOBAL" and arg not in WEIGHTS_ONLY_GLOBALS:
            problems.append(f"global {arg} at {pos}")
    return problems


def assert_like_torch_save(out, expected, tmp_path):
    """`out` loads to `expected`, and is laid out as torch.save(expected) at the same name."""
    ref = tmp_path / "torch_ref" / out.name
    ref.parent.mkdir(exist_ok=True)
    torch.save(expected, ref)
    assert_same_objects(torch.load(out), torch.load(ref))
    compare_zip_layouts(zip_layout(out), zip_layout(ref))
    ours, theirs = canonical_pickle(pickle_of(out)), canonical_pickle(pickle_of(ref))
    assert ours == theirs, diff_canonical(ours, theirs)
