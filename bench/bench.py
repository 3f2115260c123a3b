#!/usr/bin/python3
"""ckpt against cp and the Python route (torch.load + edit + torch.save) on a
MusicGen-small-sized AudioCraft training checkpoint.

Run with Debian's python (torch 1.13, omegaconf 2.2):

    /usr/bin/python3 bench/bench.py [--reps 5] [--big] [--ckpt build-perf/ckpt] [--torch2-python PY]

The Python route runs twice: with torch 1.13 (this python) and with torch 2.x's best route
(`torch.load(mmap=True)` + the same edit + `torch.save`) in a child process of the torch 2.x
venv's python (--torch2-python; default $CKPT_TORCH2_PYTHON, else .venv-torch2/bin/python,
else /work/venv213/bin/python; the rows are left out when none exists).

It generates bench/out/musicgen_small.th (1.68 GB fp32: the 300 tensors of MusicGen-small's
language model under their real names in best_state/model, the real xp.cfg as a struct-mode
DictConfig, training layout), and with --big a 9 GB training-sized one (model, best state,
EMA and both Adam moments as separate fp32 copies). Generated files are reused across runs.

Each operation runs --reps times as a fresh child process; the table gives the median wall
time, the spread (min-max), the ratio of medians to cp and to the Python route, and the
largest peak RSS over the repetitions (ru_maxrss from os.wait4). The page cache is warm
(every file is read once before timing) and outputs go to the same file system as inputs.
"""

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
OUT = os.path.join(HERE, "out")
XP_CFG = os.path.join(REPO, "tests", "fixtures", "musicgen_small_xp_cfg.yaml")
DROP_PREFIX = "condition_provider.conditioners.description."
SEED_ARGS = ["optim.lr=1e-5", "optim.epochs=50", "++dataset.train.path=/data/ft",
             "++dataset.valid.path=/data/ft_valid", "--drop", DROP_PREFIX + "*"]


def musicgen_small_shapes():
    """The 300 tensors of MusicGen-small's LM (audiocraft-checkpoints.md), in state-dict order."""
    dim, layers, cards = 1024, 24, 4
    shapes = [(DROP_PREFIX + "output_proj.weight", (dim, 768)), (DROP_PREFIX + "output_proj.bias", (dim,))]
    shapes += [(f"emb.{i}.weight", (2049, dim)) for i in range(cards)]
    for i in range(layers):
        p = f"transformer.layers.{i}."
        shapes += [(p + "self_attn.in_proj_weight", (3 * dim, dim)), (p + "self_attn.out_proj.weight", (dim, dim)),
                   (p + "linear1.weight", (4 * dim, dim)), (p + "linear2.weight", (dim, 4 * dim))]
        shapes += [(p + n + s, (dim,)) for n in ("norm1", "norm2") for s in (".weight", ".bias")]
        shapes += [(p + "cross_attention.in_proj_weight", (3 * dim, dim)),
                   (p + "cross_attention.out_proj.weight", (dim, dim))]
        shapes += [(p + "norm_cross" + s, (dim,)) for s in (".weight", ".bias")]
    shapes += [("out_norm.weight", (dim,)), ("out_norm.bias", (dim,))]
    shapes += [(f"linears.{i}.weight", (2048, dim)) for i in range(cards)]
    return shapes


def generate(path, big):
    import torch
    from omegaconf import OmegaConf
    gen = torch.Generator().manual_seed(0)

    def state():
        return {k: torch.empty(s).normal_(0, 0.02, generator=gen) for k, s in musicgen_small_shapes()}

    cfg = OmegaConf.load(XP_CFG)
    OmegaConf.set_struct(cfg, True)
    best = state()
    history = [{"train": {"ce": 5.0 - 0.01 * e, "ppl": 150.0 - e}, "valid": {"ce": 5.1 - 0.01 * e}}
               for e in range(100)]
    pkg = {"history": history, "xp.cfg": cfg, "xp.sig": "5a1b2c3d", "best_state": {"model": best},
           "fsdp_best_state": {}}
    if big:
        model = state()
        names = list(model)
        pkg["model"] = model
        pkg["optimizer"] = {
            "state": {i: {"step": torch.tensor(1000.0), "exp_avg": torch.zeros_like(model[n]),
                          "exp_avg_sq": torch.zeros_like(model[n])} for i, n in enumerate(names)},
            "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.95), "eps": 1e-8, "weight_decay": 0.1,
                              "params": list(range(len(names)))}]}
        pkg["ema"] = {"state": {"model": state()}, "count": 1000.0}
    else:
        # 1.68 GB: the live model shares the best state's storages (written once).
        pkg["model"] = best
        pkg["optimizer"] = {"state": {}, "param_groups": []}
        pkg["ema"] = None
    pkg["lr_scheduler"] = None
    pkg["version"] = "1.4.0a2"
    tmp = path + ".tmp"
    torch.save(pkg, tmp)
    os.rename(tmp, path)


PY_PRELUDE = f"""
import sys, torch
from omegaconf import OmegaConf, open_dict
DROP = {DROP_PREFIX!r}
def seed_edit(pkg):
    cfg = pkg["xp.cfg"]
    OmegaConf.update(cfg, "optim.lr", 1e-5)
    OmegaConf.update(cfg, "optim.epochs", 50)
    with open_dict(cfg):
        OmegaConf.update(cfg, "dataset.train.path", "/data/ft", force_add=True)
        OmegaConf.update(cfg, "dataset.valid.path", "/data/ft_valid", force_add=True)
    sd = pkg["best_state"]["model"]
    for k in [k for k in sd if k.startswith(DROP)]:
        del sd[k]
"""

PY = {
    "info": "pkg = torch.load(sys.argv[1], map_location='cpu'); print(list(pkg))",
    "prep": "pkg = torch.load(sys.argv[1], map_location='cpu'); seed_edit(pkg); torch.save(pkg, sys.argv[2])",
    "export": ("pkg = torch.load(sys.argv[1], map_location='cpu')\n"
               "torch.save({'best_state': pkg['best_state']['model'], 'xp.cfg': OmegaConf.to_yaml(pkg['xp.cfg']),"
               " 'version': pkg.get('version', '1.4.0a2'), 'exported': True}, sys.argv[2])"),
    "inplace": ("pkg = torch.load(sys.argv[1], map_location='cpu'); OmegaConf.update(pkg['xp.cfg'], 'optim.lr', 2e-5)\n"
                "torch.save(pkg, sys.argv[1])"),
    "bf16": ("pkg = torch.load(sys.argv[1], map_location='cpu')\n"
             "pkg['best_state']['model'] = {k: v.to(torch.bfloat16) for k, v in pkg['best_state']['model'].items()}\n"
             "torch.save(pkg, sys.argv[2])"),
}


# torch 2.x's best route: the storages are mmapped instead of read into memory.
# Saving over the mmapped input would truncate the pages under the mapping, so
# the in-place route saves beside it and renames.
PY2 = {op: code.replace("torch.load(sys.argv[1], map_location='cpu')",
                        "torch.load(sys.argv[1], map_location='cpu', mmap=True, weights_only=False)")
       for op, code in PY.items()}
PY2["inplace"] = PY2["inplace"].replace("torch.save(pkg, sys.argv[1])",
                                        "import os; torch.save(pkg, sys.argv[1] + '.tmp'); "
                                        "os.replace(sys.argv[1] + '.tmp', sys.argv[1])")


def torch2_python(explicit):
    for py in [explicit, os.environ.get("CKPT_TORCH2_PYTHON"), os.path.join(REPO, ".venv-torch2", "bin", "python"),
               "/work/venv213/bin/python"]:
        if py and os.access(py, os.X_OK):
            return py
    return None


def run(argv, output=None):
    """Runs argv once; returns (wall seconds, peak RSS bytes).

    The peak RSS is ru_maxrss from wait4, taken by GNU time around the command: Linux
    counts the image a child had before exec in its ru_maxrss, so os.wait4 on a child of
    this (larger) Python process would report this process's size instead.
    """
    if output and os.path.exists(output):
        os.unlink(output)
    rss_file = os.path.join(OUT, "rss.txt")
    start = time.perf_counter()
    proc = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", rss_file, *argv],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, _ = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(argv)} failed ({proc.returncode}):\n{err}")
    with open(rss_file) as f:
        rss_kb = int(f.read().split()[-1])
    os.unlink(rss_file)
    return wall, rss_kb * 1024


def measure(argv, reps, output=None, before=None):
    walls, peak = [], 0
    for _ in range(reps):
        if before:
            before()
        wall, rss = run(argv, output)
        walls.append(wall)
        peak = max(peak, rss)
    if output and os.path.exists(output):
        os.unlink(output)
    return {"median": statistics.median(walls), "min": min(walls), "max": max(walls), "rss": peak}


def paired(argv_a, argv_b, reps, output=None):
    """Runs A and B in turn (A B A B ...), reps pairs; the ratio A/B of each pair, so that a
    comparison holds while the shared machine's speed drifts. Returns A's figures with
    'ratio' (median of the pair ratios) and 'ratio_min'/'ratio_max'."""
    walls_a, walls_b, ratios, peak = [], [], [], 0
    for _ in range(reps):
        wa, rss = run(argv_a, output)
        wb, _ = run(argv_b, output)
        walls_a.append(wa)
        walls_b.append(wb)
        ratios.append(wa / wb)
        peak = max(peak, rss)
    if output and os.path.exists(output):
        os.unlink(output)
    return {"median": statistics.median(walls_a), "min": min(walls_a), "max": max(walls_a), "rss": peak,
            "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
            "b_median": statistics.median(walls_b)}


def fmt_time(s):
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


def machine():
    with open("/proc/meminfo") as f:
        mem_kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    disk = subprocess.run(["df", "-hT", OUT], capture_output=True, text=True).stdout.splitlines()[-1].split()
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{os.cpu_count()} CPUs ({cpu}), {mem_kb / (1 << 20):.0f} GiB RAM, "
            f"disk {disk[0]} {disk[1]} ({disk[2]}), Linux {platform.release()}")


def bench_file(path, args, ckpt, has_dtype):
    reps, py = args.reps, sys.executable
    size = os.path.getsize(path)
    for _ in range(2):  # warm the page cache
        subprocess.run(["cat", path], stdout=subprocess.DEVNULL, check=True)
    new = os.path.join(OUT, "out.th")
    work = os.path.join(OUT, "inplace.th")
    rows = []

    def pyrun(op, *extra):
        return [py, "-c", PY_PRELUDE + PY[op], *extra]

    def py2run(op, *extra):
        return [args.torch2_python, "-c", PY_PRELUDE + PY2[op], *extra]
    preps = args.python_reps

    def python_rows(op, name, *extra, output=None, before=None):
        rows.append((op, "python", measure(pyrun(name, *extra), preps, output, before)))
        if args.torch2_python:
            rows.append((op, "python 2.x mmap", measure(py2run(name, *extra), preps, output, before)))

    cp = measure(["cp", path, new], reps, new)
    rows.append(("cp", "cp", cp))
    # ckpt fsyncs every output before renaming it into place; cp does not.
    cp_sync = measure(["sh", "-c", 'cp "$0" "$1" && sync "$1"', path, new], reps, new)
    rows.append(("cp + sync", "cp", cp_sync))
    cp_sync_argv = ["sh", "-c", 'cp "$0" "$1" && sync "$1"', path, new]
    writes = [("seed prep -> new file", [ckpt, "edit", path, "-o", new, *SEED_ARGS]),
              ("export", [ckpt, "export", path, "-o", new]),
              ("rewrite", [ckpt, "rewrite", path, "-o", new])]
    # Each writing command in turn with cp + sync, ratio pair by pair (docs/PERFORMANCE.md).
    pairs = [(op, paired(argv, cp_sync_argv, reps, new)) for op, argv in writes]
    if args.writes_only:  # the durable-output comparison alone (README: edit -o against cp + sync)
        rows += [(op, "ckpt", r) for op, r in pairs]
        return table(path, size, args, rows, cp["median"], cp_sync["median"], {}) + paired_table(pairs)
    rows.append(("process floor (true)", "true", measure(["true"], reps)))
    for cmd in ("info", "tensors", "cfg", "scan"):
        rows.append((cmd, "ckpt", measure([ckpt, cmd, path], reps)))
    python_rows("info", "info", path)
    rows.append(("seed prep -> new file", "ckpt", measure([ckpt, "edit", path, "-o", new, *SEED_ARGS], reps, new)))
    python_rows("seed prep -> new file", "prep", path, new, output=new)
    rows.append(("export", "ckpt", measure([ckpt, "export", path, "-o", new], reps, new)))
    python_rows("export", "export", path, new, output=new)
    shutil.copyfile(path, work)
    rows.append(("in-place config edit", "ckpt", measure([ckpt, "edit", work, "--in-place", "optim.lr=2e-5"], reps)))
    python_rows("in-place config edit", "inplace", work, before=lambda: shutil.copyfile(path, work))
    os.unlink(work)
    if has_dtype:
        rows.append(("dtype -> bfloat16", "ckpt", measure([ckpt, "edit", path, "-o", new, "--dtype", "bfloat16"],
                                                          reps, new)))
    else:
        rows.append(("dtype -> bfloat16", "ckpt", None))
    python_rows("dtype -> bfloat16", "bf16", path, new, output=new)

    py_median = {op: r["median"] for op, tool, r in rows if tool == "python" and r}
    py_median.update({cmd: py_median["info"] for cmd in ("tensors", "cfg")})
    return table(path, size, args, rows, cp["median"], cp_sync["median"], py_median) + paired_table(pairs)


def paired_table(pairs):
    lines = ["", "Each writing command and cp + sync in turn, ratio pair by pair:", "",
             "| operation | median | cp + sync median | x (cp + sync), paired | spread of the ratio | peak RSS |",
             "|---|---:|---:|---:|---:|---:|"]
    for op, r in pairs:
        lines.append(f"| {op} | {fmt_time(r['median'])} | {fmt_time(r['b_median'])} | {r['ratio']:.3f} "
                     f"| {r['ratio_min']:.3f} - {r['ratio_max']:.3f} | {r['rss'] / (1 << 20):.1f} MiB |")
    return lines


def table(path, size, args, rows, cp_median, cp_sync_median, py_median):
    py2_median = {op: r["median"] for op, tool, r in rows if tool == "python 2.x mmap" and r}
    py2_median.update({cmd: py2_median["info"] for cmd in ("tensors", "cfg") if "info" in py2_median})
    lines = [f"#### {os.path.basename(path)}: {size / 1e9:.2f} GB; {args.reps} repetitions "
             f"(Python route: {args.python_reps})",
             "",
             "| operation | tool | median | spread (min-max) | x cp | x (cp + sync) | x python 1.13 | x python 2.x mmap | peak RSS |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for op, tool, r in rows:
        if r is None:
            lines.append(f"| {op} | {tool} | n/a | n/a | n/a | n/a | n/a | n/a | n/a |")
            continue
        x_py = "" if tool == "cp" or tool == "python" or op not in py_median else f"{r['median'] / py_median[op]:.3f}"
        x_py2 = "" if tool != "ckpt" or op not in py2_median else f"{r['median'] / py2_median[op]:.3f}"
        lines.append(f"| {op} | {tool} | {fmt_time(r['median'])} | {fmt_time(r['min'])} - {fmt_time(r['max'])} "
                     f"| {r['median'] / cp_median:.3f} | {r['median'] / cp_sync_median:.3f} | {x_py} | {x_py2} "
                     f"| {r['rss'] / (1 << 20):.1f} MiB |")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--big", action="store_true", help="also the 9 GB training-sized checkpoint")
    ap.add_argument("--ckpt", default=os.path.join(REPO, "build-perf", "ckpt"))
    ap.add_argument("--python-reps", type=int, help="repetitions of the Python route (default: --reps)")
    ap.add_argument("--torch2-python", help="python of a torch 2.x venv for the mmap route")
    ap.add_argument("--writes-only", action="store_true",
                    help="only cp, cp + sync, seed prep and export (the durable-output comparison)")
    ap.add_argument("--regenerate", action="store_true")
    ap.add_argument("--generate-only", metavar="PATH", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.generate_only:
        generate(args.generate_only, args.big)
        return
    if args.python_reps is None:
        args.python_reps = args.reps
    args.torch2_python = torch2_python(args.torch2_python)
    ckpt = os.path.abspath(args.ckpt)
    if not os.access(ckpt, os.X_OK):
        sys.exit(f"bench: no ckpt binary at {ckpt} (build it: cmake -S . -B build-perf "
                 "-DCMAKE_BUILD_TYPE=Release && cmake --build build-perf -j2 --target ckpt)")
    os.makedirs(OUT, exist_ok=True)
    help_text = subprocess.run([ckpt, "edit", "--help"], capture_output=True, text=True).stdout
    has_dtype = "--dtype" in help_text

    files = [(os.path.join(OUT, "musicgen_small.th"), False)]
    if args.big:
        files.append((os.path.join(OUT, "musicgen_small_training.th"), True))
    for path, big in files:
        if args.regenerate or not os.path.exists(path):
            print(f"generating {path} ...", file=sys.stderr)
            subprocess.run([sys.executable, __file__, "--generate-only", path] + (["--big"] if big else []),
                           check=True)

    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"ckpt benchmark, {datetime.date.today().isoformat()}; {machine()}; load average at start {load}")
    print(f"ckpt: {ckpt}; python route: {sys.executable} (torch.load + edit + torch.save)"
          + (f"; torch 2.x route: {args.torch2_python} (torch.load(mmap=True) + edit + torch.save)"
             if args.torch2_python else "; no torch 2.x python: its rows are left out"))
    print()
    for path, _ in files:
        print("\n".join(bench_file(path, args, ckpt, has_dtype)))
        print()
    print("load average at end " + " / ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
