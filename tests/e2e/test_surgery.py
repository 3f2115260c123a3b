"""End-to-end tests of ckpt's editing commands: cfg, edit, export, wrap, bundle,
sanitize, scan.

The reference for each is the Python an AudioCraft user writes today (the seed
document's torch.load / edit / torch.save pattern, audiocraft.utils.export):
ckpt's output must load to the same objects, and be laid out as torch.save
would write those objects.
"""

import collections
import os
import pickle
import re

import pytest
import torch
from omegaconf import OmegaConf, open_dict

from conftest import (
    REPO_ROOT, assert_same_objects, FIXTURE_ENTRIES, pickle_of, run_ckpt, weights_only_problems,
    write_torch_zip,
)
from ckpt_testlib import assert_like_torch_save
from test_foundation import assert_usage_error, ok

VERSION = "1.4.0a2"
SHARED_CORPUS = os.path.join(REPO_ROOT, "..", "shared", "corpora", "picklescan")


def entry_layout(name):
    return next(e["layout"] for e in FIXTURE_ENTRIES if e["name"] == name)


def best_state_path(pkg):
    return ("fsdp_best_state", "model") if pkg.get("fsdp_best_state") else ("best_state", "model")


def best_state_of(pkg):
    outer, inner = best_state_path(pkg)
    return pkg[outer][inner]


# ---------------------------------------------------------------- cfg

@pytest.mark.parametrize("name", ["training", "training_nostruct", "training_fsdp"])
def test_cfg_prints_yaml(ckpt, fixture_path, name):
    src = fixture_path(name)
    cfg = torch.load(src)["xp.cfg"]
    assert ok(run_ckpt("cfg", src)) == OmegaConf.to_yaml(cfg)


def test_cfg_of_exported_prints_its_yaml(ckpt, fixture_path):
    src = fixture_path("exported")
    assert ok(run_ckpt("cfg", src)) == torch.load(src)["xp.cfg"]


def test_cfg_subtree(ckpt, fixture_path):
    src = fixture_path("training")
    cfg = torch.load(src)["xp.cfg"]
    assert ok(run_ckpt("cfg", src, "optim")) == OmegaConf.to_yaml(cfg.optim)


def test_cfg_missing_key(ckpt, fixture_path):
    assert_usage_error(run_ckpt("cfg", fixture_path("training"), "no.such.key"))


def test_cfg_without_config(ckpt, fixture_path):
    assert_usage_error(run_ckpt("cfg", fixture_path("dtypes")))


# ---------------------------------------------------------------- edit: config overrides

def test_edit_overrides_like_the_seed(ckpt, fixture_path, tmp_path):
    """The seed's fine-tuning preparation, as one ckpt edit."""
    src = fixture_path("training")
    out = tmp_path / "checkpoint_init.th"
    ok(run_ckpt("edit", src, "-o", out, "optim.lr=1e-5", "optim.epochs=50",
                "dataset.train.num_samples=1000",
                "--drop", "condition_provider.conditioners.description.*"))
    pkg = torch.load(src)
    cfg = pkg["xp.cfg"]
    cfg.optim.lr = 1e-5
    cfg.optim.epochs = 50
    cfg.dataset.train.num_samples = 1000
    state = best_state_of(pkg)
    for key in [k for k in state if k.startswith("condition_provider.conditioners.description.")]:
        del state[key]
    assert_like_torch_save(out, pkg, tmp_path)


def test_edit_hydra_add_and_delete(ckpt, fixture_path, tmp_path):
    src = fixture_path("training")
    out = tmp_path / "checkpoint.th"
    ok(run_ckpt("edit", src, "-o", out, "+optim.new_key=hello", "++seed=7",
                "~logging.log_wandb", "label=finetune"))
    pkg = torch.load(src)
    cfg = pkg["xp.cfg"]
    with open_dict(cfg):
        cfg.optim.new_key = "hello"
        cfg.seed = 7
        del cfg.logging["log_wandb"]
        cfg.label = "finetune"
    assert_like_torch_save(out, pkg, tmp_path)
    assert torch.load(out)["xp.cfg"]._get_flag("struct") is True


def test_edit_override_errors(ckpt, fixture_path, tmp_path):
    src = fixture_path("training")
    out = tmp_path / "x.th"
    assert_usage_error(run_ckpt("edit", src, "-o", out, "optim.no_such_key=1"))
    assert_usage_error(run_ckpt("edit", src, "-o", out, "+optim.lr=1"))  # exists already
    assert_usage_error(run_ckpt("edit", src, "-o", out, "this is not an override"))
    assert not out.exists()


def test_edit_exported_yaml_config(ckpt, fixture_path, tmp_path):
    src = fixture_path("exported")
    out = tmp_path / "state_dict.bin"
    ok(run_ckpt("edit", src, "-o", out, "optim.lr=0.5"))
    pkg = torch.load(src)
    cfg = OmegaConf.create(pkg["xp.cfg"])
    cfg.optim.lr = 0.5
    got = torch.load(out)
    assert isinstance(got["xp.cfg"], str)
    assert got["xp.cfg"] == OmegaConf.to_yaml(cfg)
    assert_same_objects(got["best_state"], pkg["best_state"])


# ---------------------------------------------------------------- edit: state dict

def test_edit_keep(ckpt, fixture_path, tmp_path):
    src = fixture_path("training")
    out = tmp_path / "checkpoint.th"
    ok(run_ckpt("edit", src, "-o", out, "--keep", "emb.*", "--keep", "linears.*"))
    pkg = torch.load(src)
    state = best_state_of(pkg)
    for key in [k for k in state if not (k.startswith("emb.") or k.startswith("linears."))]:
        del state[key]
    assert_like_torch_save(out, pkg, tmp_path)


def test_edit_rename(ckpt, fixture_path, tmp_path):
    src = fixture_path("exported")
    out = tmp_path / "state_dict.bin"
    ok(run_ckpt("edit", src, "-o", out, "--rename", r"^transformer\.layers\.=decoder.layers."))
    pkg = torch.load(src)
    pkg["best_state"] = {re.sub(r"^transformer\.layers\.", "decoder.layers.", k): v
                         for k, v in pkg["best_state"].items()}
    assert_like_torch_save(out, pkg, tmp_path)


def test_edit_state_and_dtype(ckpt, fixture_path, tmp_path):
    src = fixture_path("training")
    out = tmp_path / "checkpoint.th"
    ok(run_ckpt("edit", src, "-o", out, "--state", "model", "--dtype", "bfloat16"))
    pkg = torch.load(src)
    model = pkg["model"]
    for key in model:
        if model[key].is_floating_point():
            model[key] = model[key].to(torch.bfloat16)
    assert_like_torch_save(out, pkg, tmp_path)


def test_edit_fsdp_acts_on_fsdp_state(ckpt, fixture_path, tmp_path):
    src = fixture_path("training_fsdp")
    out = tmp_path / "checkpoint.th"
    ok(run_ckpt("edit", src, "-o", out, "--drop", "linears.*"))
    pkg = torch.load(src)
    state = pkg["fsdp_best_state"]["model"]
    for key in [k for k in state if k.startswith("linears.")]:
        del state[key]
    assert_like_torch_save(out, pkg, tmp_path)


def test_edit_strict_unmatched_glob(ckpt, fixture_path, tmp_path):
    out = tmp_path / "x.th"
    assert_usage_error(run_ckpt("edit", fixture_path("training"), "-o", out,
                                "--drop", "no.such.tensor*", "--strict"))
    assert not out.exists()


def test_edit_in_place(ckpt, fixture_path, tmp_path):
    """--in-place appends the new metadata (see test_in_place.py), so only the
    objects are compared with torch's, not the layout."""
    work = tmp_path / "checkpoint.th"
    work.write_bytes(fixture_path("training").read_bytes())
    ok(run_ckpt("edit", work, "--in-place", "optim.lr=0.25"))
    pkg = torch.load(fixture_path("training"))
    pkg["xp.cfg"].optim.lr = 0.25
    assert_same_objects(torch.load(work), pkg)
    ok(run_ckpt("verify", work))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.th"]


def test_edit_refuses_to_overwrite(ckpt, fixture_path, tmp_path):
    out = tmp_path / "exists.th"
    out.write_bytes(b"keep me")
    assert_usage_error(run_ckpt("edit", fixture_path("training"), "-o", out, "seed=1"))
    assert out.read_bytes() == b"keep me"


# ---------------------------------------------------------------- export / wrap / bundle

def exported_like_audiocraft(pkg, version=VERSION):
    """audiocraft.utils.export.export_lm."""
    return {"best_state": best_state_of(pkg), "xp.cfg": OmegaConf.to_yaml(pkg["xp.cfg"]),
            "version": version, "exported": True}


@pytest.mark.parametrize("name", ["training", "training_fsdp", "training_nostruct"])
def test_export(ckpt, fixture_path, tmp_path, name):
    src = fixture_path(name)
    out = tmp_path / "state_dict.bin"
    ok(run_ckpt("export", src, "-o", out, "--version", VERSION))
    assert_like_torch_save(out, exported_like_audiocraft(torch.load(src)), tmp_path)


def test_export_matches_fixture(ckpt, fixture_path, tmp_path):
    out = tmp_path / "state_dict.bin"
    ok(run_ckpt("export", fixture_path("training"), "-o", out, "--version", VERSION))
    assert_same_objects(torch.load(out), torch.load(fixture_path("exported")))


def test_wrap_like_the_seed(ckpt, fixture_path, tmp_path):
    src = fixture_path("exported")
    out = tmp_path / "checkpoint_for_finetuning.th"
    ok(run_ckpt("wrap", src, "-o", out))
    exported = torch.load(src)
    expected = {"best_state": {"model": exported["best_state"]}, "fsdp_best_state": {},
                "xp.cfg": OmegaConf.create(exported["xp.cfg"])}
    got = torch.load(out)
    assert list(got)[:3] == list(expected), list(got)
    for key in expected:
        assert_same_objects(got[key], expected[key], key)
    info = ok(run_ckpt("info", out))
    assert "audiocraft-training" in info


def test_bundle(ckpt, fixture_path, tmp_path):
    out = tmp_path / "musicgen_dir"
    ok(run_ckpt("bundle", fixture_path("training"), "-o", out,
                "--compression", "facebook/encodec_32khz"))
    assert sorted(p.name for p in out.iterdir()) == ["compression_state_dict.bin",
                                                      "state_dict.bin"]
    lm = torch.load(out / "state_dict.bin")
    assert lm["exported"] is True
    assert_same_objects(lm["best_state"], best_state_of(torch.load(fixture_path("training"))))
    assert OmegaConf.create(lm["xp.cfg"]).optim.lr == \
        torch.load(fixture_path("training"))["xp.cfg"].optim.lr
    pointer = torch.load(out / "compression_state_dict.bin")
    assert pointer["pretrained"] == "facebook/encodec_32khz"
    assert pointer["exported"] is True


def test_bundle_refuses_existing_dir_content(ckpt, fixture_path, tmp_path):
    out = tmp_path / "dir"
    out.mkdir()
    (out / "state_dict.bin").write_bytes(b"old")
    assert_usage_error(run_ckpt("bundle", fixture_path("training"), "-o", out))
    assert (out / "state_dict.bin").read_bytes() == b"old"


# ---------------------------------------------------------------- sanitize

@pytest.mark.parametrize("name", ["training", "training_fsdp", "exported", "module_state_dict"])
def test_sanitize_loads_weights_only(ckpt, fixture_path, tmp_path, name):
    src = fixture_path(name)
    out = tmp_path / src.name
    ok(run_ckpt("sanitize", src, "-o", out))
    assert weights_only_problems(pickle_of(out)) == []
    loaded = torch.load(out)
    original = torch.load(src)
    if entry_layout(name) == "audiocraft-training":
        assert_same_objects(best_state_of(loaded), best_state_of(original))
    elif entry_layout(name) == "audiocraft-exported":
        assert_same_objects(loaded["best_state"], original["best_state"])
    else:
        assert_same_objects(loaded, original)


def test_training_fixture_needs_sanitizing(fixture_path):
    """The reason sanitize exists: torch's weights_only loader refuses these files."""
    with pytest.raises(pickle.UnpicklingError):
        torch.load(fixture_path("training"), weights_only=True)
    problems = " ".join(weights_only_problems(pickle_of(fixture_path("training"))))
    assert "omegaconf.dictconfig DictConfig" in problems
    assert "collections defaultdict" in problems
    assert weights_only_problems(pickle_of(fixture_path("module_state_dict"))) == []


# ---------------------------------------------------------------- scan

@pytest.mark.parametrize("name", ["training", "exported", "dtypes", "sharing", "pyvalues",
                                  "module_state_dict", "dictconfig", "legacy"])
def test_scan_safe_fixtures(ckpt, fixture_path, name):
    result = run_ckpt("scan", fixture_path(name))
    assert result.returncode == 0, result.stdout + result.stderr


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_scan_flags_code_execution(ckpt, tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"weight": torch.zeros(2), "x": _Payload()}, path)
    result = run_ckpt("scan", path, cwd=tmp_path)
    assert result.returncode not in (0, 2) and result.returncode < 128, result
    assert "system" in result.stdout + result.stderr
    assert run_ckpt("scan", path, "--json").returncode == result.returncode


def test_scan_flags_payload_in_raw_pickle_zip(ckpt, tmp_path):
    path = tmp_path / "evil.pt"
    payload = pickle.dumps(collections.OrderedDict(a=_Payload()), protocol=2)
    write_torch_zip(path, [("evil/data.pkl", payload), ("evil/version", b"3\n")])
    result = run_ckpt("scan", path)
    assert result.returncode not in (0, 2) and result.returncode < 128


def _corpus():
    manifest = os.path.join(SHARED_CORPUS, "MANIFEST.tsv")
    if not os.path.exists(manifest):
        return []
    rows = []
    with open(manifest) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            name, verdict = line.rstrip("\n").split("\t")[:2]
            rows.append(pytest.param(name, verdict, id=name))
    return rows


@pytest.mark.skipif(not _corpus(), reason="shared picklescan corpus not present (fresh clone)")
@pytest.mark.parametrize("name,verdict", _corpus())
def test_scan_picklescan_corpus(ckpt, name, verdict):
    result = run_ckpt("scan", os.path.join(SHARED_CORPUS, name))
    assert result.returncode < 128, f"crashed: {result.returncode} {result.stderr[-500:]}"
    if verdict == "safe":
        assert result.returncode == 0, result.stdout + result.stderr
    else:
        assert result.returncode != 0, result.stdout + result.stderr
