"""test_outages.py — one part of the gateway missing or refusing, one message at a
time: what the sender is told, what is recorded, and that service comes back
by itself. The milter or the policy service not running (Postfix's own default
actions), and Redis refusing every write because its disk is full (MISCONF)
while reads still work. The README's "Failure behaviour" table names these."""

import json
import os
import signal
import subprocess
import time
import unittest

from harness import Stack, can_connect, wait_for

FILLER = "filler"


def smtp_replies(out):
    """swaks' lines of server replies, without the EHLO list."""
    return [line for line in out.splitlines() if line[:4].strip()[:2] in ("<-", "<*", "<~") and "250-" not in line]


class DaemonNotRunning(unittest.TestCase):
    """The milter or the policy service is stopped: Postfix applies milter_default_action
    = tempfail and smtpd_policy_service_default_action (451 4.3.5); nothing is accepted
    unchecked, and the next session after the daemon is back is served."""

    def setUp(self):
        self.stack = Stack().start()
        self.addCleanup(self.stack.stop)
        self.key, _ = self.stack.make_key("acme")

    def stop(self, name):
        p = self.stack.procs.pop(name)
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(10), 0)

    def test_milter_not_running(self):
        self.stop("milter")
        out = self.stack.swaks(key=self.key)
        self.assertIn("<** 454 4.3.0 Try again later", out)  # STARTTLS: smtpd cannot reach the milter
        out = self.stack.swaks()  # from mynetworks, without TLS
        self.assertIn("<** 451 4.7.1 Service unavailable - try again later", out)
        self.assertIsNone(self.stack.queue_id(out))
        self.stack.start_daemons(["milter"])
        self.assertIsNotNone(self.stack.queue_id(self.stack.swaks(key=self.key)))
        self.stack.wait_delivered(1)
        time.sleep(0.5)
        self.assertEqual(len(self.stack.sink_messages()), 1)
        self.assertEqual([e["status"] for e in self.stack.events()], ["accepted"])

    def test_policy_not_running(self):
        self.stop("policy")
        # The auth socket is the policy service's too: Postfix's smtpd finds no SASL
        # mechanism and ends the session after EHLO (its own "fatal", one smtpd process).
        out = self.stack.swaks(key=self.key)
        self.assertIn("*** Remote host closed connection unexpectedly.", out)
        self.assertIn("fatal: no SASL authentication mechanisms", self.stack.maillog())
        out = self.stack.swaks()
        self.assertIn("<** 451 4.3.5 <alice@example.org>: Sender address rejected: Server configuration problem",
                      out)
        self.stack.start_daemons(["policy"])
        self.assertIsNotNone(self.stack.queue_id(self.stack.swaks(key=self.key)))
        self.stack.wait_delivered(1)
        self.assertEqual(len(self.stack.sink_messages()), 1)


class RedisDiskFull(unittest.TestCase):
    """Redis's disk is full: its last background save failed, so (stop-writes-on-bgsave-error)
    it answers every write with -MISCONF and still answers reads. Senders get a 4xx, the
    tracker keeps its log position and records the lines once the disk has room again."""

    def setUp(self):
        self.stack = s = Stack(with_tracker=True)
        self.addCleanup(s.stop)
        self.data = s.path("redis-data")
        os.makedirs(self.data)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", self.data], check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", self.data])

        def start_redis():
            s._spawn("redis", ["redis-server", "--port", str(s.redis_port), "--bind", "127.0.0.1",
                               "--save", "3600 1", "--stop-writes-on-bgsave-error", "yes", "--appendonly", "no",
                               "--dir", self.data, "--loglevel", "warning"])
            wait_for(lambda: can_connect(("127.0.0.1", s.redis_port)), what="redis-server")

        s.start(start_redis, s.start_sink, s.start_daemons, s.start_postfix)
        self.key, _ = s.make_key("acme")
        self.rated, _ = s.make_key("rated")
        s.ctl_ok("limit", "set", "rated", "rate=100/h")

    def fill_disk(self):
        # What fits: the tmpfs minus a few KiB, so that the next RDB file cannot be written.
        st = os.statvfs(self.data)
        with open(os.path.join(self.data, FILLER), "wb") as f:
            f.write(b"\0" * (st.f_bavail * st.f_frsize - 2048))
        self.stack.redis("BGSAVE")
        wait_for(lambda: "rdb_last_bgsave_status:err" in self.stack.redis("INFO", "persistence"), 10,
                 "the failed background save")
        self.assertIn("MISCONF", self.stack.redis("SET", "probe", "1"))

    def free_disk(self):
        os.unlink(os.path.join(self.data, FILLER))
        self.stack.redis("BGSAVE")
        wait_for(lambda: "rdb_last_bgsave_status:ok" in self.stack.redis("INFO", "persistence"), 10,
                 "a good background save")

    def test_writes_refused_then_served_and_recorded_once(self):
        s = self.stack
        first = s.queue_id(s.swaks(key=self.key))
        self.assertIsNotNone(first)
        wait_for(lambda: "delivered" in [e["status"] for e in s.events()], 30, "the first delivery recorded")
        s.redis("HSET", "mg:q:4F3A2B1C0F", "account", "acme")  # a message queued earlier, still in the queue
        self.fill_disk()

        out = s.swaks(key=self.key)
        self.assertIsNone(s.queue_id(out), out)
        # The policy service's checks only read here; the milter's outcome record is a write.
        self.assertEqual(smtp_replies(out)[-2:], ["<~* 451 4.3.0 internal service error", "<~  221 2.0.0 Bye"])
        self.assertEqual(len(s.sink_messages()), 1)
        # An account with a rate limit: the policy service's counting script is a write.
        out = s.swaks(key=self.rated)
        self.assertIn("<~* 451 4.3.0 <bob@example.net>: Recipient address rejected: internal service error", out)
        r = s.ctl("account", "add", "late")
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r.stderr.startswith("mailgatectl: MISCONF Redis is configured to save RDB snapshots"),
                        r.stderr)

        # A delivery line the tracker cannot record while writes are refused.
        position = "mg:tracker:" + s.redis("SMEMBERS", "mg:trackers").strip()
        before = s.redis("HGETALL", position)
        with open(s.path("maillog"), "a") as log:
            log.write(time.strftime("%b %d %H:%M:%S") + " mailgate-e2e postfix/smtp[4242]: 4F3A2B1C0F"
                      ": to=<bob@example.net>, relay=none, delay=1, delays=0/0/1/0, dsn=4.4.1, "
                      "status=deferred (disk full test)\n")
        wait_for(lambda: "cannot record delivery results" in s.log("tracker"), 20, "the tracker's error")
        self.assertEqual(s.redis("HGETALL", position), before)

        self.free_disk()
        qid = wait_for(lambda: s.queue_id(s.swaks(key=self.key)), 10, "a message accepted again")
        s.wait_delivered(2)
        wait_for(lambda: "recording delivery results again" in s.log("tracker"), 20, "the tracker recovering")
        events = json.loads(s.ctl_ok("--json", "message", "4F3A2B1C0F"))["events"]
        self.assertEqual([e["text"] for e in events if e["text"] == "disk full test"], ["disk full test"])
        self.assertIn(qid, [e["queue_id"] for e in s.events()])
        self.assertEqual(s.log("tracker").count("cannot record delivery results"), 1)


if __name__ == "__main__":
    unittest.main()
