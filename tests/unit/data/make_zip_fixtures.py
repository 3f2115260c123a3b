#!/usr/bin/python3
"""Makes the small zip fixtures of the container unit tests.

Run with Debian's python3 (torch 1.13): /usr/bin/python3 tests/unit/data/make_zip_fixtures.py
Outputs sit next to this script and are committed (a few KB in all).
"""
import collections
import os
import zipfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def torch_fixtures():
    # Twelve-plus storages so that record order is lexicographic (data/10 < data/2),
    # an empty tensor (zero-byte record: no descriptor), several dtypes.
    d = collections.OrderedDict()
    d["a"] = torch.arange(5, dtype=torch.float32)
    d["empty"] = torch.zeros(0)
    d["b"] = torch.ones(3, dtype=torch.int64)
    for i in range(12):
        d["w%d" % i] = torch.full((i + 1,), float(i), dtype=torch.float16 if i % 2 else torch.float64)
    torch.save(d, os.path.join(HERE, "torch_small.pt"))
    # A long archive name shifts every header, so padding lengths differ.
    torch.save({"x": torch.arange(7, dtype=torch.int32), "nothing": torch.zeros(0, dtype=torch.uint8)},
               os.path.join(HERE, "a_rather_long_checkpoint_name_for_padding.pt"))
    # A bare empty-storage-free object: just data.pkl and version.
    torch.save({"step": 3}, os.path.join(HERE, "t.pt"))


def deflate_fixture():
    path = os.path.join(HERE, "deflate.zip")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(zipfile.ZipInfo("arch/data.pkl"), b"hello " * 200, compress_type=zipfile.ZIP_DEFLATED)
        z.writestr(zipfile.ZipInfo("arch/data/0"), bytes(range(256)) * 4, compress_type=zipfile.ZIP_STORED)
        z.writestr(zipfile.ZipInfo("arch/empty"), b"", compress_type=zipfile.ZIP_DEFLATED)
        z.writestr(zipfile.ZipInfo("arch/version"), b"3\n", compress_type=zipfile.ZIP_DEFLATED)


if __name__ == "__main__":
    torch_fixtures()
    deflate_fixture()
