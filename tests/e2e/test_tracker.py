"""mailgate-tracker end to end: a private Postfix delivers to smtp-sink
instances answering 250, 450 and 500 and to error(8) with 5.1.1; the tracker
follows Postfix's maillog, records delivered/deferred/bounced events, stats
and suppression, and POSTs signed webhooks to an HTTP receiver in this test
that fails a few times first. The tracker is killed mid-stream and restarted,
and the log is rotated with `postfix logrotate`; nothing is lost or repeated."""
import collections
import hashlib
import hmac
import http.server
import json
import os
import signal
import subprocess
import threading
import time
import unittest

from harness import SharedStackTest, Stack, free_port, wait_for


class Receiver(http.server.ThreadingHTTPServer):
    """Records signed webhook POSTs; answers 500 to the first `fail_next`."""

    def __init__(self):
        self.lock = threading.Lock()
        self.fail_next = 0
        self.failed = 0
        self.secrets = {}  # account -> secret
        self.events = []   # accepted (2xx) events, in arrival order
        self.bad_signatures = 0
        self.requests = 0
        super().__init__(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def url(self, path="/hook"):
        return "http://127.0.0.1:%d%s" % (self.server_address[1], path)

    def events_of(self, status):
        with self.lock:
            return [e for e in self.events if e["event"] == status]


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        srv = self.server
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/slow":
            time.sleep(6)
        sig = dict(part.split("=", 1) for part in self.headers.get("X-Mailgate-Signature", "").split(","))
        payload = json.loads(body)
        with srv.lock:
            srv.requests += 1
            account = payload["events"][0]["account"]
            expected = hmac.new(srv.secrets.get(account, "").encode(), (sig.get("t", "") + ".").encode() + body,
                                hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, sig.get("v1", "")):
                srv.bad_signatures += 1
                code = 401
            elif srv.fail_next > 0:
                srv.fail_next -= 1
                srv.failed += 1
                code = 500
            else:
                srv.events.extend(payload["events"])
                code = 200
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()


class Tracker(SharedStackTest):
    @classmethod
    def makeStack(cls):
        cls.receiver = Receiver()
        stack = Stack(with_tracker=True, extra_config="webhook_retry_initial = 200ms\n"
                                                     "webhook_retry_max = 1s\n"
                                                     "webhook_retry_for = 6s\n")

        def failing_sinks():
            soft = stack.start_sink("sink-soft", free_port(), ("-r", "RCPT"))
            fail = stack.start_sink("sink-fail", free_port(), ("-f", "RCPT"))
            stack.transport = ["soft.test smtp:[127.0.0.1]:%d" % soft,
                               "fail.test smtp:[127.0.0.1]:%d" % fail,
                               "hard.test error:5.1.1 mailbox unknown"]
        return stack.start(stack.start_redis, stack.start_sink, failing_sinks, stack.start_daemons,
                           stack.start_postfix)

    @classmethod
    def prepare(cls):
        s = cls.stack
        cls.key, _ = s.make_key("acme")
        out = json.loads(s.ctl_ok("--json", "webhook", "set", "acme", cls.receiver.url()))
        cls.receiver.secrets["acme"] = out["secret"]

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.receiver.shutdown()

    def send(self, to, subject="tracker test", *extra):
        out = self.stack.swaks(*extra, to=to, key=self.key, subject=subject)
        qid = self.stack.queue_id(out)
        self.assertIsNotNone(qid, out)
        return qid

    def message_events(self, qid):
        return json.loads(self.stack.ctl_ok("--json", "message", qid))["events"]

    def wait_status(self, qid, rcpt, status, timeout=30):
        def found():
            return [e for e in self.message_events(qid) if e["rcpt"] == rcpt and e["status"] == status]
        try:
            return wait_for(found, timeout, "%s event for %s" % (status, rcpt))[0]
        except Exception:
            print(self.stack.diagnostics() + "\n----- tracker -----\n" + self.stack.log("tracker")[-3000:])
            raise

    def test_1_results_and_suppression(self):
        s = self.stack
        qid = self.send("bob@example.net,soft@soft.test,fail@fail.test,gone@hard.test", "tracker test",
                        "--add-header", "X-Campaign-Id: spring")
        ok = self.wait_status(qid, "bob@example.net", "delivered")
        self.assertEqual(ok["code"], "2.0.0")
        self.assertEqual(ok["campaign"], "spring")
        self.assertTrue(ok["message_id"].startswith("<"), ok)
        soft = self.wait_status(qid, "soft@soft.test", "deferred")
        self.assertEqual(soft["code"], "4.3.0")
        self.assertIn("450 4.3.0 Error: command failed", soft["text"])
        fail = self.wait_status(qid, "fail@fail.test", "bounced")
        self.assertEqual(fail["code"], "5.3.0")
        gone = self.wait_status(qid, "gone@hard.test", "bounced")
        self.assertEqual(gone["code"], "5.1.1")
        self.assertEqual(gone["text"], "mailbox unknown")

        day = ok["time"][:10]
        stats = json.loads(s.ctl_ok("--json", "stats", "acme", "--day", day, "--campaign", "spring"))["counts"]
        self.assertEqual(stats.get("delivered"), 1, stats)
        self.assertEqual(stats.get("bounced"), 2, stats)
        self.assertEqual(stats.get("deferred"), 1, stats)

        # 5.1.x suppresses, 5.3.0 and 4.x do not.
        bounced = json.loads(s.ctl_ok("--json", "bounced", "list"))
        self.assertEqual([b["address"] for b in bounced], ["gone@hard.test"])
        self.assertEqual(bounced[0]["dsn"], "5.1.1")
        self.assertEqual(bounced[0]["account"], "acme")
        self.assertEqual(bounced[0]["queue_id"], qid)
        out = s.swaks(to="gone@hard.test", key=self.key)
        self.assertIn("<~* 550 5.0.0 <gone@hard.test>: Recipient address rejected: "
                      "Email has permanent delivery errors", out)
        self.assertIsNotNone(s.queue_id(s.swaks(to="fail@fail.test", key=self.key)))
        s.ctl_ok("bounced", "remove", "gone@hard.test")
        self.assertEqual(json.loads(s.ctl_ok("--json", "bounced", "list")), [])
        self.assertIsNotNone(s.queue_id(s.swaks(to="gone@hard.test", key=self.key)))

        # mailgatectl message shows the whole history.
        text = s.ctl_ok("message", qid)
        for word in ("accepted", "delivered", "deferred", "bounced", "mailbox unknown"):
            self.assertIn(word, text)

    def test_2_webhooks_signed_retried_delivered_once(self):
        r = self.receiver
        with r.lock:
            r.fail_next = 3
            r.events.clear()
        qids = [self.send("bob@example.net", "hook %d" % i) for i in range(3)]
        for qid in qids:
            self.wait_status(qid, "bob@example.net", "delivered")

        def all_delivered():
            got = {e["queue_id"] for e in r.events_of("delivered")}
            return set(qids) <= got
        wait_for(all_delivered, 30, "webhook deliveries")
        self.assertEqual(r.failed, 3)
        self.assertEqual(r.bad_signatures, 0)
        with r.lock:
            ids = [e["id"] for e in r.events]
            ev = next(e for e in r.events if e["event"] == "delivered" and e["queue_id"] == qids[0])
        self.assertEqual(len(ids), len(set(ids)), "an event was delivered twice")
        for field in ("id", "event", "time", "timestamp", "queue_id", "message_id", "campaign_id", "letter_id",
                      "recipient", "code", "text", "account", "key_id", "from"):
            self.assertIn(field, ev)
        self.assertEqual(ev["recipient"], "bob@example.net")
        self.assertEqual(ev["code"], "2.0.0")
        self.assertEqual(ev["account"], "acme")
        accepted = [e for e in r.events_of("accepted") if e["queue_id"] == qids[0]]
        self.assertEqual(len(accepted), 1)

    def test_3_restart_mid_stream_loses_nothing(self):
        s = self.stack
        r = self.receiver
        with r.lock:
            r.events.clear()
        qids = [self.send("bob@example.net", "restart %d" % i) for i in range(4)]
        s.procs["tracker"].send_signal(signal.SIGKILL)
        s.procs["tracker"].wait()
        qids += [self.send("bob@example.net", "while down %d" % i) for i in range(4)]
        s.wait_delivered(len(qids))
        s.start_daemons(("tracker",))
        for qid in qids:
            self.wait_status(qid, "bob@example.net", "delivered")
        for qid in qids:
            delivered = [e for e in self.message_events(qid) if e["status"] == "delivered"]
            self.assertEqual(len(delivered), 1, "qid %s: %s" % (qid, delivered))

        def hooks_done():
            return set(qids) <= {e["queue_id"] for e in r.events_of("delivered")}
        wait_for(hooks_done, 30, "webhooks after restart")
        with r.lock:
            per_qid = collections.Counter(e["queue_id"] for e in r.events if e["event"] == "delivered")
        # At least once; a SIGKILL between POST and XACK may repeat, never lose.
        self.assertTrue(all(per_qid[q] >= 1 for q in qids), per_qid)

    def test_4_log_rotation(self):
        s = self.stack
        first = self.send("bob@example.net", "before rotation")
        self.wait_status(first, "bob@example.net", "delivered")
        r = s.postfix("logrotate")
        self.assertEqual(r.returncode, 0, r.stderr)
        qid = self.send("bob@example.net", "after rotation")
        self.wait_status(qid, "bob@example.net", "delivered")

    def test_5_ctl_webhook_and_dead_letters(self):
        s = self.stack
        show = json.loads(s.ctl_ok("--json", "webhook", "show", "acme"))
        self.assertEqual(show["url"], self.receiver.url())
        out = s.ctl_ok("webhook", "test", "acme")
        self.assertIn("HTTP 200", out)
        self.assertTrue(self.receiver.events_of("test"))

        bad = s.ctl("webhook", "set", "acme", "ftp://x")
        self.assertEqual(bad.returncode, 1)
        self.assertIn('bad webhook URL "ftp://x"', bad.stderr)
        self.assertIn('unknown account "nobody"', s.ctl("webhook", "show", "nobody").stderr)

        # An endpoint that never answers: events go to the dead-letter stream
        # after webhook_retry_for (6 s here).
        key, _ = s.make_key("deadend")
        s.ctl_ok("webhook", "set", "deadend", "http://127.0.0.1:%d/none" % free_port())
        qid = s.queue_id(s.swaks(to="bob@example.net", key=key))
        self.assertIsNotNone(qid)

        def dead():
            return json.loads(s.ctl_ok("--json", "webhook", "failures", "deadend"))
        failures = wait_for(lambda: len(dead()) >= 2 and dead(), 40, "dead letters")
        statuses = sorted(f["event"]["event"] for f in failures)
        self.assertEqual(statuses, ["accepted", "delivered"])
        self.assertIn("onnect", failures[0]["error"])
        self.assertGreater(failures[0]["attempts"], 1)
        self.assertIn("deadend", s.log("tracker"))

    def test_6_status(self):
        s = self.stack
        st = wait_for(lambda: (lambda j: j["trackers"] and j)(json.loads(s.ctl_ok("--json", "status"))), 15,
                      "a tracker heartbeat")
        self.assertEqual((st["policy"], st["auth"], st["milter"]), ("ok", "ok", "ok"))
        self.assertGreater(st["events"], 0)
        self.assertIn("latency_ms", st["redis"])
        self.assertEqual(set(st["webhook_backlog"]), {"pending", "unread"})
        self.assertTrue(st["trackers"][0]["alive"])
        text = s.ctl_ok("status")
        self.assertIn("webhook backlog:", text)
        self.assertRegex(text, r"redis 127\.0\.0\.1:\d+:\s+ok, [0-9.]+ ms")

    def test_7_slow_endpoint_delays_no_other_account(self):
        s = self.stack
        r = self.receiver
        key, _ = s.make_key("slowpoke")
        out = json.loads(s.ctl_ok("--json", "webhook", "set", "slowpoke", r.url("/slow")))
        with r.lock:
            r.secrets["slowpoke"] = out["secret"]
        slow_qid = s.queue_id(s.swaks(to="bob@example.net", key=key))
        self.assertIsNotNone(slow_qid)
        time.sleep(1)  # its POST is now hanging for 6 s
        start = time.monotonic()
        qid = self.send("bob@example.net", "while another endpoint hangs")
        wait_for(lambda: any(e["queue_id"] == qid for e in r.events_of("accepted")), 5, "acme's webhook")
        self.assertLess(time.monotonic() - start, 5)
        self.assertFalse(any(e["queue_id"] == slow_qid for e in r.events_of("accepted")),
                         "the slow endpoint answered already")
        wait_for(lambda: any(e["queue_id"] == slow_qid for e in r.events_of("accepted")), 20, "the slow webhook")

    def test_8_two_postfix_logrotates_while_stopped(self):
        """Stopped tracker, mail delivered, `postfix logrotate` twice (maillog.YYYYMMDD-HHMMSS, left
        uncompressed): at start it reads the rest of its file, the newer one, then the new maillog."""
        s = self.stack
        r = subprocess.run(["postconf", "-c", s.path("postfix"), "-e", "maillog_file_compressor = true"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        first = self.send("bob@example.net", "before the stop")
        self.wait_status(first, "bob@example.net", "delivered")
        s._kill("tracker")
        qids = []
        for rotation in range(3):
            base = len(s.sink_messages())
            qids += [self.send("bob@example.net", "stopped %d/%d" % (rotation, i)) for i in range(3)]
            s.wait_delivered(base + 3)
            time.sleep(0.5)  # qmgr's "removed" lines too
            if rotation < 2:
                r = s.postfix("logrotate")
                self.assertEqual(r.returncode, 0, r.stderr)
        rotated = sorted(f for f in os.listdir(s.dir) if f.startswith("maillog.") and not f.endswith(".gz"))
        self.assertEqual(len(rotated), 2, rotated)
        s.start_daemons(("tracker",))
        for qid in qids:
            self.wait_status(qid, "bob@example.net", "delivered")
        time.sleep(2)  # anything read twice would be recorded by now
        for qid in [first] + qids:
            delivered = [e for e in self.message_events(qid) if e["status"] == "delivered"]
            self.assertEqual(len(delivered), 1, "qid %s: %s" % (qid, delivered))
        self.assertIn("resuming %s at offset" % s.path(rotated[0]),
                      s.log("tracker"))


class TrackerStdin(unittest.TestCase):
    """tracker_log = -: lines from standard input (journalctl -f -o cat | mailgate-tracker)."""

    def test_cat_lines_from_stdin(self):
        s = Stack(tracker_log="-")
        self.addCleanup(s.stop)
        s.start_redis()
        s.redis("HSET", "mg:q:4F3A2B1C0D", "account", "acme", "campaign", "c1", "msgid", "<m@x>")
        lines = ("4F3A2B1C0D: to=<u@example.net>, relay=mx[192.0.2.1]:25, delay=1, delays=0/0/0.5/0.5, "
                 "dsn=2.0.0, status=sent (250 2.0.0 Ok)\n"
                 "garbage line\n"
                 "999999: to=<u@example.net>, status=sent (not ours)\n")
        p = subprocess.run([s.binary("mailgate-tracker"), "-f", "-c", s.conf], input=lines, text=True,
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        events = s.events()
        self.assertEqual([(e["status"], e["rcpt"], e["campaign"], e["message_id"]) for e in events],
                         [("delivered", "u@example.net", "c1", "<m@x>")])

    def test_redis_down_lines_wait_and_are_recorded(self):
        s = Stack(tracker_log="-")
        self.addCleanup(s.stop)
        s.start_redis()
        s.redis("HSET", "mg:q:4F3A2B1C0E", "account", "acme")
        s.redis("SAVE")
        s.stop_redis()
        with open(s.path("tracker.log"), "wb") as log:
            p = subprocess.Popen([s.binary("mailgate-tracker"), "-f", "-c", s.conf], stdin=subprocess.PIPE,
                                 stdout=log, stderr=subprocess.STDOUT, text=True)
        p.stdin.write("4F3A2B1C0E: to=<u@example.net>, relay=none, delay=1, dsn=4.4.1, "
                      "status=deferred (connect to mx[192.0.2.1]:25: Connection refused)\n")
        p.stdin.flush()
        wait_for(lambda: "cannot record delivery results" in s.log("tracker"), 20, "the Redis error")
        self.assertIsNone(p.poll())
        s.start_redis()  # loads the saved q: record
        p.stdin.close()
        self.assertEqual(p.wait(30), 0)
        events = s.events()
        self.assertEqual([(e["status"], e["code"], e["text"]) for e in events],
                         [("deferred", "4.4.1", "connect to mx[192.0.2.1]:25: Connection refused")])
        self.assertIn("recording delivery results again", s.log("tracker"))


if __name__ == "__main__":
    unittest.main()
