"""test_message.py — the message rules of mailgate-milter through a real
private Postfix: every reply text exactly as the sender sees it (milter
replies are sent verbatim), EMPTY-FROM in its three modes and tags as the
sink receives them, sink and sandbox, blocked campaigns, and several
messages in one SMTP session."""

import json
import smtplib
import subprocess
import ssl
import threading
import time
import unittest

from harness import SharedStackTest, Stack

MESSAGE = ("From: {frm}\nTo: bob@example.net\nSubject: {subject}\nDate: Wed, 25 Nov 2026 10:00:00 +0000\n"
           "Message-Id: <{subject}@shop.example>\nMIME-Version: 1.0\nContent-Type: text/plain\n{extra}\nbody\n")


class Message(SharedStackTest):
    @classmethod
    def prepare(cls):
        cls.stack.make_account("shop", domains=("shop.example",))
        cls.stack.ctl_ok("account", "set", "shop", "default_sender=default@shop.example")
        cls.key, cls.key_id = cls.stack.make_key("shop", create_account=False)

    def send(self, frm="Shop <news@shop.example>", subject="t", extra="", key=None, data=None, to="bob@example.net"):
        data = data if data is not None else MESSAGE.format(frm=frm, subject=subject, extra=extra)
        return self.stack.swaks(sender="news@shop.example", to=to, key=key or self.key, data=data)

    def delivered(self, out):
        qid = self.stack.queue_id(out)
        self.assertIsNotNone(qid, out)
        for _ in range(100):
            for path in self.stack.sink_messages():
                header = self.stack.delivered_headers(path)
                if qid in header:
                    return qid, header
            time.sleep(0.1)
        self.fail("message %s not delivered" % qid)

    def events_of(self, qid):
        return [e for e in self.stack.events(200) if e["queue_id"] == qid]

    def test_reply_texts(self):
        no_to = MESSAGE.format(frm="news@shop.example", subject="t", extra="").replace("To: bob@example.net\n", "")
        self.assertIn("<~* 550 5.6.0 no To:", self.send(data=no_to))
        self.assertIn("<~* 550 5.6.0 duplicate Subject:", self.send(extra="Subject: again"))
        self.assertIn("<~* 550 5.7.1 error/sender/unknown", self.send(frm="a@elsewhere.example"))
        self.assertIn("<~* 550 5.6.0 invalid X-Campaign-Id", self.send(extra="X-Campaign-Id: not valid!"))
        self.assertIn("<~* 550 5.6.0 invalid X-Letter-Id", self.send(extra="X-Letter-Id: " + "x" * 129))
        errors = self.stack.ctl("errors", "shop").stdout
        self.assertIn("5.6.0 invalid X-Letter-Id", errors)

    def test_every_from_mailbox_is_checked(self):
        # RFC 5322 allows several From mailboxes (with a Sender:); each domain must be the account's.
        for frm in ("Shop <news@shop.example>, Other <a@elsewhere.example>",
                    "news@shop.example, a@elsewhere.example, b@shop.example",
                    "Team: news@shop.example, a@elsewhere.example;"):
            self.assertIn("<~* 550 5.7.1 error/sender/unknown", self.send(frm=frm, extra="Sender: news@shop.example"))
        qid, header = self.delivered(self.send(frm="Shop <news@shop.example>, Sales <sales@shop.example>",
                                               extra="Sender: news@shop.example"))
        self.assertEqual(self.events_of(qid)[0]["from"], "news@shop.example")

    def test_invalid_from_mailbox_is_refused(self):
        """A From mailbox that fails validation is refused, not skipped as EMPTY-FROM (issue 13)."""
        for frm in ("x@\u0301victim.example",                                  # libidn2 refuses it
                    "Victim <%s@victim.example>" % ("v" * 65),                  # local part over 64 octets
                    "Shop <news@shop.example>, x@\u0301victim.example",         # a bad one after a good one
                    "news@shop.example, a..b@victim.example"):
            out = self.send(frm=frm, extra="Sender: news@shop.example")
            self.assertIn("<~* 550 5.6.0 invalid From:", out)
            self.assertIsNone(self.stack.queue_id(out), out)
        # Still EMPTY-FROM: no address at all.
        qid, header = self.delivered(self.send(frm="Victim <not an address>"))
        self.assertIn("X-Mailgate-From: EMPTY-FROM", header)

    def test_empty_from_modes(self):
        qid, header = self.delivered(self.send(frm="Sales Team"))
        self.assertIn("X-Mailgate-From: EMPTY-FROM", header)
        self.assertIn("From: Sales Team", header)
        self.assertEqual(self.events_of(qid)[0]["from"], "EMPTY-FROM")

        self.stack.ctl_ok("account", "set", "shop", "empty_from=rewrite")
        qid, header = self.delivered(self.send(frm="Sales Team"))
        self.assertIn('From: "Sales Team" <default@shop.example>', header)
        self.assertNotIn("X-Mailgate-From", header)
        self.assertEqual(self.events_of(qid)[0]["from"], "EMPTY-FROM")

        self.stack.ctl_ok("account", "set", "shop", "empty_from=reject")
        self.assertIn("<~* 550 5.6.0 no email in From:", self.send(frm="<>"))
        self.stack.ctl_ok("account", "set", "shop", "empty_from=mark")

    def test_tags_feedback_id_and_added_headers(self):
        data = ("From: news@shop.example\nTo: bob@example.net\nSubject: tags\nMIME-Version: 1.0\n"
                "Content-Type: text/plain\nX-Campaign-Id: spring-2026\nX-Letter-Id: L_42\n\nbody\n")
        qid, header = self.delivered(self.send(data=data))
        self.assertIn("Feedback-ID: spring-2026:shop:mailgate", header)
        self.assertNotIn("X-Campaign-Id", header)
        self.assertNotIn("X-Letter-Id", header)
        self.assertIn("Date: ", header)        # added by the milter
        self.assertIn("Message-Id: <", header)  # added by the milter
        e = self.events_of(qid)[0]
        self.assertEqual((e["campaign"], e["letter_id"], e["status"]), ("spring-2026", "L_42", "accepted"))
        record = self.stack.redis("HGET", "mg:q:" + qid, "campaign").strip()
        self.assertEqual(record, "spring-2026")
        day = time.strftime("%Y-%m-%d", time.gmtime())
        self.assertEqual(self.stack.redis("HGET", "mg:cstats:{shop}:" + day, "spring-2026:accepted").strip(), "1")

    def test_mailgatectl_message_stats_and_follow(self):
        follow = subprocess.Popen([Stack.binary("mailgatectl"), "-c", self.stack.conf, "--json", "events",
                                   "--follow", "--account", "shop", "--count", "1"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        watchdog = threading.Timer(20, follow.kill)  # a missing event must fail the test, not hang it
        watchdog.start()
        try:
            time.sleep(0.5)
            qid, _ = self.delivered(self.send(extra="X-Campaign-Id: stats-test\nX-Letter-Id: L1"))
            seen = []
            while not any(qid in line for line in seen):  # bounded by the watchdog below
                line = follow.stdout.readline()
                if not line:
                    break
                seen.append(line)
            self.assertTrue(any(qid in line and '"accepted"' in line for line in seen), seen)
        finally:
            watchdog.cancel()
            follow.kill()
            follow.wait()
        message = self.stack.ctl_ok("message", qid)
        self.assertIn("campaign:        stats-test", message)
        self.assertIn("letter:          L1", message)
        self.assertIn("accepted", message)
        self.assertRegex(message, r"\ntime: +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n")  # not epoch milliseconds
        self.assertRegex(self.stack.ctl_ok("--json", "message", qid), r'"time": "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"')
        lines = self.stack.ctl_ok("events", "--account", "shop").splitlines()
        header = lines[0].split()
        row = next(line.split(None, len(header) - 1) for line in lines if qid in line)
        self.assertEqual(dict(zip(header, row))["LETTER-ID"], "L1")
        stats = self.stack.ctl_ok("stats", "shop", "--campaign", "stats-test")
        self.assertIn("accepted  1", stats)
        self.assertRegex(stats, r"campaigns with their own counters: [1-9][0-9]* \(max_campaigns_per_day 1000, "
                                r"later ones counted as _other\)\n")
        self.assertEqual(self.stack.ctl("message", "NOSUCHQID").stderr, "mailgatectl: no record of queue id NOSUCHQID\n")

    def test_stats_show_the_complaint_rate_per_day_and_campaign(self):
        day = "2026-01-15"
        self.stack.redis("HSET", "mg:stats:{rates}:" + day, "delivered", "1600", "unsubscribed", "4",
                         "complained", "2")
        self.stack.redis("HSET", "mg:cstats:{rates}:" + day, "spring:delivered", "1500", "spring:complained", "1",
                         "summer:delivered", "100", "summer:complained", "1", "summer:unsubscribed", "4",
                         "quiet:accepted", "3")
        stats = self.stack.ctl_ok("stats", "rates", "--day", day)
        self.assertIn("\ncomplaint rate: 0.125% (2 complained / 1600 delivered)\n"
                      "warning: complaint rate above 0.100%, the rate Gmail asks bulk senders to stay under\n"
                      "CAMPAIGN  DELIVERED  UNSUBSCRIBED  COMPLAINED  COMPLAINT RATE\n"
                      "summer    100        4             1           1.000% (above 0.100%)\n"
                      "spring    1500       0             1           0.067%\n", stats)
        self.assertNotIn("quiet", stats)
        out = json.loads(self.stack.ctl_ok("--json", "stats", "rates", "--day", day))
        self.assertAlmostEqual(out["complaint_rate"], 0.00125)
        self.assertTrue(out["complaint_rate_warning"])
        self.assertEqual([row["campaign"] for row in out["feedback_by_campaign"]], ["summer", "spring"])
        one = self.stack.ctl_ok("stats", "rates", "--day", day, "--campaign", "spring")
        self.assertIn("\ncomplaint rate: 0.067% (1 complained / 1500 delivered)\ncampaigns", one)
        quiet = self.stack.ctl_ok("stats", "rates", "--day", "2026-01-16")
        self.assertIn("\ncomplaint rate: n/a (0 complained / 0 delivered)\ncampaigns", quiet)

    def test_huge_and_broken_headers(self):
        long_subject = "word " * 20000  # a 100 KB folded-by-nobody header
        many = "\n".join("X-Filler-%d: %s" % (i, "v" * 50) for i in range(2000))
        broken = "Not a header line\n: no name\nX-Bad\x01Name: x\nFrom-: y"
        for extra in (many, broken, "X-Encoded: =?UTF-8?B?!!!not base64?=\nX-Campaign-Id: =?x?"):
            out = self.send(subject="huge", extra=extra)
            self.assertTrue(self.stack.queue_id(out) or "<~* 550 5.6.0" in out, out[-2000:])
        out = self.send(data=MESSAGE.format(frm="news@shop.example", subject=long_subject, extra=""))
        self.assertTrue(self.stack.queue_id(out) or "<~* 5" in out, out[-2000:])
        self.assertIsNone(self.stack.procs["milter"].poll(), "mailgate-milter exited")
        self.delivered(self.send())  # still serving

    def test_too_many_header_fields(self):
        """A second From hidden behind 10,000 filler fields (Postfix passes them all, they
        fit in header_size_limit) is not skipped: the message is refused as a whole."""
        filler = "\n".join("X:%d" % (i % 10) for i in range(10000))
        data = ("From: news@shop.example\nTo: bob@example.net\nSubject: cap\nDate: Wed, 25 Nov 2026 10:00:00 +0000\n"
                "Message-Id: <cap@shop.example>\nMIME-Version: 1.0\nContent-Type: text/plain\n" + filler + "\nFrom: ceo@bank.example\n\nbody\n")
        out = self.send(data=data)
        self.assertIn("<~* 550 5.6.0 too many header fields", out, out[-300:])
        self.assertIn("5.6.0 too many header fields", self.stack.ctl("errors", "shop").stdout)
        # Just below the cap, the duplicate From is seen as usual.
        filler = "\n".join("X:%d" % (i % 10) for i in range(9990))
        out = self.send(data=data.replace("\n".join("X:%d" % (i % 10) for i in range(10000)), filler))
        self.assertIn("<~* 550 5.6.0 duplicate From:", out, out[-300:])

    def test_daily_campaign_when_untagged(self):
        qid, header = self.delivered(self.send())
        day = time.strftime("%Y-%m-%d", time.gmtime())
        self.assertIn("Feedback-ID: %s:shop:mailgate" % day, header)

    def test_blocked_campaign(self):
        self.stack.ctl_ok("campaign", "block", "shop", "bad-campaign")
        self.assertIn("<~* 550 5.7.1 issue is blocked", self.send(extra="X-Campaign-Id: bad-campaign"))
        self.stack.ctl_ok("campaign", "unblock", "shop", "bad-campaign")
        self.delivered(self.send(extra="X-Campaign-Id: bad-campaign"))

    def test_sink_and_sandbox_deliver_nothing(self):
        before = len(self.stack.sink_messages())
        out = self.send(to="test@test.ru")
        sink_qid = self.stack.queue_id(out)
        self.assertIsNotNone(sink_qid, out)
        sandbox_key, _ = self.stack.make_key("shop", "--sandbox", create_account=False)
        out = self.send(key=sandbox_key)
        sandbox_qid = self.stack.queue_id(out)
        self.assertIsNotNone(sandbox_qid, out)
        # A sandbox key's message is still checked.
        self.assertIn("<~* 550 5.7.1 error/sender/unknown", self.send(key=sandbox_key, frm="a@elsewhere.example"))
        time.sleep(1.5)
        self.assertEqual(len(self.stack.sink_messages()), before)
        self.assertEqual([e["status"] for e in self.events_of(sink_qid)], ["sink"])
        self.assertEqual([e["status"] for e in self.events_of(sandbox_qid)], ["sandbox"])
        # Mixed: the sink recipient is removed, the other is delivered.
        qid, _ = self.delivered(self.send(to="test@test.ru,carol@example.net"))
        self.assertEqual(sorted(e["status"] for e in self.events_of(qid)), ["accepted", "sink"])

    def test_several_messages_in_one_session(self):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with smtplib.SMTP("127.0.0.1", self.stack.smtp_port, timeout=30) as smtp:
            smtp.starttls(context=context)
            smtp.login("", self.key)  # AUTH PLAIN with an empty username
            ok1 = smtp.sendmail("news@shop.example", ["one@example.net"],
                                MESSAGE.format(frm="news@shop.example", subject="one", extra=""))
            with self.assertRaises(smtplib.SMTPDataError) as refused:
                smtp.sendmail("news@shop.example", ["two@example.net"],
                              MESSAGE.format(frm="a@elsewhere.example", subject="two", extra=""))
            self.assertEqual(refused.exception.smtp_code, 550)
            self.assertEqual(refused.exception.smtp_error, b"5.7.1 error/sender/unknown")
            smtp.rset()
            ok3 = smtp.sendmail("news@shop.example", ["three@example.net"],
                                MESSAGE.format(frm="Shop <news@shop.example>", subject="three", extra=""))
        self.assertEqual((ok1, ok3), ({}, {}))
        events = self.stack.events(50)
        rcpts = {e["rcpt"]: e["status"] for e in events}
        self.assertEqual(rcpts.get("one@example.net"), "accepted")
        self.assertEqual(rcpts.get("two@example.net"), "rejected")
        self.assertEqual(rcpts.get("three@example.net"), "accepted")


if __name__ == "__main__":
    unittest.main()
