"""End-to-end tests of issue 24: no silently wrong outputs, errors that point
at the fix, fine-tuning that starts rather than resumes, output as people
expect it. Each test fails on the binary before the fix.

Outputs are checked by loading them with the running torch.
"""

import os
import re
import shutil

import pytest
import torch

from conftest import REPO_ROOT, run_ckpt
from test_foundation import assert_usage_error, ok

EXAMPLE = os.path.join(REPO_ROOT, "examples", "musicgen_tiny_training.th")
TRAINING_STATE = ("optimizer", "lr_scheduler", "ema", "history")


def load(path):
    return torch.load(str(path), map_location="cpu", weights_only=False)


def safetensors_of_example(tmp_path):
    st = tmp_path / "model.safetensors"
    ok(run_ckpt("safetensors", EXAMPLE, "-o", st))
    return st


# ------------------------------------------------ silently wrong: formats

@pytest.mark.parametrize("command", [
    ["edit", "{st}", "-o", "{out}", "--dtype", "float16"],
    ["edit", "{st}", "-o", "{out}", "--drop", "emb.0.*"],
    ["rewrite", "{st}", "-o", "{out}"],
    ["edit", "{example}", "-o", "{out}", "optim.lr=1e-5"],
    ["export", "{example}", "-o", "{out}"],
])
def test_a_torch_checkpoint_is_never_written_under_a_safetensors_name(ckpt, tmp_path, command):
    st = safetensors_of_example(tmp_path)
    out = tmp_path / "m2.safetensors"
    args = [a.format(st=st, out=out, example=EXAMPLE) for a in command]
    assert_usage_error(run_ckpt(*args), "m2.th", "ckpt safetensors")
    assert not out.exists()


def test_a_dry_run_refuses_a_safetensors_name_too(ckpt, tmp_path):
    assert_usage_error(run_ckpt("edit", EXAMPLE, "-o", tmp_path / "x.safetensors", "-n", "optim.lr=1"), ".th")


# ------------------------------------------------ silently wrong: --rename

def test_rename_takes_python_group_references(ckpt, tmp_path):
    out = tmp_path / "out.th"
    ok(run_ckpt("edit", EXAMPLE, "-o", out, "--rename", r"^emb\.(\d+)\.=embedding.\1.",
                "--rename", r"^(?P<head>linears)\.=\g<head>_out."))
    names = list(load(out)["best_state"]["model"])
    assert "embedding.0.weight" in names and not [n for n in names if "\\" in n or "$" in n]
    assert [n for n in names if n.startswith("linears_out.")]


def test_rename_refuses_dollar_groups_with_the_python_spelling(ckpt, tmp_path):
    r = run_ckpt("edit", EXAMPLE, "-o", tmp_path / "out.th", "--rename", r"^emb\.(\d+)\.=embedding.$1.")
    assert_usage_error(r, "re.sub", r"\1")
    assert not (tmp_path / "out.th").exists()


def test_rename_to_a_group_the_regex_lacks_is_an_error(ckpt, tmp_path):
    r = run_ckpt("edit", EXAMPLE, "-o", tmp_path / "out.th", "--rename", r"^emb\.(\d+)\.=embedding.\2.")
    assert_usage_error(r, "invalid group reference 2")


# ------------------------------------------------ silently wrong: damage and missing files

def test_bundle_refuses_a_compression_file_that_does_not_exist(ckpt, tmp_path):
    r = run_ckpt("bundle", EXAMPLE, "-o", tmp_path / "b", "--compression", tmp_path / "nonexistent.th")
    assert_usage_error(r, "no such file", "facebook/encodec_32khz")
    assert not (tmp_path / "b" / "compression_state_dict.bin").exists()


def test_a_truncated_zip_says_truncated(ckpt, tmp_path):
    cut = tmp_path / "cut.th"
    data = open(EXAMPLE, "rb").read()
    cut.write_bytes(data[: len(data) // 2])
    r = run_ckpt("info", cut)
    assert_usage_error(r, "truncated", str(len(data) // 2), "interrupted download or copy?")


def test_a_truncated_safetensors_says_truncated_with_both_sizes(ckpt, tmp_path):
    st = safetensors_of_example(tmp_path)
    data = st.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[:-100])
    assert_usage_error(run_ckpt("info", cut), "truncated", str(len(data) - 100), str(len(data)),
                       "interrupted download or copy?")


# ------------------------------------------------ fine-tuning that starts

def test_for_finetune_removes_what_a_resumed_run_restores(ckpt, tmp_path):
    out = tmp_path / "init.th"
    r = run_ckpt("edit", EXAMPLE, "-o", out, "--for-finetune", "optim.lr=1e-5")
    ok(r)
    assert "epoch 1" in r.stderr
    before, after = load(EXAMPLE), load(out)
    for key in TRAINING_STATE:
        assert key in before and key not in after, key
    assert list(after) == [k for k in before if k not in TRAINING_STATE]
    for name, t in before["best_state"]["model"].items():
        assert torch.equal(after["best_state"]["model"][name], t)
    assert after["xp.cfg"].optim.lr == 1e-5


def test_info_says_when_a_file_still_carries_training_state(ckpt, tmp_path):
    out = tmp_path / "init.th"
    text = ok(run_ckpt("info", EXAMPLE))
    assert "history (4 epochs)" in text and "--for-finetune" in text and "lr_scheduler" in text
    ok(run_ckpt("edit", EXAMPLE, "-o", out, "--for-finetune"))
    assert "--for-finetune" not in ok(run_ckpt("info", out))


def test_for_finetune_needs_a_training_checkpoint(ckpt, tmp_path):
    exported = tmp_path / "state_dict.bin"
    ok(run_ckpt("export", EXAMPLE, "-o", exported))
    assert_usage_error(run_ckpt("edit", exported, "-o", tmp_path / "x.th", "--for-finetune"), "training checkpoint")


# ------------------------------------------------ errors that point at the fix

@pytest.mark.parametrize("args,words", [
    (["edit", EXAMPLE, "-o", "{out}", "optim.lrr=1e-5"], ["did you mean 'optim.lr'?", "+optim.lrr"]),
    (["show", EXAMPLE, "emb.0.weigth"], ["did you mean 'emb.0.weight'?"]),
    (["tensors", EXAMPLE, "--state", "best_state/modle"], ["did you mean 'best_state/model'?"]),
    (["ls", EXAMPLE, "bset_state"], ["did you mean 'best_state'?"]),
    (["edit", EXAMPLE, "-o", "{out}", "--dropp", "emb.*"], ["'--dropp'", "did you mean '--drop'?", "ckpt help edit"]),
    (["help", "edti"], ["did you mean 'edit'?"]),
    (["edit", EXAMPLE, "-o", "{out}", "--drop", "condition_provider"], ["did you mean 'condition_provider.*'?"]),
])
def test_errors_suggest_the_fix(ckpt, tmp_path, args, words):
    r = run_ckpt(*[a.format(out=tmp_path / "out.th") if isinstance(a, str) else a for a in args])
    assert_usage_error(r, *words)
    assert not (tmp_path / "out.th").exists()


@pytest.mark.parametrize("command", ["tensors", "stats"])
def test_match_that_selects_nothing_says_so(ckpt, command):
    r = run_ckpt(command, EXAMPLE, "--match", "nothing_like_this*")
    assert r.returncode == 0
    assert "--match 'nothing_like_this*' selects no tensor" in r.stderr


def test_ckpt_alone_prints_the_usage_and_the_version(ckpt):
    r = run_ckpt()
    assert r.returncode == 2
    assert "edit" in r.stdout and "ckpt 0.1.0" in r.stdout
    v = run_ckpt("-V")
    assert v.returncode == 0 and v.stdout.strip() == "ckpt 0.1.0"


def test_a_dry_run_never_refuses_for_an_existing_output(ckpt, tmp_path):
    out = tmp_path / "init.th"
    out.write_bytes(b"old")
    r = run_ckpt("edit", EXAMPLE, "-o", out, "-n", "optim.lr=1e-5")
    assert "needs --force" in ok(r)
    assert out.read_bytes() == b"old"


# ------------------------------------------------ output people expect

def test_floats_print_as_python_prints_them(ckpt):
    text = ok(run_ckpt("ls", EXAMPLE, "history/0/valid"))
    assert "ppl: 160.0" in text and "ce: 5.1\n" in text


def test_byte_counts_have_one_format(ckpt, tmp_path):
    work = tmp_path / "w.th"
    shutil.copy(EXAMPLE, work)
    r = run_ckpt("edit", work, "--in-place", "optim.lr=1e-5")
    ok(r)
    assert "bytes appended" in r.stderr and not re.search(r"\d{4,} bytes", r.stderr), r.stderr
    r = run_ckpt("compact", work)
    ok(r)
    assert not re.search(r"\d{4,}", r.stderr), r.stderr


# ------------------------------------------------ damaged input

def damaged_copy(tmp_path, source=EXAMPLE, name="damaged.th", largest=False):
    """source (the example) with one byte of a tensor's data record flipped (CRC-32 no longer
    matches): the first record, or the largest (a weight every converter copies)."""
    import zipfile
    bad = tmp_path / name
    data = bytearray(open(source, "rb").read())
    with zipfile.ZipFile(source) as z:
        records = [i for i in z.infolist() if "/data/" in i.filename and i.file_size > 0]
    info = max(records, key=lambda i: i.file_size) if largest else records[0]
    name_len = int.from_bytes(data[info.header_offset + 26:info.header_offset + 28], "little")
    extra_len = int.from_bytes(data[info.header_offset + 28:info.header_offset + 30], "little")
    data[info.header_offset + 30 + name_len + extra_len] ^= 0xFF
    bad.write_bytes(bytes(data))
    return bad


@pytest.mark.parametrize("command", [
    ["rewrite", "{bad}", "-o", "{out}.th"],
    ["edit", "{bad}", "-o", "{out}.th", "optim.lr=1e-5"],
    ["edit", "{bad}", "-o", "{out}.th", "-n", "optim.lr=1e-5"],
    ["safetensors", "{bad}", "-o", "{out}.safetensors"],
])
def test_writing_from_a_damaged_file_refuses_with_the_way_on(ckpt, tmp_path, command):
    bad = damaged_copy(tmp_path)
    args = [a.format(bad=bad, out=tmp_path / "out") for a in command]
    assert_usage_error(run_ckpt(*args), "fails its CRC-32 check", "ckpt verify", "--ignore-crc")
    assert not [n for n in os.listdir(tmp_path) if n.startswith("out")]
    ok(run_ckpt(*args, "--ignore-crc"))


@pytest.fixture(scope="module")
def musicgen_lm(tmp_path_factory):
    """A tiny AudioCraft MusicGen LM (make_fixtures.py --musicgen-lm mono) and, made from it by
    to-transformers + from-safetensors, a transformers folder holding pytorch_model.bin (a zip)."""
    import subprocess
    import sys
    from conftest import MAKE_FIXTURES
    work = tmp_path_factory.mktemp("lm")
    lm = work / "lm.bin"
    subprocess.run([sys.executable, MAKE_FIXTURES, "--musicgen-lm", "mono", str(lm)], check=True)
    hf = work / "hf"
    ok(run_ckpt("to-transformers", lm, "-o", hf))
    ok(run_ckpt("from-safetensors", hf / "model.safetensors", "-o", hf / "pytorch_model.bin"))
    os.remove(hf / "model.safetensors")
    return lm, hf


@pytest.mark.parametrize("command", [
    ["to-transformers", "{lm}", "-o", "{out}"],
    ["to-transformers", "{lm}", "-o", "{out}", "--max-shard-size", "10KB"],
    ["to-transformers", "{lm}", "-o", "{out}", "--dtype", "float16"],
    ["from-transformers", "{hf}", "-o", "{out}"],
])
def test_transformers_converters_refuse_a_damaged_source_with_the_way_on(ckpt, tmp_path, musicgen_lm, command):
    """The converters copy tensor bytes by range from the source's zip records: as every other
    writer, they check those records' CRC-32s (while the output is fsync'd), write nothing on a
    mismatch, and write the bytes as read with --ignore-crc."""
    lm, hf = musicgen_lm
    bad_lm = damaged_copy(tmp_path, lm, "lm.bin", largest=True)
    bad_hf = tmp_path / "hf"
    shutil.copytree(hf, bad_hf)
    damaged_copy(tmp_path, hf / "pytorch_model.bin", "hf/pytorch_model.bin", largest=True)
    source = bad_lm if command[0] == "to-transformers" else bad_hf / "pytorch_model.bin"
    out = tmp_path / "out"
    args = [a.format(lm=bad_lm, hf=bad_hf, out=out) for a in command]
    before = sorted(os.listdir(tmp_path))
    assert_usage_error(run_ckpt(*args), f"{source}: record", "fails its CRC-32 check", f"ckpt verify {source}",
                       "--ignore-crc")
    assert sorted(os.listdir(tmp_path)) == before  # no output folder, no temporary one
    ok(run_ckpt(*args, "--ignore-crc"))
    assert out.is_dir()
    # The sources undamaged: written without complaint.
    clean = [a.format(lm=lm, hf=hf, out=tmp_path / "clean") for a in command]
    ok(run_ckpt(*clean))


@pytest.mark.parametrize("command", [
    ["compact", "{bad}"],
    ["edit", "{bad}", "--in-place", "--compact", "optim.lr=1e-5"],
    ["edit", "{bad}", "--in-place", "--dtype", "float32", "optim.lr=1e-5"],
])
def test_rewriting_a_damaged_file_in_place_refuses_with_the_way_on(ckpt, tmp_path, command):
    """A full rewrite in place copies every storage: a damaged one is refused, the file left as it was."""
    bad = damaged_copy(tmp_path)
    before = bad.read_bytes()
    args = [a.format(bad=bad) for a in command]
    assert_usage_error(run_ckpt(*args), "fails its CRC-32 check", "ckpt verify", "--ignore-crc")
    assert bad.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["damaged.th"]
    ok(run_ckpt(*args, "--ignore-crc"))  # then done as asked, the damaged bytes as read


def test_bundle_of_a_damaged_file_refuses_with_the_way_on(ckpt, tmp_path):
    bad = damaged_copy(tmp_path)
    out = tmp_path / "bundle"
    assert_usage_error(run_ckpt("bundle", bad, "-o", out), "fails its CRC-32 check", "ckpt verify", "--ignore-crc")
    assert not out.exists() or not os.listdir(out)
    ok(run_ckpt("bundle", bad, "-o", out, "--ignore-crc"))
    assert sorted(os.listdir(out)) == ["compression_state_dict.bin", "state_dict.bin"]


def test_info_takes_several_files(ckpt, tmp_path):
    exported = tmp_path / "state_dict.bin"
    ok(run_ckpt("export", EXAMPLE, "-o", exported))
    text = ok(run_ckpt("info", EXAMPLE, exported))
    assert text.count("\nlayout ") + text.startswith("layout ") == 2 or text.count("layout      ") == 2
    import json
    docs = json.loads(ok(run_ckpt("info", EXAMPLE, exported, "--json")))
    assert isinstance(docs, list) and len(docs) == 2
    r = run_ckpt("info", EXAMPLE, tmp_path / "missing.th", exported)
    assert r.returncode == 2 and r.stdout.count("layout      ") == 2 and "missing.th" in r.stderr


def test_tensors_tree_counts_parameters_per_module(ckpt):
    sd = load(EXAMPLE)["best_state"]["model"]
    text = ok(run_ckpt("tensors", EXAMPLE, "--tree"))
    emb = sum(t.numel() for n, t in sd.items() if n.startswith("emb."))
    line = next(l for l in text.splitlines() if l.split()[:1] == ["emb"])
    assert f"{emb:,}" in line
    assert f"{sum(t.numel() for t in sd.values()):,} parameters" in text
    import json
    tree = json.loads(ok(run_ckpt("tensors", EXAMPLE, "--tree", "--json")))
    assert tree["parameters"] == sum(t.numel() for t in sd.values())
    assert [c["name"] for c in tree["children"]][:1] == [next(iter(sd)).split(".")[0]]


def test_cfg_json_gives_typed_values(ckpt):
    import json
    cfg = load(EXAMPLE)["xp.cfg"]
    doc = json.loads(ok(run_ckpt("cfg", EXAMPLE, "--json")))
    assert doc["optim"]["max_norm"] == cfg.optim.max_norm and isinstance(doc["optim"]["max_norm"], float)
    assert doc["optim"]["lr"] == cfg.optim.lr and isinstance(doc["optim"]["lr"], type(cfg.optim.lr))
    assert doc["optim"]["adam"]["betas"] == list(cfg.optim.adam.betas)
    assert json.loads(ok(run_ckpt("cfg", EXAMPLE, "optim", "--json")))["epochs"] == cfg.optim.epochs
    assert_usage_error(run_ckpt("cfg", EXAMPLE, "optim.lrr"), "did you mean 'optim.lr'?")


def test_ls_json_gives_typed_values(ckpt):
    import json
    tree = json.loads(ok(run_ckpt("ls", EXAMPLE, "history/0/valid", "--json")))
    values = {c["key"]: c["value"] for c in tree["children"]}
    assert values == load(EXAMPLE)["history"][0]["valid"]
    assert isinstance(values["ppl"], float)


def run_on_terminal(args, env_extra=None):
    """Runs ckpt with stdout and stderr on a pseudo-terminal; returns (exit code, output)."""
    import pty
    import subprocess
    from conftest import ckpt_bin
    master, slave = pty.openpty()
    env = dict(os.environ, TERM="xterm")
    env.pop("NO_COLOR", None)
    env.update(env_extra or {})
    p = subprocess.Popen([ckpt_bin(), *map(str, args)], stdout=slave, stderr=slave, env=env)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return p.wait(), out.decode(errors="replace")


def test_colour_on_a_terminal_only(ckpt, tmp_path):
    edited = tmp_path / "e.th"
    ok(run_ckpt("edit", EXAMPLE, "-o", edited, "optim.lr=0.5", "--drop", "emb.0.*"))
    code, out = run_on_terminal(["diff", EXAMPLE, edited])
    assert code == 1 and "\x1b[" in out and "xp.cfg:" in out
    code, out = run_on_terminal(["diff", EXAMPLE, edited], {"NO_COLOR": "1"})
    assert code == 1 and "\x1b[" not in out
    assert "\x1b[" not in ok_or_1(run_ckpt("diff", EXAMPLE, edited))  # a pipe
    code, out = run_on_terminal(["info", tmp_path / "missing.th"])
    assert code == 2 and "\x1b[" in out and "ckpt: error:" in out


def ok_or_1(r):
    assert r.returncode in (0, 1), r.stderr
    return r.stdout + r.stderr


def test_show_prints_a_matrix_as_torch_does(ckpt, tmp_path):
    path = tmp_path / "m.th"
    m = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 2
    torch.save({"m": m, "wide": torch.arange(40, dtype=torch.int64).reshape(2, 20)}, str(path))
    body = ok(run_ckpt("show", path, "m", "--head", "0")).splitlines()[1:]
    assert body == ["[[0.0, 0.5, 1.0, 1.5],", " [2.0, 2.5, 3.0, 3.5],", " [4.0, 4.5, 5.0, 5.5]]"] or \
        [l.replace(" ", "") for l in body] == ["[[0,0.5,1,1.5],", "[2,2.5,3,3.5],", "[4,4.5,5,5.5]]"]
    wide = ok(run_ckpt("show", path, "wide", "--head", "0")).splitlines()[1:]
    assert wide == ["[[ 0,  1,  2, ..., 17, 18, 19],", " [20, 21, 22, ..., 37, 38, 39]]"]
    short = ok(run_ckpt("show", path, "m", "--head", "4")).splitlines()[1:]
    assert short[0].startswith("[[") and "2 more rows" in short[-1]


def bash_complete(ckpt, words, cword):
    import subprocess
    script = ok(run_ckpt("completion", "bash"))
    env = dict(os.environ, PATH=os.path.dirname(ckpt) + os.pathsep + os.environ["PATH"])
    quoted = " ".join("'" + w + "'" for w in words)
    program = (f"source /dev/stdin <<'CKPT_EOF'\n{script}\nCKPT_EOF\n"
               f"COMP_WORDS=({quoted}); COMP_CWORD={cword}; _ckpt; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
    r = subprocess.run(["bash", "-c", program], capture_output=True, text=True, env=env, timeout=60)
    return [l for l in r.stdout.splitlines() if l]


def test_bash_completes_names_from_the_file(ckpt):
    assert bash_complete(ckpt, ["ckpt", "show", EXAMPLE, "emb.0.w"], 3) == ["emb.0.weight"]
    assert bash_complete(ckpt, ["ckpt", "tensors", EXAMPLE, "--state", "best_state/m"], 4) == ["best_state/model"]
    assert bash_complete(ckpt, ["ckpt", "cfg", EXAMPLE, "optim.l"], 3) == ["optim.lr"]
    assert bash_complete(ckpt, ["ckpt", "edit", EXAMPLE, "--drop", "emb.1.w"], 4) == ["emb.1.weight"]
    assert bash_complete(ckpt, ["ckpt", "rewrite", EXAMPLE, "--dialect", "2."], 4) == ["2.1", "2.7"]
