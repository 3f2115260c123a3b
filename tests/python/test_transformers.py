"""ckpt.to_transformers / ckpt.from_transformers: the module over the same C++
core as the CLI (tests/e2e/test_transformers.py checks the outputs against
transformers itself)."""

import json
import os
import subprocess
import sys

import pytest

import ckpt
from conftest import MAKE_FIXTURES, needs_omegaconf, needs_torch


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    path = tmp_path_factory.mktemp("lm") / "state_dict.bin"
    subprocess.run([sys.executable, MAKE_FIXTURES, "--musicgen-lm", "mono", str(path)], check=True,
                   capture_output=True, stdin=subprocess.DEVNULL)
    return path


@needs_torch
@needs_omegaconf
def test_round_trip(lm, tmp_path):
    hf = tmp_path / "hf"
    r = ckpt.to_transformers(lm, hf, dtype="float16")
    assert isinstance(r, ckpt.ToTransformersResult)
    assert r.architecture == "MusicgenForCausalLM" and r.decoder_only and r.tensors == 42
    assert "projections.safetensors" in r.files and any("decoder only" in n for n in r.notes)
    config = json.loads((hf / "config.json").read_text())
    assert config["torch_dtype"] == "float16" and config["num_codebooks"] == 4
    back = ckpt.from_transformers(hf, tmp_path / "ac")
    assert isinstance(back, ckpt.FromTransformersResult)
    assert back.tensors == 36 and back.compression == "pointer facebook/encodec_32khz"
    assert sorted(os.listdir(tmp_path / "ac")) == ["compression_state_dict.bin", "state_dict.bin"]


@needs_torch
def test_errors_are_usage_errors(lm, tmp_path):
    with pytest.raises(ckpt.UsageError, match="force=True"):
        os.makedirs(tmp_path / "exists")
        ckpt.to_transformers(lm, tmp_path / "exists")
    with pytest.raises(ckpt.UsageError, match="config.json"):
        ckpt.from_transformers(tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()
