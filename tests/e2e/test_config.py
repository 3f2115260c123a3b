"""End-to-end tests of configs as OmegaConf and Hydra see them: `cfg KEY`
against OmegaConf.select (interpolations resolved), `cfg --raw`, the sign of
YAML's .nan through `wrap`, and Hydra overrides against Hydra's own parser and
OmegaConf.update(..., merge=True) (see test_config_overrides.py)."""

import math
import struct
import subprocess

import pytest
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from conftest import run_ckpt
from test_foundation import assert_usage_error, ok


def printed(value):
    """What `ckpt cfg FILE KEY` prints for OmegaConf.select's result."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_yaml(value)
    if isinstance(value, str):
        return value + "\n"
    return OmegaConf.to_yaml({"k": value})[len("k: "):]


def interpolating_cfg():
    cfg = OmegaConf.create({
        "seed": 42,
        "name": "run-${seed}-${optim.lr}",
        "optim": {"lr": 1e-4, "betas": [0.9, 0.95], "flag": True, "none": None,
                  "rel": "${.lr}", "up": "${..seed}", "nested": "${optim.${key}}"},
        "key": "lr",
        "chain": "${schedule.lr}",
        "schedule": {"lr": "${optim.lr}", "warmup": "???", "list": "${optim.betas}",
                     "first": "${optim.betas[0]}", "dict": "${optim}"},
        "escaped": "\\${seed} costs ${seed}",
        "alias": "${optim}",
        "nan": float("nan"),
        "env": "${oc.env:HOME}",
        "decode": "${oc.decode:'1'}",
        "dangling": "${no.such.key}",
        "loop_a": "${loop_b}",
        "loop_b": "${loop_a}",
        "with_spaces": "x y ",
    })
    OmegaConf.set_struct(cfg, True)
    return cfg


@pytest.fixture
def cfg_file(tmp_path):
    path = tmp_path / "interp.th"
    torch.save({"xp.cfg": interpolating_cfg(), "best_state": {"model": {}}}, str(path))
    return path


RESOLVED_KEYS = ["seed", "name", "optim.lr", "optim.rel", "optim.up", "optim.nested", "chain",
                 "schedule.lr", "schedule.list", "schedule.first", "schedule.dict", "escaped",
                 "alias", "alias.lr", "optim.betas[1]", "optim.betas.0", "optim.flag",
                 "optim.none", "nan", "with_spaces", "optim", "schedule"]


@pytest.mark.parametrize("key", RESOLVED_KEYS)
def test_cfg_key_resolves_like_select(ckpt, cfg_file, key):
    expected = OmegaConf.select(interpolating_cfg(), key)
    assert ok(run_ckpt("cfg", cfg_file, key)) == printed(expected)


@pytest.mark.parametrize("key", ["name", "optim.rel", "schedule", "env", "schedule.warmup"])
def test_cfg_raw_is_unresolved(ckpt, cfg_file, key):
    cfg = interpolating_cfg()
    node = OmegaConf.select(cfg, key, throw_on_missing=False)
    raw = OmegaConf.to_container(node) if isinstance(node, (DictConfig, ListConfig)) \
        else cfg._get_node(key) if "." not in key else None
    out = ok(run_ckpt("cfg", cfg_file, key, "--raw"))
    if isinstance(raw, dict):
        assert out == OmegaConf.to_yaml(node)
    else:
        parent, _, leaf = key.rpartition(".")
        container = OmegaConf.select(cfg, parent) if parent else cfg
        assert out == container._get_node(leaf)._value() + "\n"


@pytest.mark.parametrize("key,words", [
    ("env", "resolver 'oc.env'"), ("decode", "resolver 'oc.decode'"),
    ("dangling", "does not exist"), ("loop_a", "loop"), ("schedule.warmup", "missing"),
    ("no.such", "not found"),
])
def test_cfg_key_unresolvable_is_a_clear_error(ckpt, cfg_file, key, words):
    result = run_ckpt("cfg", cfg_file, key)
    assert_usage_error(result)
    assert words in result.stderr
    assert key.split(".")[0] in result.stderr


def test_cfg_scalar_for_a_shell_variable(ckpt, cfg_file):
    script = f'LR=$("{ckpt}" cfg "{cfg_file}" schedule.lr); NAME=$("{ckpt}" cfg "{cfg_file}" name); ' \
             'printf "%s|%s" "$LR" "$NAME"'
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
    assert out == "0.0001|run-42-0.0001"
    assert float(out.split("|")[0]) == OmegaConf.select(interpolating_cfg(), "schedule.lr")


def test_cfg_whole_is_to_yaml_unresolved(ckpt, cfg_file):
    assert ok(run_ckpt("cfg", cfg_file)) == OmegaConf.to_yaml(interpolating_cfg())


# ---------------------------------------------------------------- wrap: the sign of .nan

def test_wrap_keeps_yaml_nan_sign(ckpt, tmp_path):
    """PyYAML's .nan is -inf/inf (sign bit set on x86); OmegaConf.create gives
    that value, and wrap must pickle the same bits."""
    cfg = OmegaConf.create({"optim": {"lr": 1e-4, "clip": float("nan")}, "x": float("-inf")})
    yaml_text = OmegaConf.to_yaml(cfg)
    assert ".nan" in yaml_text
    src = tmp_path / "state_dict.bin"
    torch.save({"best_state": {"w": torch.zeros(2)}, "xp.cfg": yaml_text, "version": "1.4.0a2",
                "exported": True}, str(src))
    out = tmp_path / "wrapped.th"
    ok(run_ckpt("wrap", src, "-o", out))
    got = torch.load(str(out), weights_only=False)["xp.cfg"]
    want = OmegaConf.create(yaml_text)
    bits = lambda x: struct.pack(">d", x)  # noqa: E731
    assert math.isnan(got.optim.clip)
    assert bits(got.optim.clip) == bits(want.optim.clip)
    assert bits(got.x) == bits(want.x)
