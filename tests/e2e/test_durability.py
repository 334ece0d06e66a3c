"""kill -9 at random moments under load: the logs stay whole records in a verifiable chain."""

import collections
import json
import random
import signal
import struct
import subprocess
import time

from harness import LEAKSCOPE, OriginTestCase, stop_on_signal

IMEI = "865432101234564"
KILLS = 20


def whole_packets(path):
    """Enhanced Packet Blocks in the whole blocks of a pcapng file (a kill can cut the last)."""
    data = path.read_bytes() if path.exists() else b""
    at = count = 0
    while len(data) - at >= 12:
        kind, length = struct.unpack_from("<II", data, at)
        if length < 12 or length % 4 or at + length > len(data):
            break
        count += kind == 6
        at += length
    return count


class KillNine(OriginTestCase):
    def test_kill_9_at_random_points_leaves_at_most_one_torn_line(self):
        rng = random.Random(20261123)
        url = f"https://sdk.umeng.com:{self.origin.tls_port}/echo/load"
        checked_leaks = 0
        for attempt in range(KILLS):
            proxy = self.start()
            # A client that keeps sending leaks until the proxy disappears.
            load = stop_on_signal(subprocess.Popen(
                ["bash", "-c", f"for i in $(seq 1 400); do curl -s -o /dev/null -x {proxy.url} --cacert {proxy.ca_pem} "
                               f"--data-binary 'imei={IMEI}&n='$i {url} || exit 0; done"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            # The moment of the kill is the fault being injected, not a synchronisation point.
            time.sleep(rng.uniform(0.05, 0.6))
            proxy.proc.send_signal(signal.SIGKILL)
            proxy.proc.wait(timeout=10)
            load.wait(timeout=60)
            result = subprocess.run([LEAKSCOPE, "verify", str(proxy.session)], capture_output=True, text=True, timeout=60)
            problems = [l for l in result.stdout.splitlines() if not l.endswith("problems)") and "intact" not in l]
            # After a crash: no manifest, at most a torn last line, pcapng files whole up to a block.
            allowed = ("manifest.json is missing", "torn last line", ".pcapng: readable up to byte")
            unexpected = [p for p in problems if not any(a in p for a in allowed)]
            self.assertEqual(unexpected, [], f"kill {attempt}: {result.stdout}")
            torn = [p for p in problems if "torn last line" in p]
            self.assertLessEqual(len(torn), 1)
            flows = proxy.session / "flows.jsonl"
            lines = flows.read_text().split("\n")
            self.assertTrue(all(l.startswith("{") and l.endswith("}") for l in lines[:-1]), f"kill {attempt}: a torn flow line")
            leaks = [json.loads(l) for l in (proxy.session / "leaks.jsonl").read_text().splitlines() if l.endswith("}")]
            checked_leaks += len(leaks)
            # Nothing on disk refers to what is not: a leak's frames are in the captures, a
            # flow's leaks in leaks.jsonl, whatever moment the kill came at.
            packets = {name: whole_packets(proxy.session / name) for name in ("traffic.pcapng", "decrypted.pcapng")}
            for leak in leaks:
                self.assertLessEqual(leak["frames"]["traffic"] or 0, packets["traffic.pcapng"], f"kill {attempt}: {leak}")
                self.assertLessEqual(leak["frames"]["decrypted"] or 0, packets["decrypted.pcapng"], f"kill {attempt}: {leak}")
            leaks_of = collections.Counter(leak["flow"] for leak in leaks)
            for flow in (json.loads(l) for l in lines[:-1] if l.startswith('{"bytes_down"')):
                self.assertLessEqual(flow["leaks"], leaks_of[flow["id"]], f"kill {attempt}: flow {flow['id']}")
        self.assertGreater(checked_leaks, 0, "the load produced leaks before the kills")


if __name__ == "__main__":
    import unittest
    unittest.main()
