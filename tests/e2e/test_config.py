"""test_config.py — a bad mailgate.conf: every daemon refuses to start with
one line naming file:line, and `mailgatectl config check` exits non-zero
with the same message (zero on a good file)."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

from harness import Stack


class BadConfig(unittest.TestCase):
    def setUp(self):
        fd, self.path = tempfile.mkstemp(suffix=".conf")
        self.addCleanup(os.unlink, self.path)
        with os.fdopen(fd, "w") as f:
            f.write("# comment\nredis_timeout = 1s\nredis_sever = tcp:127.0.0.1:6379\n")
        self.expected = '%s:3: unknown parameter "redis_sever"' % self.path

    def test_daemons_refuse_bad_config(self):
        for name in ("mailgate-policy", "mailgate-milter", "mailgate-tracker"):
            r = subprocess.run([Stack.binary(name), "-f", "-c", self.path], capture_output=True, text=True,
                               timeout=10)
            self.assertEqual(r.returncode, 1, name)
            self.assertEqual(r.stderr, "%s: fatal: %s\n" % (name, self.expected))
            missing = subprocess.run([Stack.binary(name), "-f", "-c", "/nonexistent.conf"],
                                     capture_output=True, text=True, timeout=10)
            self.assertEqual(missing.returncode, 1)
            self.assertIn("/nonexistent.conf: cannot open: No such file or directory", missing.stderr)

    def test_mailgatectl_status_with_nothing_running(self):
        with open(self.path, "w") as f:
            f.write("redis_server = tcp:127.0.0.1:1\npolicy_listen = unix:/nonexistent/p\n"
                    "auth_listen = unix:/nonexistent/a\nmilter_listen = unix:/nonexistent/m\n")
        r = subprocess.run([Stack.binary("mailgatectl"), "-c", self.path, "status"], capture_output=True, text=True,
                           timeout=20)
        self.assertEqual(r.returncode, 1)
        self.assertIn("policy unix:/nonexistent/p:  not reachable: No such file or directory", r.stdout)
        self.assertIn("redis 127.0.0.1:1:", r.stdout)
        self.assertIn("not reachable: ", r.stdout.split("redis")[1])

    def test_mailgatectl_status_gives_up_on_a_socket_that_never_accepts(self):
        """Listeners that never accept, their listen queues full: status reports
        each within its 1 s connect timeout instead of blocking in connect()."""
        d = tempfile.mkdtemp(prefix="mg-status-")
        self.addCleanup(shutil.rmtree, d, True)
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        unix.bind(os.path.join(d, "policy"))
        unix.listen(0)
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(0)
        clients = [unix, tcp]
        self.addCleanup(lambda: [c.close() for c in clients])
        for family, addr in ((socket.AF_UNIX, os.path.join(d, "policy")), (socket.AF_INET, tcp.getsockname())):
            while True:  # fill the listen queue: the next connect cannot complete
                c = socket.socket(family, socket.SOCK_STREAM)
                clients.append(c)
                c.settimeout(0.3)
                try:
                    c.connect(addr)
                except (BlockingIOError, socket.timeout):
                    break
        with open(self.path, "w") as f:
            f.write("redis_server = tcp:127.0.0.1:1\npolicy_listen = unix:%s/policy\n"
                    "auth_listen = inet:127.0.0.1:%d\nmilter_listen = unix:/nonexistent/m\n"
                    % (d, tcp.getsockname()[1]))
        start = time.monotonic()
        r = subprocess.run([Stack.binary("mailgatectl"), "-c", self.path, "status"], capture_output=True, text=True,
                           timeout=10)
        elapsed = time.monotonic() - start
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("policy unix:%s/policy:  not reachable: no answer within 1 s" % d, r.stdout)
        self.assertIn("auth 127.0.0.1:%d:" % tcp.getsockname()[1], r.stdout)
        self.assertIn("not reachable: no answer within 1 s", r.stdout.split("auth ")[1].split("\n")[0])
        self.assertIn("not reachable: No such file or directory", r.stdout.split("milter ")[1].split("\n")[0])
        self.assertTrue(1.9 < elapsed < 3.0, "two 1 s timeouts took %.2f s" % elapsed)

    def test_mailgatectl_config_check(self):
        r = subprocess.run([Stack.binary("mailgatectl"), "-c", self.path, "config", "check"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, "mailgatectl: %s\n" % self.expected)
        with open(self.path, "w") as f:
            f.write("redis_timeout = 1s\n")
        ok = subprocess.run([Stack.binary("mailgatectl"), "-c", self.path, "config", "check"],
                            capture_output=True, text=True, timeout=10)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        self.assertEqual(ok.stdout, "%s: ok\n" % self.path)


if __name__ == "__main__":
    unittest.main()
