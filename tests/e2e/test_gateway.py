"""test_gateway.py — a message crosses a real private Postfix with
mailgate-policy and mailgate-milter attached; its outcome is read back from
real Redis. Also: Redis down with on_redis_failure = tempfail / accept (which
keeps what the plan decided: discards and header edits), and recovery
without restarting anything."""

import signal
import time
import unittest

from harness import Stack, wait_for


class StackTest(unittest.TestCase):
    ON_REDIS_FAILURE = "tempfail"
    WITH_POLICY = True

    def setUp(self):
        self.stack = Stack(on_redis_failure=self.ON_REDIS_FAILURE, with_policy=self.WITH_POLICY).start()
        self.addCleanup(self.stack.stop)
        self.key, self.key_id = self.stack.make_key("acme")

    def send_ok(self, **kw):
        kw.setdefault("key", self.key)
        out = self.stack.swaks(**kw)
        qid = self.stack.queue_id(out)
        self.assertIsNotNone(qid, out + self.stack.diagnostics())
        return qid


class Gateway(StackTest):
    def test_message_recorded(self):
        qid = self.send_ok(to="bob@example.net", sender="alice@example.org", subject="hello")
        self.stack.wait_delivered()
        events = self.stack.events()
        self.assertEqual(len(events), 1, events)
        e = events[0]
        self.assertEqual(e["queue_id"], qid)
        self.assertEqual(e["status"], "accepted")
        self.assertEqual(e["from"], "alice@example.org")
        self.assertEqual(e["rcpt"], "bob@example.net")
        self.assertEqual(e["code"], "250")
        self.assertEqual(e["account"], "acme")
        self.assertEqual(e["key_id"], self.key_id)
        record = self.stack.redis("HGETALL", "mg:q:" + qid).split("\n")
        fields = dict(zip(record[0::2], record[1::2]))
        self.assertEqual(fields["from"], "alice@example.org")
        self.assertEqual(fields["nrcpt"], "1")
        self.assertEqual(fields["account"], "acme")
        self.assertEqual(fields["key"], self.key_id)
        ttl = int(self.stack.redis("TTL", "mg:q:" + qid))
        self.assertTrue(7 * 86400 - 60 < ttl <= 7 * 86400, ttl)
        self.assertIn(qid + ": accepted: from=<alice@example.org> nrcpt=1 account=acme key=" + self.key_id,
                      self.stack.log("milter"))
        table = self.stack.ctl("events")
        self.assertEqual(table.returncode, 0, table.stderr)
        self.assertIn(qid, table.stdout)
        self.assertIn("QUEUE-ID", table.stdout)

    def test_sighup_reloads_every_daemon_without_stopping(self):
        """SIGHUP reloads (the milter too, although libmilter would stop on it)."""
        with open(self.stack.conf, "a") as f:
            f.write("sink_recipients = sink@example.net\n")
        for name in ("policy", "milter"):
            self.stack.procs[name].send_signal(signal.SIGHUP)
            wait_for(lambda: "reload: configuration" in self.stack.log(name), 10, name + " reload")
        time.sleep(0.5)
        for name in ("policy", "milter"):
            self.assertIsNone(self.stack.procs[name].poll(), name + " exited on SIGHUP")
        qid = self.send_ok(to="sink@example.net")  # a new SMTP connection: the new configuration
        events = wait_for(lambda: [e for e in self.stack.events() if e["queue_id"] == qid], 10, "events")
        self.assertEqual([e["status"] for e in events], ["sink"])
        self.assertEqual(self.stack.procs["milter"].poll(), None)

    def test_redis_down_policy_tempfails(self):
        self.send_ok()  # puts the key in the auth cache (auth_cache_ttl)
        self.stack.wait_delivered()
        self.stack.stop_redis()
        out = self.stack.swaks(key=self.key)
        self.assertIn("<~* 451 4.3.0 <alice@example.org>: Sender address rejected: internal service error", out)


class GatewayMilterOnly(StackTest):
    """Postfix without the policy service: the milter alone meets a Redis outage."""
    WITH_POLICY = False

    def test_redis_down_tempfail_then_recovers(self):
        # Authenticate once so that the key is in the auth cache, then take Redis away.
        self.send_ok()
        self.stack.wait_delivered()
        self.stack.stop_redis()
        out = self.stack.swaks(key=self.key)
        self.assertIn("<~* 451 4.3.0 internal service error", out)
        self.assertIsNone(self.stack.queue_id(out))
        self.assertIn("tempfail: END-OF-MESSAGE", self.stack.log("milter"))
        self.assertEqual(len(self.stack.sink_messages()), 1)

        self.stack.start_redis()
        time.sleep(0.5)  # longer than the first reconnect backoff
        self.key, self.key_id = self.stack.make_key("acme")  # the new Redis starts empty
        qid = self.send_ok()
        self.stack.wait_delivered(2)
        events = self.stack.events()
        self.assertEqual([e["queue_id"] for e in events], [qid])
        self.assertIn("reachable again", self.stack.log("milter"))


class GatewayAccept(StackTest):
    ON_REDIS_FAILURE = "accept"

    def test_redis_down_accept_delivers(self):
        self.send_ok()  # puts the key in the auth cache (auth_cache_ttl)
        self.stack.wait_delivered()
        self.stack.stop_redis()
        qid = self.send_ok()
        self.stack.wait_delivered(2)
        wait_for(lambda: "accept without outcome record" in self.stack.log("milter"), 5, "milter log")
        self.assertIn(qid + ": accept without outcome record (on_redis_failure = accept)",
                      self.stack.log("milter"))


class GatewayAcceptKeepsThePlan(StackTest):
    """on_redis_failure = accept after the plan exists: a lost record or unreadable DKIM
    keys must not undo the plan's discards and header edits."""
    ON_REDIS_FAILURE = "accept"
    TAGS = ("MIME-Version: 1.0", "Content-Type: text/plain", "X-Campaign-Id: c1", "X-Letter-Id: L1")

    def delivered_to(self, count):
        """Waits for `count` messages at the sink, then gives no more a second to arrive."""
        self.stack.wait_delivered(count)
        time.sleep(1)
        messages = self.stack.sink_messages()
        self.assertEqual(len(messages), count, [self.stack.sink_recipients(m) for m in messages])
        return messages[-1]

    def test_lost_record_keeps_discards_and_edits(self):
        sandbox, _ = self.stack.make_key("acme", "--sandbox", create_account=False)
        # Writes fail with NOREPLICAS, reads still work: every outcome record fails.
        self.stack.redis("CONFIG", "SET", "min-replicas-to-write", "1")
        q_sandbox = self.send_ok(key=sandbox)
        q_sink = self.send_ok(to="test@test.ru")
        q_mixed = self.send_ok(to="test@test.ru,carol@example.net", headers=self.TAGS)
        path = self.delivered_to(1)
        self.assertEqual(self.stack.sink_recipients(path), ["carol@example.net"])
        header = self.stack.delivered_headers(path)
        self.assertNotIn("X-Campaign-Id", header)
        self.assertNotIn("X-Letter-Id", header)
        self.assertIn("Feedback-ID: c1:acme:mailgate", header)
        log = self.stack.log("milter")
        for qid, what in ((q_sandbox, "discard"), (q_sink, "discard"), (q_mixed, "accept")):
            self.assertIn(qid + ": %s without outcome record (on_redis_failure = accept)" % what, log)
        self.stack.redis("CONFIG", "SET", "min-replicas-to-write", "0")
        self.assertEqual(self.stack.events(), [])

    def test_unreadable_dkim_keys_keep_the_edits(self):
        # The DKIM keys of the From domain cannot be read (WRONGTYPE), the rest of Redis works.
        self.stack.redis("SET", "mg:dkim:example.org", "not a hash")
        qid = self.send_ok(to="carol@example.net", headers=self.TAGS)
        header = self.stack.delivered_headers(self.delivered_to(1))
        self.assertNotIn("X-Campaign-Id", header)
        self.assertIn("Feedback-ID: c1:acme:mailgate", header)
        self.assertNotIn("DKIM-Signature", header)
        self.assertIn(qid + ": dkim: keys unavailable, sending unsigned (on_redis_failure = accept)",
                      self.stack.log("milter"))
        self.assertEqual([e["status"] for e in self.stack.events() if e["queue_id"] == qid], ["accepted"])


if __name__ == "__main__":
    unittest.main()
