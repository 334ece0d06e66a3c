"""Timeline marks: `leakscope mark`, the control endpoint, and single keys in the terminal."""

import json
import os
import pty
import shutil
import subprocess
import unittest
import urllib.error
import urllib.request

from harness import LEAKSCOPE, OriginTestCase, curl, temp_root

IMEI = "865432101234564"


class Marks(OriginTestCase):
    def leak(self):
        curl("-x", self.proxy.url, "--cacert", str(self.proxy.ca_pem),
             f"https://sdk.umeng.com:{self.origin.tls_port}/index.html?imei={IMEI}")

    def mark(self, *args):
        return subprocess.run([LEAKSCOPE, "mark", *args, "--session", str(self.proxy.session)],
                              capture_output=True, text=True, timeout=30)

    def test_consent_by_command_splits_leaks_into_before_and_after(self):
        self.start()
        self.leak()
        p = self.mark("consent")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("mark consent at", p.stdout)
        self.leak()
        self.assertEqual(self.mark("note", "opened settings").returncode, 0)
        self.assertEqual(self.proxy.stop(), 0)
        leaks = self.proxy.leaks()
        self.assertEqual(len(leaks), 2)
        self.assertIsNone(leaks[0]["t_consent_ms"], "no consent mark yet when the first leak happened")
        self.assertGreaterEqual(leaks[1]["t_consent_ms"], 0)
        marks = self.proxy.marks()
        self.assertEqual([(m["kind"], m["source"]) for m in marks], [("consent", "http"), ("note", "http")])
        self.assertEqual(marks[1]["text"], "opened settings")
        self.assertLessEqual(marks[0]["t_session_ms"], leaks[1]["t_session_ms"])
        self.assertEqual(leaks[1]["t_session_ms"] - marks[0]["t_session_ms"], leaks[1]["t_consent_ms"])

    def test_the_newest_running_session_is_found_without_session(self):
        proxy = self.start()
        p = subprocess.run([LEAKSCOPE, "mark", "background", "-c", str(proxy.config)], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        proxy.stop()
        self.assertEqual([m["kind"] for m in proxy.marks()], ["background"])

    def test_control_endpoint_needs_the_token(self):
        proxy = self.start()
        token = (proxy.session / "control.token").read_text().strip()
        self.assertEqual((proxy.session / "control.token").stat().st_mode & 0o777, 0o600)
        url = f"http://127.0.0.1:{proxy.control_port}/marks"

        def post(body, token_value):
            req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json",
                                                  **({"Authorization": f"Bearer {token_value}"} if token_value else {})})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read())

        self.assertEqual(post({"kind": "consent"}, None)[0], 401)
        self.assertEqual(post({"kind": "consent"}, "0" * 64)[0], 401)
        self.assertEqual(post({"kind": "bribe"}, token)[0], 400)
        self.assertEqual(post({"kind": "note"}, token)[0], 400)
        status, body = post({"kind": "refuse"}, token)
        self.assertEqual(status, 201)
        self.assertEqual(body["mark"]["kind"], "refuse")
        proxy.stop()
        self.assertEqual([m["kind"] for m in proxy.marks()], ["refuse"])

    def test_no_running_session_is_a_clear_error(self):
        root = temp_root("nomark")
        self.addCleanup(shutil.rmtree, root, True)
        (root / "c.yaml").write_text("capture: {dir: caps}\n")
        p = subprocess.run([LEAKSCOPE, "mark", "consent", "-c", str(root / "c.yaml")], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn("no running session", p.stderr)

    def test_single_keys_in_the_run_terminal(self):
        master, slave = pty.openpty()
        self.addCleanup(os.close, master)
        proxy = self.start(stdin=slave)
        os.close(slave)
        os.write(master, b"c")
        for line in proxy.proc.stdout:  # the proxy answers each key on its terminal
            if line.startswith("mark consent"):
                break
        os.write(master, b"b")
        for line in proxy.proc.stdout:
            if line.startswith("mark background"):
                break
        proxy.stop()
        self.assertEqual([(m["kind"], m["source"]) for m in proxy.marks()], [("consent", "terminal"), ("background", "terminal")],
                         f"exit {proxy.proc.returncode}; stdout: {proxy.summary[-800:]}; stderr: {proxy.stderr[-2000:]}")


if __name__ == "__main__":
    unittest.main()
