"""File sets over HTTP (docs/REMOTE.md): a sharded safetensors index and a DCP folder read from
https://, http:// and hf:// names. A folder cannot be listed over HTTP, so the shard names come
from the index's weight_map and the DCP folder's .metadata, as torch and huggingface_hub derive
them. Every remote answer must equal the local answer for the same files.

Servers on loopback only (tests/e2e/remote_servers.py): Debian's nginx serving the folders, and the
Hub stand-in (Hub on 127.0.0.1, CDN on 127.0.0.2) holding the same files in a repository.
"""

import json
import shutil
import subprocess
import time

import pytest

from ckpt_testlib import ckpt_bin
from remote_servers import COMMIT, HubStandIn, start_nginx
from test_remote import ckpt_env, run, same_as_local

INDEX = "model.safetensors.index.json"


@pytest.fixture(scope="module")
def sets(fixtures_dir, tmp_path_factory):
    """root/shards: state_dict.bin as 2 KB safetensors shards and their index;
    root/dcp: checkpoint.th as a two-rank DCP folder; root/single.pt: checkpoint.th."""
    root = tmp_path_factory.mktemp("remote_sets")
    for args in (["safetensors", fixtures_dir / "state_dict.bin", "-o", root / "shards", "--max-shard-size", "2KB"],
                 ["to-dcp", fixtures_dir / "checkpoint.th", "-o", root / "dcp", "--ranks", "2"]):
        r = subprocess.run([ckpt_bin(), *map(str, args)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    shutil.copy(fixtures_dir / "checkpoint.th", root / "single.pt")
    assert len(list((root / "shards").glob("model-*.safetensors"))) > 3
    assert (root / "dcp" / ".metadata").is_file() and len(list((root / "dcp").glob("*.distcp"))) == 2
    return root


@pytest.fixture(scope="module")
def nginx(sets, tmp_path_factory):
    if not shutil.which("nginx"):
        pytest.skip("nginx not installed (scripts/lib.sh installs nginx-light)")
    proc, http_url, https_url, ca, log = start_nginx(sets, str(tmp_path_factory.mktemp("nginx_sets")), tls=True)
    yield http_url, https_url, ca, log
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def hub(sets):
    files = {str(p.relative_to(sets)): p.read_bytes() for p in sets.rglob("*") if p.is_file()}
    h = HubStandIn({"org/repo": files})
    yield h
    h.close()


def tensor_names(path):
    r = run(["tensors", path, "--json"], ckpt_env())
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    rows = rows["tensors"] if isinstance(rows, dict) else rows
    return [row["name"] for row in rows]


INDEX_COMMANDS = [["info"], ["ls"], ["tensors"], ["verify"], ["stats"], ["scan"], ["info", "--json"],
                  ["tensors", "--json"], ["verify", "--json"], ["scan", "--json"]]
DCP_COMMANDS = [["info"], ["tensors"], ["verify"], ["stats"], ["scan"], ["info", "--json"], ["verify", "--json"],
                ["scan", "--json"]]


def check_index(url, local, env):
    r = run(["scan", local, "--json"], ckpt_env())  # every shard's header checked; no pickle anywhere
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["container"] == "safetensors index" and json.loads(r.stdout)["verdict"] == "safe"
    for cmd in INDEX_COMMANDS:
        same_as_local([cmd[0], url, *cmd[1:]], [cmd[0], local, *cmd[1:]], env, url, str(local))
    names = tensor_names(str(local))
    for name in (names[0], names[-1]):  # tensors in the first and the last shard
        same_as_local(["show", url, name], ["show", local, name], env, url, str(local))
    same_as_local(["diff", url, local], ["diff", local, local], env, url, str(local))


def check_dcp(url, local, env):
    r = run(["scan", local, "--json"], ckpt_env())  # .metadata, then every item slice it names
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["container"] == "dcp" and json.loads(r.stdout)["verdict"] == "safe"
    for cmd in DCP_COMMANDS:
        same_as_local([cmd[0], url, *cmd[1:]], [cmd[0], local, *cmd[1:]], env, url, str(local))
    same_as_local(["diff", url, local], ["diff", local, local], env, url, str(local))


def test_index_and_dcp_over_nginx(nginx, sets):
    http_url, https_url, ca, _ = nginx
    env = ckpt_env({"CKPT_CA_BUNDLE": ca})
    check_index(f"{https_url}/shards/{INDEX}", sets / "shards" / INDEX, env)
    check_index(f"{http_url}/shards/{INDEX}", sets / "shards" / INDEX, env)
    check_dcp(f"{http_url}/dcp", sets / "dcp", env)  # a folder name without a suffix: its .metadata probed
    check_dcp(f"{https_url}/dcp/", sets / "dcp", env)


def test_index_and_dcp_over_the_hub(hub, sets):
    env = ckpt_env({"HF_ENDPOINT": hub.url})
    hub.log.clear()
    check_index(f"hf://org/repo/shards/{INDEX}", sets / "shards" / INDEX, env)
    # The shards were read at the commit the index's first response named (the revision pinned).
    shard_paths = [p for s, _, p, _ in hub.log if s == "hub" and "/resolve/" in p and p.endswith(".safetensors")]
    assert shard_paths and all(f"/resolve/{COMMIT}/" in p for p in shard_paths), shard_paths
    for url in (f"hf://org/repo/shards/{INDEX}@{COMMIT}", f"hf://org/repo@{COMMIT}/shards/{INDEX}"):
        r = run(["tensors", url], env)
        assert r.returncode == 0, r.stderr
    check_dcp("hf://org/repo/dcp", sets / "dcp", env)
    same_as_local(["info", "hf://org/repo/dcp/.metadata"], ["info", sets / "dcp"], env,
                  "hf://org/repo/dcp/.metadata", str(sets / "dcp"))


def test_a_file_without_suffix_is_still_a_file(nginx, sets):
    http_url, _, _, _ = nginx
    local = sets / "single.pt"
    shutil.copy(local, sets / "noext")
    url = f"{http_url}/noext"
    same_as_local(["info", url], ["info", sets / "noext"], ckpt_env(), url, str(sets / "noext"))


def test_missing_shard_is_one_line(nginx, sets, tmp_path):
    http_url, _, _, _ = nginx
    broken = sets / "broken"
    shutil.copytree(sets / "shards", broken)
    victim = sorted(broken.glob("model-*.safetensors"))[1]
    victim.unlink()
    dcp = sets / "dcp_broken"
    shutil.copytree(sets / "dcp", dcp)
    (dcp / "__1_0.distcp").unlink()
    time.sleep(0.05)
    for url, words in ((f"{http_url}/broken/{INDEX}", victim.name), (f"{http_url}/dcp_broken", "__1_0.distcp")):
        r = run(["info", url], ckpt_env())
        assert r.returncode == 2, r.stdout
        assert r.stderr.startswith("ckpt: error: ") and r.stderr.count("\n") == 1, r.stderr
        assert words in r.stderr and "404" in r.stderr, r.stderr
    # scan: a shard that cannot be read is an error naming it, never "safe"
    r = run(["scan", f"{http_url}/broken/{INDEX}"], ckpt_env())
    assert r.returncode == 2 and "safe" not in r.stdout and victim.name in r.stderr, r
    assert r.stderr.startswith("ckpt: error: ") and r.stderr.count("\n") == 1, r.stderr


def test_writing_commands_take_remote_sets(nginx, sets, tmp_path):
    """consolidate of a DCP folder URL and from-safetensors of an index URL write what they write locally."""
    http_url, _, _, _ = nginx
    for cmd, remote, local, out in (("consolidate", f"{http_url}/dcp", sets / "dcp", "c.pt"),
                                    ("from-safetensors", f"{http_url}/shards/{INDEX}", sets / "shards" / INDEX,
                                     "fs.th")):
        (tmp_path / "r").mkdir(exist_ok=True)
        (tmp_path / "l").mkdir(exist_ok=True)
        r = run([cmd, remote, "-o", tmp_path / "r" / out, "-q"], ckpt_env())
        assert r.returncode == 0, r.stderr
        loc = run([cmd, local, "-o", tmp_path / "l" / out, "-q"], ckpt_env())
        assert loc.returncode == 0, loc.stderr
        assert (tmp_path / "r" / out).read_bytes() == (tmp_path / "l" / out).read_bytes()
