#!/usr/bin/python3
"""ckpt to-transformers / from-transformers against cp + sync of the output and
against the Python route through transformers, on bench.py's MusicGen-small-sized
checkpoint (1.68 GB fp32, the real xp.cfg, the 300 tensors under their real names).

    /usr/bin/python3 bench/bench_transformers.py [--reps 3] [--ckpt build/ckpt] [--torch2-python PY]

Debian's python generates the checkpoint (bench.generate, reused from bench.py);
the transformers rows run in the torch 2.x venv's python (transformers pinned in
tests/requirements-torch2.txt). Each operation runs --reps times as a fresh process;
the table gives median wall time, spread, the ratio to cp + sync of the same output,
and the largest peak RSS (GNU time's %M). The machine this runs on may be shared and
noisy: read the medians, not single runs.

Rows:
- ckpt to-transformers FILE -o DIR (decoder-only: no T5 / EnCodec folders offline)
- cp + sync of DIR/model.safetensors (ckpt fsyncs its outputs)
- transformers' route: torch.load(mmap) of the best state, the converter's renames and
  q/k/v split (convert_musicgen_transformers.py's rename_state_dict), MusicgenForCausalLM
  built from the config, load_state_dict, save_pretrained (what the converter does after
  AudioCraft has loaded the model)
- ckpt from-transformers DIR -o OUT; cp + sync of OUT/state_dict.bin
- the Python route back (no converter exists): MusicgenForCausalLM.from_pretrained,
  torch.cat of q/k/v, torch.save
"""

import argparse
import os
import shutil
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402

TO_HF = r"""
import json, sys, torch
from transformers import MusicgenDecoderConfig, MusicgenForCausalLM
pkg = torch.load(sys.argv[1], map_location="cpu", mmap=True, weights_only=False)
sd = pkg["best_state"]["model"]
H = 1024
out = {}
for k, v in sd.items():
    n = k
    for a, b in [("emb", "model.decoder.embed_tokens"), ("transformer", "model.decoder"),
                 ("cross_attention", "encoder_attn"), ("linear1", "fc1"), ("linear2", "fc2"),
                 ("norm1", "self_attn_layer_norm"), ("norm_cross", "encoder_attn_layer_norm"),
                 ("norm2", "final_layer_norm"), ("out_norm", "model.decoder.layer_norm"), ("linears", "lm_heads")]:
        n = n.replace(a, b) if a in n else n
    if "in_proj_weight" in n:
        out[n.replace("in_proj_weight", "q_proj.weight")] = v[:H]
        out[n.replace("in_proj_weight", "k_proj.weight")] = v[H:2 * H]
        out[n.replace("in_proj_weight", "v_proj.weight")] = v[-H:]
    elif "condition_provider" not in n:
        out[n] = v
cfg = MusicgenDecoderConfig(hidden_size=1024, ffn_dim=4096, num_hidden_layers=24, num_attention_heads=16,
                            tie_word_embeddings=False)
model = MusicgenForCausalLM(cfg)
missing, unexpected = model.load_state_dict(out, strict=False)
assert not unexpected and all("embed_positions" in m for m in missing), (missing, unexpected)
model.save_pretrained(sys.argv[2])
"""

FROM_HF = r"""
import sys, torch
from transformers import MusicgenForCausalLM
model = MusicgenForCausalLM.from_pretrained(sys.argv[1])
sd = model.state_dict()
out = {}
for k, v in sd.items():
    if "embed_positions" in k:
        continue
    n = k.replace("model.decoder.embed_tokens", "emb").replace("model.decoder.layer_norm", "out_norm")
    for a, b in [("model.decoder", "transformer"), ("encoder_attn_layer_norm", "norm_cross"),
                 ("encoder_attn", "cross_attention"), ("fc1", "linear1"), ("fc2", "linear2"),
                 ("self_attn_layer_norm", "norm1"), ("final_layer_norm", "norm2"), ("lm_heads", "linears")]:
        n = n.replace(a, b)
    if n.endswith("q_proj.weight"):
        base = k[:-len("q_proj.weight")]
        out[n.replace("q_proj.weight", "in_proj_weight")] = torch.cat(
            [sd[base + "q_proj.weight"], sd[base + "k_proj.weight"], sd[base + "v_proj.weight"]])
    elif not (n.endswith("k_proj.weight") or n.endswith("v_proj.weight")):
        out[n] = v
torch.save({"best_state": out, "xp.cfg": "", "version": "1.4.0a2", "exported": True}, sys.argv[2])
"""


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--ckpt", default=os.path.join(bench.REPO, "build", "ckpt"))
    p.add_argument("--torch2-python", default=None)
    args = p.parse_args()
    os.makedirs(bench.OUT, exist_ok=True)
    src = os.path.join(bench.OUT, "musicgen_small.th")
    if not os.path.exists(src):
        print("generating", src, file=sys.stderr)
        bench.generate(src, False)
    py2 = bench.torch2_python(args.torch2_python)
    with open(src, "rb") as f:  # warm the page cache
        while f.read(1 << 24):
            pass

    hf = os.path.join(bench.OUT, "tf_hf")
    ac = os.path.join(bench.OUT, "tf_ac")
    copy = os.path.join(bench.OUT, "tf_copy")

    def clear(*paths):
        def go():
            for q in paths:
                shutil.rmtree(q, ignore_errors=True)
                if os.path.exists(q):
                    os.unlink(q)
        return go

    rows = []
    rows.append(("to-transformers", "ckpt", bench.measure([args.ckpt, "to-transformers", src, "-o", hf, "-q"],
                                                          args.reps, before=clear(hf))))
    ckpt_to = rows[-1][2]
    # Leave one output for the next rows.
    bench.run([args.ckpt, "to-transformers", src, "-o", hf, "-q", "--force"])
    out_st = os.path.join(hf, "model.safetensors")
    rows.append(("to-transformers", "cp + sync of model.safetensors",
                 bench.measure(["sh", "-c", 'cp "$0" "$1" && sync "$1"', out_st, copy], args.reps, copy)))
    cp_to = rows[-1][2]
    if py2:
        t = os.path.join(bench.OUT, "tf_py_hf")
        rows.append(("to-transformers", "python: torch.load(mmap) + rename + save_pretrained",
                     bench.measure([py2, "-c", TO_HF, src, t], args.reps, before=clear(t))))
        clear(t)()
    rows.append(("from-transformers", "ckpt", bench.measure([args.ckpt, "from-transformers", hf, "-o", ac, "-q"],
                                                            args.reps, before=clear(ac))))
    ckpt_from = rows[-1][2]
    bench.run([args.ckpt, "from-transformers", hf, "-o", ac, "-q", "--force"])
    rows.append(("from-transformers", "cp + sync of state_dict.bin",
                 bench.measure(["sh", "-c", 'cp "$0" "$1" && sync "$1"', os.path.join(ac, "state_dict.bin"), copy],
                               args.reps, copy)))
    cp_from = rows[-1][2]
    if py2:
        t = os.path.join(bench.OUT, "tf_py_ac.bin")
        rows.append(("from-transformers", "python: from_pretrained + torch.cat + torch.save",
                     bench.measure([py2, "-c", FROM_HF, hf, t], args.reps, t)))
    # Paired against cp + sync of the same output (A B A B ..., ratio pair by pair: the comparison holds while
    # the shared machine's speed drifts). The references are hard links to one output of each command.
    ref_to, ref_from = os.path.join(bench.OUT, "tf_ref.safetensors"), os.path.join(bench.OUT, "tf_ref.bin")
    clear(ref_to, ref_from)()
    os.link(out_st, ref_to)
    os.link(os.path.join(ac, "state_dict.bin"), ref_from)

    def paired(argv, out_dir, ref):
        ratios = []
        for _ in range(args.reps):
            clear(out_dir)()
            wa, _ = bench.run(argv)
            clear(copy)()
            wb, _ = bench.run(["sh", "-c", 'cp "$0" "$1" && sync "$1"', ref, copy])
            ratios.append(wa / wb)
        return ratios
    pairs = [("from-transformers", paired([args.ckpt, "from-transformers", hf, "-o", ac, "-q"], ac, ref_from)),
             ("to-transformers", paired([args.ckpt, "to-transformers", src, "-o", hf, "-q"], hf, ref_to))]
    clear(hf, ac, copy, ref_to, ref_from)()

    print(f"{os.path.basename(src)}: {os.path.getsize(src) / 1e9:.2f} GB, {args.reps} runs each, "
          f"median (min-max); a shared, noisy machine: medians only\n")
    print("| operation | tool | median | spread (min-max) | x (cp + sync) | peak RSS |")
    print("|---|---|---|---|---|---|")
    for op, tool, m in rows:
        base = cp_to if op == "to-transformers" else cp_from
        print(f"| {op} | {tool} | {bench.fmt_time(m['median'])} | {bench.fmt_time(m['min'])}-"
              f"{bench.fmt_time(m['max'])} | {m['median'] / base['median']:.2f} | {m['rss'] / 2**20:.0f} MiB |")
    print(f"\nckpt to-transformers: {ckpt_to['median'] / cp_to['median']:.2f}x cp + sync, "
          f"peak {ckpt_to['rss'] / 2**20:.0f} MiB; from-transformers: {ckpt_from['median'] / cp_from['median']:.2f}x, "
          f"peak {ckpt_from['rss'] / 2**20:.0f} MiB")
    print(f"\nPaired against cp + sync of the same output ({args.reps} pairs, load {os.getloadavg()[0]:.1f}):\n")
    print("| operation | x (cp + sync), median of the pairs | spread (min-max) |")
    print("|---|---:|---:|")
    for op, ratios in pairs:
        print(f"| {op} | {statistics.median(ratios):.2f} | {min(ratios):.2f} - {max(ratios):.2f} |")


if __name__ == "__main__":
    main()
