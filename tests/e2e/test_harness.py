"""The harness itself: a run stopped from outside stops what it started and removes its
scratch folders (large-body tests leave gigabytes of captures in them)."""

import os
import signal
import socket
import subprocess
import sys
import unittest
from pathlib import Path

# A test run reduced to its set-up, waiting to be stopped.
STARTED_RUN = """
import signal
import harness
root = harness.temp_root("stopped")
origin = harness.Origin(root / "origin")
print(root, origin.proc.pid, origin.tls_port, flush=True)
signal.pause()
"""


class StoppedRun(unittest.TestCase):
    def test_sigterm_or_sighup_stops_the_origin_and_removes_the_scratch_folder(self):
        for signum in (signal.SIGTERM, signal.SIGHUP):
            with self.subTest(signal=signum.name):
                run = subprocess.Popen([sys.executable, "-c", STARTED_RUN], cwd=Path(__file__).resolve().parent,
                                       stdout=subprocess.PIPE, text=True)
                self.addCleanup(run.kill)
                fields = run.stdout.readline().split()
                self.assertEqual(len(fields), 3, "the run did not start")
                root, nginx_pid, port = Path(fields[0]), int(fields[1]), int(fields[2])
                self.assertTrue((root / "origin").is_dir())
                socket.create_connection(("127.0.0.1", port), timeout=5).close()

                run.send_signal(signum)
                self.assertEqual(run.wait(timeout=60), 128 + signum)
                self.assertFalse(root.exists(), "the scratch folder is left behind")
                with self.assertRaises(ProcessLookupError, msg="nginx is left running"):
                    os.kill(nginx_pid, 0)
                with self.assertRaises(OSError, msg="nginx's workers still listen"):
                    socket.create_connection(("127.0.0.1", port), timeout=2).close()


if __name__ == "__main__":
    unittest.main()
