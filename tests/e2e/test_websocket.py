"""WebSocket through leakscope: a python3-websockets echo server as the origin and client as the
phone, permessage-deflate on or off; Upgrade requests that do not become WebSocket stay HTTP."""

import json
import subprocess
import unittest
from pathlib import Path

from harness import OriginTestCase, curl, stop_on_signal

IMEI = "865432101234564"
PHONE = "13812345678"
PEER = [ "/usr/bin/python3", str(Path(__file__).resolve().parent / "ws_peer.py")]


class WebSocket(OriginTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = stop_on_signal(subprocess.Popen([*PEER, "server", str(cls.origin.pem), str(cls.origin.key)],
                                                     stdout=subprocess.PIPE, text=True))
        line = cls.server.stdout.readline().split()
        assert line[0] == "ready", line
        cls.ws_port = int(line[1])

    @classmethod
    def tearDownClass(cls):
        cls.server.terminate()
        cls.server.wait(timeout=10)
        super().tearDownClass()

    def phone(self, *messages, plain=False):
        args = [*PEER, "client", str(self.proxy.port), "sdk.umeng.com", str(self.ws_port), str(self.proxy.ca_pem)]
        p = subprocess.run([*args, *(["--plain"] if plain else []), *messages], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout.splitlines()

    def session(self):
        self.assertEqual(self.proxy.stop(), 0, self.proxy.stderr)
        return self.proxy.flows(), self.proxy.leaks()

    def check_session(self, compressed):
        text = json.dumps({"event": "launch", "device": {"imei": IMEI}})
        fragments = json.dumps(['{"to":"' + PHONE[:5], PHONE[5:] + '"}'])  # the number spans two frames
        binary = "b:" + json.dumps({"kind": "bin", "note": "nothing personal"})
        echoes = self.phone(text, fragments, binary, plain=not compressed)
        self.assertEqual(echoes, [text, '{"to":"' + PHONE + '"}', binary[2:]], "every message came back unchanged")
        flows, leaks = self.session()
        upgrade = next(f for f in flows if f.get("status") == 101)
        ws = next(f for f in flows if f["kind"] == "websocket")
        self.assertEqual(ws["url"], upgrade["url"])
        self.assertEqual(ws["note"], "3 messages from the client" + (", permessage-deflate" if compressed else ""))
        self.assertIsNone(ws["error"])
        self.assertEqual(ws["leaks"], 2)
        by_category = {l["category"]: l for l in leaks}
        self.assertEqual(sorted(by_category), ["imei", "phone_number"])
        imei = by_category["imei"]
        self.assertEqual(imei["where"], "ws.json:$.device.imei")
        self.assertEqual(imei["flow"], ws["id"])
        self.assertEqual(imei["encoding"][:1], ["permessage-deflate"] if compressed else ["json"])
        self.assertEqual(imei["request"], {"method": "GET", "path": "/ws"})
        self.assertEqual((imei["sdk"]["name"], imei["party"]), ("Umeng", "third"))
        self.assertEqual(by_category["phone_number"]["where"], "ws.json:$.to")

    def test_messages_are_scanned_with_permessage_deflate(self):
        self.start()
        self.check_session(compressed=True)

    def test_messages_are_scanned_without_compression(self):
        self.start()
        self.check_session(compressed=False)

    def test_an_upgrade_answered_without_101_stays_http(self):
        self.start()
        url = f"https://api.example.test:{self.origin.tls_port}/index.html"
        _, body, _ = curl("-x", self.proxy.url, "--cacert", str(self.proxy.ca_pem), "-H", "Connection: Upgrade",
                          "-H", "Upgrade: websocket", "-H", "Sec-WebSocket-Version: 13",
                          "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", url, url)
        self.assertEqual(body, b"hello from the origin\n" * 2, "both requests answered on the one connection")
        flows, _ = self.session()
        self.assertEqual([(f["kind"], f["status"]) for f in flows], [("https", 200), ("https", 200)], flows)

    def test_upgrade_to_h2c_is_not_offered_to_the_server(self):
        self.start()
        h2c = ["-H", "Connection: Upgrade, HTTP2-Settings", "-H", "Upgrade: h2c", "-H", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"]
        _, body, _ = curl("-x", self.proxy.url, "--cacert", str(self.proxy.ca_pem), *h2c, "--data-binary", "imei=" + IMEI,
                          f"https://sdk.umeng.com:{self.origin.tls_port}/echo/h2c")
        self.assertEqual(body, b"received\n")
        _, body, _ = curl("-x", self.proxy.url, *h2c, "--data-binary", "imei=" + IMEI,
                          f"http://sdk.umeng.com:{self.origin.http_port}/echo/h2c-plain")
        self.assertEqual(body, b"received\n")
        got = {b["uri"]: b for b in self.origin.logged("/echo/h2c", count=2)}
        for uri in ("/echo/h2c", "/echo/h2c-plain"):
            self.assertEqual((got[uri]["upgrade"], got[uri]["connection"]), ("", ""), got[uri])
        _, leaks = self.session()
        self.assertEqual([l["category"] for l in leaks], ["imei", "imei"], "the requests were inspected")


if __name__ == "__main__":
    unittest.main()
