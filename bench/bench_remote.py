#!/usr/bin/python3
"""Remote inputs (docs/REMOTE.md): requests, bytes and time of ckpt reading bench's 1.68 GB
MusicGen-small-sized checkpoint over HTTP, served by loopback nginx, beside picklescan's URL scan
and huggingface_hub's get_safetensors_metadata.

    /usr/bin/python3 bench/bench_remote.py [--ckpt build/ckpt] [--file bench/out/musicgen_small.th]
        [--peers-venv DIR] [--latency-ms 50] [--reps 5]

- info, scan, cfg, show NAME: requests and bytes sent (headers included) from nginx's access log
  ($bytes_sent), wall time; CKPT_NO_CACHE=1.
- The same info through a delaying TCP proxy adding --latency-ms of round trip (half each way;
  netem in a network namespace is not available on every machine, the proxy is).
- picklescan --url on the same nginx URL, and huggingface_hub's get_safetensors_metadata on a
  .safetensors file of the same model served by the Hub stand-in (tests/e2e/remote_servers.py),
  when --peers-venv has them (pip install picklescan==1.0.5 huggingface_hub==0.26.2); beside
  them ckpt on the same URLs.
"""

import argparse
import json
import mmap
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))
sys.path.insert(0, HERE)

from remote_servers import HubStandIn, start_nginx  # noqa: E402


def log_lines(path, uri):
    with open(path) as f:
        return [ln.split() for ln in f if ln.split()[1:2] == [uri]]


def delaying_proxy(target_port, one_way_s):
    """127.0.0.1:P forwarding to target_port, each chunk delayed one_way_s in each direction."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)

    def pipe(src, dst):
        import queue
        q = queue.Queue()

        def writer():
            while True:
                t, data = q.get()
                if data is None:
                    try:
                        dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    return
                d = t - time.monotonic()
                if d > 0:
                    time.sleep(d)
                try:
                    dst.sendall(data)
                except OSError:
                    return
        threading.Thread(target=writer, daemon=True).start()
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            q.put((time.monotonic() + one_way_s, data or None))
            if not data:
                return

    def accept():
        while True:
            c, _ = srv.accept()
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            u = socket.create_connection(("127.0.0.1", target_port))
            u.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=pipe, args=(c, u), daemon=True).start()
            threading.Thread(target=pipe, args=(u, c), daemon=True).start()
    threading.Thread(target=accept, daemon=True).start()
    return srv.getsockname()[1]


def timed(cmd, env=None, reps=1):
    times = []
    for _ in range(reps):
        t = time.monotonic()
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        times.append(time.monotonic() - t)
        if r.returncode not in (0, 1) and "picklescan" not in cmd[0]:
            raise SystemExit(f"{cmd}: exit {r.returncode}: {r.stderr.strip()}")
    return statistics.median(times), r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default=os.path.join(REPO, "build", "ckpt"))
    ap.add_argument("--file", default=os.path.join(HERE, "out", "musicgen_small.th"))
    ap.add_argument("--peers-venv", default=os.environ.get("CKPT_REMOTE_PEERS_VENV", "/tmp/venv-remote-peers"))
    ap.add_argument("--latency-ms", type=float, default=50)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    ckpt = os.path.abspath(a.ckpt)
    if not os.path.exists(a.file):
        import bench
        os.makedirs(os.path.dirname(a.file), exist_ok=True)
        bench.generate(a.file, False)
    root, name = os.path.dirname(os.path.abspath(a.file)), os.path.basename(a.file)
    work = os.path.join("/tmp", f"ckpt-bench-remote-{os.getpid()}")
    proc, url, https_url, ca, log = start_nginx(root, work, tls=True)
    env = dict(os.environ, CKPT_NO_CACHE="1")
    env.pop("CKPT_HTTP_TRACE", None)
    file_url = f"{url}/{name}"
    size = os.path.getsize(a.file)
    rows = []
    try:
        tensors = json.loads(subprocess.run([ckpt, "tensors", a.file, "--json"], capture_output=True,
                                            text=True, check=True).stdout)
        tensors = tensors["tensors"] if isinstance(tensors, dict) else tensors
        big = max(tensors, key=lambda t: t.get("bytes", t.get("nbytes", 0)))
        tname = big["name"]
        tbytes = big.get("bytes", big.get("nbytes"))
        print(f"file: {a.file} ({size / 1e9:.2f} GB) served by nginx at {file_url}")
        print(f"{'operation':<34}{'requests':>9}{'bytes':>12}{'time':>10}  limit")
        for op, limit in ((["info"], "<= 4 requests, <= 256 KiB"), (["scan"], "<= 4 requests, <= 256 KiB"),
                          (["cfg"], "<= 4 requests, <= 256 KiB"),
                          (["show", tname, "--head", "4"], "4 values of the largest tensor"),
                          (["show", tname, "--head", "0"], f"<= {tbytes} + 64 KiB (tensor {tbytes} B) + the info bytes")):
            open(log, "w").close()
            t, _ = timed([ckpt, op[0], file_url, *op[1:]], env, reps=1)
            time.sleep(0.1)
            lines = log_lines(log, "/" + name)
            sent = sum(int(ln[-1]) for ln in lines)
            label = " ".join(["ckpt", op[0]] + (["NAME"] + op[2:] if op[0] == "show" else []))
            rows.append((label, len(lines), sent, t))
            print(f"{label:<34}{len(lines):>9}{sent:>12}{t:>9.3f}s  {limit}")
        port = delaying_proxy(int(url.rsplit(":", 1)[1]), a.latency_ms / 2000)
        slow = f"http://127.0.0.1:{port}/{name}"
        t, _ = timed([ckpt, "info", slow], env, reps=a.reps)
        print(f"{'ckpt info, +%g ms RTT (median of %d)' % (a.latency_ms, a.reps):<34}{'':>9}{'':>12}{t:>9.3f}s  <= 0.5 s")
        t, _ = timed([ckpt, "scan", slow], env, reps=a.reps)
        print(f"{'ckpt scan, +%g ms RTT (median of %d)' % (a.latency_ms, a.reps):<34}{'':>9}{'':>12}{t:>9.3f}s")

        peers = os.path.join(a.peers_venv, "bin", "python")
        if os.path.exists(os.path.join(a.peers_venv, "bin", "picklescan")):
            # picklescan's --url speaks HTTPS only: nginx's HTTPS server, the CA made for it
            penv = dict(env, SSL_CERT_FILE=ca, CKPT_CA_BUNDLE=ca)
            for label, cmd in (("picklescan --url (https)", [os.path.join(a.peers_venv, "bin", "picklescan"), "--url",
                                                             f"{https_url}/{name}"]),
                               ("ckpt scan (same https URL)", [ckpt, "scan", f"{https_url}/{name}"])):
                open(log, "w").close()
                t, r = timed(cmd, penv)
                time.sleep(0.1)
                lines = log_lines(log, "/" + name)
                print(f"{label:<34}{len(lines):>9}{sum(int(ln[-1]) for ln in lines):>12}{t:>9.3f}s"
                      f"  exit {r.returncode}")
        else:
            print(f"picklescan: not in {a.peers_venv} (pip install picklescan==1.0.5)")
        if os.path.exists(peers) and subprocess.run([peers, "-c", "import huggingface_hub"]).returncode == 0:
            st = os.path.join(root, "musicgen_small.safetensors")
            if not os.path.exists(st):
                subprocess.run([ckpt, "safetensors", a.file, "-o", st], check=True, capture_output=True)
            with open(st, "rb") as f:
                mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                hub = HubStandIn({"org/musicgen": {"model.safetensors": mm}})
                import remote_servers
                remote_servers._sha(mm)  # the stand-in's ETag, computed before any timing
                henv = dict(env, HF_ENDPOINT=hub.url, HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_OFFLINE="0")
                code = ("import time,sys; from huggingface_hub import get_safetensors_metadata as g; t=time.monotonic();"
                        "m=g('org/musicgen'); print(len(m.weight_map), time.monotonic()-t)")
                for label, cmd in (("huggingface_hub get_safetensors_metadata", [peers, "-c", code]),
                                   ("ckpt info (same safetensors, hf://)", [ckpt, "info", "hf://org/musicgen/model.safetensors"]),
                                   ("ckpt tensors (same, hf://)", [ckpt, "tensors", "hf://org/musicgen/model.safetensors"])):
                    hub.log.clear()
                    hub.hub.bytes_sent = hub.cdn.bytes_sent = 0
                    t, r = timed(cmd, henv)
                    if "huggingface_hub" in label:
                        print("  get_safetensors_metadata:", (r.stdout.strip() or r.stderr.strip()[-300:]))
                    print(f"{label:<34}{len(hub.log):>9}{hub.hub.bytes_sent + hub.cdn.bytes_sent:>12}{t:>9.3f}s"
                          "  (requests to Hub + CDN; body bytes)")
                hub.close()
                mm.close()
        else:
            print(f"huggingface_hub: not in {a.peers_venv} (pip install huggingface_hub==0.26.2)")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
