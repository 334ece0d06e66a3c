"""Hostile and broken peers: each case gets its typed outcome, and the proxy keeps serving."""

import socket
import threading

from harness import OriginTestCase, curl, free_port


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
