"""Real programs on loopback for end-to-end tests: nginx as the origin, leakscope as the proxy,
curl as the phone's client. Certificates and CAs are generated here, at test time."""

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
from pathlib import Path

LEAKSCOPE = os.environ.get("LEAKSCOPE_BIN", str(Path(__file__).resolve().parents[2] / "build/app/leakscope"))
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

# Names the origin answers for; the proxy maps them to 127.0.0.1 with upstream.resolve.
TRUSTED_NAMES = ["api.example.test", "sdk.umeng.com", "bank.example.test"]
UNTRUSTED_NAME = "untrusted.example.test"


# A run stopped from outside (a SIGTERM or SIGHUP, as CI sends when it cancels a job) still
# stops the servers and proxies it started and removes its scratch folders, which hold
# gigabytes of captures after the large-body tests. What registered last is undone first:
# processes before the folders they write into. (ctest's own timeout kills with SIGKILL, which
# nothing can catch.)
_undo_on_signal = []


def undo_on_signal(fn):
    """Registers `fn` to run if the run is stopped by SIGTERM or SIGHUP; returns `fn`."""
    _undo_on_signal.append(fn)
    return fn


def stop_on_signal(proc):
    """Registers a started process to be stopped if the run is stopped; returns it."""
    def stop():
        if proc.poll() is None:
            proc.terminate()  # nginx's master takes its workers down on SIGTERM, not on SIGKILL
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
    undo_on_signal(stop)
    return proc


def _stopped(signum, _frame):
    for fn in reversed(_undo_on_signal):
        try:
            fn()
        except Exception:  # one failed step must not keep the others from running
            pass
    os._exit(128 + signum)


if threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGTERM, _stopped)
    signal.signal(signal.SIGHUP, _stopped)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, timeout=10.0):
    """Readiness check for a server we cannot get a signal from: connect until it accepts."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on port {port} after {timeout}s")
            time.sleep(0.02)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, **kw)


def make_ca(d: Path, name: str):
    key, pem = d / f"{name}.key", d / f"{name}.pem"
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(key), "-out", str(pem), "-days", "2", "-subj", f"/CN={name}",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"])
    return key, pem


def make_leaf(d: Path, name: str, ca_key: Path, ca_pem: Path, dns_names):
    key, csr, pem, ext = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.pem", d / f"{name}.ext"
    run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={dns_names[0]}"])
    ext.write_text("subjectAltName=" + ",".join(f"DNS:{n}" for n in dns_names) +
                   "\nextendedKeyUsage=serverAuth\n")
    run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_pem), "-CAkey", str(ca_key),
         "-CAcreateserial", "-out", str(pem), "-days", "2", "-extfile", str(ext)])
    return key, pem


class Origin:
    """nginx with a TLS port (certificate from a test CA the proxy trusts), a TLS port whose
    certificate comes from a CA nobody trusts, and a plain HTTP port. POST bodies are logged
    as nginx received them, so tests can check they arrived unchanged."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        # nginx workers drop to www-data: they must be able to read the served files.
        for d in (root.parent, root):
            d.chmod(0o755)
        ca_key, self.ca_pem = make_ca(root, "origin-ca")
        self.key, self.pem = make_leaf(root, "origin", ca_key, self.ca_pem, TRUSTED_NAMES)
        bad_ca_key, self.untrusted_ca_pem = make_ca(root, "untrusted-ca")
        self.bad_key, self.bad_pem = make_leaf(root, "untrusted", bad_ca_key, self.untrusted_ca_pem, [UNTRUSTED_NAME])
        self.tls_port, self.bad_port, self.http_port, self.sink_port = (free_port() for _ in range(4))
        www = root / "www"
        www.mkdir(exist_ok=True)
        (www / "index.html").write_text("hello from the origin\n")
        with open(www / "big.bin", "wb") as f:
            f.truncate(100 * 1024 * 1024)
        (root / "logs").mkdir(exist_ok=True)
        conf = root / "nginx.conf"
        conf.write_text(f"""
daemon off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/logs/error.log;
events {{ worker_connections 4096; }}  # a test holds hundreds of tunnels' connections
http {{
  access_log off;
  client_body_temp_path {root}/body;
  proxy_temp_path {root}/proxy;
  fastcgi_temp_path {root}/fastcgi;
  uwsgi_temp_path {root}/uwsgi;
  scgi_temp_path {root}/scgi;
  log_format bodies escape=json '{{"uri":"$request_uri","method":"$request_method","body":"$request_body","encoding":"$http_content_encoding","length":"$content_length","upgrade":"$http_upgrade","connection":"$http_connection","reused":"$ssl_session_reused","status":"$status","conn":"$connection","conn_requests":"$connection_requests","sni":"$ssl_server_name"}}';
  client_max_body_size 200m;
  client_body_buffer_size 16m;
  keepalive_requests 1000;
  server {{
    listen 127.0.0.1:{self.tls_port} ssl;
    listen 127.0.0.1:{self.http_port};
    ssl_certificate {self.pem};
    ssl_certificate_key {self.key};
    root {www};
    location /echo {{
      access_log {root}/logs/bodies.log bodies;
      proxy_pass http://127.0.0.1:{self.sink_port}/sink;
    }}
    location /once {{
      keepalive_timeout 0;  # every request closes its connection: the next one dials again
      access_log {root}/logs/bodies.log bodies;
      proxy_pass http://127.0.0.1:{self.sink_port}/sink;
    }}
    location /small {{
      client_max_body_size 1k;
      proxy_pass http://127.0.0.1:{self.sink_port}/sink;
    }}
  }}
  server {{
    listen 127.0.0.1:{self.sink_port};
    location /sink {{ return 200 "received\\n"; }}
  }}
  server {{
    listen 127.0.0.1:{self.bad_port} ssl;
    ssl_certificate {self.bad_pem};
    ssl_certificate_key {self.bad_key};
    location / {{ return 200 "should never be reached through the proxy\\n"; }}
  }}
}}
""")
        with open(root / "logs/nginx.stderr", "wb") as err:
            self.proc = stop_on_signal(subprocess.Popen([NGINX, "-c", str(conf), "-p", str(root)],
                                                        stdout=subprocess.DEVNULL, stderr=err))
        for port in (self.tls_port, self.bad_port, self.http_port, self.sink_port):
            wait_for_port(port)

    def bodies(self):
        path = self.root / "logs/bodies.log"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_bytes().decode("utf-8", "surrogateescape").splitlines()]

    def logged(self, uri_prefix, count=1, timeout=10.0):
        """The logged requests whose URI starts with `uri_prefix`, once at least `count` are there:
        nginx writes its log line after the response has gone out, so a client can be done first."""
        deadline = time.monotonic() + timeout
        while True:
            found = [b for b in self.bodies() if b["uri"].startswith(uri_prefix)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


class Proxy:
    """leakscope run on a free port with a per-test CA, session folder and config."""

    def __init__(self, root: Path, origin: Origin, extra_config: str = "", device=None, stdin=None,
                 upstream_extra: str = "", allow_private=True):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        device = device or {"imei": ["865432101234564"], "phone_number": ["13812345678"]}
        resolve = ", ".join(f"{n}: 127.0.0.1" for n in TRUSTED_NAMES + [UNTRUSTED_NAME])
        self.config = root / "leakscope.yaml"
        self.config.write_text(f"""
listen: {{address: 127.0.0.1, port: 0}}
control: {{address: 127.0.0.1, port: 0}}
ca: {{dir: ca}}
capture: {{dir: captures}}
upstream:
  extra_ca: [{origin.ca_pem}]
  resolve: {{{resolve}}}
  allow_private: {"true" if allow_private else "false"}
  {upstream_extra}
device: {json.dumps(device)}
{extra_config}
""")
        self.proc = stop_on_signal(subprocess.Popen(
            [LEAKSCOPE, "run", "-c", str(self.config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=stdin if stdin is not None else subprocess.DEVNULL, text=True))
        self.banner = []
        self.port = None
        self.session = None
        self.control_port = None
        # The banner is the readiness signal: the port is bound before it is printed.
        for line in self.proc.stdout:
            self.banner.append(line)
            if line.startswith("Listening on"):
                self.port = int(line.split()[2].rsplit(":", 1)[1])
            if line.startswith("Session folder"):
                self.session = Path(line.split(None, 2)[2].strip())
            if line.startswith("Control"):
                self.control_port = int(line.split()[1].rsplit(":", 1)[1])
            if line.startswith("Press Ctrl-C"):
                break
        if self.port is None or self.session is None:
            raise RuntimeError("leakscope did not start: " + "".join(self.banner) + self.proc.stderr.read())
        self.ca_pem = root / "ca/ca.pem"
        self.url = f"http://127.0.0.1:{self.port}"
        self.summary = None
        self.stderr = None
        self.peak_rss_kib = None

    def stop(self, timeout=30):
        """Ctrl-C, then wait: every record is on disk once the process has exited. The process
        is reaped with wait4, so `peak_rss_kib` is its peak over the whole run, sealing the
        session included (None if it had already exited)."""
        if self.proc.returncode is not None:
            return self.proc.returncode
        self.peak_rss_kib = None
        if self.proc.poll() is not None:
            self.summary, self.stderr = self.proc.communicate()
            return self.proc.returncode
        self.proc.send_signal(signal.SIGINT)
        self.summary, self.stderr, self.peak_rss_kib = reap(self.proc, timeout=timeout)
        return self.proc.returncode

    def vm_hwm_kib(self):
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise RuntimeError("no VmHWM")

    def records(self, name):
        path = self.session / name
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def marks(self):
        return self.records("marks.jsonl")

    def flows(self):
        return self.records("flows.jsonl")

    def leaks(self):
        return self.records("leaks.jsonl")


def reap(proc, timeout):
    """Waits for a Popen started with pipes, reading them; returns (stdout, stderr, peak RSS
    in KiB over the process's whole life), which only wait4 on the process itself can tell."""
    out, err, reaped = [], [], []
    threads = [threading.Thread(target=lambda: out.append(proc.stdout.read())),
               threading.Thread(target=lambda: err.append(proc.stderr.read())),
               threading.Thread(target=lambda: reaped.append(os.wait4(proc.pid, 0)))]
    for t in threads:
        t.start()
    threads[2].join(timeout=timeout)
    if not reaped:
        proc.kill()
    for t in threads:
        t.join()
    proc.stdout.close()
    proc.stderr.close()
    _, status, usage = reaped[0]
    proc.returncode = os.waitstatus_to_exitcode(status)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
        raise subprocess.TimeoutExpired(proc.args, timeout, out[0], err[0])
    return out[0], err[0], usage.ru_maxrss


def run_measured(cmd, timeout=600):
    """Runs a command to its end: (exit code, stdout, stderr, peak RSS in KiB)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err, peak = reap(proc, timeout)
    return proc.returncode, out, err, peak


def curl(*args, check=True):
    """curl with timeouts, returning (exit code, stdout bytes, stderr text)."""
    p = subprocess.run(["curl", "-sS", "--max-time", "60", *args], capture_output=True)
    if check and p.returncode != 0:
        raise AssertionError(f"curl {' '.join(args)} failed ({p.returncode}): {p.stderr.decode()}")
    return p.returncode, p.stdout, p.stderr.decode()


def temp_root(prefix):
    root = Path(tempfile.mkdtemp(prefix=f"leakscope-{prefix}-"))
    undo_on_signal(lambda: shutil.rmtree(root, ignore_errors=True))
    return root


class OriginTestCase(unittest.TestCase):
    """One nginx origin for the test class; a fresh leakscope for each test through start()."""

    @classmethod
    def setUpClass(cls):
        cls.root = temp_root(cls.__name__.lower())
        cls.origin = Origin(cls.root / "origin")

    @classmethod
    def tearDownClass(cls):
        cls.origin.stop()
        shutil.rmtree(cls.root, ignore_errors=True)

    def start(self, extra_config="", **kw):
        self.proxy = Proxy(temp_root("proxy"), self.origin, extra_config, **kw)
        proxy = self.proxy
        self.addCleanup(lambda: (proxy.stop(), shutil.rmtree(proxy.root, ignore_errors=True)))
        return proxy


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-quic"]


def chromium(url, profile: Path, screenshot: Path, window="1280,1400"):
    """Renders `url` in headless Chromium: returns (DOM text, screenshot result), each a CompletedProcess."""
    dom = subprocess.run(["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120)
    shot = subprocess.run(["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={screenshot}",
                           f"--window-size={window}", url], capture_output=True, text=True, timeout=120)
    keep = os.environ.get("LEAKSCOPE_KEEP_SCREENSHOTS")
    if keep and screenshot.exists():
        shutil.copy(screenshot, Path(keep) / screenshot.name)
    return dom, shot


OKHTTP_CLASSPATH = ["/usr/share/java/okhttp.jar", "/usr/share/java/okio.jar"]
_okhttp_classes = None


def okhttp(*args, prefix=()):
    """tests/e2e/okhttp/PhoneClient.java on the machine's JVM (compiled once per run): returns
    (exit code, one output line per request)."""
    global _okhttp_classes
    if _okhttp_classes is None:
        out = temp_root("okhttp")
        atexit.register(shutil.rmtree, out, ignore_errors=True)
        out.chmod(0o755)
        run(["javac", "-d", str(out), "-cp", ":".join(OKHTTP_CLASSPATH),
             str(Path(__file__).resolve().parent / "okhttp/PhoneClient.java")])
        _okhttp_classes = out
    p = subprocess.run([*prefix, "java", "-cp", ":".join([str(_okhttp_classes), *OKHTTP_CLASSPATH]), "PhoneClient", *args],
                       capture_output=True, text=True, timeout=120)
    if p.stderr.strip() and "Exception in thread" in p.stderr:
        raise AssertionError(p.stderr)
    return p.returncode, p.stdout.splitlines()


def spki_pin(cert_pem: Path):
    """OkHttp's pin for a certificate: sha256/ of its SubjectPublicKeyInfo, base64."""
    pub = run(["openssl", "x509", "-in", str(cert_pem), "-pubkey", "-noout"]).stdout
    der = run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub).stdout
    digest = run(["openssl", "dgst", "-sha256", "-binary"], input=der).stdout
    import base64
    return "sha256/" + base64.b64encode(digest).decode()


def wait_for_record(path: Path, predicate, timeout=20.0):
    """Records reach the session folder through the recorder's writer thread: wait until one
    matching `predicate` is there (a condition, not a guess at a delay)."""
    deadline = time.monotonic() + timeout
    while True:
        if path.exists():
            for line in path.read_text().splitlines():
                record = json.loads(line)
                if predicate(record):
                    return record
        if time.monotonic() > deadline:
            raise AssertionError(f"no matching record in {path} after {timeout}s")
        time.sleep(0.02)


def sign_with_ca(d: Path, name: str, ca_key: Path, ca_pem: Path, dns_names, start="", end="", md="sha256",
                 key_args=("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"), self_signed=False, san=None):
    """A leaf with chosen validity dates, digest and key, through `openssl ca` (which, unlike
    `openssl x509`, takes start and end dates): the certificates an origin should be refused for."""
    key, csr, pem, ext = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.pem", d / f"{name}.ext"
    san = san or ",".join(f"DNS:{n}" for n in dns_names)
    ext.write_text(f"subjectAltName={san}\nextendedKeyUsage=serverAuth\n")
    if self_signed:
        run(["openssl", "req", "-x509", *key_args, "-nodes", "-keyout", str(key), "-out", str(pem), "-days", "2",
             "-subj", f"/CN={dns_names[0]}", "-addext", "subjectAltName=" + ",".join(f"DNS:{n}" for n in dns_names)])
        return key, pem
    run(["openssl", "req", *key_args, "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={dns_names[0]}"])
    db = d / f"{name}-db"
    db.mkdir()
    (db / "index.txt").write_text("")
    (db / "serial").write_text("1000\n")
    conf = db / "ca.conf"
    conf.write_text(f"[ca]\ndefault_ca = d\n[d]\ndir = {db}\ndatabase = {db}/index.txt\nnew_certs_dir = {db}\n"
                    f"serial = {db}/serial\ndefault_md = {md}\ndefault_days = 2\npolicy = p\nunique_subject = no\n"
                    "[p]\ncommonName = supplied\n")
    dates = (["-startdate", start] if start else []) + (["-enddate", end] if end else [])
    run(["openssl", "ca", "-batch", "-config", str(conf), "-cert", str(ca_pem), "-keyfile", str(ca_key), "-in", str(csr),
         "-out", str(pem), "-md", md, "-extfile", str(ext), "-notext", *dates])
    return key, pem


def read_until(sock, marker: bytes) -> bytes:
    """What `sock` sends up to and including `marker`, or all it sent before closing."""
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


class _Listener:
    """A loopback server thread handing each accepted connection to handle()."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                with conn:
                    self.handle(conn)
            except OSError:
                pass

    def close(self):
        self.sock.close()


class ScriptedOrigin(_Listener):
    """Answers every request head it reads with the same fixed bytes, then closes (or resets,
    with `reset`): the origins nobody should trust."""

    def __init__(self, reply: bytes, reset=False):
        self.reply, self.reset = reply, reset
        super().__init__()

    def handle(self, conn):
        import struct
        read_until(conn, b"\r\n\r\n")
        conn.sendall(self.reply)
        if self.reset:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class TlsOrigin(_Listener):
    """A TLS server presenting a given certificate chain, answering one fixed response: origins
    with certificates leakscope must refuse, each for its own reason."""

    def __init__(self, cert_chain: Path, key: Path):
        import ssl
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # so that weak certificates can be served at all
        self.ctx.load_cert_chain(str(cert_chain), str(key))
        super().__init__()

    def handle(self, conn):
        import ssl
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(65536)
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except ssl.SSLError:
            pass


class CountingOrigin(_Listener):
    """A TLS origin that reads a request body of any length and answers how many bytes came:
    nginx would spool a body of gigabytes to disk before answering."""

    def __init__(self, cert: Path, key: Path):
        import ssl
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(cert), str(key))
        super().__init__()

    def handle(self, conn):
        with self.ctx.wrap_socket(conn, server_side=True) as tls:
            data = read_until(tls, b"\r\n\r\n")
            if b"\r\n\r\n" not in data:
                return
            head, _, rest = data.partition(b"\r\n\r\n")
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            got = len(rest)
            buf = bytearray(1 << 20)
            while got < length:
                n = tls.recv_into(buf)
                if n == 0:
                    break
                got += n
            body = f"received {got}\n".encode()
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))

