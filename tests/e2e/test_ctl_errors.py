"""test_ctl_errors.py — every mailgatectl write against a Redis that refuses
writes (a read-only replica: -READONLY; a primary with min-replicas-to-write
and no replica: -NOREPLICAS) exits 1 with the Redis error in one line, prints
nothing on stdout and changes nothing in Redis."""

import os
import subprocess
import tempfile
import unittest

from harness import Stack, can_connect, free_port, wait_for


def snapshot(port):
    """Every key with its type and value, as comparable text."""
    def cli(*args):
        return subprocess.run(["redis-cli", "-p", str(port), "--raw"] + list(args), capture_output=True,
                              text=True, timeout=10, check=True).stdout
    reads = {"string": ("GET",), "hash": ("HGETALL",), "set": ("SMEMBERS",), "list": ("LRANGE", "0", "-1"),
             "zset": ("ZRANGE", "0", "-1", "WITHSCORES"), "stream": ("XRANGE", "-", "+")}
    out = []
    for key in sorted(cli("KEYS", "*").split()):
        kind = cli("TYPE", key).strip()
        value = cli(reads[kind][0], key, *reads[kind][1:]).splitlines()
        out.append((key, kind, value if kind in ("list", "stream", "zset") else sorted(value)))
    return out


class CtlRedisErrors(unittest.TestCase):
    def setUp(self):
        self.stack = Stack()
        self.addCleanup(self.stack.stop)
        self.stack.start_redis()
        s = self.stack
        s.make_account("acme", domains=("acme.example", "old.example"))
        s.make_account("beta", domains=())
        self.key_id = s.make_key("acme", create_account=False)[1]
        s.ctl_ok("net", "allow", "acme", "192.0.2.0/24")
        s.ctl_ok("stoplist", "add", "acme", "stop@example.net")
        s.ctl_ok("campaign", "block", "acme", "spring")
        s.ctl_ok("dkim", "generate", "acme.example", "--selector", "s1", "--algo", "ed25519")
        s.ctl_ok("webhook", "set", "acme", "https://hooks.example/mg")
        s.redis("SADD", "mg:bounced", "gone@example.net")
        s.redis("SADD", "mg:bounced:{acme}", "gone@example.net")
        pem = subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519"], capture_output=True, text=True,
                             check=True).stdout
        with tempfile.NamedTemporaryFile("w", suffix=".pem", dir=s.dir, delete=False) as f:
            f.write(pem)
        self.pem = f.name

    def writes(self):
        """Each write command, set up so that it would succeed against a writable Redis."""
        return [
            ("account", "add", "gamma"),
            ("account", "set", "acme", "state=blocked"),
            ("account", "set", "acme", "default_sender=news@acme.example"),
            ("key", "create", "acme"),
            ("key", "revoke", self.key_id),
            ("net", "allow", "acme", "198.51.100.0/24"),
            ("net", "deny", "acme", "192.0.2.0/24"),
            ("domain", "add", "acme", "new.example"),
            ("domain", "set", "acme", "acme.example", "--status", "prohibited"),
            ("domain", "remove", "acme", "old.example"),
            ("stoplist", "add", "acme", "other@example.net"),
            ("stoplist", "remove", "acme", "stop@example.net"),
            ("bounced", "remove", "gone@example.net"),
            ("limit", "set", "acme", "rate=10/s"),
            ("limit", "set", "acme", "--key", self.key_id, "rate=5/s"),
            ("limit", "set", "acme", "daily=none"),
            ("campaign", "block", "acme", "summer"),
            ("campaign", "unblock", "acme", "spring"),
            ("dkim", "generate", "acme.example", "--selector", "s2"),
            ("dkim", "import", "acme.example", "--selector", "s3", "--key", self.pem),
            ("dkim", "remove", "acme.example", "--selector", "s1"),
            ("dkim", "remove", "acme.example"),
            ("webhook", "set", "acme", "https://hooks.example/new"),
            ("webhook", "remove", "acme"),
        ]

    def assertAllRefused(self, conf, port, error):
        before = snapshot(port)
        for args in self.writes():
            for json_flag in ((), ("--json",)):
                with self.subTest(args=" ".join(json_flag + args)):
                    r = subprocess.run([self.stack.binary("mailgatectl"), "-c", conf, *json_flag, *args],
                                       capture_output=True, text=True, timeout=30)
                    self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                    self.assertEqual(r.stdout, "")
                    self.assertRegex(r.stderr, r"\Amailgatectl: .*%s[^\n]*\n\Z" % error)
        self.assertEqual(snapshot(port), before)

    def test_read_only_replica(self):
        port = free_port()
        self.stack._spawn("replica", ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", self.stack.dir, "--loglevel", "warning",
                                      "--replicaof", "127.0.0.1", str(self.stack.redis_port),
                                      "--replica-read-only", "yes"])
        wait_for(lambda: can_connect(("127.0.0.1", port)), what="replica redis-server")

        def synced():
            info = subprocess.run(["redis-cli", "-p", str(port), "INFO", "replication"], capture_output=True,
                                  text=True).stdout
            return "master_link_status:up" in info
        wait_for(synced, what="replica sync")
        conf = os.path.join(self.stack.dir, "replica.conf")
        with open(self.stack.conf) as src, open(conf, "w") as dst:
            dst.write(src.read().replace(":%d\n" % self.stack.redis_port, ":%d\n" % port))
        self.assertAllRefused(conf, self.stack.redis_port, "READONLY You can't write against a read only replica")
        # The revoked key still exists, so a key "revoke" that printed success would be a lie.
        self.assertEqual(self.stack.redis("EXISTS", "mg:keyid:" + self.key_id).strip(), "1")

    def test_min_replicas_to_write(self):
        self.stack.redis("CONFIG", "SET", "min-replicas-to-write", "1")
        self.assertAllRefused(self.stack.conf, self.stack.redis_port, "NOREPLICAS Not enough good replicas")

    def test_several_assignments_apply_all_or_nothing(self):
        before = snapshot(self.stack.redis_port)
        r = self.stack.ctl("account", "set", "acme", "state=blocked", "colour=red")
        self.assertEqual((r.returncode, r.stdout), (1, ""))
        self.assertIn('unknown account setting "colour"', r.stderr)
        r = self.stack.ctl("limit", "set", "acme", "rate=10/s", "daily=lots")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (1, "", 'mailgatectl: bad daily "lots": expected a number\n'))
        self.assertEqual(snapshot(self.stack.redis_port), before)
        self.stack.ctl_ok("account", "set", "acme", "state=blocked", "subaddress=yes")
        self.stack.ctl_ok("limit", "set", "acme", "rate=10/s", "daily=100")
        fields = self.stack.redis("HGETALL", "mg:acct:{acme}").splitlines()
        values = dict(zip(fields[0::2], fields[1::2]))
        self.assertEqual([values[f] for f in ("state", "subaddress", "rate", "daily")], ["blocked", "yes", "10/s", "100"])


if __name__ == "__main__":
    unittest.main()
