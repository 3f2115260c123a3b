"""The AudioCraft zoo: for each kind of file AudioCraft (and its model family)
writes, a fixture made by real torch (tests/fixtures/make_fixtures.py) and the
commands that apply to it, checked against what the Python does."""

import json

import pytest
import torch
from omegaconf import OmegaConf

from conftest import assert_same_objects, run_ckpt
from test_foundation import assert_usage_error, ok

VERSION = "1.4.0a2"


def load(path):
    return torch.load(str(path), weights_only=False)


def info_of(path):
    return json.loads(ok(run_ckpt("info", path, "--json")))


@pytest.mark.parametrize("name,layout,kind", [
    ("audiogen_training", "audiocraft-training", "solver audiogen"),
    ("magnet_training", "audiocraft-training", "solver magnet"),
    ("jasco_training", "audiocraft-training", "solver jasco"),
    ("compression_training", "audiocraft-training", "adv_losses"),
    ("encodec_exported", "audiocraft-exported", "solver compression"),
    ("audiogen_pointer", "audiocraft-exported-pointer", "'facebook/audiogen-medium'"),
    ("multibanddiffusion", "audiocraft-multibanddiffusion", "2 band(s)"),
    ("audioseal", "audioseal", "AudioSeal"),
    ("fsdp_rank_shard", "audiocraft-fsdp-shard", "rank 1's shard"),
])
def test_info_names_the_layout(ckpt, fixture_path, name, layout, kind):
    info = info_of(fixture_path(name))
    assert info["layout"] == layout
    assert kind in info["kind"]
    assert kind in ok(run_ckpt("info", fixture_path(name)))


@pytest.mark.parametrize("name", ["audiogen_training", "magnet_training", "jasco_training",
                                  "compression_training", "encodec_exported", "fsdp_rank_shard"])
def test_cfg_is_to_yaml(ckpt, fixture_path, name):
    """OmegaConf.to_yaml of the running Python's omegaconf (2.2 or 2.3), byte for byte."""
    cfg = load(fixture_path(name))["xp.cfg"]
    expected = cfg if isinstance(cfg, str) else OmegaConf.to_yaml(cfg)
    assert ok(run_ckpt("cfg", fixture_path(name))) == expected
    lr = OmegaConf.select(OmegaConf.create(cfg) if isinstance(cfg, str) else cfg, "optim.lr")
    assert ok(run_ckpt("cfg", fixture_path(name), "optim.lr")) == \
        OmegaConf.to_yaml({"k": lr})[len("k: "):]


@pytest.mark.parametrize("name", ["audiogen_training", "magnet_training", "jasco_training",
                                  "compression_training"])
def test_export_like_audiocraft(ckpt, fixture_path, tmp_path, name):
    """export_lm / export_encodec: best state, to_yaml(cfg), version, exported."""
    src = fixture_path(name)
    out = tmp_path / "state_dict.bin"
    ok(run_ckpt("export", src, "-o", out, "--version", VERSION))
    pkg = load(src)
    expected = {"best_state": pkg["best_state"]["model"], "xp.cfg": OmegaConf.to_yaml(pkg["xp.cfg"]),
                "version": VERSION, "exported": True}
    got = load(out)
    assert list(got) == list(expected)
    assert_same_objects(got, expected)


def test_export_of_compression_matches_export_encodec(ckpt, fixture_path, tmp_path):
    out = tmp_path / "compression_state_dict.bin"
    ok(run_ckpt("export", fixture_path("compression_training"), "-o", out))
    assert_same_objects(load(out), load(fixture_path("encodec_exported")))


def test_wrap_exported_encodec(ckpt, fixture_path, tmp_path):
    out = tmp_path / "checkpoint.th"
    ok(run_ckpt("wrap", fixture_path("encodec_exported"), "-o", out))
    exported = load(fixture_path("encodec_exported"))
    got = load(out)
    assert_same_objects(got["best_state"]["model"], exported["best_state"])
    assert OmegaConf.to_yaml(got["xp.cfg"]) == exported["xp.cfg"]


@pytest.mark.parametrize("name,codec", [
    ("training", "facebook/encodec_32khz"),
    ("audiogen_training", "facebook/audiogen-medium"),
    ("magnet_training", "facebook/encodec_32khz"),
])
def test_bundle_takes_the_configured_compression_model(ckpt, fixture_path, tmp_path, name, codec):
    """What AudioCraft's export_pretrained_compression_model writes for the name
    after //pretrained/ in compression_model_checkpoint."""
    out = tmp_path / "model_dir"
    ok(run_ckpt("bundle", fixture_path(name), "-o", out))
    pkg = load(fixture_path(name))
    assert pkg["xp.cfg"].compression_model_checkpoint == "//pretrained/" + codec
    pointer = load(out / "compression_state_dict.bin")
    assert pointer == {"pretrained": codec, "exported": True, "version": VERSION}
    assert list(pointer) == ["pretrained", "exported", "version"]
    lm = load(out / "state_dict.bin")
    assert_same_objects(lm["best_state"], pkg["best_state"]["model"])


def with_compression(tmp_path, fixture_path, value):
    pkg = load(fixture_path("training"))
    cfg = pkg["xp.cfg"]
    OmegaConf.set_struct(cfg, False)
    cfg.compression_model_checkpoint = value
    OmegaConf.set_struct(cfg, True)
    path = tmp_path / "checkpoint.th"
    torch.save(pkg, str(path))
    return path


def test_bundle_exports_a_configured_compression_checkpoint(ckpt, fixture_path, tmp_path):
    """A local compression checkpoint path in the config: exported as export_encodec does."""
    src = with_compression(tmp_path, fixture_path, str(fixture_path("compression_training")))
    out = tmp_path / "dir"
    ok(run_ckpt("bundle", src, "-o", out))
    assert_same_objects(load(out / "compression_state_dict.bin"), load(fixture_path("encodec_exported")))


@pytest.mark.parametrize("value", ["//sig/0c0dec00", "//reference/encodec/checkpoint.th",
                                   "/no/such/compression.th"])
def test_bundle_asks_for_compression_it_cannot_resolve(ckpt, fixture_path, tmp_path, value):
    src = with_compression(tmp_path, fixture_path, value)
    out = tmp_path / "dir"
    result = run_ckpt("bundle", src, "-o", out)
    assert_usage_error(result)
    assert value in result.stderr and "--compression" in result.stderr
    assert not (out / "state_dict.bin").exists()
    # --compression settles it.
    ok(run_ckpt("bundle", src, "-o", out, "--compression", "facebook/encodec_32khz"))
    assert load(out / "compression_state_dict.bin")["pretrained"] == "facebook/encodec_32khz"


@pytest.mark.parametrize("band", [0, 1])
def test_cfg_reaches_multibanddiffusion_bands(ckpt, fixture_path, band):
    src = fixture_path("multibanddiffusion")
    cfg = load(src)[band]["cfg"]
    assert ok(run_ckpt("cfg", src, "--path", f"{band}/cfg")) == OmegaConf.to_yaml(cfg)
    assert ok(run_ckpt("cfg", src, "--path", f"{band}/cfg", "schedule.variable")) == f"{band}\n"
    assert OmegaConf.select(cfg, "schedule.variable") == band


def test_multibanddiffusion_tensors_by_path(ckpt, fixture_path):
    src = fixture_path("multibanddiffusion")
    rows = json.loads(ok(run_ckpt("tensors", src, "--state", "1/model_state", "--json")))
    state = load(src)[1]["model_state"]
    assert [r["name"] for r in rows] == list(state)
    assert [r["shape"] for r in rows] == [list(t.shape) for t in state.values()]
    assert_usage_error(run_ckpt("export", src, "-o", "/tmp/never-written.th"))


def test_audioseal_tensors_and_safetensors(ckpt, fixture_path, tmp_path):
    src = fixture_path("audioseal")
    rows = json.loads(ok(run_ckpt("tensors", src, "--json")))
    assert [r["name"] for r in rows] == list(load(src)["model"])
    out = tmp_path / "audioseal.safetensors"
    ok(run_ckpt("safetensors", src, "-o", out))
    assert out.stat().st_size > 0


def test_fsdp_shard_export_explains_where_the_state_is(ckpt, fixture_path, tmp_path):
    out = tmp_path / "state_dict.bin"
    result = run_ckpt("export", fixture_path("fsdp_rank_shard"), "-o", out)
    assert_usage_error(result)
    assert "shard of an FSDP checkpoint" in result.stderr
    assert "fsdp_best_state" in result.stderr
    assert f"ckpt export {fixture_path('fsdp_rank_shard')}"[:-2] + " -o" in result.stderr  # rank 0's file
    assert not out.exists()
    # Its tensors are still listed by path.
    rows = json.loads(ok(run_ckpt("tensors", fixture_path("fsdp_rank_shard"), "--state", "model", "--json")))
    assert [r["name"] for r in rows] == ["_fsdp_wrapped_module._flat_param"]


def test_pointer_files_are_not_exported_again(ckpt, fixture_path, tmp_path):
    result = run_ckpt("export", fixture_path("audiogen_pointer"), "-o", tmp_path / "x.bin")
    assert_usage_error(result)
    assert "already exported" in result.stderr
