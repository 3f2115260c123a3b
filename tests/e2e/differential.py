"""Differential run of `ckpt scan` / `ckpt verify` against torch.load as the oracle (issue 19).

    python differential.py --seed S --count N [--ckpt build/ckpt] [--keep DIR] [--jobs J]

Generates N container mutations from seed S (zip: record-name case, duplicate and missing
records, several end records, comments, prefixes, ZIP64 records; tar: modes, types, sizes,
prefixes, checksums; legacy: magic-number encodings, frames, protocols; pickle: number
syntaxes, memo tricks), runs torch.load on each through torch_oracle.observe (nothing the file
names is imported or run) and `ckpt scan --json`, and checks, per file:

- every (module, name) torch resolved is among the globals scan lists, or scan exits 2;
- torch handed the file to torch.jit.load -> scan does not exit 0;
- for zip files torch loaded and `verify` passes, the values torch read for `w` are the
  values `ckpt show FILE w` prints.

Prints one JSON line: {"torch": version, "seed", "cases", "disagreements", "by_family"} and,
for each disagreement, the case (family, mutation, what differed); with --keep the files of
disagreeing cases are kept there. Exit 1 when any case disagrees.
"""

import argparse
import io
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import zlib
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import torch_oracle  # noqa: E402

# ---------------------------------------------------------------------------------------------
# Pickles. Payloads name globals no allowlist accepts; the oracle never resolves them for real.

PAYLOAD = b"\x80\x02cposix\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03."
PAYLOAD0 = b"cos\nsystem\n(S'true'\ntR."           # protocol 0
PAYLOAD_EVAL = b"\x80\x02cbuiltins\neval\nX\x01\x00\x00\x001\x85R."
BENIGN = b"\x80\x02}q\x00."                        # {}
MAGIC = 0x1950a86a20f9469cfc6c
MAGIC_HEX = b"0x1950a86a20f9469cfc6c"
MAGIC_DEC = str(MAGIC).encode()


def int_texts(value, rng):
    """INT / LONG argument spellings CPython reads as `value`."""
    dec = str(value)
    forms = [dec.encode(), hex(value).encode(), ("0X%X" % value).encode(), oct(value).encode(),
             bin(value).encode(), b" " + dec.encode(), b"+" + dec.encode(), dec.encode() + b" ",
             "_".join(dec[i:i + 3] for i in range(0, len(dec), 3)).encode(),
             b"0x_" + ("%x" % value).encode(), dec.encode() + b"\x00junk"]
    if value < 2**63:
        forms += [b"0" + oct(value)[2:].encode()]   # strtol's C octal (INT only)
    return rng.choice(forms)


def magic_pickle(rng):
    """A pickle whose value is torch's magic number, in a random encoding (or a near miss)."""
    kind = rng.randrange(9)
    if kind == 0:
        return b"\x80\x02\x8a\x0a" + MAGIC.to_bytes(10, "little") + b"."
    if kind == 1:  # LONG1 with a redundant zero byte
        return b"\x80\x02\x8a\x0b" + MAGIC.to_bytes(11, "little") + b"."
    if kind == 2:
        return b"I" + int_texts(MAGIC, rng) + b"\n."
    if kind == 3:
        t = int_texts(MAGIC, rng)
        return b"L" + t + (b"L" if rng.random() < 0.5 else b"") + b"\n."
    if kind == 4:  # framed protocol 4
        body = b"\x8a\x0a" + MAGIC.to_bytes(10, "little") + b"."
        return b"\x80\x04\x95" + struct.pack("<Q", len(body)) + body
    if kind == 5:  # memo trick: PUT then GET
        return b"\x80\x02\x8a\x0a" + MAGIC.to_bytes(10, "little") + b"q\x000h\x00."
    if kind == 6:  # near miss: off by one
        return b"\x80\x02\x8a\x0a" + (MAGIC + 1).to_bytes(10, "little") + b"."
    if kind == 7:  # a value built by a global (torch may or may not go on)
        return b"cbuiltins\nint\n(S'" + MAGIC_HEX + b"'\nI16\ntR."
    return b"I" + MAGIC_DEC[:-1] + b"_" + MAGIC_DEC[-1:] + b"\n."


def int_pickle(value, rng):
    return b"I" + int_texts(value, rng) + b"\n."


def frame(body, extra, rng):
    """Protocol-4 framing of `body` with `extra` bytes the frame covers past STOP."""
    return b"\x80\x04\x95" + struct.pack("<Q", len(body) + len(extra)) + body + extra


# ---------------------------------------------------------------------------------------------
# Zip archives, written by hand so that every field can be wrong.

def zip_bytes(entries, rng, *, zip64=True, end_records=1, comment=b"", prefix=b"", trailing=b"",
              cd_for=None, local_names=None, bad_locator=False):
    """entries: [(name, data)]. cd_for: list of entry-index lists, one central directory per
    end record (default: all entries in each)."""
    out = bytearray(prefix)
    offsets = []
    for i, (name, data) in enumerate(entries):
        lname = (local_names or {}).get(i, name)
        offsets.append(len(out))
        crc = zlib.crc32(data) & 0xFFFFFFFF
        out += struct.pack("<IHHHHHIIIHH", 0x04034b50, 0, 0, 0, 0, 0, crc, len(data), len(data),
                           len(lname), 0) + lname + data
    dirs = cd_for or [list(range(len(entries)))] * end_records
    for di, idxs in enumerate(dirs):
        cd_off = len(out)
        for i in idxs:
            name, data = entries[i]
            crc = zlib.crc32(data) & 0xFFFFFFFF
            out += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014b50, 0, 0, 0, 0, 0, 0, crc, len(data),
                               len(data), len(name), 0, 0, 0, 0, 0, offsets[i]) + name
        cd_size = len(out) - cd_off
        if zip64:
            z64 = len(out)
            out += struct.pack("<IQHHIIQQQQ", 0x06064b50, 44, 0x031E, 0x2D, 0, 0, len(idxs), len(idxs),
                               cd_size, cd_off)
            out += struct.pack("<IIQI", 0x07064b50, 0, z64 + (7 if bad_locator else 0), 1)
        c = comment if di == len(dirs) - 1 else b""
        out += struct.pack("<IHHHHIIH", 0x06054b50, 0, 0, len(idxs), len(idxs), cd_size, cd_off, len(c)) + c
    out += trailing
    return bytes(out)


class Base:
    """Records of a small checkpoint saved by the running torch."""

    def __init__(self):
        buf = io.BytesIO()
        torch.save({"w": torch.arange(4, dtype=torch.float32)}, buf)
        import zipfile
        z = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
        self.records = [(i.filename.encode(), z.read(i.filename)) for i in z.infolist()]
        self.archive = self.records[0][0].split(b"/")[0]
        self.w = torch.arange(4, dtype=torch.float32).numpy().tobytes()
        self.w_alt = torch.tensor([9, 8, 7, 6], dtype=torch.float32).numpy().tobytes()
        lbuf = io.BytesIO()
        torch.save({"w": torch.arange(4, dtype=torch.float32)}, lbuf, _use_new_zipfile_serialization=False)
        self.legacy = lbuf.getvalue()


def case_variant(name, rng):
    s = name.decode("latin-1")
    head, _, tail = s.rpartition("/")
    tail = "".join(c.upper() if rng.random() < 0.5 else c for c in tail)
    if tail == s.rpartition("/")[2]:
        tail = tail.upper()
    return ((head + "/") if head else "").encode("latin-1") + tail.encode("latin-1")


def mutate_zip(base, rng):
    entries = [list(e) for e in base.records]
    names = [e[0] for e in entries]
    arch = base.archive
    notes = []

    def idx(rel):
        return names.index(arch + b"/" + rel) if arch + b"/" + rel in names else None

    ops = rng.sample(["pkl_case", "pkl_dup", "pkl_dup_case", "storage_case", "storage_dup", "missing",
                      "constants", "byteorder", "alignment", "version", "order", "outside"],
                     rng.randint(1, 3))
    for op in ops:
        if op == "pkl_case":
            i = idx(b"data.pkl")
            if i is not None:
                entries[i][0] = case_variant(entries[i][0], rng)
        elif op in ("pkl_dup", "pkl_dup_case"):
            name = arch + b"/data.pkl"
            if op == "pkl_dup_case":
                name = case_variant(name, rng)
            payload = rng.choice([PAYLOAD, PAYLOAD0, PAYLOAD_EVAL, BENIGN])
            entries.insert(rng.randrange(len(entries) + 1), [name, payload])
        elif op in ("storage_case", "storage_dup"):
            name = arch + b"/data/0"
            if op == "storage_case":
                name = case_variant(name, rng)
            entries.insert(rng.randrange(len(entries) + 1), [name, base.w_alt])
        elif op == "missing":
            entries.pop(rng.randrange(len(entries)))
        elif op == "constants":
            name = rng.choice([b"constants.pkl", b"Constants.pkl", b"constants.pkl\x00x",
                               b"constants.pk"])
            entries.insert(rng.randrange(len(entries) + 1),
                           [arch + b"/" + name, rng.choice([BENIGN, PAYLOAD])])
        elif op == "byteorder":
            val = rng.choice([b"big", b"middle", b"little", b"BIG", b""])
            entries = [e for e in entries if not e[0].endswith(b"/byteorder")]
            entries.insert(1, [arch + b"/byteorder", val])
        elif op == "alignment":
            val = rng.choice([b"64", b"sixty-four", b" 64\n", b"6_4", b"0x40", b"64.0"])
            entries = [e for e in entries if not e[0].endswith(b"/.storage_alignment")]
            entries.insert(1, [arch + b"/.storage_alignment", val])
        elif op == "version":
            val = rng.choice([b"3", b"3\n", b"x3", b" 3abc", b"-1", b"99", b"0", b"+3"])
            entries = [e for e in entries if not e[0].endswith(b"/version")]
            entries.append([arch + b"/version", val])
        elif op == "order":
            rng.shuffle(entries)
        elif op == "outside":
            entries.insert(rng.randrange(len(entries) + 1), [b"other/data.pkl", PAYLOAD])
        notes.append(op)
        names = [e[0] for e in entries]
    if not entries:
        entries = [[arch + b"/data.pkl", PAYLOAD]]
    entries = [tuple(e) for e in entries]

    layout = rng.randrange(8)
    kw = {}
    if layout == 1:  # two end records: a benign directory after a payload one, or the reverse
        evil = len(entries)
        entries = entries + [(arch + b"/data.pkl", rng.choice([PAYLOAD, BENIGN]))]
        first = [i for i in range(len(entries)) if i != evil]
        second = [i for i in range(len(entries)) if entries[i][0] != arch + b"/data.pkl" or i == evil]
        kw["cd_for"] = [first, second] if rng.random() < 0.5 else [second, first]
        notes.append("two_end_records")
    elif layout == 2:  # a comment holding a fake end-record signature
        kw["comment"] = b"x" * rng.randrange(0, 40) + b"PK\x05\x06" + b"\x00" * rng.randrange(0, 30)
        notes.append("comment_sig")
    elif layout == 3:
        kw["comment"] = os.urandom(rng.randrange(1, 64))
        notes.append("comment")
    elif layout == 4:
        kw["prefix"] = rng.choice([b"\x00" * 16, PAYLOAD, b"PK\x03\x04"])
        notes.append("prefix")
    elif layout == 5:
        kw["zip64"] = False
        notes.append("no_zip64")
    elif layout == 6:
        kw["trailing"] = rng.choice([b"\x00" * 100, PAYLOAD, b"PK\x05\x06" + b"\x00" * 18])
        notes.append("trailing")
    elif layout == 7:
        kw["bad_locator"] = True
        notes.append("bad_locator")
    return zip_bytes(entries, rng, **kw), notes


# ---------------------------------------------------------------------------------------------
# Tar (torch < 0.4's form), legacy streams, bare pickles.

def tar_header(name, size, rng, *, typ=b"0", mode=b"0000644\x00", prefix=b"", magic=b"ustar\x0000",
               size_field=None, bad_checksum=False):
    h = bytearray(512)
    h[0:len(name[:100])] = name[:100]
    h[100:108] = mode[:8].ljust(8, b"\x00")
    h[108:116] = b"0000000\x00"
    h[116:124] = b"0000000\x00"
    h[124:136] = (size_field if size_field is not None else b"%011o\x00" % size)[:12].ljust(12, b"\x00")
    h[136:148] = b"00000000000\x00"
    h[156:157] = typ
    h[257:265] = magic[:8].ljust(8, b"\x00")
    h[345:345 + len(prefix[:155])] = prefix[:155]
    h[148:156] = b" " * 8
    chk = sum(h) + (1 if bad_checksum else 0)
    h[148:156] = b"%06o\x00 " % chk
    return bytes(h)


def tar_member(name, data, rng, **kw):
    return tar_header(name, len(data), rng, **kw) + data + b"\x00" * ((-len(data)) % 512)


def mutate_tar(base, rng):
    notes = []
    storages = b"\x80\x02K\x00.\x80\x02]q\x00."      # 0 storages, no views
    tensors = b"\x80\x02K\x00."                       # 0 tensors
    final = rng.choice([PAYLOAD, BENIGN, PAYLOAD0])
    members = [[b"storages", storages, {}], [b"tensors", tensors, {}], [b"pickle", final, {}]]
    op = rng.randrange(10)
    if op == 0:  # invalid mode in the first header: torch reads a pickle at offset 0
        members[0][2]["mode"] = rng.choice([b"0000_64\x00", b"zzzz\x00", b"\xff\xfe", b"0o644\x00"])
        notes.append("mode")
    elif op == 1:  # a directory member with a size before the real ones
        members.insert(0, [b"dir/", b"", {"typ": b"5", "size_field": b"%011o\x00" % 512}])
        members.insert(1, [b"junk", b"x" * 100, {}])
        notes.append("dir_with_size")
    elif op == 2:  # prefix without ustar magic
        members[2][2].update(prefix=b"sub", magic=b"\x00" * 8)
        members.append([b"pickle", BENIGN, {"prefix": b"", "magic": b"\x00" * 8}])
        notes.append("prefix_no_magic")
    elif op == 3:  # a later member of the same name
        members.append([b"pickle", rng.choice([PAYLOAD, BENIGN]), {}])
        notes.append("last_wins")
    elif op == 4:  # a later header with a bad checksum ends the list
        members.insert(2, [b"pickle", PAYLOAD, {"bad_checksum": True}])
        notes.append("bad_later_checksum")
    elif op == 5:  # size running past the end
        members[2][2]["size_field"] = b"%011o\x00" % 99999
        notes.append("size_past_end")
    elif op == 6:  # old-style regular file named with a slash
        members[2][2]["typ"] = b"\x00"
        members[2][0] = b"pickle/"
        notes.append("areg_slash")
    elif op == 7:  # framed pickles in a member: next read starts at the frame's end
        hidden = PAYLOAD
        storages = frame(b"K\x00.", hidden, rng) + b"\x80\x02]q\x00."
        members[0][1] = storages
        notes.append("frame_past_stop")
    elif op == 8:  # the first header is itself a pickle (name field) with a bad mode
        members[0][0] = PAYLOAD0[:90]
        members[0][2]["mode"] = b"bad!"
        notes.append("name_is_pickle")
    else:
        members[2][2]["typ"] = rng.choice([b"1", b"2", b"Z", b"7"])
        notes.append("type")
    data = b"".join(tar_member(n, d, rng, **kw) for n, d, kw in members) + b"\x00" * 1024
    return data, notes


def mutate_legacy(base, rng):
    notes = []
    op = rng.randrange(7)
    parts = [magic_pickle(rng), int_pickle(1001, rng), b"\x80\x02}q\x00.", PAYLOAD, b"\x80\x02]q\x00."]
    if op == 0:
        notes.append("magic_forms")
    elif op == 1:  # frame past STOP on the magic / protocol pickle
        k = rng.randrange(2)
        body = parts[k]
        if body.startswith(b"\x80"):
            body = body[2:]
        parts[k] = frame(body, rng.choice([PAYLOAD, b"\x00" * 8, BENIGN]), rng)
        notes.append("frame_past_stop")
    elif op == 2:  # payload only in sys_info
        parts[2] = PAYLOAD0
        parts[3] = BENIGN
        notes.append("sys_info_payload")
    elif op == 3:  # protocol version spelled oddly / wrong
        parts[1] = rng.choice([int_pickle(1001, rng), b"\x80\x02M\xe9\x03.", b"I1002\n.", b"L1001L\n."])
        notes.append("protocol_forms")
    elif op == 4:  # real legacy file with a payload appended after its storage keys
        return base.legacy + PAYLOAD, ["appended"]
    elif op == 5:  # payload after the first STOP of a bare pickle
        return rng.choice([BENIGN, PAYLOAD0]) + PAYLOAD, ["bare_then_payload"]
    else:  # frames longer than the file
        return b"\x80\x04\x95" + struct.pack("<Q", 1 << 20) + PAYLOAD[2:], ["frame_past_end"]
    return b"".join(parts), notes


def mutate_pickle(base, rng):
    """A bare pickle: torch unpickles it (running what it names), then refuses it."""
    op = rng.randrange(5)
    if op == 0:
        return b"I" + int_texts(rng.randrange(2**70), rng) + b"\n.", ["int_syntax"]
    if op == 1:  # memo: global names from memo'd strings
        return (b"\x80\x04\x8c\x05posix\x94\x8c\x06system\x94\x93\x94h\x00h\x01\x93" +
                b"0\x8c\x04true\x85R."), ["memo_stack_global"]
    if op == 2:
        return rng.choice([PAYLOAD, PAYLOAD0, PAYLOAD_EVAL]), ["payload"]
    if op == 3:  # INT 01 / 00 as bools, then a payload after STOP
        return b"I01\n." + PAYLOAD, ["bool_then_payload"]
    return b"(I1\nI2\nt" + b"c__builtin__\ngetattr\n" + b"0." , ["pop_global"]


FAMILIES = {"zip": mutate_zip, "tar": mutate_tar, "legacy": mutate_legacy, "pickle": mutate_pickle}


# ---------------------------------------------------------------------------------------------

def run(cmd, timeout=60):
    p = subprocess.run(cmd, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def show_values(out):
    """The values `ckpt show FILE w` prints (its second line), as floats."""
    lines = out.decode().splitlines() if isinstance(out, bytes) else out.splitlines()
    try:
        return [float(v) for v in lines[1].split()]
    except (IndexError, ValueError):
        return None


def check_case(ckpt, path, obs):
    """[] when ckpt agrees with torch on `path`, else what differs."""
    problems = []
    rc, out, err = run([ckpt, "scan", "--json", path])
    if rc not in (0, 1, 2):
        return ["scan exit %d (%s)" % (rc, err[-200:])]
    if rc != 2:
        try:
            listed = {(g["module"], g["name"]) for g in json.loads(out)["globals"]}
        except (ValueError, KeyError):
            return ["scan --json unreadable"]
        wildcard = ("?", "?") in listed
        missing = sorted(g for g in obs.globals if g not in listed)
        if missing and not wildcard:
            problems.append("torch resolved %s, scan (exit %d) lists %s" % (missing, rc, sorted(listed)))
        if obs.jit and rc == 0:
            problems.append("torch routes it to torch.jit.load, scan exits 0")
    if obs.container == "zip" and obs.error is None and "data/0" in obs.storages and \
            obs.storages["data/0"] is not None:
        vrc, _, _ = run([ckpt, "verify", path])
        if vrc == 0:
            src, sout, _ = run([ckpt, "show", path, "w"])
            if src == 0:
                vals = show_values(sout)
                torch_vals = list(struct.unpack("<4f", obs.storages["data/0"]))
                if vals != torch_vals:
                    problems.append("torch loaded w=%r, ckpt show says %r" % (torch_vals, vals))
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--ckpt", default=os.environ.get("CKPT_BIN", "build/ckpt"))
    ap.add_argument("--keep", default=None)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--families", default="zip,tar,legacy,pickle")
    args = ap.parse_args()
    base = Base()
    families = args.families.split(",")
    disagreements = []
    by_family = {f: 0 for f in families}
    with tempfile.TemporaryDirectory() as tmp:
        def one(i):
            rng = random.Random("%d-%d" % (args.seed, i))
            fam = families[i % len(families)]
            data, notes = FAMILIES[fam](base, rng)
            path = os.path.join(tmp, "case%d" % i)
            with open(path, "wb") as f:
                f.write(data)
            return i, fam, notes, path

        def judge(item):
            i, fam, notes, path, obs = item
            problems = check_case(args.ckpt, path, obs)
            return i, fam, notes, path, obs, problems

        # torch.load runs here, one at a time (the hooks are process-wide); ckpt runs in
        # parallel threads meanwhile.
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = []
            for i in range(args.count):
                _, fam, notes, path = one(i)
                obs = torch_oracle.observe(path)
                futures.append(pool.submit(judge, (i, fam, notes, path, obs)))
                if len(futures) >= 64:
                    for fut in futures:
                        finish(fut.result(), by_family, disagreements, args.keep)
                    futures = []
            for fut in futures:
                finish(fut.result(), by_family, disagreements, args.keep)
    summary = {"torch": torch.__version__, "seed": args.seed, "cases": args.count,
               "disagreements": len(disagreements), "by_family": by_family}
    print(json.dumps(summary))
    for d in disagreements[:50]:
        print(json.dumps(d))
    return 1 if disagreements else 0


def finish(result, by_family, disagreements, keep):
    i, fam, notes, path, obs, problems = result
    by_family[fam] += 1
    if problems:
        d = {"case": i, "family": fam, "mutations": notes, "problems": problems,
             "torch": repr(obs)}
        disagreements.append(d)
        if keep:
            os.makedirs(keep, exist_ok=True)
            with open(path, "rb") as src, open(os.path.join(keep, "case%d_%s" % (i, fam)), "wb") as dst:
                dst.write(src.read())
    os.unlink(path)


if __name__ == "__main__":
    sys.exit(main())
