"""End-to-end tests of what a first-time user trips on (issue 13): overrides
after repeatable flags, interrupted writes, edits that change nothing, error
messages, standard input/output, tables.

Most tests use the shipped example, examples/musicgen_tiny_training.th (made by
real torch); results are checked by loading them with the running torch.
"""

import os
import random
import shutil
import signal
import subprocess
import time

import pytest
import torch

from conftest import REPO_ROOT, run_ckpt
from test_foundation import assert_usage_error, ok

EXAMPLE = os.path.join(REPO_ROOT, "examples", "musicgen_tiny_training.th")
DESCRIPTION = "condition_provider.conditioners.description.*"


def load(path):
    return torch.load(str(path), map_location="cpu", weights_only=False)


def cfg_value(path, key):
    return ok(run_ckpt("cfg", path, key)).strip()


def temporaries(folder):
    return [n for n in os.listdir(folder) if ".ckpt-tmp-" in n]


# ------------------------------------------------------------ 1: overrides

@pytest.mark.parametrize("flag,value", [
    ("--drop", DESCRIPTION), ("--keep", "*"), ("--rename", "^emb=embedding"),
    ("--state", "best_state/model"), ("--match", "emb.*"),
])
def test_override_after_a_repeatable_flag_is_applied(ckpt, tmp_path, flag, value):
    out = tmp_path / "out.th"
    extra = ["--dtype", "float16"] if flag == "--match" else []
    ok(run_ckpt("edit", EXAMPLE, "-o", out, *extra, flag, value, "optim.lr=1e-4"))
    assert load(out)["xp.cfg"].optim.lr == 1e-4


def test_repeated_flags_accumulate(ckpt, tmp_path):
    out = tmp_path / "out.th"
    ok(run_ckpt("edit", EXAMPLE, "-o", out, "--drop", "emb.0.*", "optim.lr=0.5", "--drop", "emb.1.*",
                "optim.epochs=7"))
    pkg = load(out)
    assert pkg["xp.cfg"].optim.lr == 0.5 and pkg["xp.cfg"].optim.epochs == 7
    names = list(pkg["best_state"]["model"])
    assert not [n for n in names if n.startswith(("emb.0.", "emb.1."))]
    assert [n for n in names if n.startswith("emb.2.")]


def test_glob_with_equals_is_refused(ckpt, tmp_path):
    out = tmp_path / "out.th"
    assert_usage_error(run_ckpt("edit", EXAMPLE, "-o", out, "--drop", "optim.lr=1e-4"), "override", "repeat")
    assert not out.exists()


# ------------------------------------------------------------ 2: signals

@pytest.fixture(scope="module")
def big_checkpoint(tmp_path_factory):
    """The example with a 256 MB tensor added: a write that takes a while."""
    pkg = load(EXAMPLE)
    pkg["best_state"]["model"]["zz.big"] = torch.ones(64 * 1024 * 1024)
    path = tmp_path_factory.mktemp("big") / "big.th"
    torch.save(pkg, str(path))
    return path


def interrupt_when_temporary_appears(args, folder, sig):
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    seen = False
    while time.monotonic() < deadline and proc.poll() is None:
        if temporaries(folder):
            seen = True
            proc.send_signal(sig)
            break
        time.sleep(0.001)
    proc.wait(timeout=60)
    return proc.returncode, seen


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signal_removes_the_temporary(ckpt, tmp_path, big_checkpoint, sig):
    out = tmp_path / "out.th"
    rc, seen = interrupt_when_temporary_appears([ckpt, "edit", str(big_checkpoint), "-o", str(out), "optim.lr=0.5"],
                                                tmp_path, sig)
    assert seen, "the write finished before a temporary was seen"
    assert rc == 128 + sig
    assert not out.exists()
    assert temporaries(tmp_path) == []


def test_signal_during_compact_keeps_the_file(ckpt, tmp_path, big_checkpoint):
    path = tmp_path / "big.th"
    shutil.copyfile(big_checkpoint, path)
    before = path.read_bytes()
    rc, seen = interrupt_when_temporary_appears([ckpt, "compact", str(path)], tmp_path, signal.SIGTERM)
    assert seen and rc == 128 + signal.SIGTERM
    assert temporaries(tmp_path) == []
    assert path.read_bytes() == before


def test_in_place_edit_killed_at_random_points_leaves_old_or_new(ckpt, tmp_path):
    path = tmp_path / "ck.th"
    shutil.copyfile(EXAMPLE, path)
    rng = random.Random(13)
    value = 1.0
    outcomes = set()
    for i in range(30):
        new = 0.5 + i
        proc = subprocess.Popen([ckpt, "edit", str(path), "--in-place", f"optim.lr={new}", "--drop", f"zz{i}*",
                                 "--allow-no-match"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0, 0.03))
        sig = rng.choice([signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
        proc.send_signal(sig)
        proc.wait(timeout=30)
        assert proc.returncode in (0, 128 + sig, -sig), f"round {i}: exit {proc.returncode}"
        lr = load(path)["xp.cfg"].optim.lr
        assert lr in (value, new), f"round {i}: lr {lr}, expected {value} or {new}"
        outcomes.add(lr == new)
        value = lr
        if sig != signal.SIGKILL:
            assert temporaries(tmp_path) == []
        for name in temporaries(tmp_path):  # what a SIGKILL during a rewrite leaves
            os.unlink(tmp_path / name)
    ok(run_ckpt("verify", path))


# ------------------------------------------------------------ 3: no-ops and the summary

def test_edit_without_edits_is_a_usage_error(ckpt, tmp_path):
    out = tmp_path / "out.th"
    assert_usage_error(run_ckpt("edit", EXAMPLE, "-o", out), "nothing to do")
    assert not out.exists()


def test_drop_matching_nothing_is_an_error(ckpt, tmp_path):
    out = tmp_path / "out.th"
    assert_usage_error(run_ckpt("edit", EXAMPLE, "-o", out, "--drop", "no.such.*"), "matches no key",
                       "--allow-no-match")
    assert not out.exists()
    ok(run_ckpt("edit", EXAMPLE, "-o", out, "--drop", "no.such.*", "--allow-no-match"))
    assert out.exists()


def test_dropping_every_tensor_needs_allow_empty(ckpt, tmp_path):
    out = tmp_path / "out.th"
    assert_usage_error(run_ckpt("edit", EXAMPLE, "-o", out, "--drop", "*"), "remove all", "--allow-empty")
    assert not out.exists()
    ok(run_ckpt("edit", EXAMPLE, "-o", out, "--drop", "*", "--allow-empty"))
    assert len(load(out)["best_state"]["model"]) == 0


def test_summary_names_every_change(ckpt, tmp_path):
    out = tmp_path / "out.th"
    r = run_ckpt("edit", EXAMPLE, "-o", out, "optim.epochs=abc", "++dataset.train.path=/data/ft",
                 "--drop", DESCRIPTION, "--rename", "^emb\\.0\\.=embedding.0.")
    ok(r)
    assert "xp.cfg: optim.epochs: 500 -> 'abc'" in r.stderr
    assert "xp.cfg: dataset.train.path: (absent) -> '/data/ft'" in r.stderr
    assert "dropped condition_provider.conditioners.description.output_proj.weight" in r.stderr
    assert "renamed emb.0.weight -> embedding.0.weight" in r.stderr
    assert f"({os.path.getsize(out):,} bytes)" in r.stderr


def test_unchanged_edit_warns(ckpt, tmp_path):
    out = tmp_path / "out.th"
    r = run_ckpt("edit", EXAMPLE, "-o", out, "optim.epochs=500")
    ok(r)
    assert "warning: the edit changes nothing" in r.stderr


def test_dry_run_writes_nothing_and_reports_the_same_changes(ckpt, tmp_path):
    out = tmp_path / "out.th"
    args = ("optim.epochs=3", "--drop", DESCRIPTION)
    dry = run_ckpt("edit", EXAMPLE, "-o", out, "--dry-run", *args)
    ok(dry)
    assert not out.exists() and temporaries(tmp_path) == []
    assert "optim.epochs: 500 -> 3" in dry.stderr
    real = run_ckpt("edit", EXAMPLE, "-o", out, *args)
    ok(real)
    assert f"would write {out} ({os.path.getsize(out):,} bytes)" in dry.stdout
    for line in real.stderr.splitlines()[:-1]:
        assert "would change " + line in dry.stderr
    # in place: nothing touched
    path = tmp_path / "ck.th"
    shutil.copyfile(EXAMPLE, path)
    ok(run_ckpt("edit", path, "--in-place", "-n", "optim.epochs=3"))
    assert path.read_bytes() == open(EXAMPLE, "rb").read()


# ------------------------------------------------------------ 5: messages

def test_mistyped_command_names_the_closest(ckpt):
    assert_usage_error(run_ckpt("infoo", EXAMPLE), "unknown command 'infoo'", "did you mean 'info'")
    assert_usage_error(run_ckpt("tensor", EXAMPLE), "did you mean 'tensors'")


def test_output_that_is_a_directory(ckpt, tmp_path):
    r = run_ckpt("edit", EXAMPLE, "-o", tmp_path, "optim.lr=0.5", "--force")
    assert_usage_error(r, "is a directory")
    assert "rename" not in r.stderr and "exists" not in r.stderr


def test_unwritable_folder_names_the_output_not_the_temporary(ckpt, tmp_path):
    out = tmp_path / "missing" / "out.th"
    r = run_ckpt("edit", EXAMPLE, "-o", out, "optim.lr=0.5")
    assert_usage_error(r, str(out))
    assert ".ckpt-tmp-" not in r.stderr
    assert "optim.lr" not in r.stderr  # no summary of changes that were not written


# ------------------------------------------------------------ 4: safetensors input, tolerance

@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The example's best state as safetensors, written by the safetensors package
    when it is installed (torch 2.x venv), else by ckpt."""
    folder = tmp_path_factory.mktemp("st")
    path = folder / "model.safetensors"
    model = load(EXAMPLE)["best_state"]["model"]
    try:
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in model.items()}, str(path))
    except ImportError:
        ok(run_ckpt("safetensors", EXAMPLE, "-o", path))
    return path, model


def test_info_tensors_stats_read_safetensors(ckpt, converted):
    path, model = converted
    info = ok(run_ckpt("info", path))
    assert "safetensors" in info and f"{len(model)} tensors" in info
    import json
    j = json.loads(ok(run_ckpt("info", path, "--json")))
    assert j["format"] == "safetensors" and j["file_size"] == os.path.getsize(path)
    rows = json.loads(ok(run_ckpt("tensors", path, "--json")))
    assert {r["name"]: r["shape"] for r in rows} == {k: list(v.shape) for k, v in model.items()}
    stats = json.loads(ok(run_ckpt("stats", path, "--json")))
    for row in stats:
        t = model[row["name"]].double()
        assert row["max"] == pytest.approx(t.max().item()) and row["norm"] == pytest.approx(t.norm().item())


def test_diff_checkpoint_against_its_safetensors(ckpt, converted, tmp_path):
    path, model = converted
    r = run_ckpt("diff", EXAMPLE, path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no differences" in r.stdout
    # a changed value is found
    changed = dict(model)
    name = next(iter(changed))
    changed[name] = changed[name].clone()
    changed[name].view(-1)[0] += 1
    other = tmp_path / "other.th"
    torch.save(changed, str(other))
    r = run_ckpt("diff", path, other)
    assert r.returncode == 1 and name in r.stdout


def test_diff_tolerance(ckpt, tmp_path):
    out = tmp_path / "bf16.th"
    ok(run_ckpt("edit", EXAMPLE, "-o", out, "--dtype", "bfloat16"))
    assert run_ckpt("diff", EXAMPLE, out).returncode == 1
    a, b = load(EXAMPLE)["best_state"]["model"], load(out)["best_state"]["model"]
    worst = max(((a[k].double() - b[k].double()).abs() - 1e-2 * b[k].double().abs()).max().item() for k in a)
    assert worst <= 0  # torch.allclose(a, b, rtol=1e-2, atol=0) for every tensor
    assert run_ckpt("diff", EXAMPLE, out, "--rtol", "1e-2").returncode == 0
    r = run_ckpt("diff", EXAMPLE, out, "--atol", "1e-6")
    assert r.returncode == 1 and "beyond the tolerance" in r.stdout
    assert_usage_error(run_ckpt("diff", EXAMPLE, out, "--atol", "-1"))


# ------------------------------------------------------------ 6: standard input and output

def test_dash_is_standard_input_and_output(ckpt, tmp_path):
    out = tmp_path / "piped.th"
    with open(EXAMPLE, "rb") as src, open(out, "wb") as dst:
        r = subprocess.run([ckpt, "edit", "-", "-o", "-", "optim.lr=0.25"], stdin=src, stdout=dst,
                           stderr=subprocess.PIPE, text=False)
    assert r.returncode == 0, r.stderr
    pkg = load(out)
    assert pkg["xp.cfg"].optim.lr == 0.25
    assert list(pkg["best_state"]["model"]) == list(load(EXAMPLE)["best_state"]["model"])
    assert not (tmp_path / "-").exists() and not os.path.exists("-")
    # a pipe on stdin, a process-substitution-like FIFO path
    with open(EXAMPLE, "rb") as src:
        r = subprocess.run([ckpt, "info", "-"], stdin=src, capture_output=True)
    assert r.returncode == 0 and b"audiocraft-training" in r.stdout
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", f"cat '{EXAMPLE}' > '{fifo}'"])
    r = run_ckpt("tensors", fifo)
    writer.wait()
    assert r.returncode == 0 and "emb.0.weight" in r.stdout


def test_safetensors_to_standard_output(ckpt, tmp_path):
    out = tmp_path / "m.safetensors"
    with open(out, "wb") as dst:
        r = subprocess.run([ckpt, "safetensors", EXAMPLE, "-o", "-"], stdout=dst, stderr=subprocess.PIPE)
    assert r.returncode == 0, r.stderr
    ok(run_ckpt("from-safetensors", out, "-o", tmp_path / "back.th"))
    assert run_ckpt("diff", EXAMPLE, out).returncode == 0
