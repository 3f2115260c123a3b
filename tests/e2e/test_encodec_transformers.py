"""EnCodec alone: AudioCraft compression checkpoints <-> transformers' EncodecModel
(ckpt to-transformers / from-transformers detect it by content), against real
transformers (pinned in tests/requirements-torch2.txt; skipped where it is missing,
as under Debian's torch 1.13 python).

Models: tiny random EncodecModels made by transformers' own save_pretrained, and
tiny AudioCraft-layout compression models (SEANet's module names, weight_g /
weight_v) from tests/fixtures/make_fixtures.py --encodec.
"""

import json
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from ckpt_testlib import MAKE_FIXTURES, made_by_kind, run_ckpt, saved_by_kind  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

try:  # the torch 2 venv; Debian's torch 1.13 python runs the AudioCraft-side checks only
    import transformers  # noqa: F401
    from safetensors.torch import load_file, save_file
    from transformers import EncodecConfig, EncodecModel
except ImportError:
    transformers = None
needs_transformers = pytest.mark.skipif(transformers is None, reason="transformers is not installed")

AC_KINDS = ["mono", "stereo"]
HF_KINDS = ["weight_norm", "time_group_norm"]
# EncodecConfig's fields a round trip keeps (target_bandwidths: rvq.n_q holds the
# last, the list is carried in xp.cfg's transformers.target_bandwidths).
CONFIG_KEYS = ["target_bandwidths", "sampling_rate", "audio_channels", "normalize", "hidden_size", "num_filters", "num_residual_layers",
               "upsampling_ratios", "norm_type", "kernel_size", "last_kernel_size", "residual_kernel_size",
               "dilation_growth_rate", "use_causal_conv", "pad_mode", "compress", "num_lstm_layers",
               "trim_right_ratio", "codebook_size", "codebook_dim", "use_conv_shortcut", "num_quantizers"]


def ok(*args):
    r = run_ckpt(*args)
    assert r.returncode == 0, r.stderr
    return r


def hf_config(kind):
    if kind == "weight_norm":  # as facebook/encodec_32khz, tiny widths
        return EncodecConfig(target_bandwidths=[2.2], sampling_rate=32000, audio_channels=1, num_filters=2,
                             num_residual_layers=1, upsampling_ratios=[8, 5, 4, 4], codebook_size=32,
                             hidden_size=8, num_lstm_layers=2, use_conv_shortcut=False, normalize=False,
                             use_causal_conv=False, pad_mode="constant")
    return EncodecConfig(target_bandwidths=[24.0, 48.0], sampling_rate=24000, audio_channels=2, num_filters=2,
                         num_residual_layers=2, upsampling_ratios=[4, 2], codebook_size=16, hidden_size=6,
                         num_lstm_layers=1, use_conv_shortcut=True, normalize=True, use_causal_conv=False,
                         norm_type="time_group_norm")


def hf_model(kind):
    torch.manual_seed({"weight_norm": 31, "time_group_norm": 32}[kind])
    model = EncodecModel(hf_config(kind))
    with torch.no_grad():  # codebooks and norms random too, so a swapped tensor shows
        for name, b in model.named_buffers():
            if "codebook" in name:
                b.copy_(torch.randn(b.shape))
        for name, p in model.named_parameters():
            if ".norm." in name:
                p.copy_(torch.randn(p.shape))
    return model.eval()


def load(folder):
    model, info = EncodecModel.from_pretrained(folder, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    assert not problems, problems
    return model.eval()


def expected_hf_name(ac):
    """transformers' converter's renaming (convert_encodec_checkpoint_to_pytorch.py: MAPPING_ENCODER,
    MAPPING_DECODER, MAPPING_QUANTIZER and their _48K norms), written out independently, with the
    weight norm as the pinned transformers' modules hold it."""
    n = ac
    for a, b in [("encoder.model.", "encoder.layers."), ("decoder.model.", "decoder.layers."),
                 (".conv.conv.", ".conv."), (".convtr.convtr.", ".conv."), (".conv.norm.", ".norm."),
                 (".convtr.norm.", ".norm."), ("quantizer.vq.layers.", "quantizer.layers."),
                 ("._codebook.", ".codebook."), ("weight_g", "parametrizations.weight.original0"),
                 ("weight_v", "parametrizations.weight.original1")]:
        n = n.replace(a, b)
    return n


def assert_bits_equal(a, b, what):
    assert a.dtype == b.dtype and a.shape == b.shape, (what, a.dtype, b.dtype, a.shape, b.shape)
    assert torch.equal(a.view(torch.uint8), b.view(torch.uint8)), what


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("encodec")


@pytest.fixture(scope="module")
def ac_models(work):
    return made_by_kind(work, AC_KINDS, "--encodec", "ac")


@pytest.fixture(scope="module")
def hf_folders(work):
    return saved_by_kind(work, HF_KINDS, hf_model, "hf")


def ac_package(path):
    return torch.load(path, map_location="cpu", weights_only=True)


# ------------------------------------------------------------------ AudioCraft -> transformers -> AudioCraft

@pytest.mark.parametrize("kind", AC_KINDS)
def test_audiocraft_to_hf_to_audiocraft_is_exact(kind, work, ac_models):
    hf = work / f"ac2hf_rt_{kind}"
    r = ok("to-transformers", ac_models[kind], "-o", hf)
    assert "EncodecModel" in r.stderr
    config = json.loads((hf / "config.json").read_text())
    assert config["model_type"] == "encodec" and config["architectures"] == ["EncodecModel"]
    back = work / f"ac2hf2ac_rt_{kind}"
    ok("from-transformers", hf, "-o", back)
    want = ac_package(ac_models[kind])
    got = ac_package(back / "compression_state_dict.bin")
    assert got["xp.cfg"] == want["xp.cfg"]  # the configuration kept, as text
    assert got["exported"] is True and sorted(got) == sorted(want)
    assert list(got["best_state"]) == list(want["best_state"])
    for k, v in want["best_state"].items():
        assert_bits_equal(got["best_state"][k], v, k)


@needs_transformers
@pytest.mark.parametrize("kind", AC_KINDS)
def test_audiocraft_to_hf_loads_with_the_converters_names(kind, work, ac_models):
    hf = work / f"ac2hf_{kind}"
    ok("to-transformers", ac_models[kind], "-o", hf)
    model = load(hf)
    want = ac_package(ac_models[kind])
    got = model.state_dict()
    names = {expected_hf_name(k): k for k in want["best_state"]}
    assert sorted(names) == sorted(got)  # every tensor of the model, none left over
    for h, a in names.items():
        assert_bits_equal(got[h], want["best_state"][a], h)
    cfg = OmegaConf.create(want["xp.cfg"])
    c = model.config
    assert c.num_quantizers == cfg.rvq.n_q and c.codebook_size == cfg.rvq.bins
    assert c.audio_channels == cfg.channels and c.norm_type == cfg.seanet.norm
    assert c.use_conv_shortcut == (not cfg.seanet.true_skip) and c.use_causal_conv == cfg.encodec.causal
    assert c.num_residual_layers == cfg.seanet.n_residual_layers and c.num_lstm_layers == cfg.seanet.lstm
    assert c.pad_mode == cfg.seanet.pad_mode
    with torch.no_grad():
        audio = model(torch.randn(1, c.audio_channels, 1600)).audio_values
    assert audio.shape == (1, c.audio_channels, 1600) and torch.isfinite(audio).all()


def test_training_checkpoint_input(work, ac_models):
    """The CompressionSolver layout (best_state/model, xp.cfg a DictConfig): the same folder."""
    src = ac_models["mono"]
    training = work / "ac_training.th"
    ok("wrap", src, "-o", training)
    ok("to-transformers", training, "-o", work / "from_training")
    ok("to-transformers", src, "-o", work / "from_exported")
    assert (work / "from_training" / "model.safetensors").read_bytes() == \
        (work / "from_exported" / "model.safetensors").read_bytes()


# ------------------------------------------------------------------ transformers -> AudioCraft -> transformers

@needs_transformers
@pytest.mark.parametrize("kind", HF_KINDS)
def test_hf_to_audiocraft_to_hf_is_exact(kind, work, hf_folders):
    src = hf_folders[kind]
    ac = work / f"hf2ac_{kind}"
    ok("from-transformers", src, "-o", ac)
    pkg = ac_package(ac / "compression_state_dict.bin")
    cfg = OmegaConf.create(pkg["xp.cfg"])
    original = load(src)
    assert cfg.rvq.n_q == original.config.num_quantizers and cfg.seanet.dimension == original.config.hidden_size
    assert OmegaConf.select(cfg, "seanet.channels") == original.config.audio_channels
    # AudioCraft's names and spelling (weight_g / weight_v), as its NormConv1d holds them.
    assert all("parametrizations" not in k for k in pkg["best_state"])
    if kind == "weight_norm":
        assert "encoder.model.0.conv.conv.weight_g" in pkg["best_state"]
    hf = work / f"hf2ac2hf_{kind}"
    ok("to-transformers", ac, "-o", hf)  # the folder, as CompressionModel.get_pretrained takes it
    again = load(hf)
    a, b = original.state_dict(), again.state_dict()
    assert sorted(a) == sorted(b)
    for k in a:
        assert_bits_equal(b[k], a[k], k)
    for key in CONFIG_KEYS:
        assert getattr(again.config, key) == getattr(original.config, key), key
    torch.manual_seed(0)
    x = torch.randn(1, original.config.audio_channels, 2400)
    with torch.no_grad():
        want, got = original(x), again(x)
    assert torch.equal(want.audio_codes, got.audio_codes)
    assert torch.equal(want.audio_values, got.audio_values)


@needs_transformers
def test_old_weight_norm_spelling_is_read(work, hf_folders):
    """A folder saved when transformers' EncodecModel held weight_g / weight_v gives the same file."""
    src = hf_folders["weight_norm"]
    old = work / "hf_old_spelling"
    old.mkdir()
    (old / "config.json").write_text((open(os.path.join(src, "config.json")).read()))
    tensors = load_file(os.path.join(src, "model.safetensors"))
    renamed = {k.replace("parametrizations.weight.original0", "weight_g")
               .replace("parametrizations.weight.original1", "weight_v"): v for k, v in tensors.items()}
    assert any(k.endswith("weight_g") for k in renamed)
    save_file(renamed, str(old / "model.safetensors"), metadata={"format": "pt"})
    ok("from-transformers", src, "-o", work / "spell_new")
    ok("from-transformers", old, "-o", work / "spell_old")
    assert (work / "spell_old" / "compression_state_dict.bin").read_bytes() == \
        (work / "spell_new" / "compression_state_dict.bin").read_bytes()
    # transformers reads the old spelling too; ckpt writes the one its modules hold.
    load(old)
    ok("to-transformers", work / "spell_old" / "compression_state_dict.bin", "-o", work / "spell_hf")
    assert any("parametrizations.weight.original0" in k
               for k in load_file(str(work / "spell_hf" / "model.safetensors")))


# ------------------------------------------------------------------ MusicGen's audio encoder

@needs_transformers
def test_musicgen_audio_encoder_from_audiocraft_and_back(work, ac_models, tmp_path):
    """to-transformers --audio-encoder takes an AudioCraft compression checkpoint; from-transformers
    writes compression_state_dict.bin from the folder's EnCodec weights."""
    from transformers import MusicgenForConditionalGeneration, T5Config, T5EncoderModel
    lm = tmp_path / "lm.bin"
    subprocess.run([sys.executable, MAKE_FIXTURES, "--musicgen-lm", "mono", str(lm)], check=True)
    t5 = tmp_path / "t5"
    torch.manual_seed(7)
    T5EncoderModel(T5Config(vocab_size=99, d_model=12, d_kv=4, d_ff=20, num_layers=2, num_heads=3)).save_pretrained(t5)
    hf = tmp_path / "musicgen"
    ok("to-transformers", lm, "-o", hf, "--text-encoder", t5, "--audio-encoder", ac_models["mono"])
    model, info = MusicgenForConditionalGeneration.from_pretrained(hf, output_loading_info=True)
    assert not {k: v for k, v in info.items() if v}, info
    want = ac_package(ac_models["mono"])
    got = model.state_dict()
    for k, v in want["best_state"].items():
        assert_bits_equal(got["audio_encoder." + expected_hf_name(k)], v, k)
    back = tmp_path / "back"
    r = ok("from-transformers", hf, "-o", back)
    assert "EnCodec converted" in r.stderr
    comp = ac_package(back / "compression_state_dict.bin")
    assert comp["xp.cfg"] == want["xp.cfg"]
    assert list(comp["best_state"]) == list(want["best_state"])
    for k, v in want["best_state"].items():
        assert_bits_equal(comp["best_state"][k], v, k)


# ------------------------------------------------------------------ bad input

def refused(args, out, *needles):
    r = run_ckpt(*args)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ckpt: error: "), r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    assert not os.path.exists(out)
    assert not [p for p in os.listdir(os.path.dirname(out)) if ".ckpt-tmp-" in p]
    return lines[0]


def edited(work, src, name, *overrides):
    path = work / name
    ok("edit", src, "-o", path, "--force", *overrides)
    return path


def copy_folder(src, dst):
    os.makedirs(dst)
    for name in os.listdir(src):
        with open(os.path.join(src, name), "rb") as f:
            (dst / name).write_bytes(f.read())


def test_bad_input(work, ac_models):
    out = str(work / "bad_out")
    mono = ac_models["mono"]
    # Settings transformers' EncodecModel cannot express, named by key.
    refused(["to-transformers", edited(work, mono, "act.bin", "seanet.activation=ReLU"), "-o", out],
            out, "seanet.activation")
    refused(["to-transformers", edited(work, mono, "outer.bin", "seanet.disable_norm_outer_blocks=1"), "-o", out],
            out, "seanet.disable_norm_outer_blocks")
    refused(["to-transformers", edited(work, mono, "nolstm.bin", "seanet.lstm=0"), "-o", out], out, "seanet.lstm")
    refused(["to-transformers", edited(work, mono, "dec.bin", "+seanet.decoder.n_filters=4"), "-o", out],
            out, "seanet.decoder.n_filters")
    refused(["to-transformers", edited(work, mono, "bins.bin", "rvq.bins=24"), "-o", out], out, "rvq.bins")
    # A tensor whose shape disagrees with xp.cfg; a config naming more codebooks than the file holds.
    refused(["to-transformers", edited(work, mono, "dim.bin", "seanet.dimension=16"), "-o", out],
            out, "encoder.model.15.conv.conv.bias", "shape [8]", "gives [16]")
    refused(["to-transformers", edited(work, mono, "nq.bin", "rvq.n_q=5"), "-o", out],
            out, "quantizer.vq.layers.4._codebook.inited")
    refused(["to-transformers", mono, "-o", out, "--text-encoder", str(work)], out, "--text-encoder")


@needs_transformers
def test_bad_input_from_transformers(work, ac_models, hf_folders):
    out = str(work / "bad_out_hf")
    mono = ac_models["mono"]
    # transformers -> AudioCraft: chunking AudioCraft has no place for; a shape against config.json.
    bad = work / "hf_chunked"
    copy_folder(hf_folders["weight_norm"], bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["chunk_length_s"] = 1.0
    (bad / "config.json").write_text(json.dumps(cfg))
    refused(["from-transformers", bad, "-o", out], out, "chunk_length_s")
    cfg["chunk_length_s"] = None
    cfg["use_causal_conv"] = cfg["normalize"] = True  # AudioCraft's EncodecModel asserts against it
    (bad / "config.json").write_text(json.dumps(cfg))
    refused(["from-transformers", bad, "-o", out], out, "normalize with use_causal_conv", "encodec.renormalize")
    cfg["use_causal_conv"] = cfg["normalize"] = False
    cfg["hidden_size"] = cfg["codebook_dim"] = 16
    (bad / "config.json").write_text(json.dumps(cfg))
    refused(["from-transformers", bad, "-o", out], out, "encoder.layers.15.conv.bias", "shape [8]", "gives [16]")
    # Options for a MusicGen LM given with an EnCodec model.
    refused(["from-transformers", hf_folders["weight_norm"], "-o", out, "--compression", mono], out, "--compression")
    refused(["to-transformers", mono, "-o", out, "--audio-encoder", hf_folders["weight_norm"]], out, "--audio-encoder")
