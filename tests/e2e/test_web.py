"""test_web.py — mailgate-web, the one-click unsubscribe endpoint (RFC 8058),
through a real private Postfix and real HTTP requests with curl: the link of a
delivered message (its https web_base_url replaced by the daemon's own http address) is
POSTed the RFC 8058 form → 200 "unsubscribed", event `unsubscribed` in the
events stream and a signed webhook (mailgate-tracker), the next message to
the recipient refused at RCPT with the stoplist reply; a second POST records
nothing; GET shows the confirmation page and unsubscribes no one; one
character changed → 400 "bad token signature"; Redis stopped → 503."""

import json
import os
import re
import signal
import subprocess
import time

from harness import SharedStackTest, Stack, can_connect, free_port, wait_for
from test_tracker import Receiver
from test_unsubscribe import MESSAGE, SECRET

LINK_BASE = "https://unsub.example.test/mg"  # web_base_url; the test asks mailgate-web at cls.base instead
STOPLIST_REPLY = "550 5.0.0 <%s>: Recipient address rejected: Email is in the account stoplist"


def curl(*args):
    """(status, body) of one curl request."""
    r = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10"] + list(args),
                       capture_output=True, text=True, timeout=30)
    body, _, status = r.stdout.rpartition("\n")
    return int(status or 0), body


class Web(SharedStackTest):
    @classmethod
    def makeStack(cls):
        cls.receiver = Receiver()
        cls.port = free_port()
        cls.base = "http://127.0.0.1:%d" % cls.port
        stack = Stack(with_tracker=True,
                      extra_config="web_base_url = %s\nweb_listen = inet:127.0.0.1:%d\nweb_threads = 2\n"
                                   "webhook_allow_networks = 127.0.0.0/8\nwebhook_retry_initial = 200ms\n"
                                   % (LINK_BASE, cls.port))
        secret_file = stack.path("web-secret")
        with open(secret_file, "w") as f:
            f.write(SECRET + "\n")
        os.chmod(secret_file, 0o640)
        with open(stack.conf, "a") as f:
            f.write("web_secret_file = %s\n" % secret_file)

        def start_web():
            stack._spawn("web", [stack.binary("mailgate-web"), "-f", "-c", stack.conf])
            wait_for(lambda: can_connect(("127.0.0.1", cls.port)), what="mailgate-web")
        return stack.start(stack.start_redis, stack.start_sink, stack.start_daemons, start_web, stack.start_postfix)

    @classmethod
    def prepare(cls):
        s = cls.stack
        s.make_account("shop", domains=("shop.example",))
        cls.key, _ = s.make_key("shop", create_account=False)
        s.ctl_ok("account", "set", "shop", "unsubscribe=one-click")
        out = json.loads(s.ctl_ok("--json", "webhook", "set", "shop", cls.receiver.url()))
        cls.receiver.secrets["shop"] = out["secret"]

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.receiver.shutdown()

    def send(self, to):
        """Sends one message to `to`; returns (queue id, swaks output)."""
        subject = "w%d" % time.time_ns()
        out = self.stack.swaks(sender="news@shop.example", to=to, key=self.key,
                               data=MESSAGE.format(subject=subject, extra="").replace("bob@example.net", to))
        return self.stack.queue_id(out), out, subject

    def link_to(self, to):
        qid, out, subject = self.send(to)
        self.assertIsNotNone(qid, out[-1500:])
        for _ in range(300):
            for path in self.stack.sink_messages():
                with open(path, "rb") as f:
                    dump = f.read().decode("utf-8", "replace")
                if subject in dump:
                    m = re.search(r"List-Unsubscribe: <%s(/u/[A-Za-z0-9_-]+)>" % re.escape(LINK_BASE), dump)
                    self.assertIsNotNone(m, dump[:3000])
                    return qid, self.base + m.group(1)
            time.sleep(0.1)
        self.fail("message %s not delivered\n%s" % (qid, self.stack.diagnostics()))

    def unsubscribed_events(self, rcpt):
        return [e for e in self.stack.events(200) if e.get("status") == "unsubscribed" and e.get("rcpt") == rcpt]

    def test_1_one_click_post_unsubscribes_once(self):
        rcpt = "bob@example.net"
        qid, url = self.link_to(rcpt)
        # GET: the confirmation page, nothing recorded.
        status, page = curl(url)
        self.assertEqual(status, 200)
        self.assertIn('<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">', page)
        self.assertIn("Stop mail from shop to bob@example.net?", page)
        self.assertEqual(self.unsubscribed_events(rcpt), [])
        self.assertEqual(self.stack.redis("SISMEMBER", "mg:acct:{shop}:stop", rcpt).strip(), "0")
        # One character changed: 400, exact text, nothing recorded.
        i = len(url) - 10
        forged = url[:i] + ("A" if url[i] != "A" else "B") + url[i + 1:]
        self.assertEqual(curl("-X", "POST", "-d", "List-Unsubscribe=One-Click", forged),
                         (400, "bad token signature\n"))
        self.assertEqual(curl("-X", "POST", "-d", "List-Unsubscribe=One-Click", url + "!"),
                         (400, "malformed token\n"))
        self.assertEqual(self.unsubscribed_events(rcpt), [])
        # The one-click POST.
        self.assertEqual(curl("-X", "POST", "-d", "List-Unsubscribe=One-Click", url), (200, "unsubscribed\n"))
        self.assertEqual(self.stack.redis("SISMEMBER", "mg:acct:{shop}:stop", rcpt).strip(), "1")
        events = self.unsubscribed_events(rcpt)
        self.assertEqual(len(events), 1, events)
        self.assertEqual((events[0]["account"], events[0]["campaign"], events[0]["queue_id"]), ("shop", "spring", qid))
        wait_for(lambda: [e for e in self.receiver.events_of("unsubscribed") if e.get("recipient") == rcpt], 30,
                 "the unsubscribed webhook")
        # Again (and from the confirmation page's button, an empty body): 200, nothing new.
        self.assertEqual(curl("-X", "POST", "-d", "List-Unsubscribe=One-Click", url), (200, "unsubscribed\n"))
        self.assertEqual(curl("-X", "POST", "-H", "Content-Length: 0", url), (200, "unsubscribed\n"))
        self.assertEqual(len(self.unsubscribed_events(rcpt)), 1)
        self.assertRegex(self.stack.log("web"), qid + r": web: already unsubscribed account=shop rcpt=bob@example.net")
        self.assertNotIn(url.rsplit("/", 1)[1], self.stack.log("web"))  # the token is never logged
        # The next message to the recipient: refused with the stoplist reply.
        _, out, _ = self.send(rcpt)
        self.assertIn(STOPLIST_REPLY % rcpt, out)
        # mailgatectl unsubscribes: listed; removed, the recipient gets mail again.
        listed = json.loads(self.stack.ctl_ok("--json", "unsubscribes", "list", "shop", rcpt))
        self.assertEqual([(u["address"], u["campaign"], u["queue_id"]) for u in listed], [(rcpt, "spring", qid)])
        table = self.stack.ctl_ok("unsubscribes", "list", "shop")
        self.assertRegex(table, r"ADDRESS +CAMPAIGN +TIME +QUEUEID\n(.*\n)*bob@example.net +spring +\d{4}-\d\d-\d\dT"
                                r"\d\d:\d\d:\d\dZ +" + qid + "\n")
        self.assertEqual(self.stack.ctl_ok("unsubscribes", "remove", "shop", rcpt), "removed 1 unsubscribe of %s\n" % rcpt)
        self.assertEqual(self.stack.redis("SISMEMBER", "mg:acct:{shop}:stop", rcpt).strip(), "0")
        again = self.stack.ctl("unsubscribes", "remove", "shop", rcpt)
        self.assertEqual((again.returncode, again.stderr),
                         (1, 'mailgatectl: %s has no recorded unsubscribe in account "shop"\n' % rcpt))
        qid2, out, _ = self.send(rcpt)
        self.assertIsNotNone(qid2, out[-1500:])

    def test_2_other_paths_and_methods(self):
        self.assertEqual(curl(self.base + "/healthz"), (200, "ok\n"))
        self.assertEqual(curl(self.base + "/nothing"), (404, "not found\n"))
        _, url = self.link_to("dave@example.net")
        token = url.rsplit("/", 1)[1]
        self.assertEqual(curl(url + "/"), (404, "not found\n"))  # a token in a path that is not ours
        self.assertEqual(curl(self.base + "/x%0d%0aFAKE"), (404, "not found\n"))
        log = self.stack.log("web")
        self.assertNotIn(token, log)
        self.assertIn("web: GET /u/...: not found", log)
        self.assertNotIn("\nFAKE", log)
        self.assertEqual(curl("-X", "PUT", self.base + "/u/abc"), (405, "method not allowed\n"))
        _, url = self.link_to("carol@example.net")
        self.assertEqual(curl("-X", "POST", "-d", "List-Unsubscribe=No", url),
                         (400, "bad request body: expected List-Unsubscribe=One-Click\n"))
        self.assertEqual(self.unsubscribed_events("carol@example.net"), [])

    def test_4_campaign_scope_drops_only_that_campaign(self):
        s = self.stack
        rcpt = "erin@example.net"
        s.ctl_ok("account", "set", "shop", "unsubscribe_scope=campaign")
        try:
            _, url = self.link_to(rcpt)
            self.assertEqual(curl("-X", "POST", "-d", "List-Unsubscribe=One-Click", url), (200, "unsubscribed\n"))
            self.assertEqual(s.redis("SISMEMBER", "mg:acct:{shop}:stop:spring", rcpt).strip(), "1")
            self.assertEqual(s.redis("SISMEMBER", "mg:acct:{shop}:stop", rcpt).strip(), "0")
            listed = json.loads(s.ctl_ok("--json", "unsubscribes", "list", "shop", rcpt))
            self.assertEqual([u["campaign"] for u in listed], ["spring"])
            # The same campaign again: accepted by Postfix, dropped by the milter, recorded as suppressed.
            qid, out, _ = self.send(rcpt)
            self.assertIsNotNone(qid, out[-1500:])
            wait_for(lambda: [e for e in s.events(50) if e["queue_id"] == qid and e["status"] == "suppressed"
                              and e["text"] == "campaign_unsubscribed"], 20, "the suppressed event")
            # Another campaign: delivered, with a link.
            subject = "w%d" % time.time_ns()
            out = s.swaks(sender="news@shop.example", to=rcpt, key=self.key,
                          data=MESSAGE.format(subject=subject, extra="").replace("bob@example.net", rcpt)
                          .replace("X-Campaign-Id: spring", "X-Campaign-Id: autumn"))
            self.assertIsNotNone(s.queue_id(out), out[-1500:])

            def delivered():
                for path in s.sink_messages():
                    with open(path, "rb") as f:
                        if subject.encode() in f.read():
                            return True
                return False
            wait_for(delivered, 30, "the autumn message")
            # Removed: out of the campaign's list; an admin's stoplist entry is not touched.
            s.ctl_ok("stoplist", "add", "shop", rcpt)
            s.ctl_ok("unsubscribes", "remove", "shop", rcpt)
            self.assertEqual(s.redis("SISMEMBER", "mg:acct:{shop}:stop:spring", rcpt).strip(), "0")
            self.assertEqual(s.redis("SISMEMBER", "mg:acct:{shop}:stop", rcpt).strip(), "1")
            s.ctl_ok("stoplist", "remove", "shop", rcpt)
        finally:
            s.ctl_ok("account", "set", "shop", "unsubscribe_scope=account")

    def test_5_sighup_with_a_bad_config_keeps_serving(self):
        s = self.stack
        with open(s.conf) as f:
            good = f.read()
        try:
            with open(s.conf, "a") as f:
                f.write("web_threads = 0\n")
            s.procs["web"].send_signal(signal.SIGHUP)
            wait_for(lambda: "keeping the running configuration" in s.log("web"), 10, "the refused reload")
            self.assertEqual(curl(self.base + "/healthz"), (200, "ok\n"))
        finally:
            with open(s.conf, "w") as f:
                f.write(good)
        reloads = s.log("web").count("reload: configuration")
        s.procs["web"].send_signal(signal.SIGHUP)
        wait_for(lambda: s.log("web").count("reload: configuration") > reloads, 10, "the reload")

    def test_9_redis_down_is_503(self):
        # Last: Redis comes back empty (no persistence).
        _, url = self.link_to("dave@example.net")
        self.stack.stop_redis()
        try:
            self.assertEqual(curl("-X", "POST", "-d", "List-Unsubscribe=One-Click", url),
                             (503, "service unavailable, try again later\n"))
            self.assertRegex(self.stack.log("web"), r"web: cannot record the unsubscribe of dave@example.net")
        finally:
            self.stack.start_redis()
