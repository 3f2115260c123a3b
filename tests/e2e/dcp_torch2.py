"""Checks that need torch 2.x (torch.distributed.checkpoint), run by test_dcp.py as a script under
the torch 2 Python (so they run whichever torch the test suite itself runs under).

  dcp_torch2.py same FILE_A FILE_B       both torch.load equal: keys, order, types, tensors bit for bit
  dcp_torch2.py dcp-equals DIR FILE      dcp.load of DIR (no_dist) into FILE's state dict shapes
                                          gives FILE's values
  dcp_torch2.py dcp-equals-2ranks DIR FILE   the same from two gloo processes on loopback, each loading
                                          its Shard(0) half of every tensor as a DTensor (resharding)
  dcp_torch2.py tamper DIR HOW          rewrites DIR/.metadata of the sharded fixture: HOW is overlap,
                                          gap, escape (a storage path '../...') or dtype (float64)
  dcp_torch2.py globals DIR            the globals torch's DCP load resolves through pickle (JSON)
  dcp_torch2.py make-unsafe DIR WHERE   a folder naming argparse.Namespace in a byte item or as .metadata
Exit 0 when equal; prints the first difference and exits 1 otherwise.
"""

import io
import os
import sys

import torch


def load(path):
    return torch.load(path, map_location="cpu", weights_only=False)


def same(a, b, where="root"):
    if type(a) is not type(b):
        return f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, dict):
        if list(a) != list(b):
            return f"{where}: keys {list(a)} != {list(b)}"
        for k in a:
            d = same(a[k], b[k], f"{where}/{k}")
            if d:
                return d
        return None
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            d = same(x, y, f"{where}/{i}")
            if d:
                return d
        return None
    if isinstance(a, torch.Tensor):
        if (a.dtype, a.shape, a.stride(), a.requires_grad) != (b.dtype, b.shape, b.stride(), b.requires_grad):
            return f"{where}: {a.dtype} {tuple(a.shape)} {a.stride()} != {b.dtype} {tuple(b.shape)} {b.stride()}"
        if a.numel() and not torch.equal(a.contiguous().reshape(-1).view(torch.uint8),
                                         b.contiguous().reshape(-1).view(torch.uint8)):
            return f"{where}: tensor bytes differ"
        return None
    return None if a == b else f"{where}: {a!r} != {b!r}"


def zeros_like_tree(x):
    if isinstance(x, dict):
        return {k: zeros_like_tree(v) for k, v in x.items()}
    if isinstance(x, list):
        return [zeros_like_tree(v) for v in x]
    if isinstance(x, torch.Tensor):
        return torch.zeros_like(x)
    return x


def tamper(folder, how):
    import dataclasses
    import pickle

    from torch.distributed.checkpoint.metadata import ChunkStorageMetadata, MetadataIndex

    path = f"{folder}/.metadata"
    with open(path, "rb") as f:
        md = pickle.load(f)
    fqn = "model.layers.0.weight"
    tsm = md.state_dict_metadata[fqn]
    if how == "overlap":  # the second chunk moved up by a row: rows 4 and 5 twice... and a gap at 9
        old = tsm.chunks[1]
        new = ChunkStorageMetadata(offsets=torch.Size([4, 0]), sizes=old.sizes)
        tsm.chunks[1] = new
        info = md.storage_data.pop(MetadataIndex(fqn, old.offsets))
        md.storage_data[MetadataIndex(fqn, new.offsets, 1)] = info
    elif how == "gap":
        del tsm.chunks[1]
    elif how == "escape":
        for k, v in md.storage_data.items():
            if v.relative_path == "__1_0.distcp":
                md.storage_data[k] = dataclasses.replace(v, relative_path="../__1_0.distcp")
    elif how == "dtype":
        tsm.properties.dtype = torch.float64
    else:
        raise SystemExit(f"unknown tampering {how}")
    with open(path, "wb") as f:
        pickle.dump(md, f)


def _two_rank_worker(rank, folder, path, port, failures):
    import os

    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.tensor import DeviceMesh, Replicate, Shard, distribute_tensor

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    mesh = DeviceMesh("cpu", [0, 1])
    want = load(path)

    def shard(x):
        if isinstance(x, dict):
            return {k: shard(v) for k, v in x.items()}
        if isinstance(x, list):
            return [shard(v) for v in x]
        if isinstance(x, torch.Tensor):
            return distribute_tensor(torch.zeros_like(x), mesh, [Shard(0)] if x.dim() else [Replicate()])
        return x

    def full(x):
        if isinstance(x, dict):
            return {k: full(v) for k, v in x.items()}
        if isinstance(x, list):
            return [full(v) for v in x]
        if hasattr(x, "full_tensor"):
            return x.full_tensor()
        return x

    got = shard(want)
    dcp.load(got, checkpoint_id=folder)
    diff = same(full(got), want)
    dist.barrier()
    dist.destroy_process_group()
    if diff:
        raise SystemExit(f"rank {rank}: {diff}")


def recorded_globals(folder):
    """The globals torch's own DCP load resolves through pickle: `.metadata`
    (FileSystemReader.read_metadata: pickle.load) and the byte items
    (torch.load(weights_only=False)), recorded while dcp_to_torch_save reads
    the folder. Test folders only: the classes are resolved for real."""
    import json
    import pickle
    import tempfile
    import types

    import torch.distributed.checkpoint.filesystem as fs
    import torch.serialization as ser
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    seen = set()

    class Recording(pickle.Unpickler):
        def find_class(self, module, name):
            seen.add((module, name))
            return super().find_class(module, name)

    mod = types.ModuleType("recording_pickle")
    for k in dir(pickle):
        if not k.startswith("__"):
            setattr(mod, k, getattr(pickle, k))
    mod.Unpickler = Recording
    mod.load = lambda f, **kw: Recording(f, **kw).load()
    mod.loads = lambda b, **kw: Recording(io.BytesIO(b), **kw).load()
    orig_fs, orig_ser = fs.pickle, ser.pickle
    fs.pickle, ser.pickle = mod, mod
    error = None
    try:
        with tempfile.TemporaryDirectory() as d:
            dcp_to_torch_save(folder, os.path.join(d, "out.pt"))
    except BaseException as e:  # noqa: BLE001 - DCP's CheckpointException is no Exception;
        if isinstance(e, (KeyboardInterrupt, SystemExit)):  # what was resolved before it still counts
            raise
        error = type(e).__name__
    finally:
        fs.pickle, ser.pickle = orig_fs, orig_ser
    print(json.dumps({"globals": sorted(seen), "error": error}))


def make_unsafe(folder, where):
    """A DCP folder naming argparse.Namespace (harmless, but on no allowlist):
    in a byte item, or as the whole `.metadata` pickle."""
    import argparse
    import pickle

    import torch.distributed.checkpoint as dcp

    state = {"w": torch.ones(2)}
    if where == "byte-item":
        state["args"] = argparse.Namespace(lr=0.1)
    dcp.save(state, checkpoint_id=folder, no_dist=True)
    if where == "metadata":
        with open(os.path.join(folder, ".metadata"), "wb") as f:
            pickle.dump(argparse.Namespace(lr=0.1), f, protocol=2)


def main():
    cmd = sys.argv[1]
    if cmd == "globals":
        recorded_globals(sys.argv[2])
        return
    if cmd == "make-unsafe":
        make_unsafe(sys.argv[2], sys.argv[3])
        return
    if cmd == "same":
        diff = same(load(sys.argv[2]), load(sys.argv[3]))
    elif cmd == "dcp-equals":
        import torch.distributed.checkpoint as dcp

        want = load(sys.argv[3])
        got = zeros_like_tree(want)
        dcp.load(got, checkpoint_id=sys.argv[2], no_dist=True)
        diff = same(got, want)
    elif cmd == "dcp-equals-2ranks":
        import socket

        import torch.multiprocessing as mp

        # A worker killed by a signal (gloo's rendezvous aborting when the
        # free port just picked is taken, or times out on a loaded machine)
        # is torch's process group failing, not a verdict on the folder: try
        # again on a fresh port. A mismatch raises in the worker and is final.
        for attempt in range(3):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            try:
                mp.start_processes(_two_rank_worker, args=(sys.argv[2], sys.argv[3], port, None), nprocs=2,
                                   join=True, start_method="spawn")
                break
            except mp.ProcessExitedException:
                if attempt == 2:
                    raise
        diff = None
    elif cmd == "tamper":
        tamper(sys.argv[2], sys.argv[3])
        diff = None
    else:
        raise SystemExit(f"unknown command {cmd}")
    if diff:
        print(diff)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
