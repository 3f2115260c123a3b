"""End-to-end tests of the mistakes an AudioCraft user made walking the README
from a fresh clone (session 7's ux walk): each message says what, where and
the fix, on one line, with exit 2; nothing is written by a refused command.
"""

import os

import pytest
import torch

from conftest import REPO_ROOT, run_ckpt
from test_foundation import assert_usage_error, ok

EXAMPLE = os.path.join(REPO_ROOT, "examples", "musicgen_tiny_training.th")


def load(path):
    return torch.load(str(path), map_location="cpu", weights_only=False)


# ------------------------------------------------ overrides as shells split them

@pytest.mark.parametrize("args,suggestion", [
    (["optim.lr", "=", "1e-5"], "'optim.lr=1e-5'"),
    (["optim.lr=", "1e-5"], "'optim.lr=1e-5'"),
    (["optim.lr", "=1e-5"], "'optim.lr=1e-5'"),
    (["optim.lr", "1e-5"], "'optim.lr=1e-5'"),
    (["optim.lr:1e-5"], "'optim.lr=1e-5'"),
    (["optim.lr: 1e-5"], "'optim.lr=1e-5'"),
    (["dataset.train.path=/my", "data/ft"], "'dataset.train.path=/my data/ft'"),
])
def test_a_split_or_yaml_style_override_suggests_key_equals_value(ckpt, tmp_path, args, suggestion):
    out = tmp_path / "out.th"
    assert_usage_error(run_ckpt("edit", EXAMPLE, "-o", out, *args), "did you mean " + suggestion)
    assert not out.exists()


def test_an_override_spelt_as_an_option_says_overrides_take_no_dashes(ckpt, tmp_path):
    out = tmp_path / "out.th"
    assert_usage_error(run_ckpt("edit", EXAMPLE, "-o", out, "--optim.lr=1e-5"),
                       "unknown option '--optim.lr'", "no dashes", "'optim.lr=1e-5'")
    assert not out.exists()


def test_quoted_overrides_with_spaces_lists_and_prefixes_apply(ckpt, tmp_path):
    out = tmp_path / "out.th"
    ok(run_ckpt("edit", EXAMPLE, "-o", out, "optim.lr=1e-5", "optim.adam.betas=[0.8, 0.9]",
                "++dataset.train.path=/my data/ft", "++dataset.note='hello world'", "~optim.ema"))
    cfg = load(out)["xp.cfg"]
    assert cfg.optim.lr == 1e-5
    assert list(cfg.optim.adam.betas) == [0.8, 0.9]
    assert cfg.dataset.train.path == "/my data/ft"
    assert cfg.dataset.note == "hello world"
    assert "ema" not in cfg.optim


# ------------------------------------------------ misspelt keys: the full key

@pytest.mark.parametrize("override,suggestion", [
    ("~optim.lrr", "'optim.lr'"),        # deletion: had no suggestion
    ("~optm.lr", "'optim.lr'"),
    ("optm.lr=1e-5", "'optim.lr'"),      # a missing parent: suggested 'optim' alone
])
def test_a_misspelt_config_key_suggests_the_full_key(ckpt, tmp_path, override, suggestion):
    out = tmp_path / "out.th"
    assert_usage_error(run_ckpt("edit", EXAMPLE, "-o", out, override), "not found", "did you mean " + suggestion)
    assert not out.exists()


@pytest.mark.parametrize("flag,glob,suggestion", [
    ("--drop", "conditon_provider.*", "'condition_provider.*'"),
    ("--drop", "conditon_provider*", "'condition_provider*'"),
    ("--drop", "transformer.layer.*", "'transformer.layers.*'"),
    ("--keep", "lnears.*", "'linears.*'"),
])
def test_a_misspelt_glob_suggests_the_closest_key_start(ckpt, tmp_path, flag, glob, suggestion):
    out = tmp_path / "out.th"
    assert_usage_error(run_ckpt("edit", EXAMPLE, "-o", out, flag, glob), "matches no key",
                       "did you mean " + suggestion)
    assert not out.exists()


# ------------------------------------------------ dry run without an output

def test_dry_run_without_output_counts_what_dash_o_would_write(ckpt, tmp_path):
    result = run_ckpt("edit", EXAMPLE, "-n", "optim.lr=1e-5", cwd=tmp_path)
    ok(result)
    assert "optim.lr: 1 -> 1e-05" in result.stderr
    assert "nothing written" in result.stdout
    assert os.listdir(tmp_path) == []
    # The size is what -o with the input's name writes (the name sets the record prefix).
    out = tmp_path / "musicgen_tiny_training.th"
    ok(run_ckpt("edit", EXAMPLE, "-o", out, "optim.lr=1e-5"))
    assert f"would have {out.stat().st_size:,} bytes" in result.stdout
    assert load(out)["xp.cfg"].optim.lr == 1e-5


def test_no_output_without_dry_run_is_still_refused(ckpt, tmp_path):
    assert_usage_error(run_ckpt("edit", EXAMPLE, "optim.lr=1e-5", cwd=tmp_path), "-o", "--in-place")
    assert os.listdir(tmp_path) == []


# ------------------------------------------------ the wrong kind of checkpoint

@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    path = tmp_path_factory.mktemp("exported") / "state_dict.bin"
    ok(run_ckpt("export", EXAMPLE, "-o", path))
    return path


def test_export_of_an_exported_file_names_it_and_points_at_wrap(ckpt, tmp_path, exported):
    out = tmp_path / "again.bin"
    assert_usage_error(run_ckpt("export", exported, "-o", out), str(exported), "already exported", "ckpt wrap")
    assert not out.exists()


def test_wrap_of_a_training_checkpoint_names_it_and_points_at_export(ckpt, tmp_path):
    out = tmp_path / "wrapped.th"
    assert_usage_error(run_ckpt("wrap", EXAMPLE, "-o", out), EXAMPLE, "training checkpoint", "ckpt export")
    assert not out.exists()


def test_wrap_of_a_plain_state_dict_names_it(ckpt, tmp_path):
    sd = tmp_path / "model.safetensors"
    ok(run_ckpt("safetensors", EXAMPLE, "-o", sd))
    out = tmp_path / "wrapped.th"
    assert_usage_error(run_ckpt("wrap", sd, "-o", out), str(sd), "exported AudioCraft checkpoint", "ckpt info")
    assert not out.exists()


# ------------------------------------------------ -o naming the input

def test_output_naming_the_input_points_at_in_place_and_force(ckpt, tmp_path):
    src = tmp_path / "in.th"
    src.write_bytes(open(EXAMPLE, "rb").read())
    before = src.read_bytes()
    assert_usage_error(run_ckpt("edit", "in.th", "-o", "./in.th", "optim.lr=1e-5", cwd=tmp_path),
                       "is the input", "--in-place", "--force")
    assert src.read_bytes() == before
    ok(run_ckpt("edit", "in.th", "-o", "./in.th", "optim.lr=1e-5", "--force", cwd=tmp_path))
    assert load(src)["xp.cfg"].optim.lr == 1e-5


# ------------------------------------------------ to-transformers of the shipped toy model

def refusal_edit(result, src):
    """The one-line refusal's 'ckpt edit SRC -o OUT k=v ...', as arguments after SRC -o OUT."""
    assert_usage_error(result)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    marker = f"ckpt edit {src} -o OUT "
    assert marker in lines[0], lines[0]
    return lines[0].split(marker, 1)[1].split(";")[0].split()


def test_to_transformers_of_a_config_that_does_not_fit_names_every_edit_at_once(ckpt, tmp_path):
    # The shipped example keeps the stock MusicGen config over toy weights:
    # one refusal names every size the weights contradict (it took three
    # round trips: dim, card, num_layers), and its one edit makes it convert.
    hf = tmp_path / "hf"
    result = run_ckpt("to-transformers", EXAMPLE, "-o", hf)
    assert_usage_error(result, "transformer_lm.dim = 1024, the weights' 16", "emb.0.weight is [33, 16]",
                       "transformer_lm.card = 2048, the weights' 32",
                       "transformer_lm.num_layers = 24, the weights' 2 (no transformer.layers.2)")
    assert refusal_edit(result, EXAMPLE) == ["transformer_lm.dim=16", "transformer_lm.card=32",
                                             "transformer_lm.num_layers=2"]
    assert not hf.exists()
    fixed = tmp_path / "fixed.th"
    ok(run_ckpt("edit", EXAMPLE, "-o", fixed, *refusal_edit(result, EXAMPLE)))
    ok(run_ckpt("to-transformers", fixed, "-o", hf))
    assert (hf / "config.json").exists()


@pytest.mark.parametrize("overrides,named", [
    # Every size at once, n_q with its delay pattern, hidden_scale as AudioCraft rounds it.
    (["transformer_lm.dim=48", "transformer_lm.num_heads=4", "transformer_lm.n_q=8",
      "codebooks_pattern.delay.delays=[0,1,2,3,4,5,6,7]", "transformer_lm.hidden_scale=2.5"],
     ["transformer_lm.dim=16", "transformer_lm.card=32", "transformer_lm.n_q=4",
      "codebooks_pattern.delay.delays=[0,1,2,3]", "transformer_lm.num_layers=2", "transformer_lm.hidden_scale=4"]),
    # More layers in xp.cfg's place than the weights have is the same refusal the other way.
    (["transformer_lm.dim=16", "transformer_lm.card=32", "transformer_lm.num_layers=1"],
     ["transformer_lm.num_layers=2"]),
])
def test_the_refusal_names_exactly_the_edit_that_makes_it_convert(ckpt, tmp_path, overrides, named):
    start = tmp_path / "start.th"
    ok(run_ckpt("edit", EXAMPLE, "-o", start, *overrides))
    hf = tmp_path / "hf"
    result = run_ckpt("to-transformers", start, "-o", hf)
    assert refusal_edit(result, start) == named
    assert not hf.exists()
    fixed = tmp_path / "fixed.th"
    ok(run_ckpt("edit", start, "-o", fixed, *named))
    ok(run_ckpt("to-transformers", fixed, "-o", hf))
    cfg = load(fixed)["xp.cfg"]
    assert (cfg.transformer_lm.dim, cfg.transformer_lm.card, cfg.transformer_lm.n_q,
            cfg.transformer_lm.num_layers) == (16, 32, 4, 2)


def test_a_head_count_the_width_rules_out_is_named_with_a_placeholder(ckpt, tmp_path):
    # The weights do not give the head count: the refusal says so and names it with the rest.
    start = tmp_path / "start.th"
    ok(run_ckpt("edit", EXAMPLE, "-o", start, "transformer_lm.dim=48", "transformer_lm.num_heads=24"))
    result = run_ckpt("to-transformers", start, "-o", tmp_path / "hf")
    assert_usage_error(result, "transformer_lm.num_heads = 24 does not divide the width 16",
                       "the weights do not give the head count")
    assert "transformer_lm.num_heads=H" in refusal_edit(result, start)
    fixed = tmp_path / "fixed.th"
    ok(run_ckpt("edit", start, "-o", fixed, *[o.replace("=H", "=2") for o in refusal_edit(result, start)]))
    ok(run_ckpt("to-transformers", fixed, "-o", tmp_path / "hf"))


def test_settings_transformers_cannot_express_are_refused_together(ckpt, tmp_path):
    start = tmp_path / "start.th"
    ok(run_ckpt("edit", EXAMPLE, "-o", start, "transformer_lm.norm=rms_norm", "transformer_lm.bias_ff=true",
                "+transformer_lm.max_period=100"))
    result = run_ckpt("to-transformers", start, "-o", tmp_path / "hf")
    assert_usage_error(result, "transformer_lm.norm = 'rms_norm'", "transformer_lm.bias_ff = true",
                       "transformer_lm.max_period = 100", "(3 settings)", "cannot express this model")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "hf").exists()


# ------------------------------------------------ a misspelt file name

@pytest.mark.parametrize("command", [["info"], ["cfg"], ["edit", "-o", "out.th", "optim.lr=1"]])
def test_a_misspelt_file_name_suggests_the_file_beside_it(ckpt, tmp_path, command):
    (tmp_path / "checkpoint_best.th").write_bytes(open(EXAMPLE, "rb").read())
    (tmp_path / "sub").mkdir()
    result = run_ckpt(command[0], "checkpoint_bset.th", *command[1:], cwd=tmp_path)
    assert_usage_error(result, "checkpoint_bset.th", "No such file", "did you mean 'checkpoint_best.th'?")
    result = run_ckpt(command[0], "sub/../checkpoint_best.pt", *command[1:], cwd=tmp_path)
    assert_usage_error(result, "did you mean 'sub/../checkpoint_best.th'?")
    # Nothing close, or no such folder: the message as it was.
    for name in ("zzz.th", "nodir/checkpoint_best.th"):
        result = run_ckpt(command[0], name, *command[1:], cwd=tmp_path)
        assert_usage_error(result, "No such file")
        assert "did you mean" not in result.stderr
    assert not (tmp_path / "out.th").exists()


# ------------------------------------------------ option values as users type them

@pytest.mark.parametrize("spelling,dtype", [("fp16", torch.float16), ("bf16", torch.bfloat16),
                                            ("fp32", torch.float32), ("torch.bfloat16", torch.bfloat16)])
def test_dtype_takes_the_usual_spellings(ckpt, tmp_path, spelling, dtype):
    out = tmp_path / "out.th"
    ok(run_ckpt("edit", EXAMPLE, "-o", out, "--dtype", spelling))
    sd = load(out)["best_state"]["model"]
    assert {t.dtype for t in sd.values()} == {dtype}
    ref = load(EXAMPLE)["best_state"]["model"]
    assert all(torch.equal(sd[k], ref[k].to(dtype)) for k in ref)


@pytest.mark.parametrize("args,words", [
    (["diff", EXAMPLE, EXAMPLE, "--rtol", "abc"], ["--rtol", "must be a number (e.g. 1e-3)"]),
    (["diff", EXAMPLE, EXAMPLE, "--atol", "-1"], ["--atol -1.0: must be a number >= 0 (finite; e.g. 1e-3)"]),
    (["diff", EXAMPLE, EXAMPLE, "--rtol", "inf"], ["--rtol inf: must be a number >= 0 (finite; e.g. 1e-3)"]),
    (["diff", EXAMPLE, EXAMPLE, "--rtol=nan"], ["--rtol nan: must be a number >= 0 (finite; e.g. 1e-3)"]),
    (["show", EXAMPLE, "emb.0.weight", "--head", "-1"], ["--head", "must be a whole number >= 0"]),
    (["cfg", EXAMPLE, "--path", "xp"], [EXAMPLE, "no object at 'xp'", "'xp.cfg'"]),
    (["edit", EXAMPLE, "-o", "out.th", "--dtype", "int8"], ["--dtype 'int8'", "float16"]),
])
def test_a_bad_option_value_says_what_is_expected_in_words(ckpt, tmp_path, args, words):
    result = run_ckpt(*args, cwd=tmp_path)
    assert_usage_error(result, *words)
    assert "1797693134862315" not in result.stderr and "9223372036854775807" not in result.stderr
    assert os.listdir(tmp_path) == []


# ------------------------------------------------ output folders

def test_output_into_a_missing_folder_says_how_to_make_it(ckpt, tmp_path):
    out = tmp_path / "runs" / "ft" / "init.th"
    assert_usage_error(run_ckpt("edit", EXAMPLE, "-o", out, "optim.lr=1e-5"),
                       f"folder {out.parent}", f"mkdir -p {out.parent}")
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_output_into_a_read_only_folder_says_to_write_elsewhere(ckpt, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        assert_usage_error(run_ckpt("edit", EXAMPLE, "-o", folder / "x.th", "optim.lr=1e-5"),
                           "Permission denied", "another folder")
        assert os.listdir(folder) == []
    finally:
        folder.chmod(0o755)


# ------------------------------------------------ a folder, or a file with no xp.cfg

def test_a_folder_where_a_file_is_expected_names_the_checkpoints_in_it(ckpt, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "notes.txt").write_text("x")
    (runs / "weights.pt").write_bytes(b"")
    assert_usage_error(run_ckpt("info", runs), "neither a DCP .metadata", f"({runs}/weights.pt)")
    (runs / "weights.pt").unlink()
    assert_usage_error(run_ckpt("edit", runs, "-o", tmp_path / "x.th", "optim.lr=1"),
                       f"{runs} is a folder", "holds none")
    (runs / "checkpoint_best.th").write_bytes(open(EXAMPLE, "rb").read())
    assert_usage_error(run_ckpt("edit", runs, "-o", tmp_path / "x.th", "optim.lr=1"),
                       f"{runs} is a folder", f"({runs}/checkpoint_best.th)")
    assert not (tmp_path / "x.th").exists()
    # verify opens files its own way; it said "open: Is a directory".
    assert_usage_error(run_ckpt("verify", runs), f"{runs} is a folder", f"({runs}/checkpoint_best.th)")


def test_config_commands_on_a_file_without_xp_cfg_name_it(ckpt, tmp_path):
    sd = tmp_path / "model.safetensors"
    ok(run_ckpt("safetensors", EXAMPLE, "-o", sd))
    for args in (["cfg", sd], ["cfg", sd, "optim.lr"], ["edit", sd, "-o", tmp_path / "x.th", "optim.lr=1"]):
        assert_usage_error(run_ckpt(*args), f"{sd} has no 'xp.cfg'", f"ckpt info {sd}")
    assert_usage_error(run_ckpt("export", sd, "-o", tmp_path / "x.bin"), str(sd),
                       "export needs an AudioCraft training checkpoint", f"ckpt info {sd}")
    assert not (tmp_path / "x.th").exists() and not (tmp_path / "x.bin").exists()


def test_safetensors_under_a_torch_name_is_refused(ckpt, tmp_path):
    # The mirror of a torch checkpoint under a .safetensors name (refused already):
    # `ckpt safetensors T -o out.th` wrote a file torch.load cannot read.
    for name in ("out.th", "model.PT", "pytorch_model.bin", "x.pth", "last.ckpt"):
        out = tmp_path / name
        assert_usage_error(run_ckpt("safetensors", EXAMPLE, "-o", out), "writes safetensors",
                           "torch.load cannot read it", ".safetensors")
        assert not out.exists()
    ok(run_ckpt("safetensors", EXAMPLE, "-o", tmp_path / "model.safetensors"))
    ok(run_ckpt("safetensors", EXAMPLE, "-o", tmp_path / "weights.st"))  # any other name is the user's call
    # A torch checkpoint under a .safetensors name stays refused the other way.
    assert_usage_error(run_ckpt("rewrite", EXAMPLE, "-o", tmp_path / "r.safetensors"), "writes a torch checkpoint")
