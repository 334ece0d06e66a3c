"""A HAR with timeline marks, through `scan --out` into a session folder, judged by `report`."""

import json
import shutil
import subprocess
import unittest

from harness import LEAKSCOPE, chromium, temp_root
from test_scan import entry, har

IMEI = "865432101234564"


class Report(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = temp_root("report")
        config = cls.root / "c.yaml"
        config.write_text(f'device: {{imei: ["{IMEI}"], phone_number: ["13812345678"]}}\n'
                          "app: {first_party: [demo.example]}\n"
                          "declared: {first_party: [phone_number], sdks: {Umeng: [android_id]}}\n"
                          "rules: {frequency: {max_per_minute: {default: 3}}}\n")
        umeng = "https://alog.umeng.com/app_logs"
        entries = [entry("POST", umeng, f"2026-11-23T10:00:0{i}.000+08:00", body=json.dumps({"imei": IMEI}))
                   for i in range(5)]  # five IMEIs in five seconds, all before consent
        entries.append(entry("POST", "https://api.demo.example/login", "2026-11-23T10:00:12.000+08:00",
                             body="phone=13812345678", mime="application/x-www-form-urlencoded"))
        entries.append(entry("GET", f"https://alog.umeng.com/bg?imei={IMEI}", "2026-11-23T10:00:25.000+08:00"))
        (cls.root / "t.har").write_text(json.dumps(har(entries)))
        cls.session = cls.root / "session"
        p = subprocess.run([LEAKSCOPE, "scan", str(cls.root / "t.har"), "-c", str(config), "--out", str(cls.session),
                            "--mark", "consent@2026-11-23T10:00:10+08:00",
                            "--mark", "background@2026-11-23T10:00:20+08:00"],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def report(self, *args):
        return subprocess.run([LEAKSCOPE, "report", str(self.session), *args], capture_output=True, text=True, timeout=120)

    def test_the_json_report_states_each_rule_with_its_evidence(self):
        p = self.report("--format", "json")
        self.assertEqual(p.returncode, 0, p.stderr)
        report = json.loads(p.stdout)
        by_rule = {}
        for f in report["findings"]:
            by_rule.setdefault(f["rule"], []).append(f)
        r1 = by_rule["R1"]
        self.assertEqual(len(r1), 1)
        self.assertEqual((r1[0]["destination"], r1[0]["category"], r1[0]["party"], r1[0]["count"]), ("Umeng", "imei", "third", 5))
        self.assertEqual(r1[0]["sdk"]["vendor"], "Alibaba (Umeng)")
        self.assertEqual(r1[0]["first_t_consent_ms"], -10000)
        self.assertEqual(r1[0]["first_ts"], "2026-11-23T02:00:00.000000Z")
        self.assertEqual(r1[0]["leaks"], [1, 2, 3, 4, 5])
        self.assertIn("三、1", r1[0]["clause"])
        # Umeng is declared for android_id only: every IMEI it got is beyond the declaration.
        self.assertEqual([(f["destination"], f["category"], f["count"]) for f in by_rule["R3"]], [("Umeng", "imei", 6)])
        self.assertNotIn("R4", by_rule, "the app's own phone number use is declared")
        r5 = by_rule["R5"][0]
        self.assertEqual((r5["peak_per_minute"], r5["limit_per_minute"]), (6, 3))  # 0-4 s and 25 s: one minute
        self.assertEqual([(f["category"], f["leaks"]) for f in by_rule["R6"]], [("imei", [7])])
        self.assertEqual([m["kind"] for m in report["marks"]], ["consent", "background"])
        self.assertEqual(report["session"]["source"], "har")

    def test_fail_on_rules(self):
        self.assertEqual(self.report("--format", "json", "--fail-on", "R2,R4").returncode, 0)
        self.assertEqual(self.report("--format", "json", "--fail-on", "R2,R1").returncode, 3)

    def test_markdown(self):
        p = self.report("--format", "md")
        self.assertEqual(p.returncode, 0)
        self.assertIn("### R1 Collected before consent", p.stdout)
        self.assertIn("| Umeng (Alibaba (Umeng), analytics) | third | imei | 5 |", p.stdout)

    def test_html_renders_in_headless_chromium(self):
        p = self.report()
        self.assertEqual(p.returncode, 0, p.stderr)
        html = self.session / "report.html"
        self.assertTrue(html.exists())
        png = self.session / "report.png"
        dom, shot = chromium(html.as_uri(), self.root / "chromium-profile", png)
        self.assertEqual(dom.returncode, 0, dom.stderr[-2000:])
        self.assertIn("<svg", dom.stdout)
        self.assertEqual(dom.stdout.count("<circle"), 7, "one dot per leak")
        self.assertIn("R1 Collected before consent", dom.stdout)
        self.assertEqual(shot.returncode, 0, shot.stderr[-2000:])
        self.assertGreater(png.stat().st_size, 20_000)

if __name__ == "__main__":
    unittest.main()
