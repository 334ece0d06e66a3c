"""A full disk stops interception of new connections, says why, and loses nothing silently."""

import subprocess
import unittest

from harness import OriginTestCase, curl

IMEI = "865432101234564"


class DiskFull(OriginTestCase):
    def test_a_full_capture_disk_stops_new_interception(self):
        disk = self.root / "disk"  # inside the class's folder, which tearDownClass removes
        disk.mkdir()
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], capture_output=True)
        if mounted.returncode != 0:
            self.skipTest("needs root to mount a small tmpfs: " + mounted.stderr.decode().strip())
        self.addCleanup(subprocess.run, ["umount", "-l", str(disk)], capture_output=True)
        proxy = self.start(f"capture: {{dir: {disk}}}")
        url = f"https://sdk.umeng.com:{self.origin.tls_port}/echo/fill"
        refused = False
        for i in range(200):  # each request writes its bytes twice into the pcapng files, plus records
            rc, _, _ = curl("-x", proxy.url, "--cacert", str(proxy.ca_pem), "--data-binary",
                            f"imei={IMEI}&pad=" + "p" * 20000, url, check=False)
            if rc != 0:
                refused = True
                break
        self.assertTrue(refused, "the proxy kept intercepting with a full disk")
        proxy.stop()
        self.assertIn("not intercepting new connections", proxy.stderr)
        self.assertIn("No space left on device", proxy.stderr)
        self.assertNotEqual(proxy.proc.returncode, 0, "an incomplete session does not exit 0")
        self.assertIn("records could not be written", proxy.summary)
        # What did reach the disk is whole lines.
        for line in (proxy.session / "flows.jsonl").read_text().splitlines():
            self.assertTrue(line.startswith("{") and line.endswith("}"))


if __name__ == "__main__":
    unittest.main()
