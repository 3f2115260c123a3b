"""ckpt.open, ckpt.load and ckpt.scan of remote names (docs/REMOTE.md): https:// (Debian's nginx on
loopback with a CA made here) and hf:// (tests/e2e/remote_servers.py's Hub stand-in, its CDN on
another loopback address). Every answer equals the local one. ckpt.load memory-maps a local
file's storages; a remote file has nothing to map, so its storages are read into memory by range
requests (the same reader as the command's).
"""

import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, needs_omegaconf, needs_torch

import ckpt

E2E = os.path.join(REPO_ROOT, "tests", "e2e")


def ckpt_testlib():
    """tests/e2e's torch helpers: imported by the torch tests only (the numpy-only run has no torch)."""
    sys.path.insert(0, E2E)
    try:
        import ckpt_testlib as lib
    finally:
        sys.path.pop(0)
    return lib


sys.path.insert(0, E2E)
try:
    from remote_servers import start_nginx
finally:
    sys.path.pop(0)

# The Hub stand-in runs in a process of its own: in this one, binding calls that read while
# holding the GIL (keys, get_tensor) would starve its server threads.
HUB_PROCESS = """
import pathlib, sys
sys.path.insert(0, sys.argv[1])
from remote_servers import HubStandIn
root = pathlib.Path(sys.argv[2])
files = {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
h = HubStandIn({"org/repo": files})
print(h.url, flush=True)
sys.stdin.read()
h.close()
"""


class HubProcess:
    def __init__(self, root):
        self.proc = subprocess.Popen([sys.executable, "-c", HUB_PROCESS, os.path.join(REPO_ROOT, "tests", "e2e"),
                                      str(root)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()
        assert self.url.startswith("http://"), "the Hub stand-in did not start"

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

FILES = ["checkpoint.th", "state_dict.bin", "legacy.pt", "dtypes.pt"]
INDEX = "model.safetensors.index.json"


@pytest.fixture(scope="module")
def served(fixtures_dir, tmp_path_factory, ckpt_command):
    root = tmp_path_factory.mktemp("served")
    for f in FILES:
        shutil.copy(os.path.join(fixtures_dir, f), root / f)
    r = subprocess.run([ckpt_command, "safetensors", root / "state_dict.bin", "-o", root / "shards",
                        "--max-shard-size", "4KB"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return root


@pytest.fixture(scope="module")
def hub(served):
    h = HubProcess(served)
    yield h
    h.close()


@pytest.fixture(scope="module")
def nginx(served, tmp_path_factory):
    if not shutil.which("nginx"):
        pytest.skip("nginx not installed (scripts/lib.sh installs nginx-light)")
    proc, _, https_url, ca, _ = start_nginx(served, str(tmp_path_factory.mktemp("nginx")), tls=True)
    yield https_url, ca
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def remote_env(monkeypatch, hub, nginx, tmp_path):
    """The reader's settings for this process: the stand-in's endpoint, the test CA, no disk cache."""
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("CKPT_CA_BUNDLE", nginx[1])
    monkeypatch.setenv("CKPT_NO_CACHE", "1")
    monkeypatch.setenv("CKPT_HTTP_TIMEOUT", "5")
    monkeypatch.setenv("HOME", str(tmp_path))
    for k in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "http_proxy", "https_proxy"):
        monkeypatch.delenv(k, raising=False)
    return {"hf": "hf://org/repo", "https": nginx[0]}


def names(remote_env, name):
    return [f"{remote_env['hf']}/{name}", f"{remote_env['https']}/{name}"]


@pytest.mark.parametrize("name", FILES + [f"shards/{INDEX}"])
def test_open_url_equals_local(remote_env, served, name):
    local = str(served / name)
    with ckpt.open(local) as c:
        keys, rows = c.keys(), [(t.name, t.dtype, t.shape) for t in c.tensors()]
        arrays = {k: c.get_tensor(k) for k in keys}
    for url in names(remote_env, name):
        with ckpt.open(url) as c:
            assert c.keys() == keys
            assert [(t.name, t.dtype, t.shape) for t in c.tensors()] == rows
            for k in keys:
                got = c.get_tensor(k)
                assert got.dtype == arrays[k].dtype and got.shape == arrays[k].shape
                assert got.tobytes() == arrays[k].tobytes(), (url, k)


@pytest.mark.parametrize("name", ["state_dict.bin", "legacy.pt", "dtypes.pt"])
def test_load_url_reads_the_bytes(remote_env, served, name):
    """framework="numpy": no torch needed; every storage read over HTTP equals the local one."""
    local = ckpt.load(str(served / name), framework="numpy")
    for url in names(remote_env, name):
        remote = ckpt.load(url, framework="numpy")
        assert type(remote) is type(local)
        assert_same(local, remote, url)


def assert_same(a, b, where):
    """Equal structure, types and bytes (arrays by dtype, shape and bytes)."""
    assert type(a) is type(b), where
    if hasattr(a, "tobytes") and hasattr(a, "dtype"):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}: {k!r}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert repr(a) == repr(b), where


@needs_torch
@needs_omegaconf
@pytest.mark.parametrize("name", ["checkpoint.th", "legacy.pt"])
def test_load_url_equals_torch_load(remote_env, served, name):
    import torch
    theirs = torch.load(str(served / name), weights_only=False)
    for url in names(remote_env, name):
        ckpt_testlib().assert_same_objects(ckpt.load(url), theirs)


@pytest.mark.parametrize("name", ["checkpoint.th", "legacy.pt", "state_dict.bin", f"shards/{INDEX}"])
def test_scan_url_equals_local(remote_env, served, name):
    local = ckpt.scan(str(served / name)).to_dict()
    for url in names(remote_env, name):
        remote = ckpt.scan(url).to_dict()
        remote["file"] = local["file"]
        assert remote == local, url
    assert local["verdict"] == "safe"


def test_remote_errors_are_one_line(remote_env):
    for url, words in ((f"{remote_env['hf']}/nope.th", "no such file"),
                       (f"{remote_env['https']}/nope.th", "404")):
        for call in (ckpt.open, ckpt.load, ckpt.scan):
            with pytest.raises(ckpt.IoError) as e:
                call(url)
            assert words in str(e.value) and "\n" not in str(e.value), str(e.value)
