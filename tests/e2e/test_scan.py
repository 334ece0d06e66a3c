"""leakscope scan over HAR files, as SDK vendors run it in CI."""

import base64
import gzip
import json
import shutil
import subprocess
import unittest

from harness import LEAKSCOPE, temp_root

IMEI = "865432101234564"


def har(entries):
    return {"log": {"version": "1.2", "creator": {"name": "test", "version": "1"}, "entries": entries}}


def entry(method, url, started, headers=(), body=None, base64_body=False, mime="application/json"):
    request = {"method": method, "url": url, "httpVersion": "HTTP/1.1", "cookies": [], "queryString": [],
               "headersSize": -1, "bodySize": -1, "headers": [{"name": n, "value": v} for n, v in headers]}
    if body is not None:
        text = base64.b64encode(body).decode() if base64_body else body
        request["postData"] = {"mimeType": mime, "text": text, **({"encoding": "base64"} if base64_body else {})}
    return {"startedDateTime": started, "time": 1, "request": request, "response": {}, "cache": {}, "timings": {}}


class Scan(unittest.TestCase):
    def setUp(self):
        self.root = temp_root("scan")
        self.addCleanup(shutil.rmtree, self.root, True)
        self.config = self.root / "c.yaml"
        self.config.write_text(f'device: {{imei: ["{IMEI}"], phone_number: ["13812345678"]}}\n'
                               'app: {first_party: [demo.example]}\n')

    def scan(self, doc, *args):
        path = self.root / "t.har"
        path.write_text(json.dumps(doc))
        return subprocess.run([LEAKSCOPE, "scan", str(path), "-c", str(self.config), *args],
                              capture_output=True, text=True, timeout=120)

    def test_text_and_base64_bodies_give_leak_records_with_the_entry_index(self):
        gz = gzip.compress(json.dumps({"header": {"imei": IMEI}}).encode())
        doc = har([
            entry("GET", "https://api.demo.example/ping", "2026-11-23T10:00:00.000+08:00"),
            entry("POST", "https://alog.umeng.com/app_logs", "2026-11-23T10:00:00.800+08:00",
                  headers=[("Content-Encoding", "gzip")], body=gz, base64_body=True),
            entry("POST", "https://api.demo.example/login", "2026-11-23T10:00:02.000+08:00",
                  body="phone=13812345678", mime="application/x-www-form-urlencoded"),
        ])
        p = self.scan(doc)
        self.assertEqual(p.returncode, 0, p.stderr)
        leaks = [json.loads(l) for l in p.stdout.splitlines()]
        self.assertEqual([(l["har_entry"], l["category"]) for l in leaks], [(1, "imei"), (2, "phone_number")])
        umeng = leaks[0]
        self.assertEqual(umeng["where"], "body.json:$.header.imei")
        self.assertEqual(umeng["encoding"], ["gzip", "json"])
        self.assertEqual(umeng["t_session_ms"], 800)
        self.assertEqual(umeng["ts"], "2026-11-23T02:00:00.800000Z")
        self.assertEqual(umeng["party"], "third")
        self.assertEqual(umeng["sdk"]["name"], "Umeng")
        self.assertEqual(leaks[1]["party"], "first")
        self.assertEqual(leaks[1]["party_rule"], "app.first_party: demo.example")
        self.assertIsNone(leaks[1]["sdk"])
        self.assertIn("3 requests, 2 leaks", p.stderr)
        self.assertRegex(p.stderr, r"imei\s+1\s+alog\.umeng\.com \(1\)")

    def test_fail_on_gives_exit_3_only_for_listed_categories(self):
        doc = har([entry("GET", f"https://t.example/?imei={IMEI}", "2026-11-23T10:00:00Z")])
        self.assertEqual(self.scan(doc, "--fail-on", "phone_number,email").returncode, 0)
        self.assertEqual(self.scan(doc, "--fail-on", "email,imei").returncode, 3)
        self.assertEqual(self.scan(doc, "--fail-on", "any").returncode, 3)
        bad = self.scan(doc, "--fail-on", "shoe_size")
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("unknown category shoe_size", bad.stderr)

    def test_jsonl_output_file(self):
        doc = har([entry("GET", f"https://t.example/?imei={IMEI}", "2026-11-23T10:00:00Z")])
        out = self.root / "leaks.jsonl"
        p = self.scan(doc, "--jsonl", str(out))
        self.assertEqual(p.returncode, 0)
        self.assertEqual(p.stdout, "")
        self.assertEqual(json.loads(out.read_text())["har_entry"], 0)

    def test_a_file_that_is_not_har_is_a_clear_error(self):
        path = self.root / "x.har"
        path.write_text('{"not": "har"}')
        p = subprocess.run([LEAKSCOPE, "scan", str(path)], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 2)
        self.assertIn('no "log" object: not a HAR file', p.stderr)


if __name__ == "__main__":
    unittest.main()
