"""Transparent mode on real network namespaces: a "phone" namespace routed through a "router"
namespace where leakscope runs behind the netfilter rules the README gives, and nginx in an
"origin" namespace. The phone's clients have no proxy setting at all."""

import json
import os
import shutil
import signal
import subprocess
import unittest
from pathlib import Path

from harness import LEAKSCOPE, NGINX, make_ca, make_leaf, okhttp, run, stop_on_signal, temp_root, undo_on_signal

PHONE4, ROUTER4_PHONE, ROUTER4_ORIGIN, ORIGIN4 = "10.77.1.2", "10.77.1.1", "10.77.2.1", "10.77.2.2"
PHONE6, ROUTER6_PHONE, ROUTER6_ORIGIN, ORIGIN6 = "fd77:1::2", "fd77:1::1", "fd77:2::1", "fd77:2::2"
IMEI = "865432101234564"

# A TCP server that answers every piece it receives with "ack <n>\n", so the phone can wait for
# one piece to be through before it sends the next: the proxy then reads them separately.
ACK_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(8)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    n = 0
    while True:
        data = c.recv(65536)
        if not data:
            break
        n += len(data)
        c.sendall(b"ack %d\\n" % n)
    c.close()
"""

PHONE_CLIENT = """
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
received = 0
for piece in sys.argv[3:]:
    c.sendall(piece.encode())
    received += len(piece)
    line = b""
    while not line.endswith(b"\\n"):
        line += c.recv(100)
    assert line == b"ack %d\\n" % received, line
c.close()
print("done")
"""


def ip(*args):
    run(["ip", *args])


class Namespaces:
    """phone <-> router <-> origin, IPv4 and IPv6, named after this process so runs never clash."""

    def __init__(self):
        tag = str(os.getpid())
        self.phone, self.router, self.origin = f"ls{tag}ph", f"ls{tag}rt", f"ls{tag}or"
        self.names = [self.phone, self.router, self.origin]
        for ns in self.names:
            ip("netns", "add", ns)
            ip("-n", ns, "link", "set", "lo", "up")
        ip("link", "add", "ph0", "netns", self.phone, "type", "veth", "peer", "name", "rt-ph", "netns", self.router)
        ip("link", "add", "or0", "netns", self.origin, "type", "veth", "peer", "name", "rt-or", "netns", self.router)
        for ns, dev, v4, v6 in [(self.phone, "ph0", PHONE4, PHONE6), (self.router, "rt-ph", ROUTER4_PHONE, ROUTER6_PHONE),
                                (self.router, "rt-or", ROUTER4_ORIGIN, ROUTER6_ORIGIN), (self.origin, "or0", ORIGIN4, ORIGIN6)]:
            ip("-n", ns, "addr", "add", f"{v4}/24", "dev", dev)
            ip("-n", ns, "-6", "addr", "add", f"{v6}/64", "dev", dev, "nodad")
            ip("-n", ns, "link", "set", dev, "up")
        ip("-n", self.phone, "route", "add", "default", "via", ROUTER4_PHONE)
        ip("-n", self.phone, "-6", "route", "add", "default", "via", ROUTER6_PHONE)
        ip("-n", self.origin, "route", "add", "default", "via", ROUTER4_ORIGIN)
        ip("-n", self.origin, "-6", "route", "add", "default", "via", ROUTER6_ORIGIN)
        self.exec(self.router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.exec(self.router, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")

    def cmd(self, ns, *args):
        return ["ip", "netns", "exec", ns, *args]

    def exec(self, ns, *args):
        return run(self.cmd(ns, *args))

    def close(self):
        for ns in self.names:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


class Transparent(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = temp_root("transparent")
        cls.net = Namespaces()
        undo_on_signal(cls.net.close)
        cls.procs = []
        try:
            cls.start_origin()
            cls.start_proxy()
            cls.run_phone()
            cls.stop_proxy()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def spawn(cls, ns, args, **kw):
        p = stop_on_signal(subprocess.Popen(cls.net.cmd(ns, *args), **kw))
        cls.procs.append(p)
        return p

    @classmethod
    def start_origin(cls):
        d = cls.root / "origin"
        d.mkdir()
        for p in (cls.root, d):
            p.chmod(0o755)
        ca_key, cls.origin_ca = make_ca(d, "origin-ca")
        key, pem = make_leaf(d, "origin", ca_key, cls.origin_ca, ["origin.test"])
        (d / "logs").mkdir()
        conf = d / "nginx.conf"
        conf.write_text(f"""
daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/logs/error.log;
events {{}}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  server {{
    listen {ORIGIN4}:443 ssl;
    listen [{ORIGIN6}]:443 ssl;
    listen {ORIGIN4}:80;
    ssl_certificate {pem};
    ssl_certificate_key {key};
    location / {{ return 200 "origin saw $host\\n"; }}
  }}
}}
""")
        cls.spawn(cls.net.origin, [NGINX, "-c", str(conf), "-p", str(d)], stdout=subprocess.DEVNULL,
                  stderr=subprocess.DEVNULL)
        ack = cls.spawn(cls.net.origin, ["python3", "-c", ACK_SERVER, ORIGIN4, "5222"], stdout=subprocess.PIPE, text=True)
        assert ack.stdout.readline().strip() == "ready"
        # nginx has no readiness signal: connect from inside the namespace until it accepts.
        cls.net.exec(cls.net.origin, "python3", "-c", f"""
import socket, time
deadline = time.monotonic() + 10
while True:
    try:
        socket.create_connection(("{ORIGIN4}", 443), timeout=0.5).close(); break
    except OSError:
        if time.monotonic() > deadline: raise
        time.sleep(0.02)
""")

    @classmethod
    def start_proxy(cls):
        d = cls.root / "proxy"
        d.mkdir()
        config = d / "leakscope.yaml"
        config.write_text(f"""
listen: {{address: "::", port: 0, mode: transparent}}
clients: {{allow: [{PHONE4}/32, "{PHONE6}/128"]}}
control: {{address: 127.0.0.1, port: 0}}
ca: {{dir: ca}}
capture: {{dir: captures}}
upstream: {{extra_ca: [{cls.origin_ca}], allow_private: true}}
device: {{imei: ["{IMEI}"]}}
""")
        cls.proxy = cls.spawn(cls.net.router, [LEAKSCOPE, "run", "-c", str(config)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        cls.port = cls.session = None
        for line in cls.proxy.stdout:
            if line.startswith("Listening on"):
                cls.port = int(line.split()[2].rsplit(":", 1)[1])
            if line.startswith("Session folder"):
                cls.session = Path(line.split(None, 2)[2].strip())
            if line.startswith("Press Ctrl-C"):
                break
        if cls.port is None:
            raise RuntimeError("leakscope did not start: " + cls.proxy.stderr.read())
        cls.proxy_ca = d / "ca/ca.pem"
        # The rules of the README's transparent-mode section, with this run's port.
        for tool in ("iptables", "ip6tables"):
            cls.net.exec(cls.net.router, tool, "-t", "nat", "-A", "PREROUTING", "-i", "rt-ph", "-p", "tcp",
                         "-j", "REDIRECT", "--to-ports", str(cls.port))
            cls.net.exec(cls.net.router, tool, "-A", "FORWARD", "-i", "rt-ph", "-p", "udp", "--dport", "443", "-j", "DROP")

    @classmethod
    def tearDownClass(cls):
        for p in reversed(cls.procs):
            if p.poll() is None:
                p.terminate()
            try:
                p.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        cls.net.close()
        shutil.rmtree(cls.root, ignore_errors=True)

    # Everything the phone does, then the proxy stopped: every record is on disk once it has
    # exited, and each test reads its part.
    @classmethod
    def run_phone(cls):
        curl = ["curl", "-sS", "--max-time", "20"]
        cls.out = {
            "v4": cls.phone(*curl, "--cacert", str(cls.proxy_ca), "--resolve", f"origin.test:443:{ORIGIN4}",
                            f"https://origin.test/v4/collect?imei={IMEI}"),
            "v6": cls.phone(*curl, "--cacert", str(cls.proxy_ca), "--resolve", f"origin.test:443:[{ORIGIN6}]",
                            f"https://origin.test/v6/collect?imei={IMEI}"),
            "plain": cls.phone(*curl, "-H", "Host: origin.test", f"http://{ORIGIN4}/plain/collect?imei={IMEI}"),
            "raw": cls.phone("python3", "-c", PHONE_CLIENT, ORIGIN4, "5222",
                             "<?xml version='1.0'?><stream:stream><dev imei='8654321012", "34564'/></stream:stream>"),
            "ca": cls.phone(*curl, "-x", f"http://{ROUTER4_PHONE}:{cls.port}", "http://leakscope/ca.pem"),
            # OkHttp with no proxy configured, as an SDK that bypasses the system setting.
            "okhttp": okhttp("--resolve", f"origin.test:{ORIGIN4}", "--ca", str(cls.proxy_ca),
                             "get", "https://origin.test/ok/get",
                             "post", "https://origin.test/ok/post", json.dumps({"device": {"imei": IMEI}}),
                             prefix=cls.net.cmd(cls.net.phone)),
        }

    @classmethod
    def phone(cls, *args):
        p = subprocess.run(cls.net.cmd(cls.net.phone, *args), capture_output=True, timeout=60)
        if p.returncode != 0:
            raise AssertionError(f"{args[0]} in the phone namespace failed: {p.stderr.decode()}")
        return p.stdout.decode()

    @classmethod
    def stop_proxy(cls):
        cls.proxy.send_signal(signal.SIGINT)
        cls.proxy.communicate(timeout=30)
        read = lambda name: [json.loads(line) for line in (cls.session / name).read_text().splitlines()]
        cls.leaks, cls.flows = read("leaks.jsonl"), read("flows.jsonl")

    def leak_for(self, path_prefix=None, where=None):
        for leak in self.leaks:
            if path_prefix and leak["request"]["path"].startswith(path_prefix):
                return leak
            if where and leak["where"] == where:
                return leak
        self.fail(f"no leak for {path_prefix or where}: {self.leaks}")

    def test_https_without_proxy_setting_is_intercepted_with_the_original_address(self):
        self.assertEqual(self.out["v4"], "origin saw origin.test\n")
        leak = self.leak_for("/v4/collect")
        self.assertEqual(leak["category"], "imei")
        self.assertEqual(leak["dest"], {"host": "origin.test", "ip": ORIGIN4, "port": 443, "scheme": "https"})
        self.assertTrue(leak["client"].startswith(PHONE4), leak["client"])

    def test_ipv6_https_is_intercepted(self):
        self.assertEqual(self.out["v6"], "origin saw origin.test\n")
        leak = self.leak_for("/v6/collect")
        self.assertEqual(leak["dest"]["ip"], ORIGIN6)
        self.assertEqual(leak["dest"]["host"], "origin.test")

    def test_plain_http_takes_its_host_from_the_host_header(self):
        self.assertEqual(self.out["plain"], "origin saw origin.test\n")
        leak = self.leak_for("/plain/collect")
        self.assertEqual(leak["dest"], {"host": "origin.test", "ip": ORIGIN4, "port": 80, "scheme": "http"})

    def test_raw_tcp_is_relayed_and_a_value_split_across_reads_is_found(self):
        self.assertEqual(self.out["raw"], "done\n")
        leak = self.leak_for(where="tcp")
        self.assertEqual(leak["category"], "imei")
        self.assertEqual(leak["source"], "known")
        self.assertEqual(leak["dest"]["ip"], ORIGIN4)
        self.assertEqual(leak["dest"]["port"], 5222)
        self.assertEqual(leak["dest"]["scheme"], "tcp")
        flow = next(f for f in self.flows if f["id"] == leak["flow"])
        self.assertEqual(flow["kind"], "tcp")
        self.assertIn("protocol: xmpp", flow["note"])
        self.assertEqual(flow["leaks"], 1)  # the value is reported once, though both reads held part of it

    def test_the_proxy_address_itself_still_serves_the_ca_page(self):
        self.assertIn("BEGIN CERTIFICATE", self.out["ca"])

    def test_okhttp_without_a_proxy_setting_is_intercepted(self):
        self.assertEqual(self.out["okhttp"], (0, ["200 origin saw origin.test", "200 origin saw origin.test"]))
        leak = self.leak_for("/ok/post")
        self.assertEqual((leak["category"], leak["where"]), ("imei", "body.json:$.device.imei"))
        self.assertEqual(leak["dest"], {"host": "origin.test", "ip": ORIGIN4, "port": 443, "scheme": "https"})


if __name__ == "__main__":
    unittest.main()
