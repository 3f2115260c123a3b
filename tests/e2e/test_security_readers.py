"""Issue 19, what ckpt reads: container decisions made as torch makes them (class 1), the weights
torch loads (class 3), bounded work on hostile pickles (class 4), and the differential run of
`ckpt scan` against torch.load as the oracle (tests/e2e/torch_oracle.py, differential.py).

Every file here is built by the test and first run through torch itself (torch_oracle.observe:
nothing the file names is imported or run), so the premise of each case is checked under the
running torch (1.13 or 2.x) before ckpt's answer is.
"""

import io
import json
import os
import struct
import subprocess
import sys
import time
import zlib

import pytest
import torch

from conftest import REPO_ROOT, run_ckpt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import differential  # noqa: E402
import torch_oracle  # noqa: E402

PAYLOAD = differential.PAYLOAD
PAYLOAD0 = differential.PAYLOAD0
BENIGN = differential.BENIGN
MAGIC = differential.MAGIC
TORCH2 = int(torch.__version__.split(".")[0]) >= 2


@pytest.fixture(scope="module")
def base():
    return differential.Base()


def write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def scan(ckpt, path):
    r = run_ckpt("scan", "--json", path)
    globals_ = set()
    if r.stdout.strip():
        globals_ = {(g["module"], g["name"]) for g in json.loads(r.stdout)["globals"]}
    return r.returncode, globals_, r.stderr


def assert_scan_covers(ckpt, path, obs):
    """torch resolved obs.globals: scan lists them all (and so does not call the file safe),
    or cannot read the file (exit 2)."""
    rc, listed, err = scan(ckpt, path)
    assert rc in (1, 2), (rc, listed, err, obs)
    if rc == 1:
        assert obs.globals <= listed, (obs, listed)
    return rc, listed, err


# --- class 1: zip ---------------------------------------------------------------------------

def test_data_pkl_in_another_case_is_what_torch_runs(ckpt, tmp_path, base):
    # A benign 'data.pkl' first, the payload as 'DATA.PKL': miniz's case-blind sorted lookup
    # lands on the payload (under torch 2.13 and 1.13 alike).
    entries = [(n if not n.endswith(b"/data.pkl") else n[:-8] + b"DATA.PKL", PAYLOAD if n.endswith(b"data.pkl") else d)
               for n, d in base.records]
    entries.insert(0, (base.archive + b"/data.pkl", BENIGN))
    path = write(tmp_path, "case.pt", differential.zip_bytes(entries, None))
    obs = torch_oracle.observe(path)
    assert ("posix", "system") in obs.globals, obs
    rc, listed, _ = assert_scan_covers(ckpt, path, obs)
    assert rc == 1 and ("posix", "system") in listed


def test_last_end_record_is_the_directory_torch_reads(ckpt, tmp_path, base):
    arch = base.archive
    entries = list(base.records) + [(arch + b"/data.pkl", PAYLOAD)]
    evil = len(entries) - 1
    benign_dir = list(range(evil))
    evil_dir = [i for i in range(len(entries)) if not entries[i][0].endswith(b"/data.pkl") or i == evil]
    path = write(tmp_path, "two_ends.pt", differential.zip_bytes(entries, None, cd_for=[benign_dir, evil_dir]))
    obs = torch_oracle.observe(path)
    assert ("posix", "system") in obs.globals, obs
    rc, listed, _ = assert_scan_covers(ckpt, path, obs)
    assert rc == 1


def test_torchscript_routing_is_never_safe(ckpt, tmp_path, base):
    arch = base.archive
    for name, routed in ((b"constants.pkl", True), (b"constants.pkl\x00x", True), (b"Constants.pkl", False)):
        entries = list(base.records) + [(arch + b"/" + name, BENIGN)]
        path = write(tmp_path, "ts.pt", differential.zip_bytes(entries, None))
        obs = torch_oracle.observe(path)
        assert obs.jit == routed, (name, obs)
        rc, _, err = scan(ckpt, path)
        if routed:
            assert rc == 2 and "TorchScript" in err, (name, rc, err)
        else:
            assert rc == 0, (name, rc, err)


# --- class 1: legacy and bare pickles ---------------------------------------------------------

@pytest.mark.parametrize("magic,runs", [
    (b"I0x1950a86a20f9469cfc6c\n.", True),
    (b"I119_547_037_146_038_801_333_356\n.", True),
    (b"L0X1950A86A20F9469CFC6CL\n.", True),
    (b"L 119547037146038801333356 \n.", True),
    (b"I" + oct(MAGIC).encode() + b"\n.", True),
    (b"I0" + oct(MAGIC)[2:].encode() + b"\n.", False),  # strtol overflows; Python refuses "0..."
])
def test_magic_number_spellings_cpython_accepts(ckpt, tmp_path, magic, runs):
    data = magic + b"I1001\n." + b"\x80\x02}q\x00." + PAYLOAD + b"\x80\x02]q\x00."
    path = write(tmp_path, "legacy.pt", data)
    obs = torch_oracle.observe(path)
    assert (("posix", "system") in obs.globals) == runs, obs
    if runs:
        rc, listed, err = assert_scan_covers(ckpt, path, obs)
        assert rc == 1, err
    else:
        assert scan(ckpt, path)[0] == 0


def test_frame_past_stop_in_a_legacy_stream_is_not_called_safe(ckpt, tmp_path):
    body = b"\x8a\x0a" + MAGIC.to_bytes(10, "little") + b"."
    data = differential.frame(body, BENIGN, None) + b"I1001\n." + b"\x80\x02}." + BENIGN + b"\x80\x02]."
    path = write(tmp_path, "frame.pt", data)
    rc, _, err = scan(ckpt, path)
    assert rc == 2 and "FRAME" in err, (rc, err)


# --- class 1: tar ------------------------------------------------------------------------------

def tar(members):
    return b"".join(differential.tar_member(n, d, None, **kw) for n, d, kw in members) + b"\x00" * 1024


STORAGES = b"\x80\x02K\x00.\x80\x02]q\x00."
TENSORS = b"\x80\x02K\x00."


def test_tar_invalid_mode_falls_back_to_a_pickle_at_offset_0(ckpt, tmp_path):
    # The first header's name field is a protocol-0 pickle; the mode field is not octal, so
    # tarfile refuses the archive and torch unpickles the file from offset 0.
    data = tar([(PAYLOAD0, STORAGES, {"mode": b"bad!"}), (b"tensors", TENSORS, {}), (b"pickle", BENIGN, {})])
    path = write(tmp_path, "tar_mode.pt", data)
    obs = torch_oracle.observe(path)
    assert not obs.tar and ("os", "system") in obs.globals, obs
    rc, listed, err = assert_scan_covers(ckpt, path, obs)
    assert rc == 1, err


def test_tar_directory_with_a_size_and_prefix_without_magic(ckpt, tmp_path):
    # tarfile skips no data after a directory header, and joins a prefix without ustar magic.
    data = tar([(b"d", b"", {"typ": b"5", "size_field": b"%011o\x00" % 512}),
                (b"storages", STORAGES, {}), (b"tensors", TENSORS, {}),
                (b"pickle", PAYLOAD, {"prefix": b"sub", "magic": b"\x00" * 8}),
                (b"pickle", PAYLOAD0, {})])
    path = write(tmp_path, "tar_dir.pt", data)
    obs = torch_oracle.observe(path)
    assert obs.tar and ("os", "system") in obs.globals, obs
    rc, listed, err = assert_scan_covers(ckpt, path, obs)
    assert rc == 1 and ("os", "system") in listed, err


def test_tar_frame_past_stop_moves_the_next_read(ckpt, tmp_path):
    # Tar members are read unbuffered: the storages count pickle's FRAME covers a payload
    # pickle, so torch's next pickle.load starts after it.
    storages = differential.frame(b"K\x00.", PAYLOAD, None) + b"\x80\x02]q\x00."
    data = tar([(b"storages", storages, {}), (b"tensors", TENSORS, {}), (b"pickle", BENIGN, {})])
    path = write(tmp_path, "tar_frame.pt", data)
    obs = torch_oracle.observe(path)
    assert obs.tar and obs.error is None, obs
    rc, listed, err = scan(ckpt, path)
    assert rc == 0, (rc, listed, err)  # torch never unpickles the framed-over payload
    storages = differential.frame(b"K\x00.", b"\x80\x02]q\x00.", None) + PAYLOAD
    data = tar([(b"storages", storages, {}), (b"tensors", TENSORS, {}), (b"pickle", BENIGN, {})])
    path = write(tmp_path, "tar_frame2.pt", data)
    obs = torch_oracle.observe(path)
    assert ("posix", "system") in obs.globals, obs
    assert_scan_covers(ckpt, path, obs)


def test_tar_pickle_setting_class_attributes_is_not_safe(ckpt, tmp_path):
    # BUILD on the class collections.Counter itself (slot state -> setattr on the class).
    pkl = b"\x80\x02ccollections\nCounter\nq\x00N}q\x01X\x01\x00\x00\x00xK\x01s\x86q\x02b."
    data = tar([(b"storages", STORAGES, {}), (b"tensors", TENSORS, {}), (b"pickle", pkl, {})])
    path = write(tmp_path, "tar_counter.pt", data)
    obs = torch_oracle.observe(path)
    assert obs.tar and ("collections", "Counter") in obs.globals, obs
    rc, listed, err = scan(ckpt, path)
    assert rc == 1, (rc, err)


# --- class 3: the weights torch loads -----------------------------------------------------------

def show_w(path):
    r = run_ckpt("show", path, "w")
    return r.returncode, differential.show_values(r.stdout)


@pytest.mark.parametrize("order", ["before", "after"])
def test_storage_records_differing_by_case(ckpt, tmp_path, base, order):
    arch = base.archive
    entries = list(base.records)
    alt = (arch + b"/DATA/0", base.w_alt)
    entries = [alt] + entries if order == "before" else entries + [alt]
    path = write(tmp_path, "case_storage.pt", differential.zip_bytes(entries, None))
    obs = torch_oracle.observe(path)
    assert obs.error is None, obs
    loaded = struct.unpack("<4f", obs.storages["data/0"])
    rc, values = show_w(path)
    assert rc == 0 and values == list(loaded), (values, loaded)
    assert run_ckpt("verify", path).returncode == 1  # names equal but for case: flagged


@pytest.mark.parametrize("record,value,refused_by_2x", [
    (b"byteorder", b"big", False), (b"byteorder", b"middle", True),
    (b".storage_alignment", b"sixty-four", True), (b"version", b"x3", True),
    (b"version", b"99", True),
])
def test_verify_fails_what_torch_refuses_or_reads_otherwise(ckpt, tmp_path, base, record, value, refused_by_2x):
    arch = base.archive
    entries = [(n, d) for n, d in base.records if not n.endswith(b"/" + record)]
    entries.insert(1, (arch + b"/" + record, value))
    path = write(tmp_path, "rec.pt", differential.zip_bytes(entries, None))
    obs = torch_oracle.observe(path)
    if TORCH2 or record == b"version":
        assert (obs.error is not None) == refused_by_2x, obs
    r = run_ckpt("verify", path)
    assert r.returncode == 1, (r.stdout, r.stderr)


# --- class 4: bounded work ---------------------------------------------------------------------

def zip_with_pickle(base, pkl):
    """A torch zip whose data.pkl is `pkl`, DEFLATE-compressed (a small file)."""
    out = io.BytesIO()
    import zipfile
    with zipfile.ZipFile(out, "w") as z:
        z.writestr(base.archive.decode() + "/data.pkl", pkl, compress_type=zipfile.ZIP_DEFLATED)
        z.writestr(base.archive.decode() + "/version", b"3\n")
    return out.getvalue()


def deflated_zip(base, chunks):
    """A torch zip whose data.pkl is the concatenation of `chunks` (bytes or (byte, count)),
    DEFLATE-compressed as it is produced, so a 1 GiB pickle makes a ~1 MB file."""
    comp = zlib.compressobj(1, zlib.DEFLATED, -15)
    crc, size, body = 0, 0, []
    for c in chunks:
        if isinstance(c, tuple):
            block = c[0] * (16 << 20)
            left = c[1]
            while left:
                piece = block[:min(left, len(block))]
                crc, size = zlib.crc32(piece, crc), size + len(piece)
                body.append(comp.compress(piece))
                left -= len(piece)
        else:
            crc, size = zlib.crc32(c, crc), size + len(c)
            body.append(comp.compress(c))
    body.append(comp.flush())
    data = b"".join(body)
    name = base.archive + b"/data.pkl"
    out = bytearray()
    out += struct.pack("<IHHHHHIIIHH", 0x04034b50, 20, 0, 8, 0, 0, crc, len(data), size, len(name), 0) + name + data
    v_off = len(out)
    vname, vdata = base.archive + b"/version", b"3\n"
    out += struct.pack("<IHHHHHIIIHH", 0x04034b50, 0, 0, 0, 0, 0, zlib.crc32(vdata), len(vdata), len(vdata), len(vname), 0) + vname + vdata
    cd = len(out)
    out += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014b50, 20, 20, 0, 8, 0, 0, crc, len(data), size, len(name),
                       0, 0, 0, 0, 0, 0) + name
    out += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014b50, 20, 20, 0, 0, 0, 0, zlib.crc32(vdata), len(vdata), len(vdata),
                       len(vname), 0, 0, 0, 0, 0, v_off) + vname
    out += struct.pack("<IHHHHIIH", 0x06054b50, 0, 0, 2, 2, len(out) - cd, cd, 0)
    return bytes(out)


def resource_case(name):
    if name == "dict_rehash":  # 20 small keys, then one memoised 16 MiB key set 3000 times
        return [b"\x80\x02}q\x00" + b"".join(b"K%cNs" % i for i in range(20)) +
                b"X" + struct.pack("<I", 16 << 20), (b"a", 16 << 20), b"q\x01Ns" + b"h\x01Ns" * 3000 + b"."]
    if name == "memo_global_names":  # STACK_GLOBAL 200 times from one memoised 8 MiB string
        return [b"\x80\x04X" + struct.pack("<I", 8 << 20), (b"a", 8 << 20),
                b"\x94" + b"h\x00h\x00\x93" * 200 + b"N."]
    if name == "none_stack":  # 30 million NONE on the stack
        return [b"\x80\x02", (b"N", 30_000_000), b"."]
    if name == "tuple_dag":  # t(i+1) = (t(i), t(i)): 2^64 paths, used as a dict key and a value
        return [b"\x80\x02)q\x00" + b"".join(b"h%ch%c\x86q%c" % (i, i, i + 1) for i in range(64)) +
                b"}q\x41h\x40h\x40s(h\x40h\x40l."]
    if name == "bytearray_1gib":
        return [b"\x80\x05\x96" + struct.pack("<Q", 1 << 30), (b"\x00", 1 << 30), b"."]
    raise KeyError(name)


def _sanitized():
    """ASan/UBSan builds are slower and larger by design: the bounds are asserted on the plain
    build only (as tests/e2e/test_hostile.py does)."""
    from conftest import ckpt_bin
    try:
        with open(ckpt_bin(), "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


SANITIZED = _sanitized()
RESOURCE = ["bytearray_1gib", "dict_rehash", "memo_global_names", "none_stack", "tuple_dag"]
_built = {}


# Measures in a small helper process: a child forked from this (torch-sized) process would
# report this process's pages as its own peak RSS.
MEASURE = r"""
import json, os, subprocess, sys, tempfile, time
with tempfile.TemporaryFile() as err:
    start = time.monotonic()
    p = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
    timeout = float(sys.argv[1])
    while True:
        pid, status, usage = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() - start > timeout:
            p.kill()
            os.wait4(p.pid, 0)
            print(json.dumps({"rc": None, "seconds": timeout, "rss": 0, "err": ""}))
            sys.exit(0)
        time.sleep(0.01)
    err.seek(0)
    print(json.dumps({"rc": os.waitstatus_to_exitcode(status), "seconds": time.monotonic() - start,
                      "rss": usage.ru_maxrss, "err": err.read().decode("utf-8", "replace")}))
"""


def run_measured(args, timeout=60):
    """(exit status or None on timeout, stderr, seconds, peak RSS in KiB) of one ckpt run."""
    r = subprocess.run([sys.executable, "-S", "-c", MEASURE, str(timeout), *args], capture_output=True,
                       text=True, timeout=timeout + 30)
    m = json.loads(r.stdout)
    return m["rc"], m["err"].encode(), m["seconds"], m["rss"]


@pytest.mark.parametrize("name", RESOURCE)
@pytest.mark.parametrize("command", ["scan", "info", "verify", "tensors"])
def test_hostile_pickles_stay_within_limits(ckpt, tmp_path_factory, base, name, command):
    if name not in _built:
        d = tmp_path_factory.mktemp("resource")
        _built[name] = write(d, name + ".pt", deflated_zip(base, resource_case(name)))
    path = _built[name]
    assert os.path.getsize(path) < (10 << 20)
    rc, err, seconds, rss_kib = run_measured([ckpt, command, path])
    assert rc is not None, f"{command} {name}: still running after 60 s"
    if not SANITIZED:
        assert seconds < 10, (command, name, seconds)
        assert rss_kib < 256 * 1024, (command, name, rss_kib)
    assert b"Traceback" not in err and rc in (0, 1, 2), (rc, err)
    if name in ("bytearray_1gib", "memo_global_names", "none_stack"):  # refused, naming the limit
        if command == "verify":  # verify lists the problem and exits 1
            assert rc == 1, err
        else:
            assert rc == 2 and err.startswith(b"ckpt: error: ") and b"limit" in err, err


# --- the differential run ------------------------------------------------------------------------

def test_differential_against_torch(ckpt):
    """A few thousand container mutations, each run through torch (the oracle) and ckpt."""
    count = int(os.environ.get("CKPT_DIFFERENTIAL_CASES", "500" if SANITIZED else "2000"))
    r = subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "differential.py"),
                        "--seed", "19", "--count", str(count), "--ckpt", ckpt],
                       capture_output=True, text=True, timeout=900)
    summary = json.loads(r.stdout.splitlines()[0])
    assert summary["cases"] == count
    assert summary["disagreements"] == 0, r.stdout[-4000:]
