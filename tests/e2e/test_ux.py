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


def default_signal_dispositions():
    # ckpt keeps a signal its parent ignores ignored (nohup, a background job
    # of a script: SIGINT and SIGHUP may reach the test runner as SIG_IGN);
    # these tests are about what it does when they are not ignored.
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_DFL)


def interrupt_when_temporary_appears(args, folder, sig):
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            preexec_fn=default_signal_dispositions)
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
                                 "--allow-no-match"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                preexec_fn=default_signal_dispositions)
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


def test_edit_dtype_reads_a_safetensors_input(ckpt, converted, tmp_path):
    # The storages of a .safetensors input lie in that file (external
    # storages): the dtype transform must read them there.
    path, model = converted
    out = tmp_path / "half.th"
    ok(run_ckpt("edit", path, "-o", out, "--dtype", "float16"))
    back = load(out)
    assert set(back) == set(model)
    for k, v in model.items():
        if v.is_floating_point():
            assert back[k].dtype == torch.float16
            assert torch.equal(back[k], v.to(torch.float16)), k
        else:
            assert torch.equal(back[k], v), k


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


# ------------------------------------------------------------ 7: tables

def columns_of(text):
    """Display width as a terminal shows it (east-asian wide: 2, combining: 0)."""
    import unicodedata
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
               for ch in text)


@pytest.fixture(scope="module")
def odd_names(tmp_path_factory):
    sd = collections_ordered({
        "emb.0.weight": torch.ones(2, 3),
        "日本語.weight": torch.ones(4),
        "cafe\u0301.bias": torch.ones(1),
        "caf\u00e9.weight": torch.ones(1),
        "tab\tkey": torch.ones(1),
        "new\nline": torch.ones(1),
        **{f"layers.{i}.weight": torch.full((2,), float(i)) for i in range(12)},
    })
    path = tmp_path_factory.mktemp("odd") / "odd.th"
    torch.save({"best_state": {"model": sd}, "one": {"k": 1}}, str(path))
    return path


def collections_ordered(d):
    import collections
    return collections.OrderedDict(d)


def test_tensor_table_aligns_in_columns_and_escapes(ckpt, odd_names):
    out = ok(run_ckpt("tensors", odd_names))
    lines = out.splitlines()
    assert len(lines) == 1 + 18 + 1  # header, one line per tensor, total
    assert "tab\\tkey" in out and "new\\nline" in out
    starts = set()
    for line in lines[:-1]:
        dtype_at = max(line.find("  float32"), line.find("  dtype"))
        assert dtype_at > 0, line
        starts.add(columns_of(line[:dtype_at]))
    assert len(starts) == 1, starts


def test_columns_limits_the_table(ckpt, odd_names):
    import subprocess as sp
    env = dict(os.environ, COLUMNS="70")
    r = sp.run([ckpt, "tensors", str(odd_names)], capture_output=True, text=True, env=env)
    assert r.returncode == 0
    for line in r.stdout.splitlines()[:-1]:
        assert columns_of(line) <= 70, line
    assert "..." in r.stdout


def test_counts_are_singular_and_records_in_natural_order(ckpt, odd_names):
    r = ok(run_ckpt("tensors", odd_names, "--match", "emb.*"))
    assert "1 tensor," in r
    assert "one: dict (1 key)" in ok(run_ckpt("ls", odd_names, "--depth", "1"))
    info = ok(run_ckpt("info", odd_names))
    # the listed records: data/2 before data/10 (record names are storage keys)
    import json
    names = [r["name"].split("/", 1)[1] for r in json.loads(ok(run_ckpt("info", odd_names, "--json")))["records"]]
    listed = [line.split()[0].split("/", 1)[1] for line in info.split("records\n")[1].splitlines()
              if line.startswith("  ") and "/" in line]
    numbers = [int(n.split("/")[1]) for n in listed if n.startswith("data/")]
    assert numbers == sorted(numbers) and len(names) > 10


def test_depth_and_match_options(ckpt, odd_names):
    r = run_ckpt("ls", odd_names, "--depth", "-1")
    assert_usage_error(r, "--depth")
    assert "1797693" not in r.stderr
    out = ok(run_ckpt("tensors", odd_names, "--match", "emb.*", "--match", "layers.1*"))
    assert "emb.0.weight" in out and "layers.1.weight" in out and "layers.10.weight" in out
    assert "layers.2.weight" not in out
    assert "folder" in ok(run_ckpt("bundle", "--help"))


# ------------------------------------------------------------ tensors --group, show

def test_tensors_group_sums_by_prefix(ckpt, tmp_path):
    import json
    rows = json.loads(ok(run_ckpt("tensors", EXAMPLE, "--group", "1", "--json")))
    model = load(EXAMPLE)["best_state"]["model"]
    expected = {}
    for name, t in model.items():
        g = name.split(".")[0]
        e = expected.setdefault(g, [0, 0, 0])
        e[0] += 1
        e[1] += t.numel()
        e[2] += t.numel() * t.element_size()
    assert {r["group"]: [r["tensors"], r["parameters"], r["bytes"]] for r in rows} == expected
    text = ok(run_ckpt("tensors", EXAMPLE, "--group", "2"))
    assert "transformer.layers " in text and "groups" in text


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.int64, torch.bool,
                                   torch.uint8, torch.complex64])
def test_show_prints_values(ckpt, tmp_path, dtype):
    if dtype.is_complex:
        t = torch.complex(torch.arange(6, dtype=torch.float32), -torch.ones(6))
    elif dtype == torch.bool:
        t = torch.tensor([True, False, True])
    elif dtype.is_floating_point:
        t = (torch.arange(30, dtype=torch.float64) / 7).to(dtype).reshape(5, 6)
    else:
        t = torch.tensor([0, 3, 2**62 if dtype == torch.int64 else 200, 7], dtype=dtype)
    view = t.t() if t.dim() == 2 else t  # a strided view: row-major of the view
    path = tmp_path / "t.th"
    torch.save({"x": view, "other": torch.zeros(3)}, str(path))
    out = ok(run_ckpt("show", path, "x", "--head", "0"))
    head, *body = out.splitlines()
    assert head.startswith("x: ") and str(list(view.shape)) in head
    values = " ".join(body).replace("[", " ").replace("]", " ").replace(",", " ").split()  # 2-D: a matrix
    flat = view.reshape(-1)
    assert len(values) == flat.numel()
    for text, v in zip(values, flat.tolist()):
        if dtype.is_complex:
            assert complex(text.replace("(", "").replace(")", "")) == pytest.approx(v, rel=1e-6)
        elif dtype == torch.bool:
            assert text == str(v)
        elif dtype.is_floating_point:
            assert torch.tensor(float(text), dtype=torch.float64).to(dtype).item() == v
        else:
            assert int(text) == v
    short = ok(run_ckpt("show", path, "x", "--head", "2"))
    assert "more" in short
    assert_usage_error(run_ckpt("show", path, "nope"), "nope")


# ------------------------------------------------------------ completion: zsh, fish, config keys

def test_zsh_and_fish_completion_scripts(ckpt, tmp_path):
    for shell, check in (("zsh", ["zsh", "-n"]), ("fish", ["fish", "-n"])):
        script = tmp_path / f"ckpt.{shell}"
        script.write_text(ok(run_ckpt("completion", shell)))
        if shutil.which(check[0]) is None:
            pytest.skip(f"{check[0]} not installed (scripts/lib.sh installs it)")
        r = subprocess.run([*check, str(script)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        text = script.read_text()
        for word in ("show", "edit", "drop", "dry-run", "__config-keys"):
            assert word in text, (shell, word)
        assert "__config-keys'" not in text.split("__ckpt_config_keys")[0]  # not offered as a command


def fish_completer(ckpt, tmp_path):
    """complete(line): what fish offers for `line` with ckpt's fish script sourced."""
    if shutil.which("fish") is None:
        pytest.skip("fish not installed")
    script = tmp_path / "ckpt.fish"
    script.write_text(ok(run_ckpt("completion", "fish")))
    env = dict(os.environ, PATH=os.path.dirname(ckpt) + os.pathsep + os.environ["PATH"])

    def complete(line):
        r = subprocess.run(["fish", "--no-config", "-c", f"source {script}; complete -C'{line}'"],
                           capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 0, r.stderr
        return [c.split("\t")[0] for c in r.stdout.splitlines()]

    return complete


def test_fish_completes_commands_options_and_config_keys(ckpt, tmp_path):
    complete = fish_completer(ckpt, tmp_path)

    assert complete("ckpt sho") == ["show"]
    assert "--dry-run" in complete("ckpt edit x.th --dr")
    assert complete(f"ckpt edit {EXAMPLE} optim.l") == ["optim.lr="]
    assert complete(f"ckpt edit {EXAMPLE} ++optim.ep") == ["++optim.epochs="]


def test_fish_completes_values_from_the_file(ckpt, tmp_path):
    """Tensor names, state paths, config keys and --dialect values, as bash does."""
    complete = fish_completer(ckpt, tmp_path)

    prefix = "condition_provider.conditioners.description.output_proj."
    assert complete(f"ckpt show {EXAMPLE} condition_pro") == [prefix + "bias", prefix + "weight"]
    assert complete(f"ckpt edit {EXAMPLE} -o x.th --drop condition_pro") == [prefix + "bias", prefix + "weight"]
    assert complete(f"ckpt tensors {EXAMPLE} --state best") == ["best_state/model"]
    assert complete(f"ckpt ls {EXAMPLE} best_st") == ["best_state/model"]
    assert "optim.lr" in complete(f"ckpt cfg {EXAMPLE} optim.")
    assert complete(f"ckpt rewrite {EXAMPLE} --dialect ") == ["1.6", "2.1", "2.7"]


def test_zsh_script_completes_values_from_the_file(ckpt):
    """zsh's completion system needs a terminal to drive; the script's specs are checked instead
    (and `zsh -n` parses it in test_zsh_and_fish_completion_scripts)."""
    text = ok(run_ckpt("completion", "zsh"))
    for spec in ("'2:tensor:_ckpt_names tensors'", "'2:path:_ckpt_names states'", "'2:key:_ckpt_cfg_keys'",
                 ":dialect:(1.6 2.1 2.7)'", ":state:_ckpt_names states", ":drop:_ckpt_names tensors",
                 ":match:_ckpt_names tensors"):
        assert spec in text, spec
    assert "ckpt __names $REPLY $1" in text


def test_bash_completes_config_keys_after_edit_file(ckpt):
    script = ok(run_ckpt("completion", "bash"))
    env = dict(os.environ, PATH=os.path.dirname(ckpt) + os.pathsep + os.environ["PATH"])
    program = (f"source /dev/stdin <<'CKPT_EOF'\n{script}\nCKPT_EOF\n"
               f"COMP_WORDS=(ckpt edit '{EXAMPLE}' optim.l); COMP_CWORD=3; _ckpt; echo \"${{COMPREPLY[@]}}\"; "
               f"COMP_WORDS=(ckpt edit '{EXAMPLE}' '~optim.ep'); _ckpt; echo \"${{COMPREPLY[@]}}\"")
    r = subprocess.run(["bash", "-c", program], capture_output=True, text=True, env=env, timeout=60)
    assert r.stdout.splitlines() == ["optim.lr=", "~optim.epochs"], r.stdout + r.stderr
