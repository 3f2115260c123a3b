"""Hydra overrides in `ckpt edit`, checked against Hydra itself: each override
is parsed by Hydra's OverridesParser and applied with
ConfigLoaderImpl._apply_overrides_to_config (OmegaConf.update(..., merge=True)
for key=, +key= and ++key=, open_dict + del for ~key); ckpt must then write the
same config (to_container, flags, the whole pickled DictConfig), or refuse
when Hydra refuses. Hydra is in the torch 2.x venv only; elsewhere these skip."""

import pytest
import torch
from omegaconf import OmegaConf

from conftest import assert_same_objects, run_ckpt
from test_foundation import ok

hydra_parser = pytest.importorskip("hydra.core.override_parser.overrides_parser")
hydra_loader = pytest.importorskip("hydra._internal.config_loader_impl")


def base_cfg(struct=True, readonly=None):
    cfg = OmegaConf.create({
        "optim": {"lr": 0.1, "adam": {"eps": 1e-8, "betas": [0.9, 0.95]}, "l": [1, 2]},
        "v": 3, "n": None, "s": "x", "interp": "${optim.lr}", "m": "???",
    })
    if struct:
        OmegaConf.set_struct(cfg, True)
    if readonly == "root":
        OmegaConf.set_readonly(cfg, True)
    elif readonly == "optim":
        OmegaConf.set_readonly(cfg.optim, True)
    elif readonly == "leaf":
        OmegaConf.set_readonly(cfg.optim._get_node("lr"), True)
    elif readonly == "open-optim":  # struct root, optim explicitly open: the child's flag wins
        OmegaConf.set_struct(cfg.optim, False)
    return cfg


def hydra_apply(cfg, overrides):
    """The config Hydra makes, or None when Hydra refuses."""
    parsed = hydra_parser.OverridesParser.create().parse_overrides(overrides)
    try:
        hydra_loader.ConfigLoaderImpl._apply_overrides_to_config(parsed, cfg)
    except Exception:  # ConfigCompositionException and OmegaConf's errors
        return None
    return cfg


CASES = [
    "optim.adam={eps:1e-9}", "optim.adam={new:1}", "+optim.adam={new:1}", "++optim.adam={new:1}",
    "optim.adam={betas:[1]}", "optim.l=[5]", "optim.adam=5", "v={a:1}", "+v={a:1}", "++v={a:1}",
    "v.x=1", "+v.x=1", "++v.x=1", "new.x=1", "+new.x=1", "++new.x.y=1", "optim={lr:0.5}",
    "optim.lr={a:1}", "n={a:1}", "+n=1", "+v=1", "optim.adam.betas={a:1}", "~optim.lr", "~optim",
    "~n", "~optim.lr=0.1", "~optim.lr=0.2", "optim.l.0=7", "+optim.l.2=7", "optim.lr=[1,2]",
    "optim.adam=null", "optim.adam={}", "+optim.adam={}", "s=[1]", "newkey=1", "++newkey=1",
    "optim.adam={eps:'${optim.lr}'}", "optim.adam={eps:{deep:1}}", "optim={adam:{eps:2,x:3}}",
    "++optim={adam:{eps:2,x:3}}", "optim.lr=1e-5", "optim.lr=nan", "interp=2", "~interp=0.1",
    "~interp=0.2", "~optim.adam={eps:1e-8,betas:[0.9,0.95]}", "+m=1", "m=1", "~m", "+m={a:1}",
]
VARIANTS = [(True, None), (False, None), (True, "root"), (True, "optim"), (True, "leaf"),
            (True, "open-optim")]


def variant_id(v):
    if v[1] == "open-optim":
        return "struct-open-optim"
    return ("struct" if v[0] else "plain") + (f"-readonly-{v[1]}" if v[1] else "")


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
@pytest.mark.parametrize("override", CASES)
def test_override_like_hydra(ckpt, tmp_path, variant, override):
    struct, readonly = variant
    src = tmp_path / "checkpoint.th"
    torch.save({"xp.cfg": base_cfg(struct, readonly), "best_state": {"model": {}}}, str(src))
    out = tmp_path / "out.th"
    result = run_ckpt("edit", src, "-o", out, override)
    expected = hydra_apply(base_cfg(struct, readonly), [override])
    if expected is None:
        assert result.returncode == 2, (override, result.stdout, result.stderr)
        assert result.stderr.startswith("ckpt: error: ") and result.stderr.count("\n") == 1
        assert not out.exists()
        return
    assert result.returncode == 0, (override, result.stderr)
    got = torch.load(str(out), weights_only=False)["xp.cfg"]
    assert repr(OmegaConf.to_container(got)) == repr(OmegaConf.to_container(expected))
    for flag in ("struct", "readonly"):
        assert got._get_flag(flag) == expected._get_flag(flag)
    assert_same_objects(got, expected)


@pytest.mark.parametrize("override", CASES)
def test_override_on_a_yaml_config_like_hydra(ckpt, tmp_path, override):
    """An exported file's xp.cfg is YAML text: Hydra would apply the override to
    OmegaConf.create(text), a config without flags; ckpt writes to_yaml of that."""
    text = OmegaConf.to_yaml(base_cfg(struct=False))
    src = tmp_path / "state_dict.bin"
    torch.save({"best_state": {}, "xp.cfg": text, "version": "1.4.0a2", "exported": True}, str(src))
    out = tmp_path / "out.bin"
    result = run_ckpt("edit", src, "-o", out, override)
    expected = hydra_apply(OmegaConf.create(text), [override])
    if expected is None:
        assert result.returncode == 2, (override, result.stderr)
        assert not out.exists()
        return
    assert result.returncode == 0, (override, result.stderr)
    assert torch.load(str(out), weights_only=False)["xp.cfg"] == OmegaConf.to_yaml(expected)


def test_override_sequence_like_hydra(ckpt, tmp_path):
    overrides = ["optim.adam={eps:1e-9}", "+optim.adam={amsgrad:true}", "~optim.l", "++extra.k=[1,2]",
                 "optim.lr=${v}"]
    src = tmp_path / "checkpoint.th"
    torch.save({"xp.cfg": base_cfg()}, str(src))
    out = tmp_path / "out.th"
    ok(run_ckpt("edit", src, "-o", out, *overrides))
    expected = hydra_apply(base_cfg(), overrides)
    assert expected is not None
    got = torch.load(str(out), weights_only=False)["xp.cfg"]
    assert repr(OmegaConf.to_container(got)) == repr(OmegaConf.to_container(expected))
    assert_same_objects(got, expected)


def test_read_only_refusal_names_the_key(ckpt, tmp_path):
    src = tmp_path / "checkpoint.th"
    torch.save({"xp.cfg": base_cfg(readonly="root")}, str(src))
    result = run_ckpt("edit", src, "-o", tmp_path / "out.th", "optim.adam.eps=1")
    assert result.returncode == 2
    assert "'optim.adam.eps'" in result.stderr and "read-only" in result.stderr


def test_in_place_edit_of_a_read_only_config_is_refused(ckpt, tmp_path):
    src = tmp_path / "checkpoint.th"
    torch.save({"xp.cfg": base_cfg(readonly="optim"), "w": torch.zeros(3)}, str(src))
    before = src.read_bytes()
    result = run_ckpt("edit", src, "--in-place", "optim.lr=0.5")
    assert result.returncode == 2 and "read-only" in result.stderr and "'optim.lr'" in result.stderr
    assert src.read_bytes() == before
    ok(run_ckpt("edit", src, "--in-place", "v=4"))  # outside the read-only subtree
    assert torch.load(str(src), weights_only=False)["xp.cfg"].v == 4
