"""test_config.py — a bad mailgate.conf: every daemon refuses to start with
one line naming file:line, and `mailgatectl config check` exits non-zero
with the same message (zero on a good file)."""

import os
import subprocess
import tempfile
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
