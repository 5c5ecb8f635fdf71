"""test_fbl.py — complaints: a message sent through the gateway, an ARF
(RFC 5965) report about it built from the delivered message's header and
piped to `mailgatectl fbl` (as Postfix's pipe transport of contrib/postfix
would run it) -> event complained, complaints list, stoplist entry, and the
next message to that recipient refused with the stoplist reply; a repeated
report records nothing new; an unparseable report is kept and counted; with
Redis down the report is tempfailed (exit 75) for Postfix to retry."""

import json
import re
import subprocess
import time
import unittest

from harness import SharedStackTest, Stack, wait_for

ARF = """From: staff@fbl.example
To: fbl@gateway.example
Subject: complaint
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="b1"

--b1
Content-Type: text/plain

This is an abuse report.

--b1
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: E2E-FBL/1.0
Version: 1
Original-Rcpt-To: <{rcpt}>
Reporting-MTA: dns; fbl.example

--b1
Content-Type: text/rfc822-headers

{headers}
--b1--
"""


class Fbl(SharedStackTest):
    @classmethod
    def makeStack(cls):
        s = Stack()
        # contrib/postfix/fbl's recipe: the feedback-loop address routed to a
        # pipe running mailgatectl fbl (as nobody: pipe refuses root).
        s.transport.append("fbl@fbl.test mailgate-fbl:")
        s.postconf_edits.append(["-Me", "mailgate-fbl/unix=mailgate-fbl unix - n n - - pipe flags=Rq user=nobody "
                                 "argv=%s -c %s fbl" % (s.binary("mailgatectl"), s.conf)])
        s.postconf_edits.append(["-e", "mailgate-fbl_destination_recipient_limit = 1"])
        return s.start()

    @classmethod
    def prepare(cls):
        cls.key, _ = cls.stack.make_key("acme")

    def fbl(self, report):
        return subprocess.run([self.stack.binary("mailgatectl"), "-c", self.stack.conf, "--json", "fbl"],
                              input=report, capture_output=True, text=True, timeout=30)

    def delivered_headers(self, rcpt):
        """The header of the message smtp-sink got for `rcpt`, once written whole."""
        s = self.stack
        return wait_for(lambda: next((h for h in (s.delivered_headers(p) for p in s.sink_messages()
                                                  if rcpt in s.sink_recipients(p)) if "Feedback-ID:" in h), None),
                        30, "delivery to " + rcpt)

    def test_a_report_stoplists_the_recipient(self):
        s = self.stack
        rcpt = "moaner@example.net"
        out = s.swaks("--add-header", "X-Campaign-Id: spring", to=rcpt, key=self.key)
        qid = s.queue_id(out)
        self.assertIsNotNone(qid, out)
        headers = self.delivered_headers(rcpt)
        self.assertIn("Feedback-ID: spring:acme:mailgate", headers)
        report = ARF.format(rcpt=rcpt, headers=headers)
        r = self.fbl(report)
        self.assertEqual(r.returncode, 0, r.stderr)
        got = json.loads(r.stdout)
        self.assertEqual((got["outcome"], got["account"], got["recipient"], got["campaign"], got["queue_id"],
                          got["feedback_type"]), ("complained", "acme", rcpt, "spring", qid, "abuse"))
        events = [e for e in s.events(50) if e["status"] == "complained"]
        self.assertEqual(len(events), 1, events)
        self.assertEqual((events[0]["rcpt"], events[0]["queue_id"], events[0]["campaign"], events[0]["code"],
                          events[0]["text"]), (rcpt, qid, "spring", "abuse", "E2E-FBL/1.0 via dns; fbl.example"))
        self.assertIn(rcpt, s.ctl_ok("stoplist", "list", "acme").split())
        listed = json.loads(s.ctl_ok("--json", "complaints", "list", "acme"))
        self.assertEqual([(c["address"], c["campaign"], c["feedback_type"], c["queue_id"]) for c in listed],
                         [(rcpt, "spring", "abuse", qid)])
        self.assertRegex(s.ctl_ok("complaints", "list", "acme").splitlines()[1],
                         r"^%s\s+spring\s+\S+\s+abuse\s+%s$" % (re.escape(rcpt), qid))
        # The same report again: nothing new.
        r = self.fbl(report)
        self.assertEqual((r.returncode, json.loads(r.stdout)["outcome"]), (0, "duplicate"), r.stderr)
        self.assertEqual(len([e for e in s.events(50) if e["status"] == "complained"]), 1)
        # The next message to the recipient: the stoplist reply.
        self.assertIn("<~* 550 5.0.0 <%s>: Recipient address rejected: Email is in the account stoplist" % rcpt,
                      s.swaks(to=rcpt, key=self.key))

    def test_b_a_report_through_the_postfix_pipe(self):
        s = self.stack
        rcpt = "piped@example.net"
        qid = s.queue_id(s.swaks(to=rcpt, key=self.key))
        self.assertIsNotNone(qid)
        report = ARF.format(rcpt=rcpt, headers=self.delivered_headers(rcpt))
        # The harness's one smtpd is the gateway's (milter and policy): the
        # report comes in as a customer's message, From a verified domain.
        report = report.replace("From: staff@fbl.example", "From: alice@example.org", 1)
        out = s.swaks(to="fbl@fbl.test", key=self.key, data=report)
        self.assertIsNotNone(s.queue_id(out), out)
        wait_for(lambda: [e for e in s.events(50) if e["status"] == "complained" and e["rcpt"] == rcpt], 30,
                 "the complained event of the piped report")
        self.assertIn(rcpt, s.ctl_ok("stoplist", "list", "acme").split())

    def test_an_unparseable_report_is_kept_and_counted(self):
        s = self.stack
        r = self.fbl("Subject: hello\n\njust text\n")
        self.assertEqual((r.returncode, json.loads(r.stdout)["outcome"]), (0, "unparseable"), r.stderr)
        kept = json.loads(s.redis("LINDEX", "mg:fbl:kept", "0"))
        self.assertEqual((kept["outcome"], kept["message"]), ("unparseable", "Subject: hello\n\njust text\n"))
        day = time.strftime("%Y-%m-%d", time.gmtime())
        self.assertGreaterEqual(int(s.redis("HGET", "mg:fbl:stats:" + day, "unparseable")), 1)

    def test_z_redis_down_tempfails(self):
        s = self.stack
        rcpt = "later@example.net"
        qid = s.queue_id(s.swaks(to=rcpt, key=self.key))
        report = ARF.format(rcpt=rcpt, headers=self.delivered_headers(rcpt))
        s.stop_redis()
        try:
            r = self.fbl("Subject: hello\n\njust text\n")
            self.assertEqual(r.returncode, 75, r.stdout + r.stderr)
            # Through Postfix (sendmail: pickup, no milter): the pipe's 75
            # leaves the report queued.
            fbl_qid = s.sendmail(report, sender="staff@fbl.example", to="fbl@fbl.test")
            wait_for(lambda: re.search(r"%s: to=<fbl@fbl.test>, relay=mailgate-fbl, .*status=deferred" % fbl_qid,
                                       s.maillog()), 30, "the deferred report")
        finally:
            s.start_redis()
        s.postfix("flush")
        wait_for(lambda: [e for e in s.events(50) if e["status"] == "complained" and e["rcpt"] == rcpt], 60,
                 "the complained event of the retried report")
        self.assertIsNotNone(qid)


if __name__ == "__main__":
    unittest.main()
