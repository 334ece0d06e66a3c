"""Hostile and broken peers: each case gets its typed outcome, and the proxy keeps serving."""

import gzip
import json
import socket
import ssl
import struct
import subprocess
import threading
import zlib

from harness import OriginTestCase, ScriptedOrigin, TlsOrigin, curl, free_port, read_until, run, sign_with_ca


def exchange(port, data, read=True):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        if not read:
            return b""
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except (ConnectionResetError, socket.timeout):
            pass
        return out


def nul_san(name: str):
    """subjectAltName as raw DER (GeneralNames with one dNSName), for names openssl's text form
    cannot carry."""
    dns = name.encode()
    general_name = bytes([0x82, len(dns)]) + dns
    return "DER:" + ":".join(f"{b:02x}" for b in bytes([0x30, len(general_name)]) + general_name)


class Hostile(OriginTestCase):
    def still_serves(self):
        _, body, _ = curl("-x", self.proxy.url, "--cacert", str(self.proxy.ca_pem),
                          f"https://api.example.test:{self.origin.tls_port}/index.html")
        self.assertEqual(body, b"hello from the origin\n")

    def error_types(self):
        self.assertEqual(self.proxy.stop(), 0)
        return [f["error"]["type"] for f in self.proxy.flows() if f["error"]]

    def test_malformed_connect_authorities_get_400(self):
        self.start()
        for authority in ["api.example.test", "api.example.test:0", "api.example.test:99999", "a b:443",
                          "[::1:443", "user@api.example.test:443"]:
            with self.subTest(authority=authority):
                reply = exchange(self.proxy.port, f"CONNECT {authority} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                self.assertTrue(reply.startswith(b"HTTP/1.1 400 ") or reply == b"", reply[:80])
        self.still_serves()
        self.assertIn("client_bad_request", self.error_types())

    def test_ports_outside_allow_ports_are_refused(self):
        self.start(upstream_extra="allow_ports: [443]")
        reply = exchange(self.proxy.port, f"CONNECT api.example.test:{self.origin.tls_port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        self.assertTrue(reply.startswith(b"HTTP/1.1 403 "), reply[:80])
        self.assertIn(b"port_not_allowed", reply)
        self.assertEqual(self.error_types(), ["port_not_allowed"])

    def test_a_refused_origin_gives_a_typed_502(self):
        self.start()
        closed = free_port()
        reply = exchange(self.proxy.port, f"CONNECT api.example.test:{closed} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        self.assertTrue(reply.startswith(b"HTTP/1.1 502 "), reply[:80])
        self.still_serves()
        self.assertIn("upstream_refused", self.error_types())

    def test_garbage_inside_a_tunnel_is_a_bad_request(self):
        self.start()
        reply = exchange(self.proxy.port, f"CONNECT api.example.test:{self.origin.http_port} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
                         + b"\x01\x02\x03 not http at all\r\n\r\n")
        self.assertIn(b"HTTP/1.1 400 ", reply)
        self.still_serves()
        self.assertIn("client_bad_request", self.error_types())

    # Framing that two parsers could read two ways is how requests are smuggled: each is refused
    # before any byte reaches the origin (RFC 9112 §6.3, §11.2; llhttp strict mode).
    FRAMING = [
        ("bare LF", b"GET /echo/smuggle HTTP/1.1\nHost: x\n\n", b"400"),
        ("NUL in a header", b"GET /echo/smuggle HTTP/1.1\r\nHost: x\x00y\r\n\r\n", b"400"),
        ("space before the colon", b"GET /echo/smuggle HTTP/1.1\r\nHost : x\r\n\r\n", b"400"),
        ("two Content-Lengths", b"POST /echo/smuggle HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", b"400"),
        ("malformed Content-Length", b"POST /echo/smuggle HTTP/1.1\r\nHost: x\r\nContent-Length: 3x\r\n\r\nabc", b"400"),
        ("negative Content-Length", b"POST /echo/smuggle HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", b"400"),
        ("Content-Length with Transfer-Encoding",
         b"POST /echo/smuggle HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", b"400"),
        ("Transfer-Encoding not ending in chunked", b"POST /echo/smuggle HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", b"400"),
        ("Transfer-Encoding without chunked", b"POST /echo/smuggle HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc", b"400"),
        ("bad chunk size", b"POST /echo/smuggle HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", b"400"),
        ("chunk size overflowing 64 bits",
         b"POST /echo/smuggle HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\nabc\r\n", b"400"),
        ("chunk without its CRLF", b"POST /echo/smuggle HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX0\r\n\r\n", b"400"),
        ("obs-fold", b"GET /echo/smuggle HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n", b"400"),
        ("HTTP/0.9 request", b"GET /echo/smuggle\r\n\r\n", b"400"),
        ("invalid method characters", b"G@T /echo/smuggle HTTP/1.1\r\nHost: x\r\n\r\n", b"400"),
        ("invalid version", b"GET /echo/smuggle HTTP/9.x\r\nHost: x\r\n\r\n", b"400"),
        ("a 1 MiB header", b"GET /echo/smuggle HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n", b"431"),
        ("10,000 headers", b"GET /echo/smuggle HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(10000)) + b"\r\n", b"431"),
    ]

    def test_ambiguous_framing_is_refused_before_the_origin(self):
        self.start()
        connect = f"CONNECT api.example.test:{self.origin.http_port} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        for name, request, status in self.FRAMING:
            with self.subTest(name):
                reply = exchange(self.proxy.port, connect + request)
                established, _, answer = reply.partition(b"\r\n\r\n")
                self.assertTrue(established.startswith(b"HTTP/1.1 200"), reply[:100])
                self.assertTrue(answer.startswith(b"HTTP/1.1 " + status), answer[:200])
        self.still_serves()
        # Heads are refused before the origin. A chunked body is refused where it breaks: when
        # its first bytes came with the head, the origin never sees the request; when they came
        # later, the head went on first and the origin saw a request cut short, with no byte of
        # the bad chunk, that it never answered (nginx logs 400 or 499).
        reached = [b for b in self.origin.bodies() if b["uri"].startswith("/echo/smuggle")]
        self.assertLessEqual(len(reached), 3, reached)
        for b in reached:
            self.assertEqual(b["body"], "")
            self.assertIn(b["status"], ("400", "499"))
        errors = self.error_types()
        refused = [e for e in errors if e in ("client_bad_request", "request_header_too_large", "client_bad_body")]
        self.assertEqual(len(refused), len(self.FRAMING), errors)

    def test_a_bad_request_after_a_good_one_is_refused_alone(self):
        self.start()
        connect = f"CONNECT api.example.test:{self.origin.http_port} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        reply = exchange(self.proxy.port, connect + b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n"
                         b"GET /echo/smuggle HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
        self.assertIn(b"hello from the origin", reply)
        self.assertIn(b"HTTP/1.1 400 ", reply.split(b"hello from the origin", 1)[1])
        self.still_serves()

    # Responses a server should not send: (name, bytes, reset, what the phone gets, the flow's error type).
    RESPONSES = [
        ("1xx before the final response", b"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
         False, b"200", None),
        ("204 with a body", b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello", False, b"204", None),
        ("304 with a body", b"HTTP/1.1 304 Not Modified\r\n\r\nhello", False, b"304", None),
        ("HTTP/0.9 response", b"hello, no status line\r\n", False, b"502", "upstream_bad_response"),
        ("bytes after a complete response", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n",
         False, b"200", None),
        ("Content-Length with Transfer-Encoding",
         b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
         False, b"502", "upstream_bad_response"),
        ("two Content-Lengths", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nokk", False, b"502",
         "upstream_bad_response"),
        ("obs-fold", b"HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 2\r\n\r\nok", False, b"502", "upstream_bad_response"),
        ("a 1 MiB header", b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (1 << 20) + b"\r\nContent-Length: 2\r\n\r\nok", False, b"502",
         "upstream_bad_response"),
        ("closed before answering", b"", False, b"502", None),
        ("reset in the middle of the body", b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npartial", True, b"200", None),
    ]

    def test_misbehaving_origins_get_typed_outcomes(self):
        self.start()
        for name, reply, reset, status, error in self.RESPONSES:
            with self.subTest(name):
                origin = ScriptedOrigin(reply, reset)
                self.addCleanup(origin.close)
                got = exchange(self.proxy.port, f"GET http://127.0.0.1:{origin.port}/case HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               "Connection: close\r\n\r\n".encode())
                if status == b"502" and reply == b"":
                    self.assertTrue(got.startswith(b"HTTP/1.1 502 "), got[:200])
                else:
                    self.assertTrue(got.startswith(b"HTTP/1.1 " + status) or b"\r\n\r\nHTTP/1.1 " + status in got, got[:200])
                if name == "1xx before the final response":
                    self.assertTrue(got.endswith(b"ok"), got)
                if name == "bytes after a complete response":
                    self.assertNotIn(b"HTTP/1.1 200 OK\r\n\r\n", got.split(b"ok", 1)[1], "the extra bytes were not relayed")
        self.still_serves()
        self.assertEqual(self.proxy.stop(), 0)
        flows = {f["url"]: f for f in self.proxy.flows() if f.get("url", "") and f["url"].endswith("/case")}
        errors = [(f["error"] or {}).get("type") for f in self.proxy.flows() if (f.get("url") or "").endswith("/case")]
        for name, _, _, _, error in self.RESPONSES:
            if error:
                self.assertIn(error, errors, name)
        cut = [f for f in self.proxy.flows() if (f.get("url") or "").endswith("/case") and f.get("status") == 200 and not f["complete"]]
        self.assertTrue(cut, "the reset mid-body is recorded as incomplete")
        self.assertGreater(cut[0]["bytes_down"], 0, "the bytes relayed before the reset are counted")

    def tunnel_tls(self, server_hostname, ctx=None):
        """CONNECT, then TLS with `server_hostname` as the SNI (None: no SNI), then one GET."""
        if ctx is None:
            ctx = ssl.create_default_context(cafile=str(self.proxy.ca_pem))
            ctx.check_hostname = False
        authority = f"api.example.test:{self.origin.tls_port}"
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=10) as raw:
            raw.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
            self.assertTrue(raw.recv(4096).startswith(b"HTTP/1.1 200"))
            with ctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
                names = [v for _, v in tls.getpeercert()["subjectAltName"]]
                tls.sendall(b"GET /index.html HTTP/1.1\r\nHost: api.example.test\r\nConnection: close\r\n\r\n")
                answer = b""
                while chunk := tls.recv(4096):
                    answer += chunk
        return names, answer

    def test_sni_absent_upper_case_or_with_a_trailing_dot(self):
        self.start()
        for sni in [None, "API.Example.TEST", "api.example.test."]:
            with self.subTest(sni=sni):
                names, answer = self.tunnel_tls(sni)
                self.assertEqual(names, ["api.example.test"], "the leaf is for the name, normalised (or the CONNECT host)")
                self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:80])
        self.assertEqual(self.proxy.stop(), 0)
        self.assertEqual([f["sni"] for f in self.proxy.flows()], [None, "api.example.test", "api.example.test"])

    def test_an_ip_address_as_sni_is_read_as_no_sni(self):
        self.start()
        out = subprocess.run(["openssl", "s_client", "-proxy", f"127.0.0.1:{self.proxy.port}", "-connect",
                              f"api.example.test:{self.origin.tls_port}", "-servername", "127.0.0.1", "-CAfile",
                              str(self.proxy.ca_pem), "-verify_hostname", "api.example.test", "-verify_return_error",
                              "-ign_eof", "-quiet"],
                             input=b"GET /index.html HTTP/1.1\r\nHost: api.example.test\r\nConnection: close\r\n\r\n",
                             capture_output=True, timeout=30)
        self.assertIn(b"hello from the origin", out.stdout, out.stderr[-500:])
        self.assertEqual(self.proxy.stop(), 0)
        self.assertEqual([(f["sni"], f["status"]) for f in self.proxy.flows()], [("127.0.0.1", 200)])

    def test_tls_below_1_2_is_refused_and_recorded(self):
        self.start()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        with self.assertRaises(ssl.SSLError):
            self.tunnel_tls("api.example.test", ctx)
        self.still_serves()
        self.assertIn("client_tls_failed", self.error_types())

    def test_each_bad_upstream_certificate_is_refused_with_its_reason(self):
        d = self.origin.root / "bad-certs"
        d.mkdir(exist_ok=True)
        ca_key, ca_pem = self.origin.root / "origin-ca.key", self.origin.ca_pem
        name = ["api.example.test"]
        inter_key, inter_csr, inter_pem = d / "inter.key", d / "inter.csr", d / "inter.pem"
        run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(inter_key),
             "-out", str(inter_csr), "-subj", "/CN=intermediate"])
        (d / "inter.ext").write_text("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n")
        run(["openssl", "x509", "-req", "-in", str(inter_csr), "-CA", str(ca_pem), "-CAkey", str(ca_key), "-CAcreateserial",
             "-out", str(inter_pem), "-days", "2", "-extfile", str(d / "inter.ext")])
        cases = {
            "upstream_cert_expired": sign_with_ca(d, "expired", ca_key, ca_pem, name, "20200101000000Z", "20200201000000Z"),
            "upstream_cert_not_yet_valid": sign_with_ca(d, "future", ca_key, ca_pem, name, "20990101000000Z", "20991231000000Z"),
            "upstream_cert_self_signed": sign_with_ca(d, "self", ca_key, ca_pem, name, self_signed=True),
            "upstream_cert_wrong_host": sign_with_ca(d, "other", ca_key, ca_pem, ["other.example.test"]),
            "upstream_cert_untrusted": sign_with_ca(d, "orphan", inter_key, inter_pem, name),  # intermediate not sent
            "upstream_cert_weak": sign_with_ca(d, "sha1", ca_key, ca_pem, name, md="sha1"),
            "upstream_cert_weak ": sign_with_ca(d, "rsa1024", ca_key, ca_pem, name, key_args=("-newkey", "rsa:1024")),
            # "api.example.test\0.evil.test" as a dNSName: C string comparison would stop at the NUL.
            "upstream_cert_wrong_host ": sign_with_ca(d, "nul", ca_key, ca_pem, name, san=nul_san("api.example.test\0.evil.test")),
        }
        self.start()
        for expected, (key, pem) in cases.items():
            with self.subTest(expected):
                server = TlsOrigin(pem, key)
                self.addCleanup(server.close)
                rc, body, _ = curl("-i", "-x", self.proxy.url, "--cacert", str(self.proxy.ca_pem), "-w", "%{http_code}",
                                   f"https://api.example.test:{server.port}/x", check=False)
                self.assertTrue(body.endswith(b"502"), body[-200:])
                self.assertIn(b"X-Leakscope-Error: " + expected.strip().encode(), body)
        self.still_serves()
        errors = self.error_types()
        for expected in cases:
            self.assertIn(expected.strip(), errors)

    def test_a_value_split_across_segments_and_chunks_is_still_found(self):
        self.start()
        connect = f"CONNECT sdk.umeng.com:{self.origin.http_port} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=10) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(connect)
            self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 200"))
            s.sendall(b"POST /echo/split HTTP/1.1\r\nHost: sdk.umeng.com\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"c\r\n{\"imei\":\"865\r\n")
            s.sendall(b"4\r\n4321\r\n")
            s.sendall(b"e\r\n01234564\"}    \r\n0\r\n\r\n")
            answer = read_until(s, b"received")
        self.assertIn(b"received", answer)
        self.assertEqual(self.proxy.stop(), 0)
        self.assertEqual([(l["category"], l["where"]) for l in self.proxy.leaks()], [("imei", "body.json:$.imei")])

    def test_a_client_reset_mid_body_is_recorded_incomplete(self):
        self.start()
        connect = f"CONNECT sdk.umeng.com:{self.origin.http_port} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        s = socket.create_connection(("127.0.0.1", self.proxy.port), timeout=10)
        s.sendall(connect)
        self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 200"))
        s.sendall(b"POST /echo/reset HTTP/1.1\r\nHost: sdk.umeng.com\r\nContent-Length: 100000\r\n\r\nimei=865432101234564&")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # RST
        self.still_serves()
        self.assertEqual(self.proxy.stop(), 0)
        cut = [f for f in self.proxy.flows() if (f.get("url") or "").endswith("/echo/reset")]
        self.assertEqual(len(cut), 1)
        self.assertFalse(cut[0]["complete"])
        self.assertEqual(cut[0]["error"]["type"], "client_closed")
        self.assertGreater(cut[0]["bytes_up"], 0)
        self.assertIn("imei", [l["category"] for l in self.proxy.leaks()], "what arrived was still inspected")

    def test_destinations_refused_by_resolved_address(self):
        self.start(allow_private=False)
        cases = [
            (f"127.0.0.1:{self.origin.tls_port}", b"403", b"private_address"),  # loopback
            ("10.20.30.40:443", b"403", b"private_address"),
            ("169.254.169.254:80", b"403", b"private_address"),  # link-local: the cloud metadata address
            ("[::1]:443", b"403", b"private_address"),
            (f"localhost:{self.origin.tls_port}", b"403", b"private_address"),  # a name, judged by what it resolves to
            (f"127.0.0.1:{self.proxy.port}", b"403", b"loop_to_proxy"),
            ("no-such-host.invalid:443", b"502", b"dns_failed"),
        ]
        for authority, status, error in cases:
            with self.subTest(authority):
                reply = exchange(self.proxy.port, f"CONNECT {authority} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                self.assertTrue(reply.startswith(b"HTTP/1.1 " + status), reply[:100])
                self.assertIn(b"X-Leakscope-Error: " + error, reply)
        # A name mapped by upstream.resolve to a private address is the lab's own server: allowed.
        self.still_serves()

    def test_a_truncated_client_hello_is_recorded(self):
        self.start()
        exchange(self.proxy.port, f"CONNECT api.example.test:{self.origin.tls_port} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
                 + b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        self.still_serves()
        self.assertIn("client_hello_incomplete", self.error_types())

    def test_an_origin_that_never_answers_gets_504(self):
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        accepted = []
        threading.Thread(target=lambda: accepted.append(silent.accept()), daemon=True).start()
        self.addCleanup(silent.close)
        self.start("limits: {timeouts: {upstream_response: 300ms}}")
        port = silent.getsockname()[1]
        rc, out, _ = curl("-x", self.proxy.url, "-w", "%{http_code}", "-o", "/dev/null",
                          f"http://api.example.test:{port}/never", check=False)
        self.assertEqual(out, b"504")
        self.still_serves()
        self.assertIn("upstream_timeout", self.error_types())


if __name__ == "__main__":
    import unittest
    unittest.main()


def compressed(coding: str, data: bytes) -> bytes:
    """`data` in one Content-Encoding, made by the coding's own tool."""
    if coding == "gzip":
        return gzip.compress(data)
    if coding == "deflate":
        return zlib.compress(data)
    tool = {"br": ["brotli", "-c"], "zstd": ["zstd", "-q", "-c"]}[coding]
    return subprocess.run(tool, input=data, capture_output=True, check=True).stdout


class ContentEncodings(OriginTestCase):
    """Bodies whose Content-Encoding is stacked, lies, is cut short or expands without end: the
    origin gets the bytes as sent, the flow says what could not be decoded, and what could be
    decoded is still scanned."""

    def post(self, path, body, coding, content_type="application/x-www-form-urlencoded"):
        path_file = self.root / "body.bin"
        path_file.write_bytes(body)
        _, answer, _ = curl("-x", self.proxy.url, "--cacert", str(self.proxy.ca_pem), "-H", f"Content-Encoding: {coding}",
                            "-H", f"Content-Type: {content_type}", "--data-binary", f"@{path_file}",
                            f"https://sdk.umeng.com:{self.origin.tls_port}{path}")
        self.assertEqual(answer, b"received\n")
        got = self.origin.logged(path)[-1]
        self.assertEqual((got["encoding"], int(got["length"])), (coding, len(body)), "forwarded as sent")

    def outcome(self, path):
        flows = [f for f in self.proxy.flows() if (f.get("url") or "").endswith(path)]
        self.assertEqual(len(flows), 1)
        leaks = [(l["category"], l["where"], l["encoding"]) for l in self.proxy.leaks() if l["flow"] == flows[0]["id"]]
        return flows[0]["incomplete"], leaks

    def test_bombs_in_every_coding_stop_at_the_cap_and_the_decoded_part_is_scanned(self):
        self.start(extra_config="limits: {max_decoded_body: 1MiB}")
        bomb = b"imei=865432101234564&pad=" + b"A" * (16 << 20)
        for coding in ("gzip", "deflate", "br", "zstd"):
            body = compressed(coding, bomb)
            self.assertLess(len(body), 1 << 20)
            self.post(f"/echo/bomb-{coding}", body, coding)
        _, answer, _ = curl("-x", self.proxy.url, "--cacert", str(self.proxy.ca_pem),
                            f"https://api.example.test:{self.origin.tls_port}/index.html")
        self.assertEqual(answer, b"hello from the origin\n")
        self.assertEqual(self.proxy.stop(), 0)
        for coding in ("gzip", "deflate", "br", "zstd"):
            with self.subTest(coding=coding):
                incomplete, leaks = self.outcome(f"/echo/bomb-{coding}")
                self.assertEqual(incomplete, ["decompression_limit"])
                self.assertEqual(leaks, [("imei", "body.form:imei", [coding, "form"])])

    def test_stacked_lying_and_truncated_encodings(self):
        self.start()
        doc = json.dumps({"dev": {"imei": "865432101234564"}, "pad": "x" * 4000}).encode()
        self.post("/echo/stacked", compressed("br", gzip.compress(doc)), "gzip, br", "application/json")
        self.post("/echo/lying", doc, "gzip", "application/json")
        whole = gzip.compress(doc, mtime=0)
        self.post("/echo/truncated", whole[: len(whole) - 12], "gzip", "application/json")
        self.post("/echo/unknown", doc, "compress", "application/json")
        _, answer, _ = curl("-x", self.proxy.url, "--cacert", str(self.proxy.ca_pem),
                            f"https://api.example.test:{self.origin.tls_port}/index.html")
        self.assertEqual(answer, b"hello from the origin\n")
        self.assertEqual(self.proxy.stop(), 0)
        self.assertEqual(self.outcome("/echo/stacked"), ([], [("imei", "body.json:$.dev.imei", ["br", "gzip", "json"])]))
        self.assertEqual(self.outcome("/echo/lying"), (["decode_error"], [("imei", "body.json:$.dev.imei", ["json"])]))
        self.assertEqual(self.outcome("/echo/unknown"), (["decode_error"], [("imei", "body.json:$.dev.imei", ["json"])]))
        incomplete, leaks = self.outcome("/echo/truncated")
        self.assertEqual(incomplete, ["decode_error"])
        self.assertEqual([l[0] for l in leaks], ["imei"], "the part that inflated is still scanned")
