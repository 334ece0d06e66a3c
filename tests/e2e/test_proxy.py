"""End to end: curl -> leakscope -> nginx on loopback, asserting on what the origin received and
on the session folder leakscope wrote."""

import contextlib
import gzip
import json
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
import unittest

from harness import (LEAKSCOPE, CountingOrigin, OriginTestCase, _Listener, curl, read_until, run_measured, temp_root,
                     UNTRUSTED_NAME, wait_for_record)

IMEI = "865432101234564"


class _ThreadedTlsOrigin(_Listener):
    """A TLS origin serving each connection on its own thread, as the proxy may hold several open
    at once; handle() gets the connection and its number, counted from 1."""

    def __init__(self, cert, key):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(cert), str(key))
        self.lock = threading.Lock()
        self.connections = 0
        super().__init__()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                number = self.connections
            threading.Thread(target=self.handle, args=(conn, number), daemon=True).start()


def established_to(port):
    """How many TCP connections to `port` on this machine are established, seen from the server's end."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for row in f.readlines()[1:]:
                fields = row.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                    count += 1
    return count


class KeptOrigin(_ThreadedTlsOrigin):
    """A TLS origin that answers one request on each connection and keeps the connection open,
    until drop_idle() closes them all as a server whose keep-alive has run out does."""

    def __init__(self, cert, key):
        self.kept = []
        super().__init__(cert, key)

    def handle(self, conn, _number):
        tls = self.ctx.wrap_socket(conn, server_side=True)  # takes the descriptor: `conn` closes nothing
        read_until(tls, b"\r\n\r\n")
        tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
        with self.lock:
            self.kept.append(tls)

    def drop_idle(self):
        """A FIN on every kept connection; returns once the other side has closed each one too. The
        proxy's pool closes an idle connection after 4 s whatever happens; a close within 3 s is its
        answer to the origin's."""
        with self.lock:
            kept, self.kept = self.kept, []
        for tls in kept:
            tls.settimeout(3)
            tls.shutdown(socket.SHUT_WR)  # no close_notify: the socket is plain TCP from here
            rest = tls.recv(1)
            if rest != b"":
                raise AssertionError(f"the proxy sent {rest!r} on a connection the origin closed")
            tls.close()
        return len(kept)


class HangUpOrigin(_ThreadedTlsOrigin):
    """A TLS origin that answers one request as if it kept the connection (no Connection: close)
    and sends its FIN right behind the response, as a server does whose keep-alive is used up."""

    def handle(self, conn, _number):
        with self.ctx.wrap_socket(conn, server_side=True) as tls:
            read_until(tls, b"\r\n\r\n")
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
            tls.shutdown(socket.SHUT_WR)  # no close_notify: a bare FIN
            tls.settimeout(10)
            try:
                tls.recv(1)  # until the proxy closes its side
            except OSError:
                pass


class StaleOrigin(_ThreadedTlsOrigin):
    """A TLS origin whose keep-alive runs out under the second request of each connection, as
    when a server's FIN crosses the request sent on its idle connection: it answers the first
    request and keeps the connection; it closes on the second without answering. `read_body`:
    closed after reading the whole second request (a FIN), else reset right after its head.
    Logs (connection number, path) of each request head it reads; `reset` is set at each reset."""

    def __init__(self, cert, key, read_body=True):
        self.read_body = read_body
        self.heads = []
        self.reset = threading.Event()
        super().__init__(cert, key)

    def handle(self, conn, number):
        with self.ctx.wrap_socket(conn, server_side=True) as tls:
            buffered = b""
            for served in range(2):
                while b"\r\n\r\n" not in buffered:
                    chunk = tls.recv(65536)
                    if not chunk:
                        return
                    buffered += chunk
                head, _, buffered = buffered.partition(b"\r\n\r\n")
                with self.lock:
                    self.heads.append((number, head.split(b" ")[1].decode()))
                if served == 1 and not self.read_body:
                    tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    tls.close()
                    self.reset.set()
                    return
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(buffered) < length:
                    chunk = tls.recv(65536)
                    if not chunk:
                        return
                    buffered += chunk
                buffered = buffered[length:]
                if served == 1:
                    return
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")

    def requests_to(self, path):
        """The connection numbers that carried a request for `path`, in order."""
        with self.lock:
            return [number for number, p in self.heads if p == path]


class ProxyEndToEnd(OriginTestCase):
    def https(self, name="api.example.test"):
        return f"https://{name}:{self.origin.tls_port}"

    def through(self, *args, cacert=True, check=True):
        extra = ["--cacert", str(self.proxy.ca_pem)] if cacert else []
        return curl("-x", self.proxy.url, *extra, *args, check=check)

    def stop_and_check(self, timeout=30):
        self.assertEqual(self.proxy.stop(timeout), 0, self.proxy.stderr)
        return self.proxy.flows(), self.proxy.leaks()

    # --- the spine --------------------------------------------------------------------------

    def test_get_through_the_tunnel(self):
        self.start()
        _, body, _ = self.through(self.https() + "/index.html")
        self.assertEqual(body, b"hello from the origin\n")
        flows, leaks = self.stop_and_check()
        self.assertEqual(len(flows), 1)
        f = flows[0]
        self.assertEqual((f["method"], f["status"], f["kind"]), ("GET", 200, "https"))
        self.assertEqual(f["dest"], {"host": "api.example.test", "ip": "127.0.0.1",
                                     "port": self.origin.tls_port, "scheme": "https"})
        self.assertEqual(f["sni"], "api.example.test")
        self.assertEqual(f["url"], self.https() + "/index.html")
        self.assertIsNone(f["error"])
        self.assertTrue(f["complete"])
        self.assertGreater(f["bytes_down"], len(body))
        self.assertIsNotNone(f["tls_handshake_ms"])
        self.assertIsNotNone(f["ttfb_ms"])
        self.assertEqual(leaks, [])
        self.assertIn("Session", self.proxy.summary)
        self.assertIn("1 flows, 0 leaks", self.proxy.summary)

    def test_post_with_content_length_reaches_the_origin_unchanged(self):
        self.start()
        payload = "imei=" + IMEI + "&note=hello"
        _, body, _ = self.through("--data-binary", payload, self.https("sdk.umeng.com") + "/echo/form")
        self.assertEqual(body, b"received\n")
        got = self.origin.logged("/echo/form")[-1]
        self.assertEqual((got["uri"], got["body"]), ("/echo/form", payload))
        flows, leaks = self.stop_and_check()
        self.assertEqual(len(leaks), 1)
        leak = leaks[0]
        self.assertEqual(leak["category"], "imei")
        self.assertEqual(leak["source"], "known")
        self.assertEqual(leak["where"], "body.form:imei")
        self.assertEqual(leak["dest"]["host"], "sdk.umeng.com")
        self.assertEqual(leak["flow"], flows[0]["id"])
        self.assertEqual(leak["request"], {"method": "POST", "path": "/echo/form"})
        self.assertEqual(leak["value"], "8654*******4564")
        self.assertNotIn(IMEI, (self.proxy.session / "leaks.jsonl").read_text())

    def test_chunked_post(self):
        self.start()
        payload = json.dumps({"device": {"phone": "+86 13812345678"}})
        self.through("-H", "Transfer-Encoding: chunked", "-H", "Expect:", "--data-binary", payload,
                     self.https("sdk.umeng.com") + "/echo/chunked")
        got = self.origin.logged("/echo/chunked")[-1]
        self.assertEqual(got["body"], payload)
        _, leaks = self.stop_and_check()
        self.assertEqual([l["category"] for l in leaks], ["phone_number"])

    def test_gzip_body_with_the_profile_imei_is_logged_with_host_category_and_timing(self):
        self.start()
        body = gzip.compress(json.dumps({"header": {"imei": IMEI, "os": "android"}}).encode())
        path = self.root / "body.gz"
        path.write_bytes(body)
        self.through("-H", "Content-Encoding: gzip", "-H", "Content-Type: application/json",
                     "--data-binary", f"@{path}", self.https("sdk.umeng.com") + "/echo/app_logs")
        got = self.origin.logged("/echo/app_logs")[-1]
        self.assertEqual(got["encoding"], "gzip")
        self.assertEqual(int(got["length"]), len(body))
        flows, leaks = self.stop_and_check()
        self.assertEqual(len(leaks), 1)
        leak = leaks[0]
        self.assertEqual(leak["category"], "imei")
        self.assertEqual(leak["where"], "body.json:$.header.imei")
        self.assertEqual(leak["encoding"], ["gzip", "json"])
        self.assertEqual(leak["dest"]["host"], "sdk.umeng.com")
        self.assertEqual(leak["dest"]["port"], self.origin.tls_port)
        self.assertEqual(leak["party"], "third")
        self.assertEqual(leak["sdk"], {"name": "Umeng", "vendor": "Alibaba (Umeng)", "category": "analytics"})
        self.assertEqual(leak["domain"], "umeng.com")
        self.assertEqual(leak["party_rule"], "sdk_catalog: umeng.com")
        self.assertRegex(leak["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
        self.assertGreaterEqual(leak["t_session_ms"], 0)
        self.assertIsNone(leak["t_consent_ms"])
        self.assertEqual(flows[0]["leaks"], 1)
        self.assertIn("imei: 1", self.proxy.summary)
        self.assertIn("sdk.umeng.com: 1", self.proxy.summary)

    def test_several_requests_on_one_kept_alive_tunnel(self):
        self.start()
        urls = [self.https() + f"/index.html?n={i}" for i in range(5)]
        _, body, _ = self.through(*urls)
        self.assertEqual(body, b"hello from the origin\n" * 5)
        flows, _ = self.stop_and_check()
        self.assertEqual(len(flows), 5)
        self.assertEqual(len({f["client"] for f in flows}), 1, "all on one client connection")
        self.assertIsNotNone(flows[0]["tls_handshake_ms"])
        self.assertTrue(all(f["tls_handshake_ms"] is None for f in flows[1:]))
        self.assertEqual([f["url"].rsplit("=", 1)[1] for f in flows], ["0", "1", "2", "3", "4"])

    @unittest.skipIf(os.environ.get("LEAKSCOPE_SANITIZED"), "under AddressSanitizer, RSS measures its shadow memory and quarantine")
    def test_100_mib_download_streams_in_bounded_memory(self):
        self.start()
        _, out, _ = self.through("-o", "/dev/null", "-w", "%{size_download}", self.https() + "/big.bin")
        self.assertEqual(int(out), 100 * 1024 * 1024)
        peak_kib = self.proxy.vm_hwm_kib()
        self.assertLess(peak_kib, 64 * 1024, f"proxy peak RSS {peak_kib} KiB")
        flows, _ = self.stop_and_check()
        self.assertGreater(flows[0]["bytes_down"], 100 * 1024 * 1024)
        self.assertTrue(flows[0]["complete"])

    # 10 GiB each way (LEAKSCOPE_E2E_HUGE_GIB to change): the whole body goes through, and the
    # proxy's memory does not grow with it. The evidence files take the bytes, not the heap.
    HUGE = int(float(os.environ.get("LEAKSCOPE_E2E_HUGE_GIB", "10")) * (1 << 30))
    # Sealing hashes the evidence (twice the transfer, in pcapng) for the manifest. The recorder
    # drops evidence from the page cache as it goes, so this reads it back from disk: allowed
    # at 100 MB/s, on top of the usual 30 s.
    SEAL_SECONDS = 30 + 2 * HUGE / 100e6

    def assert_sealed_and_verified_in_bounded_memory(self, start_kib):
        """Sealing the session (HAR, index, manifest hashes) and re-verifying its evidence (some
        20 GiB of pcapng) read the files a piece at a time, never whole."""
        # Above the transfer's 64 MiB: when the exchange ends, its record is built from the
        # inspected body (16 MiB, as 22 MiB of base64) while the body is still held. This bound
        # is the one that fails if sealing ever holds the session rather than one record.
        growth = self.proxy.peak_rss_kib - start_kib
        self.assertLess(growth, 96 * 1024, f"proxy peak RSS, sealing included, grew by {growth} KiB")
        code, out, err, peak = run_measured([LEAKSCOPE, "verify", str(self.proxy.session)])
        self.assertEqual(code, 0, out + err)
        self.assertLess(peak, 64 * 1024, f"leakscope verify peak RSS {peak} KiB")

    @unittest.skipIf(os.environ.get("LEAKSCOPE_SANITIZED"), "under AddressSanitizer, RSS measures its shadow memory and quarantine")
    def test_10_gib_download_completes_in_bounded_memory(self):
        with open(self.origin.root / "www" / "huge.bin", "wb") as f:
            f.truncate(self.HUGE)
        self.addCleanup((self.origin.root / "www" / "huge.bin").unlink)
        self.start()
        start_kib = self.proxy.vm_hwm_kib()
        _, out, _ = self.through("--max-time", "900", "-o", "/dev/null", "-w", "%{size_download}",
                                 self.https() + "/huge.bin")
        self.assertEqual(int(out), self.HUGE)
        growth = self.proxy.vm_hwm_kib() - start_kib
        self.assertLess(growth, 64 * 1024, f"proxy peak RSS grew by {growth} KiB")
        flows, _ = self.stop_and_check(self.SEAL_SECONDS)
        self.assert_sealed_and_verified_in_bounded_memory(start_kib)
        self.assertGreater(flows[0]["bytes_down"], self.HUGE)
        self.assertTrue(flows[0]["complete"])

    @unittest.skipIf(os.environ.get("LEAKSCOPE_SANITIZED"), "under AddressSanitizer, RSS measures its shadow memory and quarantine")
    def test_10_gib_upload_completes_in_bounded_memory_and_is_scanned(self):
        sink = CountingOrigin(self.origin.pem, self.origin.key)
        self.addCleanup(sink.close)
        huge = self.root / "huge-upload.bin"
        with open(huge, "wb") as f:
            f.write(b"imei=865432101234564&pad=")
            f.truncate(self.HUGE)
        self.addCleanup(huge.unlink)
        self.start()
        start_kib = self.proxy.vm_hwm_kib()
        _, out, _ = self.through("--max-time", "900", "-X", "POST", "-T", str(huge), "-H", "Expect:",
                                 "-H", "Content-Type: application/x-www-form-urlencoded",
                                 f"https://sdk.umeng.com:{sink.port}/upload")
        self.assertEqual(out, f"received {self.HUGE}\n".encode())
        growth = self.proxy.vm_hwm_kib() - start_kib
        self.assertLess(growth, 64 * 1024, f"proxy peak RSS grew by {growth} KiB")
        flows, leaks = self.stop_and_check(self.SEAL_SECONDS)
        self.assert_sealed_and_verified_in_bounded_memory(start_kib)
        self.assertGreater(flows[0]["bytes_up"], self.HUGE)
        self.assertTrue(flows[0]["complete"])
        self.assertIn("body_truncated", flows[0]["incomplete"], "only the first capture.max_inspect_body is inspected")
        self.assertEqual([l["category"] for l in leaks], ["imei"])

    def test_plain_http_absolute_form(self):
        self.start()
        payload = "tel=13812345678"
        _, body, _ = curl("-x", self.proxy.url, "--data-binary", payload,
                          f"http://api.example.test:{self.origin.http_port}/echo/plain")
        self.assertEqual(body, b"received\n")
        self.assertEqual(self.origin.logged("/echo/plain")[-1]["body"], payload)
        flows, leaks = self.stop_and_check()
        self.assertEqual(flows[0]["kind"], "http")
        self.assertEqual(flows[0]["dest"]["scheme"], "http")
        self.assertEqual([l["category"] for l in leaks], ["phone_number"])
        self.assertEqual(leaks[0]["dest"]["scheme"], "http")

    def test_bytes_sent_right_after_connect_are_kept(self):
        """CONNECT and the ClientHello in one segment, as some clients send them."""
        self.start()
        ctx = ssl.create_default_context(cafile=str(self.proxy.ca_pem))
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ctx.wrap_bio(incoming, outgoing, server_hostname="api.example.test")
        with self.assertRaises(ssl.SSLWantReadError):
            tls.do_handshake()
        authority = f"api.example.test:{self.origin.tls_port}"
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=10) as s:
            s.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode() + outgoing.read())
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += s.recv(65536)
            head, rest = buf.split(b"\r\n\r\n", 1)
            self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
            incoming.write(rest)
            request = b"GET /index.html HTTP/1.1\r\nHost: api.example.test\r\nConnection: close\r\n\r\n"
            sent = False
            response = b""
            closed = False
            while not closed:
                try:
                    if not sent:
                        tls.do_handshake()
                        tls.write(request)
                        sent = True
                    while chunk := tls.read(65536):  # everything decryptable so far
                        response += chunk
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLZeroReturnError:
                    break
                if outgoing.pending:
                    s.sendall(outgoing.read())
                data = s.recv(65536)
                if data:
                    incoming.write(data)
                else:
                    incoming.write_eof()
                    closed = True
                    try:
                        while chunk := tls.read(65536):
                            response += chunk
                    except (ssl.SSLWantReadError, ssl.SSLZeroReturnError, ssl.SSLEOFError):
                        pass
        self.assertTrue(response.startswith(b"HTTP/1.1 200"), response[:100])
        self.assertTrue(response.endswith(b"hello from the origin\n"))

    def test_only_http11_is_offered_to_the_client(self):
        self.start()
        _, out, _ = self.through("--http2", "-o", "/dev/null", "-w", "%{http_version}", self.https() + "/index.html")
        self.assertEqual(out, b"1.1")

    def test_head_request_has_no_body(self):
        self.start()
        _, out, _ = self.through("-I", self.https() + "/index.html")
        self.assertIn(b"Content-Length: 22", out)
        _, body, _ = self.through(self.https() + "/index.html")  # the next exchange is not confused
        self.assertEqual(body, b"hello from the origin\n")
        flows, _ = self.stop_and_check()
        self.assertEqual([f["method"] for f in flows], ["HEAD", "GET"])

    def test_pipelined_requests_are_answered_in_order(self):
        self.start()
        target = f"http://api.example.test:{self.origin.http_port}"
        requests = b"".join(
            f"GET {target}/index.html?n={i} HTTP/1.1\r\nHost: api.example.test\r\n\r\n".encode() for i in range(3))
        requests += f"GET {target}/missing HTTP/1.1\r\nHost: api.example.test\r\nConnection: close\r\n\r\n".encode()
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=10) as s:
            s.sendall(requests)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", data)
        self.assertEqual(statuses, [b"200", b"200", b"200", b"404"])
        flows, _ = self.stop_and_check()
        self.assertEqual([f["url"].rsplit("/", 1)[1] for f in flows],
                         ["index.html?n=0", "index.html?n=1", "index.html?n=2", "missing"])

    def test_body_beyond_the_inspection_cap_is_relayed_whole_and_marked_truncated(self):
        self.start("capture: {dir: captures, max_inspect_body: 1KiB}")
        payload = "tel=13812345678&pad=" + "x" * 10000 + "&imei=" + IMEI
        self.through("--data-binary", payload, self.https("sdk.umeng.com") + "/echo/big")
        self.assertEqual(self.origin.logged("/echo/big")[-1]["body"], payload)
        flows, leaks = self.stop_and_check()
        self.assertTrue(flows[0]["request_truncated"])
        self.assertEqual(flows[0]["incomplete"], ["body_truncated"])
        self.assertEqual([l["category"] for l in leaks], ["phone_number"], "the IMEI lies past the cap")

    def test_handshake_then_close_without_a_request_is_recorded_as_rejection(self):
        """What OkHttp's CertificatePinner does: it trusts the CA, checks the pin, and hangs up."""
        self.start()
        self._handshake_then_idle(0)
        flows, _ = self.stop_and_check()
        self.assertEqual(len(flows), 1)
        self.assertEqual(flows[0]["error"]["type"], "tls_client_rejected", flows[0]["error"]["detail"])

    @contextlib.contextmanager
    def _tls_tunnel(self, sni, host="api.example.test", ctx=None, session=None, port=None):
        """A CONNECT tunnel to `host` on `port` (the origin's TLS port), with TLS to the proxy inside it."""
        if ctx is None:
            ctx = ssl.create_default_context(cafile=str(self.proxy.ca_pem))
        authority = f"{host}:{port or self.origin.tls_port}"
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=10) as raw:
            raw.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
            self.assertTrue(raw.recv(4096).startswith(b"HTTP/1.1 200"))
            with ctx.wrap_socket(raw, server_hostname=sni, session=session) as tls:
                yield tls

    def _handshake_then_idle(self, idle_s=None, partial_head=b""):
        """A TLS connection through the proxy that sends no request (or only `partial_head`):
        closed after `idle_s` seconds, or (None) held until the proxy gives up on it. Returns
        once it is closed."""
        with self._tls_tunnel("api.example.test") as tls:
            tls.sendall(partial_head)
            if idle_s is None:
                try:
                    self.assertEqual(tls.recv(4096), b"", "the proxy closes an idle connection")
                except (ssl.SSLError, ConnectionResetError):
                    pass  # closed without close_notify: closed all the same
            else:
                time.sleep(idle_s)  # the idle time is what is under test, not a wait for an event

    def test_a_connection_left_idle_until_the_timeout_is_not_taken_for_pinning(self):
        """Browsers and WebViews open connections ahead of need; one never used must not make
        the host pass through for the rest of the session."""
        self.start("limits: {timeouts: {idle: 500ms}}")
        self._handshake_then_idle()
        wait_for_record(self.proxy.session / "flows.jsonl", lambda f: f.get("error") is not None)
        _, body, _ = self.through(self.https() + "/index.html")
        self.assertEqual(body, b"hello from the origin\n")
        flows, _ = self.stop_and_check()
        self.assertEqual([(f["kind"], (f.get("error") or {}).get("type")) for f in flows],
                         [("connection", "client_idle_timeout"), ("https", None)])

    def test_a_first_request_head_that_times_out_is_recorded_once_and_not_as_pinning(self):
        self.start("limits: {timeouts: {headers: 300ms}}")
        self._handshake_then_idle(partial_head=b"GET /index.html HTTP/1.1\r\nHost: api.exa")
        wait_for_record(self.proxy.session / "flows.jsonl", lambda f: f.get("error") is not None)
        _, body, _ = self.through(self.https() + "/index.html")
        self.assertEqual(body, b"hello from the origin\n")
        flows, _ = self.stop_and_check()
        self.assertEqual([(f["kind"], (f.get("error") or {}).get("type")) for f in flows],
                         [("connection", "client_header_timeout"), ("https", None)])

    def test_a_client_that_closes_long_after_its_handshake_is_not_taken_for_pinning(self):
        self.start()
        self._handshake_then_idle(2.5)
        wait_for_record(self.proxy.session / "flows.jsonl", lambda f: f.get("error") is not None)
        _, body, _ = self.through(self.https() + "/index.html")
        self.assertEqual(body, b"hello from the origin\n")
        flows, _ = self.stop_and_check()
        self.assertEqual([(f["kind"], (f.get("error") or {}).get("type")) for f in flows],
                         [("connection", "client_closed"), ("https", None)])
        self.assertIn("without sending a request", flows[0]["error"]["detail"])

    def test_sni_with_the_destination_port_is_read_without_it(self):
        """Go's net/http with ServerName = req.Host sends "name:port" (hey does)."""
        self.start()
        ctx = ssl.create_default_context(cafile=str(self.proxy.ca_pem))
        ctx.check_hostname = False  # the name checked below is the one leakscope minted for
        authority = f"api.example.test:{self.origin.tls_port}"
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=10) as raw:
            raw.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
            self.assertTrue(raw.recv(4096).startswith(b"HTTP/1.1 200"))
            with ctx.wrap_socket(raw, server_hostname=authority) as tls:
                names = [v for k, v in tls.getpeercert()["subjectAltName"]]
                tls.sendall(b"GET /index.html HTTP/1.1\r\nHost: api.example.test\r\nConnection: close\r\n\r\n")
                answer = b""
                while chunk := tls.recv(4096):
                    answer += chunk
        self.assertEqual(names, ["api.example.test"])
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:100])
        flows, _ = self.stop_and_check()
        self.assertEqual((flows[0]["sni"], flows[0]["status"]), ("api.example.test", 200))

    def test_the_next_connection_to_an_origin_resumes_its_tls_session(self):
        self.start()
        for i in range(3):  # /once closes each connection, so each request dials the origin again
            _, body, _ = self.through("--data-binary", "n=" + str(i), self.https("sdk.umeng.com") + f"/once/resume{i}")
            self.assertEqual(body, b"received\n")
        reused = {b["uri"]: b["reused"] for b in self.origin.logged("/once/resume", count=3)}
        self.assertEqual(reused, {"/once/resume0": ".", "/once/resume1": "r", "/once/resume2": "r"})
        flows, _ = self.stop_and_check()
        self.assertEqual([f["status"] for f in flows], [200, 200, 200])

    def test_an_origin_connection_outlives_its_tunnel_and_serves_the_next(self):
        """Each curl is a new phone connection; the origin's connection is kept for the next one, even
        when the phone's request said `Connection: close` (a hop-by-hop header, about its own)."""
        self.start()
        threads = os.cpu_count() or 1  # one pool per proxy thread, and connections go round robin
        for i in range(2 * threads):
            close = ["-H", "Connection: close"] if i % 2 else []
            _, body, _ = self.through(*close, "--data-binary", f"n={i}", self.https("sdk.umeng.com") + f"/echo/pool{i}")
            self.assertEqual(body, b"received\n")
        logged = self.origin.logged("/echo/pool", count=2 * threads)
        self.assertEqual(len(logged), 2 * threads)
        self.assertLess(len({b["conn"] for b in logged}), 2 * threads, logged)
        self.assertEqual({b["connection"] for b in logged}, {""})
        flows, _ = self.stop_and_check()
        self.assertEqual([(f["status"], f["error"]) for f in flows], [(200, None)] * (2 * threads))
        # The origin's leg in traffic.pcapng: a TCP stream carrying the requests of several phone
        # connections, each of them decrypted.
        out = subprocess.run(["tshark", "-r", str(self.proxy.session / "traffic.pcapng"), "-Y",
                              "http.request && frame.interface_id == 1", "-T", "fields", "-e", "tcp.stream",
                              "-e", "http.request.uri"], capture_output=True, text=True, timeout=120).stdout
        seen = [line.split("\t") for line in out.splitlines()]
        self.assertEqual(sorted(uri for _, uri in seen), sorted(f"/echo/pool{i}" for i in range(2 * threads)))
        self.assertLess(len({stream for stream, _ in seen}), 2 * threads)

    def test_a_kept_origin_connection_serves_only_the_name_it_was_verified_for(self):
        """Tunnels to one CONNECT authority with two SNIs: the origin's certificate was checked
        against the name of the tunnel that opened the connection, and only that name reuses it."""
        self.start()
        threads = os.cpu_count() or 1  # connections go round robin: each thread's pool sees both names
        names = (["api.example.test"] * threads + ["sdk.umeng.com"] * threads) * 2
        for i, name in enumerate(names):
            with self._tls_tunnel(name) as tls:
                tls.sendall(f"GET /echo/sni{i} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
                self.assertTrue(read_until(tls, b"received\n").endswith(b"received\n"))
        logged = self.origin.logged("/echo/sni", count=len(names))
        self.assertEqual({b["uri"]: b["sni"] for b in logged}, {f"/echo/sni{i}": n for i, n in enumerate(names)})
        by_connection = {}
        for b in logged:
            by_connection.setdefault(b["conn"], set()).add(b["sni"])
        self.assertLess(len(by_connection), len(names), "connections were kept")
        self.assertTrue(all(len(s) == 1 for s in by_connection.values()), by_connection)
        self.stop_and_check()

    def test_origin_connections_are_kept_per_phone(self):
        """Two phones (two source addresses): neither's tunnels reuse the other's origin connections."""
        self.start("clients: {allow: [127.0.0.0/8]}")
        threads = os.cpu_count() or 1
        phones = ["127.0.0.1"] * threads + ["127.0.0.2"] * threads + ["127.0.0.1"] * threads
        for i, phone in enumerate(phones):  # round robin: each thread sees both phones
            _, body, _ = self.through("--interface", phone, self.https("sdk.umeng.com") + f"/echo/phone{i}")
            self.assertEqual(body, b"received\n")
        conn = {b["uri"]: b["conn"] for b in self.origin.logged("/echo/phone", count=len(phones))}
        used_by = {}
        for i, phone in enumerate(phones):
            used_by.setdefault(conn[f"/echo/phone{i}"], set()).add(phone)
        self.assertTrue(all(len(p) == 1 for p in used_by.values()), used_by)
        self.assertLess(len(used_by), len(phones), "connections were kept")
        self.stop_and_check()

    def test_an_origin_connection_that_carried_ntlm_is_not_kept(self):
        """NTLM and Negotiate authenticate the connection: another tunnel must not inherit it."""
        self.start()
        threads = os.cpu_count() or 1
        for i in range(2 * threads):
            auth = ["-H", "Authorization: NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAKAGFKAAAADw=="] if i < threads else []
            self.assertEqual(self.through(*auth, self.https("sdk.umeng.com") + f"/echo/ntlm{i}")[1], b"received\n")
        conn = {b["uri"]: b["conn"] for b in self.origin.logged("/echo/ntlm", count=2 * threads)}
        self.assertFalse({conn[f"/echo/ntlm{i}"] for i in range(threads)} &
                         {conn[f"/echo/ntlm{i}"] for i in range(threads, 2 * threads)})
        self.stop_and_check()

    def test_an_origin_connection_idle_past_its_limit_is_not_kept(self):
        """The pool's 4 s run from the origin connection's last response, not from the end of the
        phone's tunnel: a tunnel left idle longer does not hand its origin connection on."""
        self.start()
        with self._tls_tunnel("sdk.umeng.com", host="sdk.umeng.com") as tls:
            tls.sendall(b"GET /echo/held HTTP/1.1\r\nHost: sdk.umeng.com\r\n\r\n")
            self.assertTrue(read_until(tls, b"received\n").endswith(b"received\n"))
            time.sleep(4.5)  # the phone keeps its connection open, unused, past the pool's limit
        for i in range(os.cpu_count() or 1):  # round robin: one of them lands on the held tunnel's thread
            self.assertEqual(self.through(self.https("sdk.umeng.com") + f"/echo/after{i}")[1], b"received\n")
        (held,) = self.origin.logged("/echo/held")
        after = self.origin.logged("/echo/after", count=os.cpu_count() or 1)
        self.assertNotIn(held["conn"], {b["conn"] for b in after})
        self.stop_and_check()

    def test_idle_tunnels_past_the_pools_limit_hand_their_origin_connections_over(self):
        """An idle tunnel's origin connection is a third of what the tunnel costs: past max_held
        idle tunnels on a thread (proxy/origin_pool.hpp), the one idle the longest hands its
        connection to the pool, which keeps at most 32 per phone and origin and closes the rest.
        The tunnel's next request still gets its answer, on a connection from the pool or a new one."""
        self.start()
        threads = os.cpu_count() or 1
        max_held, max_per_origin = 128, 32
        count = threads * (max_held + 2 * max_per_origin)
        request = b"GET /index.html HTTP/1.1\r\nHost: api.example.test\r\n\r\n"
        with contextlib.ExitStack() as stack:
            tunnels = []
            for _ in range(count):
                tls = stack.enter_context(self._tls_tunnel("api.example.test"))
                tls.sendall(request)
                self.assertIn(b"200 OK", read_until(tls, b"origin\n"))
                tunnels.append(tls)
            # Held by tunnels, at most max_held a thread; kept by the pools, at most 32 a thread.
            bound = threads * (max_held + max_per_origin)
            deadline = time.monotonic() + 10
            while (open_now := established_to(self.origin.tls_port)) > bound and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertLessEqual(open_now, bound, f"{count} idle tunnels")
            tunnels[0].sendall(request)
            self.assertIn(b"200 OK", read_until(tunnels[0], b"origin\n"), "the first tunnel handed its over")
        flows, _ = self.stop_and_check()
        self.assertEqual([(f["status"], f["error"]) for f in flows], [(200, None)] * (count + 1))

    def _one_exchange_then_closed_by_origin(self, origin, close=lambda: None):
        """One request through a tunnel to `origin`, which answers "ok"; then `close()`, after which
        the phone's connection must be closed by the proxy, and the exchange recorded whole."""
        self.addCleanup(origin.close)
        with self._tls_tunnel("api.example.test", port=origin.port) as tls:
            tls.sendall(b"GET /kept HTTP/1.1\r\nHost: api.example.test\r\n\r\n")
            self.assertTrue(read_until(tls, b"ok\n").endswith(b"ok\n"))
            close()
            tls.settimeout(10)
            self.assertEqual(tls.recv(4096), b"", "the phone's connection is closed in turn")
        flows, _ = self.stop_and_check()
        self.assertEqual([(f["status"], f["error"]) for f in flows], [(200, None)])

    def test_an_origin_that_closes_between_requests_closes_the_phones_connection(self):
        """Without a proxy the phone would see its idle connection closed and open a new one for its
        next request; through leakscope it sees the same, not a 502 for a request sent into it."""
        self.start()
        origin = KeptOrigin(self.origin.pem, self.origin.key)
        self._one_exchange_then_closed_by_origin(origin, lambda: self.assertEqual(origin.drop_idle(), 1))

    def test_an_origin_that_closes_right_behind_its_response_closes_the_phones_connection(self):
        """The FIN is in the origin's socket before the proxy starts watching it: the watch still
        sees it, and the phone's connection is closed rather than left to a 502."""
        self.start()
        self._one_exchange_then_closed_by_origin(HangUpOrigin(self.origin.pem, self.origin.key))

    def test_a_kept_connection_the_origin_closes_before_the_phones_first_request_is_replaced(self):
        """The phone never knew of the kept connection its tunnel took: when the origin closes it
        before the phone's first request, a fresh one serves the phone, whose tunnel stays open."""
        self.start()
        origin = KeptOrigin(self.origin.pem, self.origin.key)
        self.addCleanup(origin.close)
        threads = os.cpu_count() or 1
        for _ in range(threads):  # one kept connection in each thread's pool
            self.assertEqual(self.through(f"https://api.example.test:{origin.port}/first")[1], b"ok\n")
        with contextlib.ExitStack() as stack:
            # Round robin: these tunnels land one on each thread, and each takes its kept connection.
            tunnels = [stack.enter_context(self._tls_tunnel("api.example.test", port=origin.port))
                       for _ in range(threads)]
            self.assertEqual(origin.drop_idle(), threads)
            for tls in tunnels:
                tls.sendall(b"GET /second HTTP/1.1\r\nHost: api.example.test\r\n\r\n")
                self.assertTrue(read_until(tls, b"ok\n").endswith(b"ok\n"))
        flows, _ = self.stop_and_check()
        self.assertEqual([(f["status"], f["error"]) for f in flows], [(200, None)] * (2 * threads))

    def _stale_origin(self, read_body):
        """A StaleOrigin with one kept connection in each proxy thread's pool."""
        origin = StaleOrigin(self.origin.pem, self.origin.key, read_body=read_body)
        self.addCleanup(origin.close)
        for _ in range(os.cpu_count() or 1):  # round robin: one tunnel on each thread
            self.assertEqual(self.through(f"https://api.example.test:{origin.port}/first")[1], b"ok\n")
        return origin

    def test_a_kept_connection_the_origin_closes_under_the_first_request_is_replaced_and_the_request_resent(self):
        """The phone's tunnel is new, so its client would not send again: the proxy took the kept
        connection, so the proxy resends an idempotent request (a PUT here), once, on a fresh
        connection. The flow and its leaks are recorded once."""
        for read_body in (False, True):  # a reset, then a FIN
            with self.subTest(read_body=read_body):
                self.start()
                origin = self._stale_origin(read_body)
                threads = os.cpu_count() or 1
                for i in range(threads):  # round robin: each takes its thread's kept connection
                    _, body, _ = self.through("-X", "PUT", "--data-binary", f"imei={IMEI}",
                                              f"https://api.example.test:{origin.port}/second{i}")
                    self.assertEqual(body, b"ok\n")
                for i in range(threads):
                    first, again = origin.requests_to(f"/second{i}")
                    self.assertNotEqual(first, again, "resent on another connection")
                flows, leaks = self.stop_and_check()
                self.assertEqual([(f["status"], f["error"]) for f in flows], [(200, None)] * (2 * threads))
                resent = [f for f in flows if "/second" in f["url"]]
                self.assertTrue(all(f["note"].startswith("resent on a new connection") for f in resent), resent)
                self.assertEqual(sorted(l["flow"] for l in leaks if l["category"] == "imei"),
                                 sorted(f["id"] for f in resent))
                # traffic.pcapng: the phone sent each request once; on the origin's side it went out
                # on the kept connection and again on a new one.
                for interface, times in ((0, 1), (1, 2)):
                    out = subprocess.run(["tshark", "-r", str(self.proxy.session / "traffic.pcapng"), "-Y",
                                          f"http.request && frame.interface_id == {interface}", "-T", "fields",
                                          "-e", "tcp.stream", "-e", "http.request.uri"],
                                         capture_output=True, text=True, timeout=120).stdout
                    seen = [line.split("\t") for line in out.splitlines()]
                    for i in range(threads):
                        streams = [stream for stream, uri in seen if uri == f"/second{i}"]
                        self.assertEqual(len(set(streams)), times, (interface, i, seen))

    def test_a_request_whose_body_follows_the_reset_of_its_kept_connection_is_resent(self):
        """The origin resets the kept connection after the request head and before its body: the
        body's write fails, and the head and body go to a fresh connection instead."""
        self.start()
        origin = self._stale_origin(read_body=False)
        body = f"imei={IMEI}".encode()
        for i in range(os.cpu_count() or 1):  # round robin: each takes its thread's kept connection
            origin.reset.clear()
            with self._tls_tunnel("api.example.test", port=origin.port) as tls:
                tls.sendall(f"PUT /late{i} HTTP/1.1\r\nHost: api.example.test\r\n"
                            f"Content-Length: {len(body)}\r\n\r\n".encode())
                self.assertTrue(origin.reset.wait(10))
                tls.sendall(body)
                self.assertTrue(read_until(tls, b"ok\n").endswith(b"ok\n"))
            first, again = origin.requests_to(f"/late{i}")
            self.assertNotEqual(first, again, "resent on another connection")
        flows, leaks = self.stop_and_check()
        late = [f for f in flows if "/late" in f["url"]]
        self.assertEqual([(f["status"], f["error"]) for f in late], [(200, None)] * len(late))
        self.assertEqual(sorted(l["flow"] for l in leaks), sorted(f["id"] for f in late))

    def test_a_resend_whose_dial_fails_tells_the_phone_why(self):
        """The kept connection dies under the request and the origin no longer accepts new ones: the
        phone hears why, as for any failed dial, and the flow is recorded once with that error."""
        self.start()
        origin = self._stale_origin(read_body=True)
        origin.sock.shutdown(socket.SHUT_RDWR)  # stops listening (a close alone waits for the blocked accept)
        origin.close()  # the kept connections stay open
        threads = os.cpu_count() or 1
        for i in range(threads):
            _, body, _ = self.through("-X", "PUT", "--data-binary", f"imei={IMEI}",
                                      f"https://api.example.test:{origin.port}/gone{i}", check=False)
            self.assertIn(b"resending the request on a new connection", body)
        flows, leaks = self.stop_and_check()
        self.assertEqual([(f["status"], f["error"]["type"]) for f in flows[threads:]],
                         [(502, "upstream_refused")] * threads)
        self.assertEqual(sorted(l["flow"] for l in leaks), sorted(f["id"] for f in flows[threads:]))

    def test_a_post_is_not_resent(self):
        """RFC 9110 §9.2.2: a proxy must not resend a non-idempotent request. A POST on a kept
        connection that the origin closes under it is answered 502; the origin saw it once."""
        self.start()
        origin = self._stale_origin(read_body=True)
        threads = os.cpu_count() or 1
        for i in range(threads):  # at once: the kept connections are well under a second old
            _, body, _ = self.through("--data-binary", f"imei={IMEI}", f"https://api.example.test:{origin.port}/post{i}",
                                      check=False)
            self.assertIn(b"the server closed before the response was complete", body)
            self.assertEqual(len(origin.requests_to(f"/post{i}")), 1)
        flows, _ = self.stop_and_check()
        self.assertEqual([(f["status"], f["error"] and f["error"]["type"]) for f in flows[threads:]],
                         [(502, "upstream_closed")] * threads)

    def test_a_post_does_not_go_out_on_a_kept_connection_idle_for_over_a_second(self):
        """What is not resent is kept out of the race instead: a kept connection that has idled
        long enough for a server's keep-alive to be running out is replaced before a POST."""
        self.start()
        origin = self._stale_origin(read_body=True)
        primed = origin.connections
        time.sleep(1.2)  # the kept connections' idle time is what is under test
        threads = os.cpu_count() or 1
        for i in range(threads):
            _, body, _ = self.through("--data-binary", f"imei={IMEI}", f"https://api.example.test:{origin.port}/post{i}")
            self.assertEqual(body, b"ok\n")
            (number,) = origin.requests_to(f"/post{i}")
            self.assertGreater(number, primed, "sent on a new connection")
        flows, _ = self.stop_and_check()
        self.assertEqual([(f["status"], f["error"]) for f in flows], [(200, None)] * (2 * threads))
        self.assertEqual([(f["note"] or "").startswith("sent on a new connection") for f in flows],
                         [False] * threads + [True] * threads)

    def test_a_request_too_long_to_keep_is_not_resent(self):
        """Only a request that fits in 64 KiB is kept for a resend: a longer one on a kept connection
        the origin closes under it is answered 502, as a fresh connection's would be."""
        self.start()
        origin = self._stale_origin(read_body=True)
        threads = os.cpu_count() or 1
        for i in range(threads):
            _, body, _ = self.through("-X", "PUT", "-H", "Expect:", "--data-binary", "x" * (65 * 1024),
                                           f"https://api.example.test:{origin.port}/long{i}", check=False)
            self.assertIn(b"the server closed before the response was complete", body)
            self.assertEqual(len(origin.requests_to(f"/long{i}")), 1)
        flows, _ = self.stop_and_check()
        self.assertEqual([(f["status"], f["error"] and f["error"]["type"]) for f in flows[threads:]],
                         [(502, "upstream_closed")] * threads)

    def test_an_origin_that_closes_under_a_request_on_a_reused_tunnel_closes_the_phones_connection(self):
        """When the phone's connection carried a request before, the phone is shown what the origin
        did, a close with no response, and its client decides whether to send again, as it would
        without a proxy: not a 502 for a request it cannot tell apart from one that failed."""
        self.start()
        origin = StaleOrigin(self.origin.pem, self.origin.key)
        self.addCleanup(origin.close)
        with self._tls_tunnel("api.example.test", port=origin.port) as tls:
            tls.sendall(b"GET /one HTTP/1.1\r\nHost: api.example.test\r\n\r\n")
            self.assertTrue(read_until(tls, b"ok\n").endswith(b"ok\n"))
            tls.sendall(b"GET /two HTTP/1.1\r\nHost: api.example.test\r\n\r\n")
            tls.settimeout(10)
            self.assertEqual(tls.recv(4096), b"", "the phone's connection is closed with no response")
        self.assertEqual(origin.requests_to("/two"), [1], "sent once")
        flows, _ = self.stop_and_check()
        self.assertEqual([(f["status"], f["error"] and f["error"]["type"]) for f in flows],
                         [(200, None), (None, "upstream_closed")])

    def test_an_idle_origin_connection_the_origin_closed_is_not_used(self):
        self.start()
        origin = KeptOrigin(self.origin.pem, self.origin.key)
        self.addCleanup(origin.close)
        threads = os.cpu_count() or 1
        url = f"https://api.example.test:{origin.port}/kept"
        for _ in range(threads):  # one kept connection in each thread's pool
            self.assertEqual(self.through(url)[1], b"ok\n")
        self.assertEqual(origin.drop_idle(), threads)  # each closed by the proxy in answer
        for _ in range(threads):
            self.assertEqual(self.through(url)[1], b"ok\n")
        self.assertEqual(origin.drop_idle(), threads, "every request after the close dialled again")
        flows, _ = self.stop_and_check()
        self.assertEqual([(f["status"], f["error"]) for f in flows], [(200, None)] * (2 * threads))

    def test_a_phone_resumes_its_tls_session_with_the_proxy(self):
        """The ticket leakscope issues (one per handshake) brings the phone's next connection back
        without a full handshake."""
        self.start()
        ctx = ssl.create_default_context(cafile=str(self.proxy.ca_pem))
        session = None
        reused = []
        for _ in range(3):
            with self._tls_tunnel("api.example.test", ctx=ctx, session=session) as tls:
                tls.sendall(b"GET /index.html HTTP/1.1\r\nHost: api.example.test\r\nConnection: close\r\n\r\n")
                answer = b""
                while chunk := tls.recv(4096):  # TLS 1.3 tickets arrive with the data
                    answer += chunk
                self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:100])
                reused.append(tls.session_reused)
                session = tls.session
        self.assertEqual(reused, [False, True, True])
        flows, _ = self.stop_and_check()
        self.assertEqual([f["status"] for f in flows], [200, 200, 200])

    def test_expect_100_continue_is_relayed_before_the_body(self):
        self.start()
        payload = "imei=" + IMEI + "&pad=" + "y" * 4000
        # curl holds the body for 20 s unless it hears 100 Continue: finishing within --max-time
        # proves the interim answer came through ahead of the body.
        _, body, err = self.through("-v", "--max-time", "10", "--expect100-timeout", "20",
                                    "-H", "Expect: 100-continue", "--data-binary", payload,
                                    self.https("sdk.umeng.com") + "/echo/expect")
        self.assertEqual(body, b"received\n")
        self.assertIn("< HTTP/1.1 100 Continue", err)
        self.assertEqual(self.origin.logged("/echo/expect")[-1]["body"], payload)
        flows, leaks = self.stop_and_check()
        self.assertEqual(flows[0]["status"], 200)
        self.assertEqual([l["category"] for l in leaks], ["imei"])

    def test_expect_100_continue_answered_with_a_final_status_before_the_body(self):
        self.start()
        _, out, _ = self.through("--max-time", "10", "--expect100-timeout", "20", "-o", "/dev/null",
                                 "-w", "%{http_code}", "-H", "Expect: 100-continue", "--data-binary", "z" * 5000,
                                 self.https("sdk.umeng.com") + f"/small?imei={IMEI}")
        self.assertEqual(out, b"413")
        flows, leaks = self.stop_and_check()
        self.assertEqual(flows[0]["status"], 413)
        self.assertEqual(flows[0]["leaks"], 1)
        self.assertEqual(leaks[0]["where"], "url.query:imei")
        self.assertEqual(leaks[0]["flow"], flows[0]["id"])

    def test_a_request_cut_off_by_ctrl_c_is_still_recorded(self):
        self.start()
        target = f"http://api.example.test:{self.origin.http_port}/echo/slow?imei={IMEI}"
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=10) as s:
            s.sendall(f"POST {target} HTTP/1.1\r\nHost: api.example.test\r\nContent-Length: 1000\r\n"
                      "Expect: 100-continue\r\n\r\n".encode())
            # The origin's 100 Continue coming back proves the exchange is in flight at Ctrl-C.
            self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 100 Continue"))
            s.sendall(b"partial body")
            self.assertEqual(self.proxy.stop(), 0)
        flows = self.proxy.flows()
        self.assertEqual(len(flows), 1)
        self.assertFalse(flows[0]["complete"])
        self.assertEqual(flows[0]["error"]["type"], "client_closed")
        self.assertEqual([l["where"] for l in self.proxy.leaks()], ["url.query:imei"])

    def test_the_session_folder_is_sealed_and_verify_detects_tampering(self):
        from harness import LEAKSCOPE
        self.start()
        self.through("--data-binary", f"imei={IMEI}", self.https("sdk.umeng.com") + "/echo/seal")
        self.stop_and_check()
        folder = self.proxy.session
        keys = (folder / "keys.log").read_text().splitlines()
        self.assertTrue(keys and all(k.split()[0] in ("CLIENT_RANDOM", "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
                                                      "SERVER_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0",
                                                      "SERVER_TRAFFIC_SECRET_0", "EXPORTER_SECRET") for k in keys))
        self.assertEqual((folder / "keys.log").stat().st_mode & 0o777, 0o600)
        har = json.loads((folder / "flows.har").read_text())
        entries = har["log"]["entries"]
        self.assertEqual(len(entries), 1)
        self.assertEqual(entries[0]["request"]["postData"]["text"], f"imei={IMEI}")
        self.assertEqual(entries[0]["response"]["status"], 200)
        self.assertEqual(entries[0]["_leaks"][0]["category"], "imei")
        self.assertEqual(entries[0]["_sdk"]["name"], "Umeng")
        self.assertEqual(entries[0]["_consent_phase"], "no_consent_mark")
        import sqlite3
        with sqlite3.connect(f"file:{folder / 'session.sqlite'}?mode=ro", uri=True) as db:
            self.assertEqual(db.execute("select sdk, category, \"where\" from leaks").fetchall(),
                             [("Umeng", "imei", "body.form:imei")])
            self.assertEqual(db.execute("select count(*) from flows").fetchone()[0], 1)
            self.assertIn(("R1", "Umeng", "imei"), db.execute("select rule, destination, category from findings").fetchall())
        manifest = json.loads((folder / "manifest.json").read_text())
        self.assertIn("flows.har", manifest["files"])
        self.assertIn("session.sqlite", manifest["files"])
        self.assertEqual(manifest["leaks"]["count"], 1)
        self.assertIn("leaks.jsonl", manifest["files"])
        self.assertRegex(manifest["ca_sha256_fingerprint"], r"^([0-9A-F]{2}:){31}[0-9A-F]{2}$")
        verify = lambda: subprocess.run([LEAKSCOPE, "verify", str(folder)], capture_output=True, text=True, timeout=60)
        ok = verify()
        self.assertEqual(ok.returncode, 0, ok.stdout)
        self.assertIn("intact", ok.stdout)
        leaks = (folder / "leaks.jsonl").read_text()
        (folder / "leaks.jsonl").write_text(leaks.replace('"category":"imei"', '"category":"imsi"'))
        bad = verify()
        self.assertEqual(bad.returncode, 1)
        self.assertIn("leaks.jsonl: differs from the manifest", bad.stdout)

    def test_traffic_pcapng_decrypts_in_stock_tshark_and_matches_the_flows(self):
        self.start()
        self.through(self.https() + "/index.html", self.https() + "/index.html?n=2")  # two on one tunnel
        self.through("--data-binary", f"imei={IMEI}", self.https("sdk.umeng.com") + "/echo/pcap")
        curl("-x", self.proxy.url, f"http://api.example.test:{self.origin.http_port}/index.html?plain=1")
        flows, _ = self.stop_and_check()
        expected = sorted((f["dest"]["host"], f["url"].split(str(f["dest"]["port"]), 1)[1]) for f in flows)
        pcap = self.proxy.session / "traffic.pcapng"
        self.assertEqual(pcap.stat().st_mode & 0o777, 0o600)
        for interface in (0, 1):  # the phone's leg, then the origin's
            # The origin's plain-HTTP port is chosen at run time and may be one Wireshark gives
            # to another protocol: it is named as HTTP.
            decode_as = ["-d", f"tcp.port=={self.origin.http_port},http"]
            run = subprocess.run(["tshark", "-r", str(pcap), *decode_as,
                                  "-Y", f"http.request && frame.interface_id == {interface}",
                                  "-T", "fields", "-e", "http.host", "-e", "http.request.uri"],
                                 capture_output=True, text=True, timeout=120)
            # The phone sent plain-HTTP requests in absolute form, as one does to a proxy.
            path = lambda uri: "/" + uri.split("://", 1)[1].split("/", 1)[1] if "://" in uri else uri
            seen = sorted((host.rsplit(":", 1)[0], path(uri)) for host, uri in (l.split("\t") for l in run.stdout.splitlines()))
            if seen != expected:
                # Every frame as tshark reads it, for a failure seen once on a fresh clone and
                # never again: which frames of the leg are in the file, and how they were read.
                frames = subprocess.run(["tshark", "-r", str(pcap), *decode_as, "-T", "fields", "-e", "frame.number",
                                         "-e", "frame.interface_id", "-e", "tcp.stream", "-e", "tcp.srcport",
                                         "-e", "tcp.dstport", "-e", "tcp.seq_raw", "-e", "tcp.len", "-e", "_ws.col.Info"],
                                        capture_output=True, text=True, timeout=120)
                self.fail(f"interface {interface}: {seen} != {expected}\ntshark exit {run.returncode}: {run.stderr}\n"
                          f"{pcap.stat().st_size} bytes, frames:\n{frames.stdout}{frames.stderr}")
        decrypted = self.proxy.session / "decrypted.pcapng"

        def fields(file, filter_, *names):
            out = subprocess.run(["tshark", "-r", str(file), "-Y", filter_, "-T", "fields",
                                  *sum((["-e", n] for n in names), [])], capture_output=True, text=True, timeout=120).stdout
            return [l.split("\t") for l in out.splitlines()]

        seen = sorted((h.rsplit(":", 1)[0], u) for h, u in fields(decrypted, "http.request", "http.host", "http.request.uri"))
        self.assertEqual(seen, expected)
        (leak,) = [l for l in self.proxy.leaks() if l["request"]["path"] == "/echo/pcap"]
        frame = leak["frames"]["decrypted"]
        self.assertEqual(fields(decrypted, f"frame.number == {frame}", "http.request.uri", "frame.comment"),
                         [["/echo/pcap", f"leak {leak['id']}: imei → Umeng (third party)"]])
        self.assertEqual(fields(pcap, f"frame.number == {leak['frames']['traffic']}", "frame.interface_id", "http.request.uri"),
                         [["0", "/echo/pcap"]])

    # --- refusals and typed errors ----------------------------------------------------------
    def test_obs_fold_is_refused_not_relayed(self):
        self.start()
        target = f"http://api.example.test:{self.origin.http_port}/index.html"
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=10) as s:
            s.sendall(f"GET {target} HTTP/1.1\r\nHost: api.example.test\r\nX-Id: 1\r\n 2\r\n\r\n".encode())
            reply = s.recv(4096)
        self.assertTrue(reply.startswith(b"HTTP/1.1 400 "), reply)
        flows, _ = self.stop_and_check()
        self.assertEqual(flows[0]["error"]["type"], "client_bad_request")
        self.assertIn("obs_fold", flows[0]["error"]["detail"])

    def test_a_head_that_trickles_in_past_the_headers_timeout_is_cut_off(self):
        self.start("limits: {timeouts: {headers: 300ms}}")
        with socket.create_connection(("127.0.0.1", self.proxy.port)) as s:
            s.sendall(b"GET http://api.example.test/ HTTP/1.1\r\nX-Slow: ")
            s.settimeout(0.05)
            sent = 0
            while True:  # slowloris: a byte whenever the proxy is quiet, each read stays short
                try:
                    if s.recv(4096) == b"":
                        break
                except socket.timeout:
                    s.sendall(b"x")
                    sent += 1
                    self.assertLess(sent, 400, "the proxy never closed the connection")
                except ConnectionResetError:
                    break
        self.assertGreater(sent, 1)
        flows, _ = self.stop_and_check()
        self.assertEqual(flows[0]["error"]["type"], "client_header_timeout")


    def test_untrusted_upstream_certificate_gives_502_and_a_typed_error(self):
        self.start()
        rc, body, _ = self.through("-w", "%{http_code}", f"https://{UNTRUSTED_NAME}:{self.origin.bad_port}/",
                                   check=False)
        self.assertEqual(rc, 0)
        self.assertTrue(body.endswith(b"502"), body)
        self.assertIn(b"does not verify", body)
        flows, _ = self.stop_and_check()
        self.assertEqual(len(flows), 1)
        self.assertEqual(flows[0]["status"], 502)
        self.assertEqual(flows[0]["error"]["type"], "upstream_cert_untrusted")
        self.assertIn(UNTRUSTED_NAME, flows[0]["error"]["detail"])

    def test_passthrough_host_is_tunnelled_untouched(self):
        self.start("tls: {passthrough: [bank.example.test]}")
        # The origin's own certificate reaches curl: it verifies with the origin CA, not ours.
        _, body, _ = curl("-x", self.proxy.url, "--cacert", str(self.origin.ca_pem),
                          f"https://bank.example.test:{self.origin.tls_port}/index.html?imei={IMEI}")
        self.assertEqual(body, b"hello from the origin\n")
        flows, leaks = self.stop_and_check()
        self.assertEqual(len(flows), 1)
        self.assertEqual(flows[0]["kind"], "passthrough")
        self.assertEqual(flows[0]["note"], "tls.passthrough: bank.example.test")
        self.assertGreater(flows[0]["bytes_up"], 0)
        self.assertGreater(flows[0]["bytes_down"], 0)
        self.assertEqual(leaks, [], "a passthrough tunnel is not decrypted")
        out = subprocess.run(["tshark", "-r", str(self.proxy.session / "traffic.pcapng"), "-Y", "tls.handshake.type == 1",
                              "-T", "fields", "-e", "frame.interface_id", "-e", "tls.handshake.extensions_server_name"],
                             capture_output=True, text=True, timeout=60).stdout
        self.assertEqual(sorted(out.splitlines()), ["0\tbank.example.test", "1\tbank.example.test"],
                         "the untouched TLS is in the capture, on both legs")

    def test_client_that_rejects_our_certificate_is_recorded_and_then_passed_through(self):
        self.start()
        rc, _, err = self.through(self.https() + "/index.html", cacert=False, check=False)
        self.assertEqual(rc, 60, err)  # curl: peer certificate cannot be authenticated
        # With tls.auto_passthrough (the default) the next connection goes through untouched.
        _, body, _ = curl("-x", self.proxy.url, "--cacert", str(self.origin.ca_pem), self.https() + "/index.html")
        self.assertEqual(body, b"hello from the origin\n")
        flows, _ = self.stop_and_check()
        self.assertEqual(flows[0]["error"]["type"], "tls_client_rejected")
        self.assertIn("pinning suspected", flows[0]["error"]["detail"])
        self.assertEqual(flows[0]["dest"]["host"], "api.example.test")
        self.assertEqual(flows[1]["kind"], "passthrough")
        self.assertIn("tls.auto_passthrough", flows[1]["note"])

    def test_rejection_without_auto_passthrough_stays_intercepted(self):
        self.start("tls: {auto_passthrough: false}")
        rc, _, _ = self.through(self.https() + "/index.html", cacert=False, check=False)
        self.assertEqual(rc, 60)
        _, body, _ = self.through(self.https() + "/index.html")
        self.assertEqual(body, b"hello from the origin\n")
        flows, _ = self.stop_and_check()
        self.assertEqual([f["kind"] for f in flows], ["connection", "https"])

    def test_client_outside_the_allowlist_is_refused(self):
        self.start("clients: {allow: [10.0.0.0/8]}")
        rc, _, _ = self.through(self.https() + "/index.html", check=False)
        self.assertNotEqual(rc, 0)
        flows, _ = self.stop_and_check()
        self.assertEqual(len(flows), 1)
        self.assertEqual(flows[0]["error"]["type"], "client_not_allowed")
        self.assertIn("not in clients.allow", self.proxy.stderr)

    def test_connect_to_the_proxy_itself_is_refused(self):
        proxy = self.start()
        rc, body, _ = curl("-x", proxy.url, "-w", "%{http_code}", "-p", f"https://127.0.0.1:{proxy.port}/",
                           check=False)
        self.assertNotEqual(rc, 0)
        flows, _ = self.stop_and_check()
        self.assertEqual(flows[-1]["error"]["type"], "loop_to_proxy")

    def test_malformed_request_gets_400_and_the_proxy_keeps_serving(self):
        self.start()
        with socket.create_connection(("127.0.0.1", self.proxy.port)) as s:
            s.sendall(b"GET http://api.example.test/ HTTP/1.1\r\nHost : x\r\n\r\n")  # space before colon
            reply = s.recv(4096)
        self.assertTrue(reply.startswith(b"HTTP/1.1 400 "), reply)
        _, body, _ = self.through(self.https() + "/index.html")
        self.assertEqual(body, b"hello from the origin\n")
        flows, _ = self.stop_and_check()
        self.assertEqual(flows[0]["error"]["type"], "client_bad_request")
        self.assertEqual(flows[1]["status"], 200)


class CaExport(unittest.TestCase):
    def test_formats(self):
        root = temp_root("ca")
        self.addCleanup(shutil.rmtree, root, True)
        cfg = root / "c.yaml"
        cfg.write_text("ca: {dir: ca}\n")
        from harness import LEAKSCOPE
        pem = subprocess.run([LEAKSCOPE, "ca", "export", "-c", str(cfg)], capture_output=True, check=True).stdout
        self.assertTrue(pem.startswith(b"-----BEGIN CERTIFICATE-----"))
        self.assertEqual((root / "ca/ca.key").stat().st_mode & 0o777, 0o600)
        der = subprocess.run([LEAKSCOPE, "ca", "export", "-c", str(cfg), "--format", "der"],
                             capture_output=True, check=True).stdout
        converted = subprocess.run(["openssl", "x509", "-inform", "DER", "-outform", "PEM"], input=der,
                                   capture_output=True, check=True).stdout
        self.assertEqual(converted, pem)
        out = subprocess.run([LEAKSCOPE, "ca", "export", "-c", str(cfg), "--format", "android", "-o", str(root)],
                             capture_output=True, check=True, text=True).stdout
        expected = subprocess.run(["openssl", "x509", "-noout", "-subject_hash_old"], input=pem,
                                  capture_output=True, check=True).stdout.decode().strip() + ".0"
        self.assertEqual(out.splitlines()[0], str(root / expected))
        self.assertEqual((root / expected).read_bytes(), pem)

    def test_open_ca_key_is_refused(self):
        root = temp_root("ca")
        self.addCleanup(shutil.rmtree, root, True)
        cfg = root / "c.yaml"
        cfg.write_text("ca: {dir: ca}\ncapture: {dir: caps}\nlisten: {port: 0}\n")
        from harness import LEAKSCOPE
        subprocess.run([LEAKSCOPE, "ca", "export", "-c", str(cfg)], capture_output=True, check=True)
        (root / "ca/ca.key").chmod(0o644)
        p = subprocess.run([LEAKSCOPE, "run", "-c", str(cfg)], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn("readable by group or others", p.stderr)

    def test_config_error_names_file_line_and_key(self):
        root = temp_root("cfg")
        self.addCleanup(shutil.rmtree, root, True)
        cfg = root / "bad.yaml"
        cfg.write_text("listen:\n  port: 8080\n  colour: blue\n")
        from harness import LEAKSCOPE
        p = subprocess.run([LEAKSCOPE, "run", "-c", str(cfg)], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn(f"{cfg}:3:3: listen.colour is not a known key", p.stderr)


if __name__ == "__main__":
    unittest.main()
