#!/usr/bin/python3
"""Golden outputs of torch's CPU .to() between float64/float32/float16/bfloat16.

Run with the Debian torch (torch 1.13): /usr/bin/python3 make_convert_golden.py [--pairs-only] [OUTDIR]
(--pairs-only keeps hashes.txt: the exhaustive float32 hashes take minutes).
Writes, for each conversion SRC_to_DST:
  SRC_to_DST.bin  pairs (input bits, output bits), little-endian, over every
                  float value class: ±0, ±Inf, NaN payloads (quiet/signalling,
                  both signs), subnormals, normal boundaries, rounding ties and
                  their neighbours at every exponent, overflow and underflow
                  boundaries, plus random patterns;
  hashes.txt      for 16- and 32-bit sources, a hash over ALL inputs (0..2^bits-1):
                  sum_i (out_i + 1) * (i * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) mod 2^64.
Each conversion is done once over the whole tensor (torch's vectorized path)
and once element by element (the golden); the script fails if the two disagree
(except float64 -> bfloat16 NaNs, see pairs_file).
"""
import os
import random
import sys

import numpy as np
import torch

PAIRS_ONLY = "--pairs-only" in sys.argv
ARGS = [a for a in sys.argv[1:] if a != "--pairs-only"]
OUT = ARGS[0] if ARGS else os.path.dirname(os.path.abspath(__file__))
NAMES = {torch.float64: "f64", torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}
UINT = {torch.float64: np.uint64, torch.float32: np.uint32, torch.float16: np.uint16, torch.bfloat16: np.uint16}
INT = {torch.float64: torch.int64, torch.float32: torch.int32, torch.float16: torch.int16, torch.bfloat16: torch.int16}
K1, K2 = 0x9E3779B97F4A7C15, 0x632BE59BD9B4E019
rng = random.Random(20240601)


def from_bits(bits, dtype):
    arr = np.array(bits, dtype=UINT[dtype]).view(np.dtype(UINT[dtype]).str.replace("u", "i"))
    return torch.from_numpy(arr.copy()).view(dtype)


def to_bits(t):
    return t.contiguous().view(INT[t.dtype]).numpy().view(UINT[t.dtype])


def f32_inputs():
    v = [0x00000000, 0x80000000, 0x7F800000, 0xFF800000,
         0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001, 0x7FA00001, 0x7FFFFFFF, 0xFFFFFFFF,
         0x7FBFFFFF, 0x7F812345, 0xFFC12345, 0x7FC0FFFF, 0x7F80FFFF, 0x7F808000,
         0x00000001, 0x80000001, 0x007FFFFF, 0x00400000, 0x00800000, 0x7F7FFFFF, 0xFF7FFFFF,
         0x3F800000, 0xBF800000, 0x477FE000, 0x477FEFFF, 0x477FF000, 0x477FF001, 0x47800000,
         0x38800000, 0x387FFFFF, 0x387FF000, 0x33800000, 0x33000000, 0x33000001, 0x32FFFFFF,
         0x33C00000, 0x7F7F8000, 0x7F7F7FFF, 0x7F7F8001, 0x7F7FFFFF]
    # Ties and neighbours for bfloat16 (low 16 bits) and float16 (low 13 bits,
    # and the moving rounding position of float16 subnormals) at every exponent.
    for e in range(256):
        for sign in (0, 0x80000000):
            if sign and e % 5:
                continue
            for low in (0x0001, 0x7FFF, 0x8000, 0x18000, 0xFFF, 0x1000, 0x3000, rng.getrandbits(23)):
                v.append(sign | (e << 23) | (low & 0x7FFFFF))
    for e in range(100, 114):  # float16 subnormal results: ties at bit (126 - e - 1) + 13
        s = 126 - e
        for m in (1 << (s - 1), (1 << (s - 1)) + 1, (1 << (s - 1)) - 1, 3 << (s - 1)):
            v.append((e << 23) | (m & 0x7FFFFF))
    v += [rng.getrandbits(32) for _ in range(200)]
    return v


def f64_inputs():
    v = [0, 1 << 63, 0x7FF0000000000000, 0xFFF0000000000000,
         0x7FF8000000000000, 0xFFF8000000000000, 0x7FF0000000000001, 0xFFF0000000000001,
         0x7FF4000000000000, 0x7FFFFFFFFFFFFFFF, 0x7FF8000000001234, 0xFFF0000020000000,
         1, 0x000FFFFFFFFFFFFF, 0x0010000000000000, 0x7FEFFFFFFFFFFFFF, 0x8000000000000001]
    doubles = [1.0, -1.0, 1 + 2**-11, 1 + 2**-11 + 2**-40, 1 + 2**-8, 1 + 2**-8 + 2**-30,
               1 + 2**-24, 1 + 2**-24 + 2**-50, 1 + 3 * 2**-24, 65504.0, 65519.99, 65520.0, 65536.0,
               3.4028234663852886e38, 3.4028235677973366e38, 3.402823669209385e38, 1e39, -1e39,
               2**-149, 2**-150, 2**-150 * 1.0000001, 2**-126, 2**-24, 2**-25, 2**-25 * 1.0000001,
               5.960464477539063e-08, 6.103515625e-05, 1e-300, -1e-300, 1e300]
    v += [int(np.array(d, dtype=np.float64).view(np.uint64)) for d in doubles]
    for e in list(range(0x360, 0x3A0)) + list(range(0x3E0, 0x420)) + list(range(0x460, 0x480)):
        for low in (0, 1 << 28, (1 << 28) + 1, 1 << 41, (1 << 41) + 1, rng.getrandbits(52)):
            v.append((e << 52) | low)
    v += [rng.getrandbits(64) for _ in range(100)]
    return v


def all_inputs(dtype):
    if dtype == torch.float64:
        return f64_inputs()
    if dtype == torch.float32:
        return f32_inputs()
    # 16-bit sources: the interesting classes (exhaustive coverage is in hashes.txt).
    vals = [0x0000, 0x8000, 0x7C00, 0xFC00, 0x7F80, 0xFF80, 0x7E00, 0xFE00, 0x7C01, 0x7D00, 0x7FFF, 0xFFFF,
            0x7FC0, 0xFFC0, 0x7F81, 0x7FA0, 0x0001, 0x8001, 0x03FF, 0x0400, 0x007F, 0x0080, 0x7BFF, 0x7F7F,
            0x3C00, 0xBC00, 0x3C01, 0x3F80, 0x3F81, 0x4780, 0x477F, 0x4781, 0x3880, 0x387F, 0x0200, 0x0040]
    return vals + [rng.getrandbits(16) for _ in range(200)]


def pairs_file(src, dst):
    bits = all_inputs(src)
    x = from_bits(bits, src)
    whole = to_bits(x.to(dst))
    single = np.array([to_bits(x[i:i + 1].to(dst))[0] for i in range(len(bits))], dtype=whole.dtype)
    bad = np.nonzero(whole != single)[0]
    # torch 1.13 converts float64 -> bfloat16 NaNs path-dependently: 0xFFFF in
    # complete 16-element vector blocks, 0x7FC0 (c10::BFloat16) in the scalar
    # tail. The golden keeps the scalar result; any other disagreement is fatal.
    if src == torch.float64 and dst == torch.bfloat16:
        nan_in = torch.isnan(x).numpy()
        bad = bad[~nan_in[bad]]
    if len(bad):
        raise SystemExit(f"{NAMES[src]}->{NAMES[dst]}: whole-tensor and per-element .to() differ at "
                         f"{[hex(bits[i]) for i in bad[:5]]}")
    rec = np.dtype([("in", np.dtype(UINT[src]).newbyteorder("<")), ("out", np.dtype(UINT[dst]).newbyteorder("<"))])
    arr = np.zeros(len(bits), dtype=rec)
    arr["in"] = np.array(bits, dtype=UINT[src])
    arr["out"] = single
    with open(os.path.join(OUT, f"{NAMES[src]}_to_{NAMES[dst]}.bin"), "wb") as f:
        f.write(arr.tobytes())


def exhaustive_hash(src, dst):
    nbits = 16 if src in (torch.float16, torch.bfloat16) else 32
    total = np.uint64(0)
    chunk = 1 << min(nbits, 26)
    with np.errstate(over="ignore"):
        for start in range(0, 1 << nbits, chunk):
            idx = np.arange(start, start + chunk, dtype=np.uint64)
            x = torch.from_numpy(idx.astype(UINT[src]).view(np.dtype(UINT[src]).str.replace("u", "i"))).view(src)
            out = to_bits(x.to(dst)).astype(np.uint64)
            total += np.sum((out + np.uint64(1)) * (idx * np.uint64(K1) + np.uint64(K2)), dtype=np.uint64)
    return int(total)


def main():
    lines = []
    dtypes = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
    for src in dtypes:
        for dst in dtypes[1:]:
            if src == dst:
                continue
            pairs_file(src, dst)
            if src != torch.float64 and not PAIRS_ONLY:
                lines.append(f"{NAMES[src]}_to_{NAMES[dst]} {exhaustive_hash(src, dst):016x}\n")
    if PAIRS_ONLY:
        return
    with open(os.path.join(OUT, "hashes.txt"), "w") as f:
        f.write(f"# torch {torch.__version__}: sum_i (out_i + 1) * (i * {K1:#x} + {K2:#x}) mod 2^64\n")
        f.writelines(lines)


if __name__ == "__main__":
    main()
