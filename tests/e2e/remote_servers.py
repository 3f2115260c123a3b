"""Loopback HTTP servers for the remote-input tests (tests/e2e/test_remote.py, bench/bench_remote.py).

- HubStandIn: a Hugging Face Hub stand-in on one loopback address and its CDN on another
  (127.0.0.1 and 127.0.0.2). /ORG/REPO/resolve/REV/PATH (and /datasets/...) answers 302 to the
  CDN (a relative redirect first to /api/resolve-cache/..., as the Hub does, then an absolute one)
  with X-Repo-Commit, X-Linked-Size, X-Linked-Etag; the token rules (gated/ and private/ repos);
  EntryNotFound, RevisionNotFound, RepoNotFound. The CDN serves ranges of presigned URLs, refuses
  HEAD (signed for GET) and any request carrying Authorization (as S3 does), and logs each request.
- HostileServer: one behaviour per path prefix: wrong Content-Range, more bytes than asked, 200
  with the whole body, redirect loops, redirects to file:// and gopher://, a slow drip, huge
  headers, 503 forever, 503 then success, an ETag that changes.

Only the standard library; every server is a daemon thread stopped by close().
"""

import hashlib
import http.server
import os
import re
import socketserver
import threading
import time
import urllib.parse

COMMIT = "0123456789abcdef0123456789abcdef01234567"
GOOD_TOKEN = "hf_test_good_token"


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def _parse_range(header, size):
    m = re.fullmatch(r"bytes=(\d+)-(\d*)", header or "")
    if not m:
        return None
    a = int(m.group(1))
    b = int(m.group(2)) if m.group(2) else size - 1
    return a, min(b, size - 1)


class _Base(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def send_range(self, data, etag, extra_headers=()):
        """206 of the asked range of data (416 when out of range; 200 without Range)."""
        rng = self.headers.get("Range")
        if rng is None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("ETag", etag)
            self.end_headers()
            self.wfile.write(data)
            return 0, len(data)
        r = _parse_range(rng, len(data))
        if r is None or r[0] >= len(data):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return 0, 0
        a, b = r
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {a}-{b}/{len(data)}")
        self.send_header("Content-Length", str(b - a + 1))
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes")
        for k, v in extra_headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data[a:b + 1])
        self.server.bytes_sent = getattr(self.server, "bytes_sent", 0) + (b - a + 1)
        return a, b - a + 1

    def send_empty(self, status, headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()


_SHA = {}


def _sha(data):
    if id(data) not in _SHA:
        _SHA[id(data)] = (data, hashlib.sha256(data).hexdigest())
    return _SHA[id(data)][1]


def _etag(data):
    return '"' + _sha(data) + '"'


class HubStandIn:
    """The Hub on hub_host, its CDN on cdn_host; files: {"org/repo": {"path": bytes}}."""

    def __init__(self, files, hub_host="127.0.0.1", cdn_host="127.0.0.2", datasets=None):
        self.files = files
        self.datasets = datasets or {}
        self.log = []  # (server, method, path, headers dict)
        self.lock = threading.Lock()
        hub = self

        class CdnHandler(_Base):
            def do_HEAD(self):
                hub._record("cdn", self)
                self.send_empty(403)  # presigned for GET only

            def do_GET(self):
                hub._record("cdn", self)
                u = urllib.parse.urlsplit(self.path)
                q = urllib.parse.parse_qs(u.query)
                if "Authorization" in self.headers or "X-Amz-Signature" not in q:
                    self.send_empty(400)  # S3: one auth mechanism only
                    return
                blob = hub.blobs.get(u.path.rsplit("/", 1)[-1])
                if blob is None:
                    self.send_empty(404)
                    return
                self.send_range(blob, '"cdn-' + _sha(blob)[:32] + '"')

        class HubHandler(_Base):
            def do_HEAD(self):  # huggingface_hub's metadata calls; ckpt never sends HEAD
                self.head_only = True
                self.do_GET()

            def send_range(self, data, etag, extra_headers=()):
                if getattr(self, "head_only", False):
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("ETag", etag)
                    for k, v in extra_headers:
                        self.send_header(k, v)
                    self.end_headers()
                    return 0, 0
                return _Base.send_range(self, data, etag, extra_headers)

            def do_GET(self):
                hub._record("hub", self)
                path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
                if path.startswith("/api/resolve-cache/"):
                    key = path[len("/api/resolve-cache/"):]
                    self.send_empty(302, [("Location", hub.cdn_url + "/blobs/" + key + "?X-Amz-Signature=abc")])
                    return
                m = re.fullmatch(r"/(datasets/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
                if not m:
                    self.send_empty(404)
                    return
                table = hub.datasets if m.group(1) else hub.files
                repo, rev, fpath = m.group(2), m.group(3), m.group(4)
                if repo not in table:
                    self.send_empty(401 if not hub._authorized(self) else 404,
                                    [("X-Error-Code", "RepoNotFound")])
                    return
                if repo.startswith(("gated/", "private/")) and not hub._authorized(self):
                    code = "GatedRepo" if repo.startswith("gated/") else "RepoNotFound"
                    self.send_empty(401, [("X-Error-Code", code)])
                    return
                if rev not in ("main", COMMIT):
                    self.send_empty(404, [("X-Error-Code", "RevisionNotFound")])
                    return
                data = table[repo].get(fpath)
                if data is None:
                    self.send_empty(404, [("X-Error-Code", "EntryNotFound")])
                    return
                common = [("X-Repo-Commit", COMMIT), ("X-Linked-Size", str(len(data))),
                          ("X-Linked-Etag", _etag(data))]
                if fpath.endswith(".json"):  # small files: served by the Hub itself
                    self.send_range(data, _etag(data), [("X-Repo-Commit", COMMIT)])
                    return
                key = _sha(data)
                hub.blobs[key] = data
                # Relative first (as the Hub's resolve-cache redirects are), then to the CDN.
                self.send_empty(302, common + [("ETag", _etag(data)),
                                                ("Location", "/api/resolve-cache/" + key)])

        self.blobs = {}
        self.cdn = _Server((cdn_host, 0), CdnHandler)
        self.hub = _Server((hub_host, 0), HubHandler)
        self.cdn_url = f"http://{cdn_host}:{self.cdn.server_address[1]}"
        self.url = f"http://{hub_host}:{self.hub.server_address[1]}"
        for s in (self.cdn, self.hub):
            threading.Thread(target=s.serve_forever, daemon=True).start()

    def _authorized(self, handler):
        return handler.headers.get("Authorization") == "Bearer " + GOOD_TOKEN

    def _record(self, server, handler):
        with self.lock:
            self.log.append((server, handler.command, handler.path, dict(handler.headers)))

    def close(self):
        for s in (self.hub, self.cdn):
            s.shutdown()
            s.server_close()


class HostileServer:
    """Serves `data` under /<behaviour>/NAME; see the module docstring."""

    def __init__(self, data, host="127.0.0.1"):
        self.data = data
        self.hits = {}
        srv = self

        class Handler(_Base):
            def do_GET(self):
                kind = self.path.strip("/").split("/", 1)[0]
                srv.hits[kind] = srv.hits.get(kind, 0) + 1
                getattr(self, "h_" + kind.replace("-", "_"), self.h_ok)()

            def h_ok(self):
                self.send_range(srv.data, '"e1"')

            def h_wrong_range(self):
                r = _parse_range(self.headers.get("Range"), len(srv.data))
                a, b = r
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {a + 1}-{b + 1}/{len(srv.data)}")
                self.send_header("Content-Length", str(b - a + 1))
                self.end_headers()
                self.wfile.write(srv.data[a:b + 1])

            def h_extra_bytes(self):
                r = _parse_range(self.headers.get("Range"), len(srv.data))
                a, b = r
                body = srv.data[a:b + 1] + b"X" * 100000
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {a}-{b}/{len(srv.data)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def h_no_range(self):
                big = srv.data * 50  # as if a multi-GB file: the client must stop at once
                self.send_response(200)
                self.send_header("Content-Length", str(len(big)))
                self.end_headers()
                try:
                    self.wfile.write(big)
                except OSError:
                    pass

            def h_loop(self):
                self.send_empty(302, [("Location", "/loop2/x")])

            def h_loop2(self):
                self.send_empty(302, [("Location", "/loop/x")])

            def h_file_redirect(self):
                self.send_empty(302, [("Location", "file:///etc/passwd")])

            def h_gopher_redirect(self):
                self.send_empty(301, [("Location", "gopher://127.0.0.1/x")])

            def h_drip(self):
                self.send_response(206)
                self.send_header("Content-Range", f"bytes 0-65535/{len(srv.data)}")
                self.send_header("Content-Length", "65536")
                self.end_headers()
                try:
                    for _ in range(600):
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        time.sleep(0.1)
                except OSError:
                    pass

            def h_huge_headers(self):
                self.send_response(206)
                try:
                    for i in range(20000):
                        self.send_header(f"X-Filler-{i}", "y" * 100)
                    self.end_headers()
                except OSError:
                    pass

            def h_always_503(self):
                self.send_empty(503)

            def h_flaky(self):
                if srv.hits["flaky"] % 2 == 1:
                    self.send_empty(503, [("Retry-After", "0")])
                else:
                    self.send_range(srv.data, '"e1"')

            def h_changing(self):
                self.send_range(srv.data, '"e%d"' % srv.hits["changing"])

            def h_forbidden(self):
                self.send_empty(403)

        self.server = _Server((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def nginx_config(root, port, log, tls_port=None, cert=None, key=None, prefix=None):
    """An nginx.conf serving `root` (Range support is nginx's own) on 127.0.0.1."""
    tls = ""
    if tls_port:
        tls = f"""
    server {{
      listen 127.0.0.1:{tls_port} ssl;
      ssl_certificate {cert};
      ssl_certificate_key {key};
      root {root};
    }}"""
    return f"""daemon off;
master_process off;
worker_processes 1;
error_log {prefix}/error.log;
pid {prefix}/nginx.pid;
events {{ worker_connections 64; }}
http {{
  access_log {log} combined;
  log_format bytes '$request_method $uri $status $http_range $bytes_sent';
  access_log {log}.bytes bytes;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  keepalive_requests 1000;
  server {{
    listen 127.0.0.1:{port};
    root {root};
  }}{tls}
}}
"""


def free_port(host="127.0.0.1"):
    import socket
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def start_nginx(root, workdir, tls=False):
    """Starts nginx on loopback (HTTP, and HTTPS with a CA it makes when tls); returns
    (process, http_url, https_url or None, ca_file or None, bytes_log_path)."""
    import subprocess
    os.makedirs(workdir, exist_ok=True)
    port = free_port()
    tls_port = cert = key = ca = None
    if tls:
        tls_port = free_port()
        ca_key, ca = os.path.join(workdir, "ca.key"), os.path.join(workdir, "ca.pem")
        key, csr, cert = (os.path.join(workdir, n) for n in ("srv.key", "srv.csr", "srv.pem"))
        ext = os.path.join(workdir, "ext.cnf")
        with open(ext, "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
        run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
            "-days", "2", "-subj", "/CN=ckpt test CA")
        run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
            "-subj", "/CN=127.0.0.1")
        run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
            "-out", cert, "-days", "2", "-extfile", ext)
    log = os.path.join(workdir, "access.log")
    conf = os.path.join(workdir, "nginx.conf")
    with open(conf, "w") as f:
        f.write(nginx_config(os.path.abspath(root), port, log, tls_port, cert, key, workdir))
    proc = subprocess.Popen(["nginx", "-c", conf, "-p", workdir, "-e", os.path.join(workdir, "error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    import socket
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("nginx failed: " + proc.stderr.read().decode())
            time.sleep(0.05)
    https = f"https://127.0.0.1:{tls_port}" if tls else None
    return proc, f"http://127.0.0.1:{port}", https, ca, log + ".bytes"
