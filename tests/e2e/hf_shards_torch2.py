"""Checks of sharded safetensors against huggingface_hub and safetensors, run by
test_safetensors_shards.py under the torch 2 Python (which has both).

  hf_shards_torch2.py check FILE DIR MAX   DIR holds what huggingface_hub's split_torch_state_dict_into_shards
                                           names for FILE's tensors at MAX, each shard byte-equal to
                                           safetensors.torch.save_file's, and the index as huggingface_hub builds it
"""

import json
import os
import sys
import tempfile

import torch
from huggingface_hub import split_torch_state_dict_into_shards
from safetensors.torch import load_file, save_file


def check(path, folder, max_size):
    sd = torch.load(path, map_location="cpu", weights_only=True)
    limit = int(max_size) if max_size.isdigit() else max_size
    split = split_torch_state_dict_into_shards(sd, max_shard_size=limit)
    names = sorted(os.listdir(folder))
    want = sorted(split.filename_to_tensors) + (["model.safetensors.index.json"] if split.is_sharded else [])
    assert names == want, (names, want)
    with tempfile.TemporaryDirectory() as tmp:
        for filename, keys in split.filename_to_tensors.items():
            ref = os.path.join(tmp, filename)
            save_file({k: sd[k].contiguous() for k in keys}, ref, metadata={"format": "pt"})
            with open(ref, "rb") as a, open(os.path.join(folder, filename), "rb") as b:
                assert a.read() == b.read(), f"{filename} differs from safetensors.save_file's"
            got = load_file(os.path.join(folder, filename))
            assert sorted(got) == sorted(keys)
            for k in keys:
                assert torch.equal(got[k], sd[k]), k
    if split.is_sharded:
        with open(os.path.join(folder, "model.safetensors.index.json")) as f:
            text = f.read()
        index = {"metadata": split.metadata, "weight_map": split.tensor_to_filename}
        assert text == json.dumps(index, indent=2), text
    print(len(split.filename_to_tensors))


if __name__ == "__main__":
    if sys.argv[1] != "check":
        raise SystemExit("unknown command")
    check(*sys.argv[2:5])
