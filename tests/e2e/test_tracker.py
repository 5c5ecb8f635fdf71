"""mailgate-tracker end to end: a private Postfix delivers to smtp-sink
instances answering 250, 450 and 500, to error(8) with 5.1.1 and to a relay
in this test that refuses the sender's domain (5.1.8) or the mailbox (5.1.1)
or defers it (452 4.2.2); the tracker follows Postfix's maillog, records
delivered/deferred/bounced events, stats and suppression (only dead
mailboxes, under the submitted address, and a mailbox full on three
messages), and POSTs signed webhooks to an HTTP receiver in this test that
fails a few times first. The tracker is killed mid-stream and restarted, the
log is rotated with `postfix logrotate`, forged lines are appended to it and
Redis's reply to a batch is lost; nothing is lost, repeated or believed."""
import collections
import hashlib
import hmac
import http.server
import json
import os
import re
import signal
import socket
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


class Relay:
    """A receiving MTA on loopback answering RCPT by domain: sender-bad.test with
    Postfix's reject_unknown_sender_domain reply (550 5.1.8, a problem of the
    *sender*), dead.test with 550 5.1.1 (no such mailbox), full.test with 452 4.2.2
    (mailbox full), others with 250."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.session, args=(conn,), daemon=True).start()

    @staticmethod
    def session(conn):
        with conn, conn.makefile("rb") as f:
            conn.sendall(b"220 relay.test ESMTP\r\n")
            sender = ""
            for raw in f:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                verb = line[:4].upper()
                if verb in ("EHLO", "HELO"):
                    reply = "250 relay.test"
                elif verb == "MAIL":
                    sender = line[line.find("<") + 1:line.rfind(">")]
                    reply = "250 2.1.0 Ok"
                elif verb == "RCPT":
                    rcpt = line[line.find("<") + 1:line.rfind(">")]
                    if rcpt.endswith("@sender-bad.test"):
                        reply = "550 5.1.8 <%s>: Sender address rejected: Domain not found" % sender
                    elif rcpt.endswith("@dead.test"):
                        reply = "550 5.1.1 <%s>: Recipient address rejected: User unknown" % rcpt
                    elif rcpt.endswith("@full.test"):
                        reply = "452 4.2.2 <%s>: Recipient address rejected: Mailbox full" % rcpt
                    else:
                        reply = "250 2.1.5 Ok"
                elif verb == "DATA":
                    conn.sendall(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    for body in f:
                        if body in (b".\r\n", b".\n"):
                            break
                    reply = "250 2.0.0 Ok: queued"
                elif verb == "QUIT":
                    conn.sendall(b"221 2.0.0 Bye\r\n")
                    return
                else:
                    reply = "250 2.0.0 Ok"  # RSET, NOOP
                conn.sendall((reply + "\r\n").encode())


def append_log(stack, lines):
    """Appends `lines` to the followed maillog in one write, as another
    program (logger(1), a local user) could; returns the file's new size."""
    with open(stack.path("maillog"), "a") as f:
        f.write("".join(line + "\n" for line in lines))
    return os.path.getsize(stack.path("maillog"))


def syslog_prefix(tag):
    return time.strftime("%b %d %H:%M:%S") + " mailgate-e2e " + tag + ": "


def wait_read(stack, size, timeout=20):
    """Waits until the tracker saved a log position at or past `size`."""
    def read():
        out = stack.redis("EVAL", "local r = {} for _, k in ipairs(redis.call('KEYS', 'mg:tracker:*')) do "
                          "r[#r + 1] = redis.call('HGET', k, 'offset') end return r", "0")
        return any(int(v) >= size for v in out.split() if v.isdigit())
    wait_for(read, timeout, "the tracker to read the appended lines")


class Tracker(SharedStackTest):
    @classmethod
    def makeStack(cls):
        cls.receiver = Receiver()
        stack = Stack(with_tracker=True, extra_config="webhook_retry_initial = 200ms\n"
                                                     "webhook_retry_max = 1s\n"
                                                     "webhook_retry_for = 6s\n"
                                                     "webhook_allow_networks = 127.0.0.0/8\n")

        def failing_sinks():
            soft = stack.start_sink("sink-soft", free_port(), ("-r", "RCPT"))
            fail = stack.start_sink("sink-fail", free_port(), ("-f", "RCPT"))
            cls.relay = Relay()
            stack.transport = ["soft.test smtp:[127.0.0.1]:%d" % soft,
                               "fail.test smtp:[127.0.0.1]:%d" % fail,
                               "hard.test error:5.1.1 mailbox unknown",
                               "sender-bad.test smtp:[127.0.0.1]:%d" % cls.relay.port,
                               "dead.test smtp:[127.0.0.1]:%d" % cls.relay.port,
                               "full.test smtp:[127.0.0.1]:%d" % cls.relay.port]
            # Postfix rewrites this recipient (and logs orig_to=<alias@rewrite.test>).
            with open(stack.path("virtual"), "w") as f:
                f.write("alias@rewrite.test real@dead.test\n")
            stack.postconf_edits.append(["-e", "virtual_alias_maps = texthash:" + stack.path("virtual")])
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
        # Non-public address literals are refused at set time (127.0.0.0/8 is allowed here).
        for url, kind in (("http://169.254.169.254/latest/meta-data/", "link-local"),
                          ("http://[::1]:6379/", "loopback"), ("http://10.0.0.1/admin", "private")):
            bad = s.ctl("webhook", "set", "acme", url)
            self.assertEqual(bad.returncode, 1, bad.stdout)
            self.assertIn("webhook URL host is a %s address, which webhooks may not reach; allow its network "
                          "with webhook_allow_networks (mailgate.conf(5))" % kind, bad.stderr)
        self.assertEqual(json.loads(s.ctl_ok("--json", "webhook", "show", "acme"))["url"], self.receiver.url())

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

    def bounced(self):
        return sorted(b["address"] for b in json.loads(self.stack.ctl_ok("--json", "bounced", "list")))

    def test_8_only_dead_mailboxes_suppress_under_the_submitted_address(self):
        s = self.stack
        before = self.bounced()  # gone@hard.test again, from test_1's last message
        for address in ("alias@rewrite.test", "user@dead.test"):
            self.addCleanup(s.ctl, "bounced", "remove", address)
        qid = self.send("news@sender-bad.test,user@dead.test,alias@rewrite.test")
        bad = self.wait_status(qid, "news@sender-bad.test", "bounced")
        self.assertEqual(bad["code"], "5.1.8")
        self.assertEqual(bad["text"], "host 127.0.0.1[127.0.0.1] said: 550 5.1.8 <alice@example.org>: Sender address "
                                      "rejected: Domain not found (in reply to RCPT TO command)")
        dead = self.wait_status(qid, "user@dead.test", "bounced")
        self.assertEqual(dead["code"], "5.1.1")
        # Rewritten by virtual_alias_maps: reported and suppressed as submitted.
        alias = self.wait_status(qid, "alias@rewrite.test", "bounced")
        self.assertEqual(alias["text"], "host 127.0.0.1[127.0.0.1] said: 550 5.1.1 <real@dead.test>: Recipient "
                                        "address rejected: User unknown (in reply to RCPT TO command)")
        self.assertIn("orig_to=<alias@rewrite.test>", s.maillog())

        self.assertEqual(self.bounced(), sorted(before + ["alias@rewrite.test", "user@dead.test"]))
        for address in ("alias@rewrite.test", "user@dead.test"):
            out = s.swaks(to=address, key=self.key)
            self.assertIn("<~* 550 5.0.0 <%s>: Recipient address rejected: Email has permanent delivery errors"
                          % address, out)
        # The sender's broken domain suppresses nobody, for no account.
        other, _ = s.make_key("other")
        self.assertIsNotNone(s.queue_id(s.swaks(to="news@sender-bad.test", key=other)))

    def test_9_forged_log_lines_change_nothing(self):
        s = self.stack
        r = self.receiver
        qid = self.send("wait@soft.test", "forged lines")  # stays queued (450): lines of it are still read
        self.wait_status(qid, "wait@soft.test", "deferred")
        before = self.bounced()
        bounce = "relay=none, delay=1, delays=0/0/0/1, dsn=5.1.1, status=bounced (forged)"
        forged = [
            # logger -t evil/smtp, a program that is not a delivery agent, a tag quoted in the message:
            syslog_prefix("evil/smtp[4242]") + qid + ": to=<wait@soft.test>, " + bounce,
            syslog_prefix("postfix/cleanup[4242]") + qid + ": to=<wait@soft.test>, " + bounce,
            syslog_prefix("logger[1]") + "x postfix/smtp[4242]: " + qid + ": to=<wait@soft.test>, " + bounce,
            syslog_prefix("evil/qmgr[4242]") + qid + ": removed",
            # Postfix's own tag (logger -t postfix/smtp -i), recipients this message was not submitted to:
            syslog_prefix("postfix/smtp[4242]") + qid + ": to=<victim@example.net>, " + bounce,
            syslog_prefix("postfix/smtp[4242]") + qid + ": to=<wait@soft.test>, orig_to=<victim2@example.net>, "
            + bounce,
        ]
        wait_read(s, append_log(s, forged))
        events = self.message_events(qid)
        self.assertEqual([e["text"] for e in events if "forged" in e["text"]], [])
        self.assertEqual(self.bounced(), before)
        self.assertNotIn("victim", " ".join(before))
        self.assertEqual(s.redis("HGET", "mg:q:" + qid, "done").strip(), "")
        time.sleep(1)  # webhooks of anything recorded would be out by now
        with r.lock:
            self.assertEqual([e for e in r.events if "forged" in e.get("text", "")], [])
        ignored = [line for line in s.log("tracker").splitlines() if qid + ": ignored log line" in line]
        self.assertEqual(len(ignored), 1, ignored)  # once per queue id, not once per line
        self.assertIn("syslog tag evil/smtp is not a Postfix program of tracker_syslog_names", ignored[0])


    def test_9a_two_postfix_logrotates_while_stopped(self):
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

    def test_9b_persistent_soft_bounces_suppress(self):
        """Three messages deferred with 452 4.2.2 (mailbox full): the recipient is suppressed once
        (soft_bounce_limit = 3), with a `suppressed` event and webhook; the fourth message is refused,
        or dropped for an account with suppression=accept-and-drop."""
        s = self.stack
        r = self.receiver
        rcpt = "busy@full.test"
        start = time.monotonic()
        qids = [self.send(rcpt, "mailbox full %d" % i) for i in range(3)]
        self.addCleanup(s.ctl, "bounced", "remove", rcpt)
        # Else their retries would be counted again, in later tests, once the suppression is lifted.
        self.addCleanup(lambda: [subprocess.run(["postsuper", "-c", s.path("postfix"), "-d", q], capture_output=True)
                                 for q in qids])
        for qid in qids:
            deferred = self.wait_status(qid, rcpt, "deferred")
            self.assertEqual(deferred["code"], "4.2.2")

        def suppressed():
            return [e for q in qids for e in self.message_events(q) if e["status"] == "suppressed"]
        events = wait_for(suppressed, 20, "the suppressed event")
        time.sleep(1)  # a second one would be recorded by now
        events = suppressed()
        self.assertEqual(len(events), 1, events)
        ev = events[0]
        self.assertEqual((ev["rcpt"], ev["code"], ev["text"], ev["account"]),
                         (rcpt, "4.2.2", "soft-bounce-limit", "acme"))
        entry = json.loads(s.ctl_ok("--json", "bounced", "list", rcpt))
        self.assertEqual([(b["address"], b["reason"], b["dsn"], b["account"], b["queue_id"]) for b in entry],
                         [(rcpt, "soft-bounce-limit", "4.2.2", "acme", ev["queue_id"])])
        table = s.ctl_ok("bounced", "list").splitlines()
        self.assertRegex(next(line for line in table if line.startswith(rcpt)),
                         r"acme\s+%s\s+4\.2\.2\s+soft-bounce-limit$" % ev["queue_id"])
        self.assertIn("%s: suppressed <%s> for account acme: soft-bounce-limit, 3 messages deferred with 4.2.x "
                      "within 604800s (last 4.2.2)" % (ev["queue_id"], rcpt), s.log("tracker"))
        hooks = wait_for(lambda: [e for e in r.events_of("suppressed") if e["text"] == "soft-bounce-limit"], 20,
                         "the suppressed webhook")
        self.assertEqual((hooks[0]["recipient"], hooks[0]["queue_id"], hooks[0]["code"]),
                         (rcpt, ev["queue_id"], "4.2.2"))

        # The fourth message: the hard-bounce reply...
        out = s.swaks(to=rcpt, key=self.key)
        self.assertIn("<~* 550 5.0.0 <%s>: Recipient address rejected: Email has permanent delivery errors" % rcpt,
                      out)
        # ... or, for an account that drops suppressed recipients, accepted and dropped.
        key, _ = s.make_key("quietdrop")
        s.ctl_ok("account", "set", "quietdrop", "suppression=accept-and-drop")
        qid = s.queue_id(s.swaks(to=rcpt + ",bob@example.net", key=key))
        self.assertIsNotNone(qid)
        self.wait_status(qid, "bob@example.net", "delivered")
        dropped = [(e["rcpt"], e["text"]) for e in self.message_events(qid) if e["status"] == "suppressed"]
        self.assertEqual(dropped, [(rcpt, "bounced_suppressed")])
        self.assertFalse([e for e in self.message_events(qid) if e["rcpt"] == rcpt and e["status"] == "deferred"])
        print("soft-bounce suppression end to end: %.1f s" % (time.monotonic() - start))


class ReplyDropper:
    """A TCP relay between the tracker and Redis that, once armed, forwards the
    transaction carrying `tag` (its EXEC included) and drops every reply Redis
    sends on that connection: Redis applies the batch, the tracker never hears
    so, gives up after redis_timeout and retries it on a new connection."""

    def __init__(self, redis_port):
        self.redis_port = redis_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.tag = None
        self.dropped = threading.Event()
        threading.Thread(target=self.accept, daemon=True).start()

    def arm(self, tag):
        with self.lock:
            self.dropped.clear()
            self.tag = tag.encode()

    def close(self):
        self.listener.close()

    def accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.redis_port))
            state = {"seen": b"", "drop": False}
            threading.Thread(target=self.to_redis, args=(client, upstream, state), daemon=True).start()
            threading.Thread(target=self.to_client, args=(upstream, client, state), daemon=True).start()

    def to_redis(self, client, upstream, state):
        while True:
            try:
                data = client.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            with self.lock:
                if self.tag is not None and not state["drop"]:
                    state["seen"] = (state["seen"] + data)[-(1 << 20):]
                    if self.tag in state["seen"] and b"EXEC" in data:
                        state["drop"] = True  # set before Redis can answer
                        self.tag = None
                        self.dropped.set()
            try:
                upstream.sendall(data)
            except OSError:
                break
        time.sleep(0.5)  # Redis reads all it was sent before it sees the close
        upstream.close()
        client.close()

    def to_client(self, upstream, client, state):
        while True:
            try:
                data = upstream.recv(65536)
            except OSError:
                return
            if not data:
                client.close()
                return
            if state["drop"]:
                continue
            try:
                client.sendall(data)
            except OSError:
                return


class TrackerLostExecReply(SharedStackTest):
    """Redis applied the tracker's MULTI/EXEC but its reply never arrived (the
    connection went silent past redis_timeout): the tracker's retry of that
    batch must not apply it again."""

    @classmethod
    def makeStack(cls):
        stack = Stack()  # the tracker is started below, behind the relay
        stack.dropper = None

        def soft_sink():
            stack.transport = ["soft.test smtp:[127.0.0.1]:%d" % stack.start_sink("sink-soft", free_port(),
                                                                                    ("-r", "RCPT"))]

        def tracker_behind_relay():
            stack.dropper = ReplyDropper(stack.redis_port)
            conf = stack.path("tracker.conf")
            with open(stack.conf) as src, open(conf, "w") as dst:
                dst.write(re.sub(r"(?m)^redis_server = .*$", "redis_server = tcp:127.0.0.1:%d" % stack.dropper.port,
                                 src.read()))
            stack._spawn("tracker", [stack.binary("mailgate-tracker"), "-f", "-c", conf])

        return stack.start(stack.start_redis, stack.start_sink, soft_sink, stack.start_daemons,
                           tracker_behind_relay, stack.start_postfix)

    def test_each_event_and_count_recorded_once(self):
        s = self.stack
        self.addCleanup(s.dropper.close)
        key, _ = s.make_key("acme")
        qid = s.queue_id(s.swaks("--add-header", "X-Campaign-Id: pause", to="wait@soft.test", key=key))
        self.assertIsNotNone(qid)
        wait_for(lambda: any(e["status"] == "deferred" for e in json.loads(s.ctl_ok("--json", "message", qid))["events"]),
                 30, "the first deferral")
        lines_per_batch = 200
        for rounds in (1, 2):
            tag = "round %d line " % rounds
            s.dropper.arm(tag)
            size = append_log(s, [syslog_prefix("postfix/smtp[4242]") + qid + ": to=<wait@soft.test>, relay=none, "
                                  "delay=1, delays=0/0/1/0, dsn=4.4.1, status=deferred (" + tag + str(i) + ")"
                                  for i in range(lines_per_batch)])
            self.assertTrue(s.dropper.dropped.wait(20), "the tracker sent no transaction")
            wait_read(s, size, 30)
            time.sleep(0.5)
            texts = [e["text"] for e in json.loads(s.ctl_ok("--json", "message", qid))["events"]
                     if e["text"].startswith(tag)]
            self.assertEqual(len(texts), lines_per_batch, "round %d" % rounds)
            self.assertEqual(len(set(texts)), lines_per_batch, "round %d" % rounds)
            self.assertEqual(s.log("tracker").count("was recorded already"), rounds)
        day = time.strftime("%Y-%m-%d", time.gmtime())
        stats = json.loads(s.ctl_ok("--json", "stats", "acme", "--day", day, "--campaign", "pause"))["counts"]
        self.assertEqual(stats.get("deferred"), 1 + rounds * lines_per_batch, stats)


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
