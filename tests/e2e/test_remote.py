"""Remote inputs (docs/REMOTE.md): https://, http:// and hf:// read by HTTP range requests.

Servers on loopback only, started and stopped here: a Hub stand-in on 127.0.0.1 with its CDN
on 127.0.0.2 (tests/e2e/remote_servers.py), hostile servers, and Debian's nginx (HTTP, and
HTTPS with a CA made here). Every remote answer must equal the local answer for the same file.
"""

import os
import shutil
import subprocess
import time

import pytest

from conftest import run_ckpt  # noqa: F401
from ckpt_testlib import ckpt_bin
from remote_servers import COMMIT, GOOD_TOKEN, HostileServer, HubStandIn, start_nginx

# Fixtures read remotely: both zip dialects, legacy files (one pickle and five), an exported one.
FILES = ["checkpoint.th", "checkpoint_nostruct.th", "legacy.pt", "legacy_p4.pt",
         "checkpoint_legacy_p4.th", "state_dict.bin", "dtypes.pt", "mbd.th"]
TENSOR = {"checkpoint.th": None}


def ckpt_env(extra=None, tmp=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "CKPT_HTTP", "HUGGING")) and k not in ("http_proxy", "https_proxy")}
    env["HOME"] = str(tmp) if tmp else "/nonexistent"
    env["CKPT_HTTP_TIMEOUT"] = "3"
    env["CKPT_HTTP_BACKOFF_MS"] = "20"
    env["CKPT_NO_CACHE"] = "1"
    env.update(extra or {})
    return env


def run(args, env, timeout=60):
    return subprocess.run([ckpt_bin(), *[str(a) for a in args]], capture_output=True, text=True,
                          timeout=timeout, env=env, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def files(fixtures_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("remote_root")
    for f in FILES:
        shutil.copy(fixtures_dir / f, root / f)
    # a safetensors file of the same state dict
    r = subprocess.run([ckpt_bin(), "safetensors", str(root / "state_dict.bin"), "-o",
                        str(root / "model.safetensors")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return root


@pytest.fixture(scope="module")
def hub(files):
    data = {f: (files / f).read_bytes() for f in FILES + ["model.safetensors"]}
    data["config.json"] = b'{"a": 1}'
    h = HubStandIn({"org/repo": data, "gated/repo": {"checkpoint.th": data["checkpoint.th"]}},
                   datasets={"org/data": {"sub/dir/checkpoint.th": data["checkpoint.th"]}})
    yield h
    h.close()


def same_as_local(remote_args, local_args, env, remote_name, local_name):
    r = run(remote_args, env)
    loc = run(local_args, ckpt_env())
    assert r.returncode == loc.returncode, (r.stderr, loc.stderr)
    assert r.stdout.replace(remote_name, "FILE").replace(local_name, "FILE") == loc.stdout.replace(local_name, "FILE")
    return r


def first_tensor(path):
    r = run(["tensors", path, "--json"], ckpt_env())
    import json
    if r.returncode != 0 or not r.stdout.strip():
        return None
    rows = json.loads(r.stdout)
    rows = rows["tensors"] if isinstance(rows, dict) else rows
    return rows[0]["name"]


COMMANDS = [["info"], ["ls"], ["tensors"], ["scan"], ["verify"], ["stats"], ["scan", "--json"]]


@pytest.mark.parametrize("name", FILES + ["model.safetensors"])
def test_hub_answers_equal_local(hub, files, name):
    env = ckpt_env({"HF_ENDPOINT": hub.url})
    url = f"hf://org/repo/{name}"
    for cmd in COMMANDS:
        if name.endswith(".safetensors") and cmd[0] in ("scan",):
            continue
        same_as_local([cmd[0], url, *cmd[1:]], [cmd[0], files / name, *cmd[1:]], env, url, str(files / name))
    if name.endswith((".th",)) and "legacy" not in name:
        same_as_local(["cfg", url], ["cfg", files / name], env, url, str(files / name))
    t = first_tensor(str(files / name))
    if t:
        same_as_local(["show", url, t], ["show", files / name, t], env, url, str(files / name))
    same_as_local(["diff", url, files / name], ["diff", files / name, files / name], env, url, str(files / name))


def test_hub_redirects_token_and_revision(hub, files):
    hub.log.clear()
    env = ckpt_env({"HF_ENDPOINT": hub.url, "HF_TOKEN": GOOD_TOKEN})
    r = run(["info", "hf://org/repo/checkpoint.th"], env)
    assert r.returncode == 0, r.stderr
    # The token went to the Hub host, never to the CDN (which answers 400 to it anyway).
    assert any(s == "hub" and h.get("Authorization") == "Bearer " + GOOD_TOKEN for s, _, _, h in hub.log)
    assert not any(s == "cdn" and "Authorization" in h for s, _, _, h in hub.log)
    assert all(m == "GET" for _, m, _, _ in hub.log)  # never HEAD
    assert all("Range" in h for s, _, _, h in hub.log)
    # one redirect chain, then ranges straight at the CDN
    assert sum(1 for s, _, p, _ in hub.log if "/resolve/" in p) == 1
    assert len(hub.log) <= 8


def test_hub_revision_syntax_and_datasets(hub, files):
    env = ckpt_env({"HF_ENDPOINT": hub.url})
    local = run(["info", files / "checkpoint.th"], ckpt_env()).stdout
    for url in [f"hf://org/repo/checkpoint.th@{COMMIT}", f"hf://org/repo@{COMMIT}/checkpoint.th",
                "hf://datasets/org/data/sub/dir/checkpoint.th", f"{hub.url}/org/repo/resolve/main/checkpoint.th"]:
        r = run(["info", url], env)
        assert r.returncode == 0, (url, r.stderr)
        assert r.stdout.replace(url, "F") == local.replace(str(files / "checkpoint.th"), "F")


def test_hub_errors_one_line(hub, tmp_path):
    env = ckpt_env({"HF_ENDPOINT": hub.url})
    cases = [("hf://gated/repo/checkpoint.th", "gated"),
             ("hf://org/repo/nope.th", "no such file"),
             ("hf://org/repo/checkpoint.th@v9", "no such revision"),
             ("hf://org/missing/checkpoint.th", "private"),
             ("hf://onlyorg", "ORG/REPO")]
    for url, words in cases:
        r = run(["info", url], env)
        assert r.returncode == 2, (url, r.stdout)
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("ckpt: error: "), r.stderr
        assert words in r.stderr, r.stderr
    # wrong token: refused and said so
    r = run(["info", "hf://gated/repo/checkpoint.th", "--token", "hf_bad"], env)
    assert r.returncode == 2 and "token" in r.stderr
    # --token, HF_TOKEN and the token file each give access
    assert run(["info", "hf://gated/repo/checkpoint.th", "--token", GOOD_TOKEN], env).returncode == 0
    assert run(["scan", "hf://gated/repo/checkpoint.th"], ckpt_env({"HF_ENDPOINT": hub.url, "HF_TOKEN": GOOD_TOKEN})).returncode == 0
    (tmp_path / ".cache" / "huggingface").mkdir(parents=True)
    (tmp_path / ".cache" / "huggingface" / "token").write_text(GOOD_TOKEN + "\n")
    assert run(["info", "hf://gated/repo/checkpoint.th"], ckpt_env({"HF_ENDPOINT": hub.url}, tmp_path)).returncode == 0


def test_small_file_served_by_hub_and_writes_refused(hub, files, tmp_path):
    env = ckpt_env({"HF_ENDPOINT": hub.url})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    r = run(["export", "hf://org/repo/checkpoint.th", "-o", tmp_path / "a" / "out.bin"], env)
    assert r.returncode == 0, r.stderr  # a remote input of a writing command
    loc = run(["export", files / "checkpoint.th", "-o", tmp_path / "b" / "out.bin"], ckpt_env())
    assert loc.returncode == 0
    assert (tmp_path / "a" / "out.bin").read_bytes() == (tmp_path / "b" / "out.bin").read_bytes()
    r = run(["rewrite", files / "checkpoint.th", "-o", hub.url + "/x.th"], env)
    assert r.returncode == 2 and "local output" in r.stderr


@pytest.fixture(scope="module")
def hostile(files):
    h = HostileServer((files / "checkpoint.th").read_bytes())
    yield h
    h.close()


@pytest.mark.parametrize("kind,words", [
    ("wrong-range", "wrong Content-Range"),
    ("extra-bytes", "more bytes than"),
    ("no-range", "does not support range requests"),
    ("loop", "redirect loop"),
    ("file-redirect", "only http and https"),
    ("gopher-redirect", "only http and https"),
    ("drip", "timed out"),
    ("huge-headers", "headers"),
    ("always-503", "503"),
    ("forbidden", "403"),
    ("changing", "changed while being read"),
])
def test_hostile_servers(hostile, kind, words):
    start = time.monotonic()
    r = run(["info", f"{hostile.url}/{kind}/checkpoint.th"], ckpt_env({"CKPT_HTTP_TRIES": "2"}), timeout=60)
    took = time.monotonic() - start
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith("ckpt: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert words in r.stderr, r.stderr
    assert took < 20, took


def test_retry_after_503(hostile, files):
    r = run(["info", f"{hostile.url}/flaky/checkpoint.th"], ckpt_env())
    assert r.returncode == 0, r.stderr
    loc = run(["info", files / "checkpoint.th"], ckpt_env())
    assert r.stdout.split("\n", 1)[1] == loc.stdout.split("\n", 1)[1]


@pytest.fixture(scope="module")
def nginx(files, tmp_path_factory):
    if not shutil.which("nginx"):
        pytest.skip("nginx not installed (scripts/lib.sh installs nginx-light)")
    proc, http_url, https_url, ca, log = start_nginx(files, str(tmp_path_factory.mktemp("nginx")), tls=True)
    yield http_url, https_url, ca, log
    proc.terminate()
    proc.wait(10)


def test_nginx_http_and_https(nginx, files):
    http_url, https_url, ca, log = nginx
    env = ckpt_env({"CKPT_CA_BUNDLE": ca})
    for base in (http_url, https_url):
        for name in ("checkpoint.th", "legacy_p4.pt", "model.safetensors"):
            url = f"{base}/{name}"
            for cmd in (["info"], ["tensors"], ["scan"] if "safetensors" not in name else ["ls"]):
                same_as_local([cmd[0], url], [cmd[0], files / name], env, url, str(files / name))
    # without the test CA the certificate is not trusted: one line, exit 2
    r = run(["info", f"{https_url}/checkpoint.th"], ckpt_env())
    assert r.returncode == 2 and "TLS" in r.stderr, r.stderr
    r = run(["info", f"{http_url}/missing.th"], env)
    assert r.returncode == 2 and "404" in r.stderr


def test_nginx_info_reads_only_the_directory_and_pickle(nginx, files):
    http_url, _, _, log = nginx
    open(log, "w").close()
    r = run(["info", f"{http_url}/checkpoint.th"], ckpt_env())
    assert r.returncode == 0, r.stderr
    time.sleep(0.2)
    lines = [ln.split() for ln in open(log) if "/checkpoint.th" in ln]
    assert 1 <= len(lines) <= 4, lines
    sent = sum(int(ln[-1]) for ln in lines)
    assert sent <= 256 * 1024, sent


def test_disk_cache_rereads_nothing_fetched(nginx, files, tmp_path):
    http_url, _, _, _ = nginx
    url = f"{http_url}/checkpoint.th"
    env = ckpt_env({"CKPT_HTTP_TRACE": "1", "CKPT_CACHE_DIR": str(tmp_path / "cache")})
    del env["CKPT_NO_CACHE"]
    t = first_tensor(str(files / "checkpoint.th"))

    def requests(*args, extra=None):
        r = run([*args], dict(env, **(extra or {})))
        assert r.returncode == 0, r.stderr
        return [ln for ln in r.stderr.splitlines() if ln.startswith("ckpt: http: GET")]

    first = requests("show", url, t, "--head", "0")
    assert len(first) >= 2
    again = requests("show", url, t, "--head", "0")
    assert len(again) == 1 and "bytes=0-" in again[0]  # the probe that checks the ETag, nothing else
    assert requests("info", url)[1:] == []
    assert any((tmp_path / "cache").iterdir())
    assert len(requests("info", url, "--no-cache")) >= 2
    assert len(requests("info", url, extra={"CKPT_NO_CACHE": "1"})) >= 2


def test_disk_cache_size_limit(nginx, files, tmp_path):
    """CKPT_CACHE_MAX bounds the on-disk cache: least recently used ranges go first."""
    http_url, _, _, _ = nginx
    env = ckpt_env({"CKPT_HTTP_TRACE": "1"})
    del env["CKPT_NO_CACHE"]

    def cached(d):
        return sum(p.stat().st_size for p in d.rglob("*") if p.is_file())

    def requests(name, cache, limit):
        r = run(["info", f"{http_url}/{name}"], dict(env, CKPT_CACHE_DIR=str(cache), CKPT_CACHE_MAX=limit))
        assert r.returncode == 0, r.stderr
        return [ln for ln in r.stderr.splitlines() if ln.startswith("ckpt: http: GET")]

    names = ["checkpoint.th", "checkpoint_nostruct.th"]
    big, small = tmp_path / "big", tmp_path / "small"
    for name in names:  # no limit: everything fetched stays
        requests(name, big, "0")
    full = cached(big)
    assert len(os.listdir(big)) == 2 and all(cached(big / d) < full * 3 // 4 * 7 // 8 for d in os.listdir(big))
    limit = str(full * 3 // 4)  # room for one file's ranges, not both
    for name in names:
        requests(name, small, limit)
        assert cached(small) <= int(limit)
    assert len(os.listdir(small)) == 1  # the older file's ranges were removed
    assert len(requests(names[-1], small, limit)) == 1  # the newer kept: only the probe that checks the ETag
    assert len(requests(names[0], small, limit)) > 1  # the older fetched again
    r = run(["info", f"{http_url}/checkpoint.th"], dict(env, CKPT_CACHE_DIR=str(small), CKPT_CACHE_MAX="lots"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr  # said before any request
    assert r.stderr.startswith("ckpt: error: ") and "CKPT_CACHE_MAX" in r.stderr, r.stderr
