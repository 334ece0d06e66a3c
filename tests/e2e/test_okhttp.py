"""The Android HTTP stack: OkHttp (Debian's libokhttp-java) on the machine's JVM, as the phone's
client, through leakscope in explicit mode, and against a server it pins."""

import json
import unittest

from harness import LEAKSCOPE, OriginTestCase, okhttp, run, spki_pin, wait_for_record

IMEI = "865432101234564"


class OkHttp(OriginTestCase):
    def client(self, *args, cas=None):
        cas = cas if cas is not None else [self.proxy.ca_pem]
        ca_args = [a for ca in cas for a in ("--ca", str(ca))]
        return okhttp("--proxy", f"127.0.0.1:{self.proxy.port}", *ca_args, *args)

    def url(self, name, path):
        return f"https://{name}:{self.origin.tls_port}{path}"

    def test_get_and_json_post_are_intercepted_and_leaks_logged(self):
        self.start()
        body = json.dumps({"header": {"imei": IMEI, "os": "android"}})
        rc, lines = self.client("get", self.url("api.example.test", "/index.html"),
                                "post", self.url("sdk.umeng.com", "/echo/okhttp"), body)
        self.assertEqual(rc, 0, lines)
        self.assertEqual(lines, ["200 hello from the origin", "200 received"])
        self.assertEqual(self.origin.logged("/echo/okhttp")[-1]["body"], body, "the body reached the origin unchanged")
        self.assertEqual(self.proxy.stop(), 0, self.proxy.stderr)
        flows = self.proxy.flows()
        self.assertEqual([(f["method"], f["status"], f["kind"]) for f in flows], [("GET", 200, "https"), ("POST", 200, "https")])
        leaks = self.proxy.leaks()
        self.assertEqual(len(leaks), 1, leaks)
        self.assertEqual((leaks[0]["category"], leaks[0]["where"]), ("imei", "body.json:$.header.imei"))
        self.assertEqual(leaks[0]["sdk"]["name"], "Umeng")
        self.assertEqual(leaks[0]["party"], "third")

    def test_certificate_pinner_fails_once_then_the_host_is_passed_through(self):
        self.start()
        pin = spki_pin(self.origin.pem)  # the real server's key: leakscope's leaf cannot match it
        target = self.url("api.example.test", "/index.html")
        cas = [self.proxy.ca_pem, self.origin.ca_pem]
        rc, lines = self.client("--pin", f"api.example.test={pin}", "get", target, cas=cas)
        self.assertEqual(rc, 1)
        self.assertTrue(lines[0].startswith("error SSLPeerUnverifiedException: Certificate pinning failure"), lines)
        rejected = wait_for_record(self.proxy.session / "flows.jsonl",
                                   lambda f: (f.get("error") or {}).get("type") == "tls_client_rejected")
        self.assertEqual(rejected["dest"]["host"], "api.example.test")
        self.assertIn("pinning suspected", rejected["error"]["detail"])
        # The app tries again: with tls.auto_passthrough (the default) its pin now holds.
        rc, lines = self.client("--pin", f"api.example.test={pin}", "get", target, cas=cas)
        self.assertEqual((rc, lines), (0, ["200 hello from the origin"]))
        self.assertEqual(self.proxy.stop(), 0, self.proxy.stderr)
        flows = self.proxy.flows()
        self.assertEqual(flows[-1]["kind"], "passthrough")
        self.assertIn("tls.auto_passthrough", flows[-1]["note"])
        report = self.report_json()
        self.assertEqual(sorted((l["kind"], l["host"], l["count"]) for l in report["limits"]),
                         [("passthrough", "api.example.test", 1), ("pinning", "api.example.test", 1)])

    def report_json(self):
        return json.loads(run([LEAKSCOPE, "report", str(self.proxy.session), "--format", "json"]).stdout)


if __name__ == "__main__":
    unittest.main()
