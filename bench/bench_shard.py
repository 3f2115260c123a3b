#!/usr/bin/env python3
"""ckpt's DCP converters against torch's on a MusicGen-small-sized state dict (1.68 GB fp32).

Run with the torch 2.x Python (torch.distributed.checkpoint):

    /work/venv213/bin/python bench/bench_shard.py [--reps 3] [--ckpt build/ckpt]

It generates bench/out/musicgen_small_sd.pt (the 300 tensors of MusicGen-small's LM, as
bench.py's, as a plain state dict) and, with torch's torch_save_to_dcp, the DCP folder
bench/out/musicgen_small_dcp (reused across runs). Rows: cp of the file (the bytes-copy floor),
`ckpt consolidate` against format_utils.dcp_to_torch_save, `ckpt to-dcp` against
format_utils.torch_save_to_dcp, and `ckpt to-dcp --ranks 2`. Median wall time over --reps fresh
processes, peak RSS (GNU time), both as ratios to cp and to torch's converter; warm page cache.
"""

import argparse
import os
import shutil
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402  (run, machine, musicgen_small_shapes, fmt_time)

OUT = bench.OUT
SD = os.path.join(OUT, "musicgen_small_sd.pt")
DCP = os.path.join(OUT, "musicgen_small_dcp")


def generate():
    import torch
    from torch.distributed.checkpoint.format_utils import torch_save_to_dcp
    os.makedirs(OUT, exist_ok=True)
    if not os.path.exists(SD):
        gen = torch.Generator().manual_seed(0)
        sd = {k: torch.empty(s).normal_(0, 0.02, generator=gen) for k, s in bench.musicgen_small_shapes()}
        torch.save(sd, SD + ".tmp")
        os.replace(SD + ".tmp", SD)
    if not os.path.exists(os.path.join(DCP, ".metadata")):
        shutil.rmtree(DCP, ignore_errors=True)
        torch_save_to_dcp(SD, DCP)


def remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.unlink(path)


def measure(argv, reps, output):
    walls, peak = [], 0
    for _ in range(reps):
        remove(output)
        wall, rss = bench.run(argv)
        walls.append(wall)
        peak = max(peak, rss)
    remove(output)
    walls.sort()
    return {"median": walls[len(walls) // 2], "min": walls[0], "max": walls[-1], "rss": peak}


def paired_vs_cp_sync(argv, reps, output, cp_out):
    """argv and cp + sync of the state dict in turn (A B A B ...), the ratio pair by pair (bench.paired's
    method, with folders removed between runs): the durable-output comparison of docs/PERFORMANCE.md."""
    cp_sync = ["sh", "-c", 'cp "$0" "$1" && sync "$1"', SD, cp_out]
    ratios, walls = [], []
    for _ in range(reps):
        remove(output)
        wa, _ = bench.run(argv)
        remove(cp_out)
        wb, _ = bench.run(cp_sync)
        walls.append(wa)
        ratios.append(wa / wb)
    remove(output)
    remove(cp_out)
    return statistics.median(ratios), min(ratios), max(ratios), statistics.median(walls)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--ckpt", default=os.path.join(bench.REPO, "build", "ckpt"))
    ap.add_argument("--paired-only", action="store_true", help="only the rows paired against cp + sync")
    args = ap.parse_args()
    generate()
    for root, _, files in os.walk(DCP):  # warm the page cache
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                while fh.read(1 << 24):
                    pass
    with open(SD, "rb") as fh:
        while fh.read(1 << 24):
            pass
    py = sys.executable
    new_file, new_dir = os.path.join(OUT, "shard_new.pt"), os.path.join(OUT, "shard_new_dcp")
    fmt = "from torch.distributed.checkpoint.format_utils import {0}; import sys; {0}(sys.argv[1], sys.argv[2])"
    if not args.paired_only:
        rows = [
            ("cp (floor)", "cp", measure(["cp", SD, new_file], args.reps, new_file), None),
            ("consolidate", "ckpt", measure([args.ckpt, "consolidate", DCP, "-o", new_file, "-q"], args.reps, new_file),
             "dcp_to_torch_save"),
            ("consolidate", "torch", measure([py, "-c", fmt.format("dcp_to_torch_save"), DCP, new_file], args.reps,
                                             new_file), None),
            ("to-dcp", "ckpt", measure([args.ckpt, "to-dcp", SD, "-o", new_dir, "-q"], args.reps, new_dir),
             "torch_save_to_dcp"),
            ("to-dcp", "torch", measure([py, "-c", fmt.format("torch_save_to_dcp"), SD, new_dir], args.reps, new_dir),
             None),
            ("to-dcp --ranks 2", "ckpt", measure([args.ckpt, "to-dcp", SD, "-o", new_dir, "-q", "--ranks", "2"],
                                                 args.reps, new_dir), None),
        ]
        cp = rows[0][2]
        torch_of = {op: r for op, tool, r, _ in rows if tool == "torch"}
        print(f"# {os.path.getsize(SD) / 1e9:.2f} GB state dict, {args.reps} reps; {bench.machine()}")
        print("| operation | tool | median (min-max) | x cp | x torch | peak RSS | RSS x torch |")
        print("|---|---|---|---|---|---|---|")
        for op, tool, r, _ in rows:
            t = torch_of.get(op)
            vs_torch = f"{r['median'] / t['median']:.2f}" if t and tool == "ckpt" else ""
            rss_torch = f"{r['rss'] / t['rss']:.3f}" if t and tool == "ckpt" else ""
            print(f"| {op} | {tool} | {bench.fmt_time(r['median'])} ({bench.fmt_time(r['min'])}-"
                  f"{bench.fmt_time(r['max'])}) | {r['median'] / cp['median']:.2f} | {vs_torch} | "
                  f"{r['rss'] / 2**20:.0f} MiB | {rss_torch} |")
    print(f"\nPaired against cp + sync of the state dict ({args.reps} pairs; load {os.getloadavg()[0]:.1f}):\n")
    print("| operation | median | x (cp + sync), median (min-max) of the pairs |")
    print("|---|---:|---:|")
    for op, argv, output in (
            ("consolidate", [args.ckpt, "consolidate", DCP, "-o", new_file, "-q"], new_file),
            ("to-dcp", [args.ckpt, "to-dcp", SD, "-o", new_dir, "-q"], new_dir),
            ("to-dcp --ranks 2", [args.ckpt, "to-dcp", SD, "-o", new_dir, "-q", "--ranks", "2"], new_dir)):
        med, lo, hi, wall = paired_vs_cp_sync(argv, args.reps, output, new_file if output != new_file else new_file + ".cp")
        print(f"| {op} | {bench.fmt_time(wall)} | {med:.2f} ({lo:.2f}-{hi:.2f}) |")


if __name__ == "__main__":
    main()
