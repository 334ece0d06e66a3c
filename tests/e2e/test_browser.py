"""A browser through the proxy: headless Chromium with --proxy-server, trusting the leakscope CA
only through an NSS database made with certutil, loads a page from nginx over HTTPS."""

import json
import os
import subprocess
import unittest

from harness import CHROMIUM_FLAGS, OriginTestCase, run

IMEI = "865432101234564"


class Browser(OriginTestCase):
    def chromium(self, home, *args):
        # Chromium on Linux reads its certificate trust from $HOME/.pki/nssdb.
        env = dict(os.environ, HOME=str(home))
        return subprocess.run(["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={home / 'profile'}",
                               f"--proxy-server=http://127.0.0.1:{self.proxy.port}", *args],
                              capture_output=True, text=True, timeout=120, env=env)

    def test_chromium_loads_an_https_page_through_the_proxy(self):
        # Interception stays on after the first, untrusting attempt (no auto passthrough).
        self.start("tls: {auto_passthrough: false}")
        home = self.proxy.root / "home"
        nssdb = home / ".pki/nssdb"
        nssdb.mkdir(parents=True)
        run(["certutil", "-d", f"sql:{nssdb}", "-N", "--empty-password"])
        url = f"https://api.example.test:{self.origin.tls_port}/index.html?imei={IMEI}"
        # Without the CA the page must not load: the trust really comes from the NSS database.
        untrusted = self.chromium(home, "--dump-dom", url)
        self.assertNotIn("hello from the origin", untrusted.stdout)
        run(["certutil", "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n", "leakscope test CA", "-i", str(self.proxy.ca_pem)])
        page = self.chromium(home, "--dump-dom", url)
        self.assertEqual(page.returncode, 0, page.stderr[-2000:])
        self.assertIn("hello from the origin", page.stdout)
        self.assertEqual(self.proxy.stop(), 0, self.proxy.stderr)
        flows = self.proxy.flows()
        loaded = [f for f in flows if f.get("url") == url]
        self.assertEqual([(f["kind"], f["status"], f["method"]) for f in loaded], [("https", 200, "GET")])
        self.assertEqual(loaded[0]["sni"], "api.example.test")
        rejected = [f for f in flows if (f.get("error") or {}).get("type") == "tls_client_rejected"]
        self.assertTrue(rejected, "the first, untrusting attempt is recorded as a rejection")
        leaks = self.proxy.leaks()
        self.assertIn(("imei", "url.query:imei"), [(l["category"], l["where"]) for l in leaks])


if __name__ == "__main__":
    unittest.main()
