#!/usr/bin/env python3
"""`ckpt scan` beside the other pickle scanners, in one run.

    python3 bench/scanners.py [--ckpt build/ckpt] [--write docs/scanners.md]

Makes (or reuses) a separate venv, /work/venv-scanners by default (--venv), from
bench/scanners-requirements.txt (picklescan, modelscan, fickling, ModelAudit: pinned, from
PyPI; kept apart because their dependencies conflict with the test venv's), and uses torch
2.13's weights_only=True loader from CKPT_TORCH2_PYTHON, else the repository's .venv-torch2
(--torch-python).

Files: the shared picklescan corpus (../shared/corpora/picklescan, its MANIFEST.tsv gives each
file's verdict), the project's fixtures (tests/fixtures/make_fixtures.py: checkpoints that must
be called safe) and its hostile fixtures (tests/fixtures/make_hostile.py): a hostile file is
"unsafe" when torch 2.13's torch.load (weights_only=False) runs its payload, checked by running
it here; hostile files that run no code are listed but not counted.

Per tool: unsafe files called safe, safe files called unsafe, crashes (a signal, a timeout or
a Python traceback instead of a verdict), total wall time. Not part of CI (it installs from PyPI).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.realpath(os.path.join(os.path.dirname(__file__), ".."))
# Resolved paths throughout: ModelAudit names files by their resolved path, so a path with '..'
# in it would match none of its findings.
CORPUS = os.path.realpath(os.path.join(ROOT, "..", "shared", "corpora", "picklescan"))
if not os.path.isdir(CORPUS):
    CORPUS = "/work/shared/corpora/picklescan"
REQUIREMENTS = os.path.join(ROOT, "bench", "scanners-requirements.txt")
TIMEOUT = 120
QUIET_ENV = dict(os.environ, PROMPTFOO_DISABLE_TELEMETRY="1", NO_COLOR="1", TERM="dumb")


def ensure_venv(venv):
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    subprocess.run([py, "-m", "pip", "install", "-q", "-r", REQUIREMENTS], check=True)
    return os.path.join(venv, "bin")


def corpus_files():
    rows = []
    with open(os.path.join(CORPUS, "MANIFEST.tsv")) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            name, verdict = line.rstrip("\n").split("\t")[:2]
            rows.append(("corpus", os.path.join(CORPUS, name), verdict == "safe"))
    return rows


def project_files(workdir, torch_python):
    good = os.path.join(workdir, "fixtures")
    subprocess.run([torch_python, os.path.join(ROOT, "tests", "fixtures", "make_fixtures.py"), good],
                   check=True, capture_output=True)
    with open(os.path.join(good, "manifest.json")) as f:
        manifest = json.load(f)["fixtures"]
    rows = [("fixtures", os.path.join(good, e["file"]), True)
            for e in manifest if e["kind"] in ("good", "legacy")]
    hostile = os.path.join(workdir, "hostile")
    subprocess.run([torch_python, os.path.join(ROOT, "tests", "fixtures", "make_hostile.py"), hostile],
                   check=True, capture_output=True)
    with open(os.path.join(hostile, "hostile.json")) as f:
        entries = json.load(f)["fixtures"]
    skipped = []
    for e in entries:
        path = os.path.join(hostile, e["file"])
        marker = os.path.join(hostile, "marker_" + e["name"])
        subprocess.run([torch_python, "-c", "import sys, torch\ntry: torch.load(sys.argv[1], weights_only=False)\n"
                        "except Exception: pass", path], capture_output=True, timeout=TIMEOUT)
        if os.path.exists(marker):
            os.remove(marker)
            rows.append(("hostile", path, False))
        else:
            skipped.append(e["name"])
    return rows, skipped


def run_cli(argv, cwd):
    """(flagged, crashed, seconds) for one CLI run: exit 0 is 'safe'. cwd is the scratch folder
    (fickling writes safety_results.json there, modelscan looks there for its settings file)."""
    start = time.monotonic()
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, env=QUIET_ENV,
                           stdin=subprocess.DEVNULL, cwd=cwd)
    except subprocess.TimeoutExpired:
        return True, True, time.monotonic() - start
    elapsed = time.monotonic() - start
    crashed = p.returncode < 0 or p.returncode >= 128 or "Traceback (most recent call last)" in p.stderr
    return p.returncode != 0, crashed, elapsed


def per_file_tool(argv_of):
    def run(files, cwd):
        out, total = {}, 0.0
        for path in files:
            flagged, crashed, t = run_cli(argv_of(path), cwd)
            out[path] = (flagged, crashed)
            total += t
        return out, total
    return run


def modelaudit_owner(location, files):
    """The scanned file a ModelAudit location names: 'PATH', 'PATH (pos N)' or 'PATH:MEMBER ...'
    with PATH as given (resolved); the longest such PATH, None if none."""
    best = None
    for f in files:
        if location == f or location.startswith(f + " ") or location.startswith(f + ":"):
            if best is None or len(f) > len(best):
                best = f
    return best


def modelaudit_verdicts(doc, files):
    """{file: (flagged, crashed)} from one `modelaudit scan --format json FILE...` run, each file
    given the verdict `modelaudit scan FILE` alone exits with (modelaudit.core_results'
    determine_exit_code): 1 for a warning or critical issue or a failed check of that severity,
    2 when its scan was inconclusive or failed (its file_metadata entry says so: scan_outcome,
    analysis_incomplete, operational_error), both 'unsafe'; a file the output does not mention
    had no verdict (a crash). Issues and checks name their file in 'location'."""
    flagged, unowned = set(), 0
    for kind in ("issues", "checks"):
        for rec in doc.get(kind) or []:
            if rec.get("severity") not in ("critical", "warning"):
                continue
            if kind == "checks" and rec.get("status") != "failed":
                continue
            owner = modelaudit_owner(rec.get("location") or "", files)
            if owner is None:
                owner = modelaudit_owner((rec.get("details") or {}).get("pickle_source") or "", files)
            if owner is None:
                unowned += 1
            else:
                flagged.add(owner)
    if unowned:
        print(f"ModelAudit: {unowned} findings name none of the scanned files", file=sys.stderr)
    metadata = doc.get("file_metadata") or {}
    seen = set(metadata) | {a.get("path") for a in doc.get("assets") or []}
    for f in files:
        m = metadata.get(f) or {}
        if m.get("scan_outcome") == "inconclusive" or m.get("analysis_incomplete") or m.get("operational_error"):
            flagged.add(f)
    return {f: (f in flagged or f not in seen, f not in seen) for f in files}


def modelaudit_tool(bin_dir):
    """ModelAudit takes seconds to start: one run over every file, verdicts mapped back by path."""
    def run(files, cwd):
        start = time.monotonic()
        p = subprocess.run([os.path.join(bin_dir, "modelaudit"), "scan", "--format", "json", *files],
                           capture_output=True, text=True, timeout=TIMEOUT * 10, env=QUIET_ENV,
                           stdin=subprocess.DEVNULL, cwd=cwd)
        total = time.monotonic() - start
        try:
            doc = json.loads(p.stdout)
        except ValueError:
            return {f: (True, True) for f in files}, total
        return modelaudit_verdicts(doc, files), total
    return run


def weights_only_tool(torch_python):
    """torch 2.13's torch.load(weights_only=True) in one process: a file it loads is 'safe'."""
    code = r"""
import json, sys, time, torch
out = {}
total = 0.0
for path in sys.argv[1:]:
    start = time.monotonic()
    try:
        torch.load(path, weights_only=True)
        ok = True
    except Exception:
        ok = False
    total += time.monotonic() - start
    out[path] = ok
print(json.dumps({"loaded": out, "seconds": total}))
"""

    def run(files, cwd):
        p = subprocess.run([torch_python, "-c", code, *files], capture_output=True, text=True,
                           timeout=TIMEOUT * 10, stdin=subprocess.DEVNULL, cwd=cwd)
        try:
            doc = json.loads(p.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return {f: (True, True) for f in files}, 0.0
        return {f: (not doc["loaded"][f], False) for f in files}, doc["seconds"]
    return run


BEGIN = "<!-- bench/scanners.py writes from here -->"
END = "<!-- to here -->"


def write_section(path, text):
    """Replace what lies between BEGIN and END in path (the hand-written prose around the table
    stays); a file without the markers is written whole. Temp name, fsync, rename."""
    body = BEGIN + "\n" + text + END + "\n"
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
        if BEGIN in old and END in old:
            body = old[:old.index(BEGIN)] + body + old[old.index(END) + len(END) + 1:]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(body)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_average():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", default=os.path.join(ROOT, "build", "ckpt"))
    ap.add_argument("--venv", default="/work/venv-scanners")
    ap.add_argument("--torch-python", default=os.environ.get("CKPT_TORCH2_PYTHON")
                    or os.path.join(ROOT, ".venv-torch2", "bin", "python"))
    ap.add_argument("--write", help="write the table into this markdown file, between its markers "
                    "(the whole file when it has none)")
    args = ap.parse_args()

    bin_dir = ensure_venv(args.venv)
    ckpt = os.path.realpath(args.ckpt)
    workdir = os.path.realpath(tempfile.mkdtemp(prefix="ckpt-scanners-"))
    try:
        rows = corpus_files()
        more, skipped = project_files(workdir, args.torch_python)
        rows += more
        files = [path for _, path, _ in rows]
        tools = [
            ("ckpt scan", per_file_tool(lambda f: [ckpt, "scan", f])),
            ("picklescan", per_file_tool(lambda f: [os.path.join(bin_dir, "picklescan"), "-p", f])),
            ("modelscan", per_file_tool(lambda f: [os.path.join(bin_dir, "modelscan"), "-p", f])),
            ("fickling", per_file_tool(lambda f: [os.path.join(bin_dir, "fickling"), "--check-safety", f])),
            ("ModelAudit (one run)", modelaudit_tool(bin_dir)),
            ("torch 2.13 weights_only=True", weights_only_tool(args.torch_python)),
        ]
        n_unsafe = sum(1 for _, _, safe in rows if not safe)
        n_safe = len(rows) - n_unsafe
        scratch = os.path.join(workdir, "cwd")
        os.makedirs(scratch)
        load_before = load_average()
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        results = []
        for name, run in tools:
            verdicts, seconds = run(files, scratch)
            missed = [p for _, p, safe in rows if not safe and not verdicts[p][0]]
            false_alarms = [p for _, p, safe in rows if safe and verdicts[p][0]]
            crashes = [p for p in files if verdicts[p][1]]
            results.append((name, seconds, {"missed": missed, "false_alarms": false_alarms, "crashes": crashes}))
            print(f"{name}: {len(missed)} missed, {len(false_alarms)} false alarms, {len(crashes)} crashes, "
                  f"{seconds:.2f} s", flush=True)
        ckpt_seconds = results[0][1]
        lines = [f"Run {when} on {os.cpu_count()} cores, load average {load_before} before and "
                 f"{load_average()} after.", "",
                 f"Files: {len(rows)} ({n_unsafe} unsafe, {n_safe} safe): the picklescan corpus "
                 f"({sum(1 for s, _, _ in rows if s == 'corpus')}), the project's fixtures "
                 f"({sum(1 for s, _, _ in rows if s == 'fixtures')}) and the hostile fixtures that run "
                 f"code in torch 2.13 ({sum(1 for s, _, _ in rows if s == 'hostile')}; not counted, no code "
                 f"run: {', '.join(skipped)}).", "",
                 "| tool | unsafe called safe | safe called unsafe | crashes | total time | time / ckpt scan's |",
                 "|---|---|---|---|---|---|"]
        for name, seconds, d in results:
            ratio = f"{seconds / ckpt_seconds:.0f}x" if ckpt_seconds > 0 and name != "ckpt scan" else "-"
            if name.startswith("torch"):
                ratio = "-"  # its time leaves out the import (see above)
            lines.append(f"| {name} | {len(d['missed'])} | {len(d['false_alarms'])} | {len(d['crashes'])} | "
                         f"{seconds:.2f} s | {ratio} |")
        lines.append("")
        for name, _, d in results:
            for what in ("missed", "false_alarms", "crashes"):
                if d[what]:
                    shown = ", ".join(os.path.basename(p) for p in d[what])
                    lines.append(f"- {name}, {what.replace('_', ' ')}: {shown}")
        text = "\n".join(lines) + "\n"
        print(text)
        if args.write:
            write_section(args.write, text)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
