"""Hostile and damaged inputs for every command.

Each file is made here (small, in a temporary folder) and each command runs on
it under a resource limit. Every run must end with exit 0 (the file is actually
valid), 1 (verify: a problem found; scan: a global not allowed) or 2 with exactly
one `ckpt: error: ...` line on stderr; never a signal, a traceback or an abort;
and within the bounds docs/REFERENCE.md states ("Limits"): peak RSS under 256 MiB and
under 10 s for any input under 10 MB.
"""

import collections
import json
import os
import pickle
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib

import pytest
import torch

from conftest import REPO_ROOT, ckpt_bin

EXAMPLE = os.path.join(REPO_ROOT, "examples", "musicgen_tiny_training.th")
MAX_RSS_KB = 256 * 1024
MAX_SECONDS = 10.0
# Compressed records (torch never writes them) are inflated as they are read:
# that time comes on top of the bound (README "Limits").
INFLATE_SECONDS_PER_GIB = 20.0


def _sanitized_build():
    """ASan reserves terabytes of address space and doubles memory and time:
    the bounds are asserted on the plain build only."""
    with open(ckpt_bin(), "rb") as f:
        return b"__asan_init" in f.read()


SANITIZED = os.path.exists(ckpt_bin()) and _sanitized_build()


class Run:
    def __init__(self, returncode, stdout, stderr, seconds, max_rss_kb):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr
        self.seconds, self.max_rss_kb = seconds, max_rss_kb


# ckpt is started from a small helper process, not from this one: a child
# forked from this (torch-sized) process counts this process's pages in its
# own peak RSS until it execs, and the limits below need a fork.
_BOUNDED = r"""
import json, os, resource, subprocess, sys, threading
sanitized, out_path, err_path, cwd = sys.argv[1] == "1", sys.argv[2], sys.argv[3], sys.argv[4]
def limits():
    if not sanitized:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
with open(out_path, "wb") as out, open(err_path, "wb") as err:
    p = subprocess.Popen(sys.argv[5:], stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=cwd,
                         preexec_fn=limits)
    killer = threading.Timer(60, p.kill)
    killer.start()
    try:
        _, status, usage = os.wait4(p.pid, 0)
    finally:
        killer.cancel()
print(json.dumps({"rc": os.waitstatus_to_exitcode(status), "rss": usage.ru_maxrss}))
"""


def run_bounded(args, cwd):
    """Runs ckpt; returns a Run with the child's own peak RSS (wait4, in a small helper)."""
    with tempfile.TemporaryDirectory() as d:
        out_path, err_path = os.path.join(d, "out"), os.path.join(d, "err")
        start = time.monotonic()
        r = subprocess.run([sys.executable, "-S", "-c", _BOUNDED, "1" if SANITIZED else "0", out_path, err_path,
                            str(cwd), ckpt_bin(), *map(str, args)],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
        seconds = time.monotonic() - start
        assert r.returncode == 0, r.stderr
        m = json.loads(r.stdout)
        with open(out_path, "rb") as f:
            stdout = f.read().decode("utf-8", "replace")
        with open(err_path, "rb") as f:
            stderr = f.read().decode("utf-8", "replace")
        return Run(m["rc"], stdout, stderr, seconds, m["rss"])


# ------------------------------------------------------------------ commands

def commands(path, outdir):
    out = os.path.join(outdir, "out.th")
    return {
        "info": ["info", path], "ls": ["ls", path, "--depth", "3"], "tensors": ["tensors", path],
        "cfg": ["cfg", path], "verify": ["verify", path],
        # -q: no progress lines, so stderr holds the error line alone.
        "rewrite": ["rewrite", path, "-o", out, "--force", "-q"],
        "edit": ["edit", path, "-o", out, "--force", "-q", "optim.lr=0.5"],
        "export": ["export", path, "-o", out, "--force", "-q"],
        "wrap": ["wrap", path, "-o", out, "--force", "-q"],
        "sanitize": ["sanitize", path, "-o", out, "--force", "-q"],
        "scan": ["scan", path],
        "to-transformers": ["to-transformers", path, "-o", os.path.join(outdir, "hf"), "--force", "-q"],
    }


# The largest peak RSS and time seen, for the report at the end.
WORST = {"rss_kb": (0, ""), "seconds": (0.0, ""), "runs": 0}


def check_run(name, cmd, run, inconsistent=False, extra_seconds=0.0):
    where = f"{name}: {' '.join(map(str, cmd))}"
    WORST["runs"] += 1
    if run.max_rss_kb > WORST["rss_kb"][0]:
        WORST["rss_kb"] = (run.max_rss_kb, f"{name} {cmd[0]}")
    if run.seconds > WORST["seconds"][0] and not extra_seconds:
        WORST["seconds"] = (run.seconds, f"{name} {cmd[0]}")
    assert run.returncode >= 0, f"{where}: killed by signal {-run.returncode}\n{run.stderr[-2000:]}"
    for bad in ("Traceback", "terminate called", "AddressSanitizer", "runtime error", "out of memory",
                "internal error"):
        assert bad not in run.stderr, f"{where}: {run.stderr[-2000:]}"
    allowed = {0, 2}
    if cmd[0] in ("verify", "scan", "sanitize"):
        allowed = {0, 1, 2}
    if cmd[0] == "verify" and inconsistent:
        allowed = {1, 2}
    assert run.returncode in allowed, f"{where}: exit {run.returncode}\n{run.stdout[-1000:]}\n{run.stderr[-1000:]}"
    if run.returncode == 2:
        lines = [x for x in run.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and lines[0].startswith("ckpt: error: "), f"{where}: stderr {run.stderr!r}"
    if not SANITIZED:
        assert run.max_rss_kb < MAX_RSS_KB, f"{where}: peak RSS {run.max_rss_kb} KB"
        assert run.seconds < MAX_SECONDS + extra_seconds, f"{where}: {run.seconds:.1f} s"


def run_all(name, path, tmp_path, inconsistent=False, only=None, extra_seconds=0.0):
    """Runs every command on path; returns {command: Run}. extra_seconds: time
    allowed on top of the bound for inflating compressed records (docs/REFERENCE.md)."""
    runs = {}
    outdir = tmp_path / f"out-{name}"
    outdir.mkdir(exist_ok=True)
    before = open(path, "rb").read() if os.path.getsize(path) < (64 << 20) else None
    for cmd_name, cmd in commands(path, outdir).items():
        if only and cmd_name not in only:
            continue
        run = run_bounded(cmd, outdir)
        check_run(name, cmd, run, inconsistent, extra_seconds)
        if run.returncode != 0:
            assert not os.listdir(outdir), f"{name}: {cmd_name} failed but left {os.listdir(outdir)}"
        for f in os.listdir(outdir):
            os.unlink(outdir / f)
        runs[cmd_name] = run
    if before is not None:
        assert open(path, "rb").read() == before, f"{name}: the input changed"
    return runs


# ------------------------------------------------------------------ file makers

def small_checkpoint(path):
    """A small training-layout checkpoint torch writes itself."""
    gen = torch.Generator().manual_seed(5)
    sd = collections.OrderedDict(w=torch.randn(4, 3, generator=gen), b=torch.zeros(4))
    torch.save({"best_state": {"model": sd}, "xp.cfg": "optim:\n  lr: 0.1\n", "version": "1.0"}, path)


def zip_bytes(records, compression=zipfile.ZIP_STORED):
    import io
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in records:
            z.writestr(zipfile.ZipInfo(name), data)
    return buf.getvalue()


def pickle_zip(path, data_pkl, extra=()):
    with open(path, "wb") as f:
        f.write(zip_bytes([("h/data.pkl", data_pkl), *extra, ("h/version", b"3\n")]))


def central_entries(data):
    """[(offset of the central header, name)] of a zip."""
    eocd = data.rfind(b"PK\x05\x06")
    count, _, cd_offset = struct.unpack_from("<HII", data, eocd + 10)
    out, pos = [], cd_offset
    for _ in range(count):
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, pos + 28)
        out.append((pos, data[pos + 46:pos + 46 + name_len].decode()))
        pos += 46 + name_len + extra_len + comment_len
    return out


def patched(data, offset, fmt, value):
    b = bytearray(data)
    struct.pack_into(fmt, b, offset, value)
    return bytes(b)


def zip_damages(base):
    """name -> damaged copy of a torch zip."""
    eocd = base.rfind(b"PK\x05\x06")
    cds = central_entries(base)
    pkl_cd = next(off for off, name in cds if name.endswith("data.pkl"))
    pkl_local = struct.unpack_from("<I", base, pkl_cd + 42)[0]
    st_cd = next(off for off, name in cds if "/data/" in name)
    st_local = struct.unpack_from("<I", base, st_cd + 42)[0]
    d = {
        "local_sig": patched(base, pkl_local, "<I", 0x12345678),
        "local_name_len": patched(base, pkl_local + 26, "<H", 0xFFFF),
        "local_extra_len": patched(base, pkl_local + 28, "<H", 0xFFFF),
        "local_name_byte": patched(base, pkl_local + 30, "<B", ord("X")),
        "local_storage_name": patched(base, st_local + 31, "<B", ord("Z")),
        "central_sig": patched(base, pkl_cd, "<I", 0),
        "central_name_len": patched(base, pkl_cd + 28, "<H", 0xFFFF),
        "central_offset_past_end": patched(base, pkl_cd + 42, "<I", 0x7FFFFFF0),
        "central_size_huge": patched(base, pkl_cd + 24, "<I", 0xFFFFFFF0),
        "central_csize_huge": patched(base, st_cd + 20, "<I", 0x7FFFFFF0),
        "storage_offset_past_end": patched(base, st_cd + 42, "<I", len(base) + 10),
        "central_method": patched(base, st_cd + 10, "<H", 99),
        "central_crc": patched(base, st_cd + 16, "<I", 0xDEADBEEF),
        "eocd_entries": patched(patched(base, eocd + 8, "<H", 0xFFFF), eocd + 10, "<H", 0xFFFF),
        "eocd_cd_offset": patched(base, eocd + 16, "<I", 0xFFFFFFF0),
        "eocd_cd_size": patched(base, eocd + 12, "<I", 0x7FFFFFFF),
        "eocd_comment_len": patched(base, eocd + 20, "<H", 0x4000),
        "eocd_missing": base[:eocd],
        "eocd_disk": patched(base, eocd + 4, "<H", 3),
        "zip64_locator_bogus": base[:eocd] + b"PK\x06\x07" + struct.pack("<IQI", 0, 2**62, 1) + base[eocd:],
        "trailing_garbage": base + b"\x00" * 100,
    }
    # Two central entries pointing at one local header (overlapping records).
    dup_cd = bytearray(base)
    first_cd = cds[0][0]
    struct.pack_into("<I", dup_cd, st_cd + 42, struct.unpack_from("<I", base, first_cd + 42)[0])
    d["overlapping_records"] = bytes(dup_cd)
    return d


# The hostile pickles: (name, bytes).
def hostile_pickles():
    nest = 1_000_000
    laughs = b"\x80\x02]q\x00" + b"(" + b"h\x00" * 10 + b"lq\x00" + (b"(" + b"h\x00" * 10 + b"lq\x00") * 40 + b"."
    dict_laughs = (b"\x80\x02}q\x00" + (b"}q\x01(" + b"".join(b"K" + bytes([i]) + b"h\x00" for i in range(8))
                                        + b"uq\x00") * 40 + b".")
    return [
        ("nest_lists", b"\x80\x02" + b"]" * nest + b"a" * (nest - 1) + b"."),
        ("nest_marks", b"\x80\x02" + b"(" * nest + b"l" * nest + b"."),
        ("nest_tuple1", b"\x80\x02)" + b"\x85" * nest + b"."),
        ("nest_dicts", b"\x80\x02}" + b"}q\x00X\x01\x00\x00\x00ah\x00s" * 0 + b"(" * 1000 + b"d" * 1000 + b"."),
        ("deep_under_cap", b"\x80\x02)" + b"\x85" * 400_000 + b"."),
        ("billion_laughs", laughs),
        ("dict_laughs", dict_laughs),
        ("binunicode_len", b"\x80\x02X\xf0\xff\xff\xff" + b"abc."),
        ("binbytes8_len", b"\x80\x04\x8e" + struct.pack("<Q", 2**63) + b"abc."),
        ("long4_len", b"\x80\x02\x8b\xff\xff\xff\x7f" + b"\x00."),
        ("binstring_neg", b"\x80\x02T\xff\xff\xff\xff" + b"a."),
        ("frame_len", b"\x80\x04\x95" + struct.pack("<Q", 2**62) + b"}."),
        ("bad_utf8", b"\x80\x02X\x04\x00\x00\x00\xff\xfe\xc0\x80."),
        ("surrogate_utf8", b"\x80\x02X\x03\x00\x00\x00\xed\xa0\x80."),
        ("stack_underflow", b"\x80\x02a."),
        ("pop_empty", b"\x80\x020."),
        ("appends_no_mark", b"\x80\x02]K\x01e."),
        ("mark_left_open", b"\x80\x02(K\x01."),
        ("setitems_odd", b"\x80\x02}(K\x01u."),
        ("memo_undefined", b"\x80\x02h\x05."),
        ("long_memo_undefined", b"\x80\x02j\xff\xff\xff\xff."),
        ("get_text_undefined", b"(lp0\ng7\n."),
        ("unknown_opcode", b"\x80\x02\xff."),
        ("no_stop", b"\x80\x02]q\x00K\x01a"),
        ("empty_pickle", b""),
        ("stop_only", b"."),
        ("reduce_non_callable", b"\x80\x02K\x01)R."),
        ("build_on_int", b"\x80\x02K\x01}b."),
        ("setitem_on_list", b"\x80\x02]K\x01K\x02s."),
        ("append_on_dict", b"\x80\x02}K\x01a."),
        ("persid_str", b"\x80\x02X\x01\x00\x00\x00aQ."),
        ("int_text_huge", b"I" + b"9" * 5000 + b"\n."),
        ("float_text_bad", b"Fnotafloat\n."),
        ("proto_99", b"\x80\x63}."),
        ("root_is_int", b"\x80\x02K\x05."),
        ("global_no_newline", b"ctorch"),
        ("evil_global", b"\x80\x02cposix\nsystem\nX\x02\x00\x00\x00idq\x00\x85R."),
    ]


class StorageRef:
    def __init__(self, pid):
        self.pid = pid


class FakeTensor:
    def __init__(self, key, numel, offset, size, stride, storage_class=None):
        self.pid = ("storage", storage_class or torch.FloatStorage, key, "cpu", numel)
        self.offset, self.size, self.stride = offset, size, stride

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2,
                (StorageRef(self.pid), self.offset, self.size, self.stride, False, collections.OrderedDict()))


class TensorPickler(pickle.Pickler):
    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, StorageRef) else None


def tensor_pickle(**tensors):
    import io
    buf = io.BytesIO()
    TensorPickler(buf, protocol=2).dump({"best_state": {"model": collections.OrderedDict(tensors)},
                                         "xp.cfg": "a: 1\n"})
    return buf.getvalue()


def inconsistent_tensors():
    """name -> (data.pkl, {storage key: record bytes})."""
    f16 = b"\x00" * 64
    return {
        "record_shorter": (tensor_pickle(w=FakeTensor("0", 16, 0, (16,), (1,))), {"0": b"\x00" * 40}),
        "record_longer": (tensor_pickle(w=FakeTensor("0", 16, 0, (16,), (1,))), {"0": b"\x00" * 80}),
        "record_missing": (tensor_pickle(w=FakeTensor("0", 16, 0, (16,), (1,))), {}),
        "numel_2_63": (tensor_pickle(w=FakeTensor("0", 2**63 - 1, 0, (2**62,), (1,))), {"0": f16}),
        "numel_2_61": (tensor_pickle(w=FakeTensor("0", 2**61, 0, (2**61,), (1,))), {"0": f16}),
        "shape_overflow": (tensor_pickle(w=FakeTensor("0", 16, 0, (2**40, 2**40), (0, 0))), {"0": f16}),
        "view_past_end": (tensor_pickle(w=FakeTensor("0", 16, 10, (4, 4), (4, 1))), {"0": f16}),
        "stride_past_end": (tensor_pickle(w=FakeTensor("0", 16, 0, (4, 4), (100, 1))), {"0": f16}),
        "offset_negative": (tensor_pickle(w=FakeTensor("0", 16, -4, (4,), (1,))), {"0": f16}),
        "size_negative": (tensor_pickle(w=FakeTensor("0", 16, 0, (-1,), (1,))), {"0": f16}),
        "stride_negative": (tensor_pickle(w=FakeTensor("0", 16, 0, (4,), (-1,))), {"0": f16}),
        "size_stride_lengths": (tensor_pickle(w=FakeTensor("0", 16, 0, (4, 4), (1,))), {"0": f16}),
        "numel_negative": (tensor_pickle(w=FakeTensor("0", -5, 0, (4,), (1,))), {"0": f16}),
        "same_key_two_sizes": (tensor_pickle(w=FakeTensor("0", 16, 0, (4,), (1,)),
                                             v=FakeTensor("0", 8, 0, (4,), (1,))), {"0": f16}),
    }


# ------------------------------------------------------------------ tests

@pytest.fixture(scope="module")
def base_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("base") / "base.th"
    small_checkpoint(path)
    return path


def test_valid_base_runs_everywhere(ckpt, base_ckpt, tmp_path):
    runs = run_all("base", base_ckpt, tmp_path)
    for name in ("info", "ls", "tensors", "cfg", "verify", "rewrite", "edit", "export", "scan"):
        assert runs[name].returncode == 0, f"{name}: {runs[name].stderr}"


def test_truncated_everywhere(ckpt, tmp_path):
    data = open(EXAMPLE, "rb").read()
    n = len(data)
    cuts = sorted({0, 1, 4, 22, 30, 100, 1000, *range(2000, n, n // 12), n - 200, n - 100, n - 50,
                   n - 23, n - 22, n - 21, n - 1})
    for cut in cuts:
        path = tmp_path / f"cut{cut}.th"
        path.write_bytes(data[:cut])
        runs = run_all(f"cut{cut}", path, tmp_path)
        assert runs["info"].returncode == 2, f"cut {cut}: info succeeded on a truncated file"
        assert runs["scan"].returncode == 2
        path.unlink()


def test_damaged_zip_structures(ckpt, base_ckpt, tmp_path):
    base = open(base_ckpt, "rb").read()
    for name, data in zip_damages(base).items():
        path = tmp_path / f"{name}.th"
        path.write_bytes(data)
        runs = run_all(name, path, tmp_path)
        # torch writes ZIP64 end records, so the classic EOCD fields may be moot.
        if name.startswith(("local_", "central_", "storage_", "overlapping")):
            assert runs["verify"].returncode in (1, 2), f"{name}: verify passed"
        if name == "local_name_byte":
            assert "name" in runs["info"].stderr


def test_duplicate_names(ckpt, base_ckpt, tmp_path):
    import warnings
    path = tmp_path / "dup.th"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(base_ckpt) as src, zipfile.ZipFile(path, "w") as dst:
            for info in src.infolist():
                dst.writestr(info.filename, src.read(info))
            dst.writestr(src.infolist()[0].filename, b"\x80\x02}.")
    runs = run_all("dup", path, tmp_path)
    # torch (miniz) accepts duplicate names and reads the one its sorted lookup finds; ckpt
    # reads the same (issue 19) and verify names the pair.
    assert runs["verify"].returncode == 1 and "equal but for case" in runs["verify"].stdout + runs["verify"].stderr


def deflate_bomb(size):
    """Raw DEFLATE of `size` zero bytes, and its CRC-32."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = b"\x00" * (16 << 20)
    parts, crc, left = [], 0, size
    while left:
        piece = chunk[:min(left, len(chunk))]
        parts.append(comp.compress(piece))
        crc = zlib.crc32(piece, crc)
        left -= len(piece)
    parts.append(comp.flush())
    return b"".join(parts), crc


def zip_with_raw(records):
    """A zip of (name, raw deflate bytes or None for stored data, size, crc, stored data)."""
    out, central = bytearray(), bytearray()
    for name, comp, size, crc in records:
        method = 8
        nb = name.encode()
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0, crc, len(comp),
                               size, len(nb), 0, 0, 0, 0, 0, len(out)) + nb
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0, crc, len(comp), size,
                           len(nb), 0) + nb + comp
    cd_offset = len(out)
    out += central
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(records), len(records), len(central), cd_offset, 0)
    return bytes(out)


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    size = (1 << 30) - 4096  # under the 1 GiB pickle limit and the 4 GiB record limit
    comp, crc = deflate_bomb(size)
    return size, comp, crc


def test_deflate_bomb_as_data_pkl(ckpt, bomb, tmp_path):
    size, comp, crc = bomb
    assert len(comp) < (2 << 20)
    small, small_crc = zlib.compress(b"3\n")[2:-4], zlib.crc32(b"3\n")
    path = tmp_path / "bomb_pkl.th"
    path.write_bytes(zip_with_raw([("b/data.pkl", comp, size, crc), ("b/version", small, 2, small_crc)]))
    runs = run_all("bomb_pkl", path, tmp_path)
    for name, run in runs.items():
        assert run.returncode == (1 if name == "verify" else 2), f"{name}: exit {run.returncode}"
        assert "DEFLATE bomb" in run.stderr + run.stdout


def test_deflate_bomb_as_storage(ckpt, bomb, tmp_path):
    size, comp, crc = bomb
    pkl = tensor_pickle(w=FakeTensor("0", size // 4, 0, (size // 4,), (1,)))
    raw_pkl = zlib.compress(pkl)[2:-4]
    path = tmp_path / "bomb_storage.th"
    path.write_bytes(zip_with_raw([("b/data.pkl", raw_pkl, len(pkl), zlib.crc32(pkl)),
                                   ("b/data/0", comp, size, crc)]))
    # A valid (if odd) file: reading commands succeed; writing ones stream it
    # (rewrite would write 1 GiB: run the reading ones and sanitize/scan).
    # verify inflates the whole GiB for its CRC: the README's per-GiB allowance.
    runs = run_all("bomb_storage", path, tmp_path, only={"info", "ls", "tensors", "cfg", "scan", "verify"},
                   extra_seconds=INFLATE_SECONDS_PER_GIB)
    assert runs["info"].returncode == 0
    # The same record declaring less than it inflates to.
    path.write_bytes(zip_with_raw([("b/data.pkl", raw_pkl, len(pkl), zlib.crc32(pkl)),
                                   ("b/data/0", comp, 64, crc)]))
    runs = run_all("bomb_storage_lying", path, tmp_path)
    assert runs["verify"].returncode in (1, 2)


# The graph builder refuses these (the rest it reads leniently, as data).
MUST_FAIL_TO_LOAD = {
    "nest_lists", "nest_marks", "nest_tuple1", "nest_dicts", "binunicode_len", "binbytes8_len",
    "long4_len", "binstring_neg", "bad_utf8", "stack_underflow", "pop_empty", "appends_no_mark",
    "setitems_odd", "memo_undefined", "long_memo_undefined", "get_text_undefined", "unknown_opcode",
    "no_stop", "empty_pickle", "stop_only", "global_no_newline", "float_text_bad", "proto_99"}
# The scanner only follows the stack symbolically (a million-deep nesting is
# fine for it); these it cannot read to STOP, so scan never calls them safe.
MUST_FAIL_TO_SCAN = {
    "binunicode_len", "binbytes8_len", "long4_len", "binstring_neg", "stack_underflow", "pop_empty",
    "memo_undefined", "long_memo_undefined", "get_text_undefined", "unknown_opcode", "no_stop",
    "empty_pickle", "stop_only", "global_no_newline"}


@pytest.mark.parametrize("name,data", [pytest.param(n, d, id=n) for n, d in hostile_pickles()])
def test_hostile_pickle_in_valid_zip(ckpt, tmp_path, name, data):
    path = tmp_path / f"{name}.th"
    pickle_zip(path, data)
    runs = run_all(name, path, tmp_path)
    if name in MUST_FAIL_TO_LOAD:
        assert runs["info"].returncode == 2, f"{name}: info exit {runs['info'].returncode}"
        assert runs["verify"].returncode in (1, 2)
    if name in MUST_FAIL_TO_SCAN:
        assert runs["scan"].returncode == 2, f"{name}: scan exit {runs['scan'].returncode}"
    if name == "evil_global":
        assert runs["scan"].returncode == 1 and "NOT ALLOWED posix.system" in runs["scan"].stdout
        assert runs["sanitize"].returncode == 1


@pytest.mark.parametrize("name", list(inconsistent_tensors()))
def test_inconsistent_tensors(ckpt, tmp_path, name):
    data_pkl, storages = inconsistent_tensors()[name]
    path = tmp_path / f"{name}.th"
    pickle_zip(path, data_pkl, [(f"h/data/{k}", v) for k, v in storages.items()])
    runs = run_all(name, path, tmp_path, inconsistent=True)
    assert runs["verify"].returncode in (1, 2)


NOT_CHECKPOINTS = {
    "lfs_pointer": (b"version https://git-lfs.github.com/spec/v1\n"
                    b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
                    b"size 12345\n", "git lfs pull"),
    "html_page": (b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>nope</body></html>\n", "HTML"),
    "empty": (b"", "empty"),
    "text": (b"hello world\n" * 10, None),
    "zeros": (b"\x00" * 4096, None),
    "pk_only": (b"PK\x03\x04", None),
    "legacy_magic_only": (b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", None),
}


@pytest.mark.parametrize("name", list(NOT_CHECKPOINTS))
def test_not_checkpoints(ckpt, tmp_path, name):
    data, words = NOT_CHECKPOINTS[name]
    path = tmp_path / f"{name}.th"
    path.write_bytes(data)
    runs = run_all(name, path, tmp_path)
    for cmd_name, run in runs.items():
        # verify reports what it finds on stdout, exit 1.
        assert run.returncode == (1 if cmd_name == "verify" else 2), f"{cmd_name}: exit {run.returncode}"
        if words:
            assert words in run.stderr + run.stdout, f"{cmd_name}: {run.stderr!r}"


def test_legacy_damaged(ckpt, tmp_path):
    path = tmp_path / "legacy.pt"
    torch.save({"w": torch.arange(10.0)}, path, _use_new_zipfile_serialization=False)
    data = open(path, "rb").read()
    for cut in (20, 100, len(data) // 2, len(data) - 8, len(data) - 1):
        p = tmp_path / f"legacy_cut{cut}.pt"
        p.write_bytes(data[:cut])
        runs = run_all(f"legacy_cut{cut}", p, tmp_path)
        assert runs["info"].returncode == 2
    # A storage numel in the tail far past the end of the file.
    p = tmp_path / "legacy_numel.pt"
    p.write_bytes(data[:-48] + struct.pack("<q", 2**62) + data[-40:])
    run_all("legacy_numel", p, tmp_path, inconsistent=True)


def test_zz_worst_case_report():
    """Prints the worst peak RSS and time of this module's runs (pytest -s shows it)."""
    rss, rss_where = WORST["rss_kb"]
    secs, secs_where = WORST["seconds"]
    print(f"\nhostile runs: {WORST['runs']}; worst peak RSS {rss / 1024:.0f} MiB ({rss_where}); "
          f"slowest {secs:.2f} s ({secs_where}){' [sanitized build: bounds not asserted]' if SANITIZED else ''}")
