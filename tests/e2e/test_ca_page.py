"""The CA install page: http://leakscope/ through the proxy, /ca on the control endpoint."""

import subprocess

from harness import OriginTestCase, chromium, curl


class CaPage(OriginTestCase):
    def test_page_and_downloads_through_the_proxy(self):
        proxy = self.start()
        pem = proxy.ca_pem.read_bytes()
        fingerprint = next(l for l in proxy.banner if l.startswith("CA SHA-256")).split()[2]
        _, page, _ = curl("-x", proxy.url, "http://leakscope/")
        self.assertIn(b"Install the leakscope CA", page)
        self.assertIn(fingerprint.encode(), page)
        _, got, _ = curl("-x", proxy.url, "http://leakscope/ca.pem")
        self.assertEqual(got, pem)
        _, der, _ = curl("-x", proxy.url, "http://leakscope/ca.crt")
        expected_der = subprocess.run(["openssl", "x509", "-outform", "DER"], input=pem, capture_output=True,
                                      check=True).stdout
        self.assertEqual(der, expected_der)
        android = subprocess.run(["openssl", "x509", "-noout", "-subject_hash_old"], input=pem, capture_output=True,
                                 check=True).stdout.decode().strip() + ".0"
        self.assertIn(android.encode(), page)
        _, system_file, _ = curl("-x", proxy.url, f"http://leakscope/{android}")
        self.assertEqual(system_file, pem)
        _, headers, _ = curl("-x", proxy.url, "-D", "-", "-o", "/dev/null", "http://leakscope/ca.crt")
        self.assertIn(b"application/x-x509-ca-cert", headers)
        rc, missing, _ = curl("-x", proxy.url, "-w", "%{http_code}", "-o", "/dev/null", "http://leakscope/nope", check=False)
        self.assertEqual(missing, b"404")

    def test_control_endpoint_page_renders_in_headless_chromium(self):
        proxy = self.start()
        base = f"http://127.0.0.1:{proxy.control_port}/ca"
        _, pem, _ = curl(base + "/ca.pem")
        self.assertEqual(pem, proxy.ca_pem.read_bytes(), "no token needed for the public certificate")
        png = proxy.root / "ca-page.png"
        dom, shot = chromium(base, proxy.root / "chromium-profile", png, window="412,915")  # a phone's width
        self.assertEqual(dom.returncode, 0, dom.stderr[-2000:])
        self.assertIn("Install the leakscope CA", dom.stdout)
        self.assertEqual(dom.stdout.count('class="button"'), 3)
        self.assertIn('href="/ca/ca.crt"', dom.stdout)
        self.assertEqual(shot.returncode, 0, shot.stderr[-2000:])
        self.assertGreater(png.stat().st_size, 10_000)

if __name__ == "__main__":
    import unittest
    unittest.main()
