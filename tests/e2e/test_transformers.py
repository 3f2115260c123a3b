"""ckpt to-transformers / from-transformers against real transformers (pinned in
tests/requirements-torch2.txt; these tests run under the torch 2 venv and skip
where transformers is missing, as under Debian's python).

Models: tiny random MusicGen (mono, stereo, Melody), T5 and EnCodec made by
transformers' own save_pretrained, and tiny AudioCraft-layout language models
from tests/fixtures/make_fixtures.py --musicgen-lm.
"""

import json
import os
import stat
import shutil

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from ckpt_testlib import made_by_kind, run_ckpt, saved_by_kind  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import (  # noqa: E402
    EncodecConfig, EncodecModel, MusicgenConfig, MusicgenDecoderConfig, MusicgenForCausalLM,
    MusicgenForConditionalGeneration, MusicgenMelodyConfig, MusicgenMelodyDecoderConfig,
    MusicgenMelodyForCausalLM, MusicgenMelodyForConditionalGeneration, T5Config, T5EncoderModel)

KINDS = ["mono", "stereo", "melody"]


def ok(*args):
    r = run_ckpt(*args)
    assert r.returncode == 0, r.stderr
    return r


def t5_config(d_model=12):
    return T5Config(vocab_size=99, d_model=d_model, d_kv=4, d_ff=20, num_layers=2, num_heads=3)


def encodec_config(card):
    # 32 kHz, hop 640 (50 frames/s): n_q 4 from 2.2 kbps, as facebook/encodec_32khz; tiny widths.
    return EncodecConfig(target_bandwidths=[2.2], sampling_rate=32000, audio_channels=1, num_filters=2,
                         num_residual_layers=1, upsampling_ratios=[8, 5, 4, 4], codebook_size=card,
                         codebook_dim=8, hidden_size=8, num_lstm_layers=2, use_conv_shortcut=False,
                         normalize=False, use_causal_conv=False)


def decoder_config(kind, card=32):
    cls = MusicgenMelodyDecoderConfig if kind == "melody" else MusicgenDecoderConfig
    n_q, channels = (8, 2) if kind == "stereo" else (4, 1)
    return cls(vocab_size=card, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, ffn_dim=64,
               num_codebooks=n_q, audio_channels=channels, pad_token_id=card, bos_token_id=card,
               max_position_embeddings=256)


def hf_model(kind):
    torch.manual_seed({"mono": 1, "stereo": 2, "melody": 3}[kind])
    if kind == "melody":
        cfg = MusicgenMelodyConfig.from_sub_models_config(t5_config(), encodec_config(32), decoder_config(kind),
                                                          num_chroma=12, chroma_length=235)
        model = MusicgenMelodyForConditionalGeneration(cfg)
    else:
        cfg = MusicgenConfig.from_sub_models_config(t5_config(), encodec_config(32), decoder_config(kind))
        model = MusicgenForConditionalGeneration(cfg)
    with torch.no_grad():  # LayerNorms away from 1/0, so a swapped norm shows
        for name, p in model.named_parameters():
            if "layer_norm" in name and "decoder" in name:
                p.copy_(torch.randn(p.shape) * 0.1 + (1.0 if name.endswith("weight") else 0.0))
    return model.eval()


def model_class(kind, composite=True):
    if composite:
        return MusicgenMelodyForConditionalGeneration if kind == "melody" else MusicgenForConditionalGeneration
    return MusicgenMelodyForCausalLM if kind == "melody" else MusicgenForCausalLM


def load(kind, folder, composite=True):
    model, info = model_class(kind, composite).from_pretrained(folder, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    assert not problems, problems
    return model.eval()


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("transformers")


@pytest.fixture(scope="module")
def encoders(work):
    """A T5 folder (T5EncoderModel) and an EnCodec folder, by save_pretrained."""
    torch.manual_seed(7)
    t5 = work / "t5"
    T5EncoderModel(t5_config()).save_pretrained(t5)
    enc = work / "encodec"
    EncodecModel(encodec_config(32)).save_pretrained(enc)
    return str(t5), str(enc)


@pytest.fixture(scope="module")
def audiocraft_lms(work):
    return made_by_kind(work, KINDS, "--musicgen-lm", "ac")


@pytest.fixture(scope="module")
def hf_folders(work):
    return saved_by_kind(work, KINDS, hf_model, "hf")


def ac_state(path):
    pkg = torch.load(path, map_location="cpu", weights_only=False)
    return pkg["best_state"], pkg["xp.cfg"]


def expected_hf(state, dim):
    """transformers' converter's renaming (convert_musicgen_transformers.py, rename_keys /
    rename_state_dict), written out independently: {hf name: tensor}."""
    out = {}
    for k, v in state.items():
        if k.endswith("chroma.spec.window"):
            continue
        n = k
        for a, b in [("emb", "model.decoder.embed_tokens"), ("transformer", "model.decoder"),
                     ("cross_attention", "encoder_attn"), ("linear1", "fc1"), ("linear2", "fc2"),
                     ("norm1", "self_attn_layer_norm"), ("norm_cross", "encoder_attn_layer_norm"),
                     ("norm2", "final_layer_norm"), ("out_norm", "model.decoder.layer_norm"),
                     ("linears", "lm_heads"),
                     ("condition_provider.conditioners.description.output_proj", "enc_to_dec_proj"),
                     ("condition_provider.conditioners.self_wav.output_proj", "audio_enc_to_dec_proj")]:
            if a in n:
                n = n.replace(a, b)
        if "in_proj_weight" in n:
            out[n.replace("in_proj_weight", "q_proj.weight")] = v[:dim]
            out[n.replace("in_proj_weight", "k_proj.weight")] = v[dim:2 * dim]
            out[n.replace("in_proj_weight", "v_proj.weight")] = v[-dim:]
        else:
            out[n] = v
    return out


def assert_bits_equal(a, b, what):
    assert a.dtype == b.dtype and a.shape == b.shape, (what, a.dtype, b.dtype, a.shape, b.shape)
    assert torch.equal(a.view(torch.uint8) if a.dtype != torch.bool else a,
                       b.view(torch.uint8) if b.dtype != torch.bool else b), what


# ------------------------------------------------------------------ AudioCraft -> transformers

@pytest.mark.parametrize("kind", KINDS)
def test_decoder_only_loads_with_converter_names(kind, work, audiocraft_lms):
    out = work / f"dec_{kind}"
    r = ok("to-transformers", audiocraft_lms[kind], "-o", out)
    assert "decoder only" in r.stderr and "projections.safetensors" in r.stderr
    model = load(kind, out, composite=False)
    state, cfg = ac_state(audiocraft_lms[kind])
    want = expected_hf(state, 16)
    got = model.state_dict()
    proj = load_file(str(out / "projections.safetensors"))
    for name, tensor in want.items():
        src = proj[name] if "enc_to_dec_proj" in name else got[name]
        assert_bits_equal(src, tensor, name)
    # Every persistent tensor of the model came from the checkpoint.
    assert sorted(k for k in got if k not in want) == []
    gen = json.loads((out / "generation_config.json").read_text())
    assert gen["decoder_start_token_id"] == 32 and gen["pad_token_id"] == 32
    assert gen["max_length"] == 30 * 50 and gen["guidance_scale"] == 3.0
    assert model.config.audio_channels == (2 if kind == "stereo" else 1)


@pytest.mark.parametrize("kind", KINDS)
def test_composite_loads_and_runs(kind, work, audiocraft_lms, encoders):
    t5, enc = encoders
    out = work / f"full_{kind}"
    ok("to-transformers", audiocraft_lms[kind], "-o", out, "--text-encoder", t5, "--audio-encoder", enc)
    model = load(kind, out)
    state, _ = ac_state(audiocraft_lms[kind])
    got = model.state_dict()
    for name, tensor in expected_hf(state, 16).items():
        key = name if "enc_to_dec_proj" in name else "decoder." + name
        assert_bits_equal(got[key], tensor, key)
    t5_model = T5EncoderModel.from_pretrained(t5)
    for k, v in t5_model.state_dict().items():
        assert torch.equal(got["text_encoder." + k], v), k
    n_q = model.decoder.config.num_codebooks
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([[5, 6, 7]]), decoder_input_ids=torch.zeros(n_q, 2, dtype=torch.long)).logits
    assert torch.isfinite(logits).all()


def test_dtype_is_bit_exact_to_torch(work, audiocraft_lms):
    out = work / "dec_bf16"
    ok("to-transformers", audiocraft_lms["mono"], "-o", out, "--dtype", "bfloat16")
    state, _ = ac_state(audiocraft_lms["mono"])
    got = load_file(str(out / "model.safetensors"))
    for name, tensor in expected_hf(state, 16).items():
        if "enc_to_dec_proj" in name:
            continue
        assert_bits_equal(got[name], tensor.to(torch.bfloat16), name)
    assert json.loads((out / "config.json").read_text())["torch_dtype"] == "bfloat16"


def test_shards_load(work, audiocraft_lms, encoders):
    t5, enc = encoders
    out = work / "sharded"
    ok("to-transformers", audiocraft_lms["mono"], "-o", out, "--text-encoder", t5, "--audio-encoder", enc,
       "--max-shard-size", "20KB")
    assert (out / "model.safetensors.index.json").exists()
    load("mono", out)


# ------------------------------------------------------------------ round trips

@pytest.mark.parametrize("kind", KINDS)
def test_audiocraft_to_hf_to_audiocraft_is_exact(kind, work, audiocraft_lms, encoders):
    t5, enc = encoders
    for composite in (False, True):
        hf = work / f"rt_{kind}_{composite}"
        extra = ["--text-encoder", t5, "--audio-encoder", enc] if composite else []
        ok("to-transformers", audiocraft_lms[kind], "-o", hf, *extra)
        back = work / f"rt_{kind}_{composite}_ac"
        ok("from-transformers", hf, "-o", back, "--compression", "facebook/encodec_32khz")
        want, want_cfg = ac_state(audiocraft_lms[kind])
        got, got_cfg = ac_state(back / "state_dict.bin")
        assert got_cfg == want_cfg  # the configuration kept, as text
        assert list(got) == list(want)
        for k in want:
            if k.endswith("chroma.spec.window"):  # recomputed, as torch.hann_window
                torch.testing.assert_close(got[k], want[k], rtol=0, atol=1e-6)
                continue
            assert_bits_equal(got[k], want[k], k)
        pointer = torch.load(back / "compression_state_dict.bin", weights_only=True)
        assert pointer["pretrained"] == "facebook/encodec_32khz" and pointer["exported"] is True


@pytest.mark.parametrize("kind", KINDS)
def test_hf_to_audiocraft_to_hf_is_exact(kind, work, hf_folders):
    src = hf_folders[kind]
    ac = work / f"hf2ac_{kind}"
    r = ok("from-transformers", src, "-o", ac, "--compression", "facebook/encodec_32khz")
    assert "text encoder" in r.stderr
    cfg = OmegaConf.create(ac_state(ac / "state_dict.bin")[1])
    assert cfg.transformer_lm.dim == 16 and cfg.transformer_lm.n_q == (8 if kind == "stereo" else 4)
    # The encoders come back from their own folders, as a user's cache holds them.
    original = load(kind, src)
    t5 = work / f"hf2ac_{kind}_t5"
    original.text_encoder.save_pretrained(t5)
    enc = work / f"hf2ac_{kind}_enc"
    original.audio_encoder.save_pretrained(enc)
    hf = work / f"hf2ac2hf_{kind}"
    ok("to-transformers", ac, "-o", hf, "--text-encoder", t5, "--audio-encoder", enc)
    again = load(kind, hf)
    a, b = original.state_dict(), again.state_dict()
    assert sorted(a) == sorted(b)
    for k in a:
        assert_bits_equal(b[k], a[k], k)
    for key in ["hidden_size", "num_hidden_layers", "num_attention_heads", "ffn_dim", "num_codebooks",
                "audio_channels", "vocab_size", "pad_token_id", "bos_token_id"]:
        assert getattr(again.decoder.config, key) == getattr(original.decoder.config, key), key
    n_q = original.decoder.config.num_codebooks
    torch.manual_seed(0)
    inputs = dict(input_ids=torch.tensor([[3, 4, 5, 6]]), decoder_input_ids=torch.randint(0, 32, (n_q, 3)))
    with torch.no_grad():
        want = original(**inputs).logits
        got = again(**inputs).logits
    assert torch.equal(want, got)


def test_stock_encodec_gives_the_pointer(work, hf_folders):
    # A config naming the stock 32 kHz EnCodec (the tensors are not read for it).
    folder = work / "stockish"
    folder.mkdir()
    src = hf_folders["mono"]
    for name in os.listdir(src):
        (folder / name).write_bytes(open(os.path.join(src, name), "rb").read())
    cfg = json.loads((folder / "config.json").read_text())
    cfg["audio_encoder"].update(upsampling_ratios=[8, 5, 4, 4], target_bandwidths=[2.2], num_filters=64,
                                codebook_size=2048, hidden_size=128, num_lstm_layers=2)
    (folder / "config.json").write_text(json.dumps(cfg))
    ok("from-transformers", folder, "-o", work / "stockish_ac")
    pointer = torch.load(work / "stockish_ac" / "compression_state_dict.bin", weights_only=True)
    assert pointer["pretrained"] == "facebook/encodec_32khz"


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


def test_bad_input(work, audiocraft_lms, encoders, hf_folders):
    t5, enc = encoders
    out = str(work / "bad_out")
    mono = audiocraft_lms["mono"]
    refused(["to-transformers", edited(work, mono, "rope.bin", "transformer_lm.positional_embedding=rope"), "-o", out],
            out, "transformer_lm.positional_embedding")
    refused(["to-transformers", edited(work, mono, "dim.bin", "transformer_lm.num_layers=3"), "-o", out],
            out, "transformer.layers.2")
    refused(["to-transformers", edited(work, mono, "card.bin", "transformer_lm.card=64"), "-o", out],
            out, "emb.0.weight", "[33, 16]", "[65, 16]")
    refused(["to-transformers", edited(work, mono, "pattern.bin", "codebooks_pattern.modeling=unroll"), "-o", out],
            out, "codebooks_pattern.modeling")
    wide = work / "t5_wide"
    T5EncoderModel(t5_config(d_model=24)).save_pretrained(wide)
    refused(["to-transformers", mono, "-o", out, "--text-encoder", wide, "--audio-encoder", enc], out, "d_model = 24")
    # Not a MusicGen language model: an EnCodec folder's weights, a plain state dict.
    refused(["to-transformers", os.path.join(enc, "model.safetensors"), "-o", out], out, "xp.cfg")
    # (An EnCodec folder is from-transformers' other input: tests/e2e/test_encodec_transformers.py.)
    # A tensor whose shape disagrees with config.json.
    bad = work / "hf_bad"
    bad.mkdir()
    src = hf_folders["mono"]
    for name in os.listdir(src):
        (bad / name).write_bytes(open(os.path.join(src, name), "rb").read())
    cfg = json.loads((bad / "config.json").read_text())
    cfg["decoder"]["ffn_dim"] = 48
    (bad / "config.json").write_text(json.dumps(cfg))
    refused(["from-transformers", bad, "-o", out, "--compression", "facebook/encodec_32khz"], out,
            "fc1.weight", "[64, 16]", "[48, 16]")
    # A non-stock audio encoder is converted (tests/e2e/test_encodec_transformers.py checks its tensors).
    r = ok("from-transformers", src, "-o", out)
    assert "EnCodec converted from audio_encoder" in r.stderr
    shutil.rmtree(out)
    # An existing output needs --force.
    os.makedirs(out)
    r = run_ckpt("to-transformers", mono, "-o", out)
    assert r.returncode == 2 and "--force" in r.stderr
    os.rmdir(out)


@pytest.mark.parametrize("kind", KINDS)
def test_one_refusal_names_every_size_and_its_edit_converts(kind, work, audiocraft_lms, encoders):
    """An xp.cfg whose sizes are all wrong and a T5 of the wrong width: one refusal names every
    size with the one edit that fixes them, and the option that would still block; passing
    exactly that converts to the same weights as the original checkpoint."""
    t5, enc = encoders
    src = audiocraft_lms[kind]
    wide = work / "t5_wide_once"
    if not wide.exists():
        T5EncoderModel(t5_config(d_model=24)).save_pretrained(wide)
    overrides = ["transformer_lm.dim=32", "transformer_lm.card=64", "transformer_lm.num_layers=3",
                 "transformer_lm.hidden_scale=2"]
    named = ["transformer_lm.dim=16", "transformer_lm.card=32", "transformer_lm.num_layers=2",
             "transformer_lm.hidden_scale=4"]
    if kind == "melody":
        overrides.append("conditioners.self_wav.chroma_stem.n_chroma=24")
        named.append("conditioners.self_wav.chroma_stem.n_chroma=12")
    wrong = edited(work, src, f"sizes_{kind}.bin", *overrides)
    out = str(work / f"sizes_out_{kind}")
    line = refused(["to-transformers", wrong, "-o", out, "--text-encoder", wide, "--audio-encoder", enc], out,
                   "transformer_lm.dim = 32, the weights' 16", "transformer_lm.card = 64, the weights' 32",
                   "no transformer.layers.2", "transformer_lm.hidden_scale = 2, the weights' 4",
                   "then also: ", "d_model = 24")
    marker = f"ckpt edit {wrong} -o OUT "
    assert line.split(marker, 1)[1].split(";")[0].split() == named
    fixed = edited(work, wrong, f"sizes_fixed_{kind}.bin", *named)
    ok("to-transformers", fixed, "-o", out, "--text-encoder", t5, "--audio-encoder", enc)
    ok("to-transformers", src, "-o", work / f"sizes_ref_{kind}", "--text-encoder", t5, "--audio-encoder", enc)
    assert (work / f"sizes_out_{kind}" / "model.safetensors").read_bytes() == \
        (work / f"sizes_ref_{kind}" / "model.safetensors").read_bytes()
    load(kind, out)


def test_force_replaces_the_folder_as_a_whole(work, audiocraft_lms):
    """--force replaces the folder as a whole (FolderOutput::commit exchanges the two
    in one renameat2): the old files are gone, the new ones are a fresh
    conversion's, no temporary folder is left beside it."""
    mono = audiocraft_lms["mono"]
    fresh, out = work / "force_fresh", work / "force_out"
    ok("to-transformers", mono, "-o", fresh)
    out.mkdir()
    (out / "stale.bin").write_bytes(b"old")
    (out / "config.json").write_text("{}")
    ok("to-transformers", mono, "-o", out, "--force")
    assert sorted(os.listdir(out)) == sorted(os.listdir(fresh))
    for name in os.listdir(fresh):
        assert (out / name).read_bytes() == (fresh / name).read_bytes(), name
    assert not [n for n in os.listdir(work) if "ckpt-tmp" in n]
    # Both folders have the mode mkdir gives (mkdtemp's 0700 once hid them from other users).
    mask = os.umask(0)
    os.umask(mask)
    for folder in (fresh, out):
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o777 & ~mask, (folder, oct(os.stat(folder).st_mode))


def test_training_checkpoint_and_bundle_folder_inputs(work, audiocraft_lms):
    """The same model.safetensors from an exported file, the training layout
    (`ckpt wrap`: its best state) and a bundle folder holding state_dict.bin."""
    src = audiocraft_lms["stereo"]
    ok("to-transformers", src, "-o", work / "in_exported")
    ok("wrap", src, "-o", work / "in_training.th")
    ok("to-transformers", work / "in_training.th", "-o", work / "in_training")
    ok("bundle", src, "-o", work / "in_bundle", "--compression", "facebook/encodec_32khz")
    ok("to-transformers", work / "in_bundle", "-o", work / "in_folder")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(os.stat(work / "in_bundle").st_mode) == 0o777 & ~mask  # bundle's folder too
    want = (work / "in_exported" / "model.safetensors").read_bytes()
    assert (work / "in_training" / "model.safetensors").read_bytes() == want
    assert (work / "in_folder" / "model.safetensors").read_bytes() == want
