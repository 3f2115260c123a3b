#!/usr/bin/env python3
"""The Python package against torch.load(weights_only=True, mmap=True) and
safetensors' load_file, on the MusicGen-small-sized AudioCraft training
checkpoint bench/bench.py makes (1.68 GB fp32, 300 tensors, struct-mode
DictConfig in xp.cfg).

Run with a Python that has torch 2.x, omegaconf, safetensors and the ckpt
package (installed, or PYTHONPATH=DIR of `pip install --target DIR`):

    /work/venv213/bin/python bench/bench_python.py [--reps 5]

torch >= 2.6 refuses the training checkpoint under weights_only=True (the
DictConfig), so the torch.load rows read `ckpt sanitize`'s output (the same
tensors, xp.cfg as YAML); the safetensors row reads `ckpt safetensors`'s
output (the best state). Each row runs --reps times, each in a fresh child
process: the time is the operation's own (measured in the child, after the
imports), the memory the child's peak RSS (ru_maxrss, GNU time) including
the interpreter and its imports; "import only" rows give those baselines.
"Loads" are lazy for the mapped rows, so each load row is followed by the
same load plus a read of every value (float(t.sum()) of each tensor), which touches
every byte. Ratios are to torch.load(weights_only=True, mmap=True). The page
cache is warm.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402  (bench.generate: the MusicGen-small-sized file)

OUT = bench.OUT

PRELUDE = "import time, sys\n"
TOUCH = "sum(float(t.sum()) for t in sd.values())"

# name, imports, operation (sets sd where values are read), reads values
ROWS = [
    ("import torch only", "import torch", "pass", None),
    ("import ckpt only (no torch)", "import ckpt", "pass", None),
    ("ckpt.open + tensor metadata (no torch)", "import ckpt",
     "c = ckpt.open(F); rows = c.tensors(); assert len(rows) == 300", None),
    ("ckpt.open + tensor metadata", "import torch, ckpt",
     "c = ckpt.open(F); rows = c.tensors(); assert len(rows) == 300", None),
    ("ckpt.open(...).state_dict(framework='torch')", "import torch, ckpt",
     "sd = ckpt.open(F).state_dict(framework='torch')", False),
    ("ckpt.load (whole object graph, DictConfig)", "import torch, ckpt, omegaconf",
     "obj = ckpt.load(F); sd = obj['best_state']['model']", False),
    ("torch.load(weights_only=True, mmap=True) [sanitized]", "import torch",
     "sd = torch.load(S, weights_only=True, mmap=True)['best_state']['model']", False),
    ("torch.load(weights_only=False, mmap=True)", "import torch, omegaconf",
     "sd = torch.load(F, weights_only=False, mmap=True)['best_state']['model']", False),
    ("safetensors.torch.load_file [best state]", "import torch, safetensors.torch",
     "sd = safetensors.torch.load_file(T)", False),
]
BASELINE = "torch.load(weights_only=True, mmap=True) [sanitized]"


def child_script(imports, op, touch):
    body = op + (f"\n_ = {TOUCH}" if touch else "")
    return (PRELUDE + imports + "\n"
            + "F, S, T = sys.argv[1:4]\n"
            + "t0 = time.perf_counter()\n" + body + "\n"
            + "print(time.perf_counter() - t0)\n")


def run_once(script, files, env):
    rss_file = os.path.join(OUT, "rss_python.txt")
    r = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file, sys.executable, "-c", script, *files],
                       capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"bench_python: child failed:\n{script}\n{r.stderr}")
    with open(rss_file) as f:
        rss = int(f.read().split()[-1]) * 1024
    os.unlink(rss_file)
    return float(r.stdout.strip().splitlines()[-1]), rss


def measure(script, files, reps, env):
    times, peak = [], 0
    for _ in range(reps):
        t, rss = run_once(script, files, env)
        times.append(t)
        peak = max(peak, rss)
    return statistics.median(times), peak


def fmt_time(s):
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    import ckpt
    os.makedirs(OUT, exist_ok=True)
    src = os.path.join(OUT, "musicgen_small.th")
    if not os.path.exists(src):
        print(f"generating {src} ...", file=sys.stderr)
        bench.generate(src, False)
    sanitized = os.path.join(OUT, "musicgen_small_sanitized.th")
    st = os.path.join(OUT, "musicgen_small.safetensors")
    if not os.path.exists(sanitized):
        ckpt.sanitize(src, sanitized)
    if not os.path.exists(st):
        ckpt.to_safetensors(src, st)
    files = [src, sanitized, st]
    for f in files:  # warm the page cache
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    results = []
    for name, imports, op, reads in ROWS:
        variants = [(name, False)] if reads is None else [(name, False), (name + " + read every value", True)]
        for label, touch in variants:
            t, rss = measure(child_script(imports, op, touch), files, args.reps, env)
            results.append((label, t, rss, touch, op == "pass"))
            print(f"{label}: {fmt_time(t)}, {rss / 2**20:.0f} MiB", file=sys.stderr, flush=True)
    base = {touch: (t, rss) for label, t, rss, touch, _ in results if label.startswith(BASELINE)}
    import torch
    print(f"File: {src} ({os.path.getsize(src) / 1e9:.2f} GB, 300 tensors); torch {torch.__version__}, "
          f"python {sys.version.split()[0]}; median of {args.reps} fresh processes; {time.strftime('%Y-%m-%d')}\n")
    print("| operation | time | x torch mmap | peak RSS | x torch mmap |")
    print("|---|---|---|---|---|")
    for label, t, rss, touch, import_only in results:
        bt, brss = base[touch]
        ratio_t = "" if import_only else f"{t / bt:.2f}"
        ratio_m = "" if import_only else f"{rss / brss:.2f}"
        print(f"| {label} | {fmt_time(t)} | {ratio_t} | {rss / 2**20:.0f} MiB | {ratio_m} |")


if __name__ == "__main__":
    main()
