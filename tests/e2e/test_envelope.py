"""test_envelope.py — the envelope rules of mailgate-policy through a real
private Postfix with swaks: every reply text exactly as the sender sees it
(Postfix adds its "<rcpt>: Recipient address rejected:" prefix), limits,
the refusal records (events, errors list), and SMTPUTF8 recipients."""

import os
import smtplib
import ssl
import subprocess
import time
import unittest

from harness import SharedStackTest, Stack, wait_for


class Envelope(SharedStackTest):
    @classmethod
    def makeStack(cls):
        return Stack(extra_config="auth_cache_ttl = 60s\n").start()

    @classmethod
    def prepare(cls):
        cls.stack.make_account("shop", domains=())
        for domain, flags in (("shop.example", ()), ("news.example", ("--status", "onmoderation")),
                              ("spam.example", ("--status", "prohibited")), ("corp.example", ("--subdomains",))):
            cls.stack.ctl_ok("domain", "add", "shop", domain, *flags)
        cls.key, cls.key_id = cls.stack.make_key("shop", create_account=False)

    def send(self, sender="alice@shop.example", to="bob@example.net", key=None, **kw):
        return self.stack.swaks(sender=sender, to=to, key=key or self.key, **kw)

    def rcpt_rejected(self, code, rcpt, text):
        return "<~* %s <%s>: Recipient address rejected: %s" % (code, rcpt, text)

    def sender_rejected(self, code, sender, text):
        return "<~* %s <%s>: Sender address rejected: %s" % (code, sender, text)

    def test_sender_rules(self):
        self.assertIsNotNone(self.stack.queue_id(self.send()))
        self.assertIsNotNone(self.stack.queue_id(self.send(sender="a@mail.eu.corp.example")))
        self.assertIn(self.sender_rejected("550 5.7.1", "alice@unknown.example", "error/sender/unknown"),
                      self.send(sender="alice@unknown.example"))
        self.assertIn(self.sender_rejected("550 5.7.1", "alice@news.example", "error/sender/onmoderation"),
                      self.send(sender="alice@news.example"))
        self.assertIn(self.sender_rejected("550 5.7.1", "alice@spam.example", "error/sender/prohibited"),
                      self.send(sender="alice@spam.example"))
        self.assertIn(self.sender_rejected("550 5.7.1", "alice@sub.shop.example", "error/sender/unknown"),
                      self.send(sender="alice@sub.shop.example"))
        self.assertIn(self.sender_rejected("550 5.1.7", "", "invalid from email"), self.send(sender=""))

    def test_recipient_rules(self):
        self.stack.ctl_ok("stoplist", "add", "shop", "Stopped@EXAMPLE.net")
        self.stack.redis("SADD", "mg:bounced", "gone@example.net")
        self.assertIn(self.rcpt_rejected("550 5.0.0", "Stopped@example.NET", "Email is in the account stoplist"),
                      self.send(to="Stopped@example.NET"))
        # Local parts match whatever the case of their ASCII letters (mailgate-redis(7)).
        self.assertIn(self.rcpt_rejected("550 5.0.0", "STOPPED@example.net", "Email is in the account stoplist"),
                      self.send(to="STOPPED@example.net"))
        self.assertIn(self.rcpt_rejected("550 5.0.0", "Gone@Example.net", "Email has permanent delivery errors"),
                      self.send(to="Gone@Example.net"))
        self.assertIn(self.rcpt_rejected("550 5.0.0", "gone@example.net", "Email has permanent delivery errors"),
                      self.send(to="gone@example.net"))
        self.assertIsNotNone(self.stack.queue_id(self.send(to="Stopped+tag@example.net")))
        self.stack.ctl_ok("account", "set", "shop", "subaddress=yes")
        self.assertIn(self.rcpt_rejected("550 5.0.0", "Stopped+tag@example.net", "Email is in the account stoplist"),
                      self.send(to="Stopped+tag@example.net"))
        self.stack.ctl_ok("account", "set", "shop", "subaddress=no")
        # One refused recipient does not stop the others.
        out = self.send(to="gone@example.net,ok@example.net")
        self.assertIsNotNone(self.stack.queue_id(out), out)

    def enable_smtputf8(self):
        """Postfix as shipped (smtputf8_enable = yes); the private main.cf turns it off for the other tests."""
        subprocess.run(["postconf", "-c", self.stack.path("postfix"), "-e", "smtputf8_enable = yes"], check=True)
        self.stack.postfix("reload")

        def announced():
            with smtplib.SMTP("127.0.0.1", self.stack.smtp_port, timeout=30) as smtp:
                smtp.ehlo()
                return smtp.has_extn("smtputf8")
        wait_for(announced, 30, "SMTPUTF8 after postfix reload")

    def smtp(self, key):
        """An authenticated smtplib session (swaks cannot send SMTPUTF8)."""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        smtp = smtplib.SMTP("127.0.0.1", self.stack.smtp_port, timeout=30)
        smtp.starttls(context=context)
        smtp.login("", key)
        return smtp

    def utf8_rcpt(self, rcpt):
        """RCPT TO with SMTPUTF8: the reply as (code, text)."""
        with self.smtp(self.key) as smtp:
            self.assertEqual(smtp.mail("alice@shop.example", ["SMTPUTF8"])[0], 250)
            code, text = smtp.rcpt(rcpt)
            return code, text.decode()

    def test_utf8_recipients_are_checked(self):
        self.enable_smtputf8()
        self.stack.ctl_ok("stoplist", "add", "shop", "Jörg@Bücher.example")
        self.assertIn("jörg@xn--bcher-kva.example", self.stack.ctl("stoplist", "list", "shop").stdout)
        self.stack.redis("SADD", "mg:bounced", "ölaf@xn--bcher-kva.example")  # as mailgate-tracker records it

        def refused(rcpt, text):
            return 550, "5.0.0 <%s>: Recipient address rejected: %s" % (rcpt, text)

        for rcpt in ("jörg@bücher.example", "JöRG@BÜCHER.Example", "jörg@xn--bcher-kva.example"):
            self.assertEqual(self.utf8_rcpt(rcpt), refused(rcpt, "Email is in the account stoplist"))
        for rcpt in ("ölaf@bücher.example", "ölaf@Bücher.EXAMPLE"):
            self.assertEqual(self.utf8_rcpt(rcpt), refused(rcpt, "Email has permanent delivery errors"))
        self.assertEqual(self.utf8_rcpt("fine@bücher.example")[0], 250)
        self.stack.ctl_ok("stoplist", "remove", "shop", "JöRG@XN--BCHER-KVA.example")
        self.assertEqual(self.utf8_rcpt("jörg@bücher.example")[0], 250)
        self.stack.ctl_ok("bounced", "remove", "ölaf@BÜCHER.example")
        self.assertEqual(self.utf8_rcpt("ölaf@bücher.example")[0], 250)

    def test_utf8_recipients_are_suppressed_in_the_milter(self):
        self.enable_smtputf8()
        key, _ = self.stack.make_key("utf8drop")
        self.stack.ctl_ok("account", "set", "utf8drop", "suppression=accept-and-drop")
        self.stack.ctl_ok("stoplist", "add", "utf8drop", "jörg@bücher.example")
        with self.smtp(key) as smtp:
            message = ("From: a@example.org\r\nTo: JöRG@Bücher.example\r\nSubject: utf8\r\n"
                       "Date: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-Id: <utf8drop@example.org>\r\n"
                       "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhi\r\n")
            smtp.sendmail("a@example.org", ["JöRG@Bücher.example"], message.encode(), mail_options=["SMTPUTF8"])
        events = [e for e in self.stack.events(50) if e["account"] == "utf8drop"]
        self.assertEqual([(e["status"], e["rcpt"], e["text"]) for e in events],
                         [("suppressed", "JöRG@Bücher.example", "stoplist_suppressed")])

    def raw_rcpt(self, rcpt):
        """MAIL (SMTPUTF8) + RCPT TO:<rcpt> with `rcpt` as raw bytes: the reply as (code, text)."""
        with self.smtp(self.key) as smtp:
            self.assertEqual(smtp.mail("alice@shop.example", ["SMTPUTF8"])[0], 250)
            smtp.send(b"RCPT TO:<" + rcpt + b">\r\n")
            code, text = smtp.getreply()
            return code, text.decode(errors="replace")

    def test_unparseable_recipients_do_not_skip_suppression(self):
        """A local part over 64 octets (Postfix accepts it) is looked up leniently,
        its base address too; undecodable recipients are refused (issue 13)."""
        self.enable_smtputf8()
        self.stack.ctl_ok("stoplist", "add", "shop", "victim@example.com")
        self.stack.redis("SADD", "mg:bounced", "gone@example.com")
        self.stack.ctl_ok("account", "set", "shop", "subaddress=yes")
        try:
            tag = "A" * 70
            for rcpt, text in (("victim+%s@example.com" % tag, "Email is in the account stoplist"),
                               ("Victim+%s@EXAMPLE.com" % tag, "Email is in the account stoplist"),
                               ("victim%s@example.com" % tag, None),
                               ("gone+%s@example.com" % tag, "Email has permanent delivery errors")):
                out = self.send(to=rcpt)
                if text is None:
                    self.assertIsNotNone(self.stack.queue_id(out), out)
                else:
                    self.assertIn(self.rcpt_rejected("550 5.0.0", rcpt, text), out)
            # Undecodable recipients never reach the policy service through Postfix
            # (the golden test covers our own 550 5.1.3 for other MTAs).
            self.assertEqual(self.raw_rcpt(b"victim+\xff@example.com"), (500, "5.5.2 Error: bad UTF-8 syntax"))
            self.assertEqual(self.utf8_rcpt("victim@\u0301example.com"), (501, "5.1.3 Bad recipient address syntax"))
        finally:
            self.stack.ctl_ok("account", "set", "shop", "subaddress=no")

    def test_long_local_parts_are_suppressed_in_the_milter(self):
        key, _ = self.stack.make_key("longdrop")
        self.stack.ctl_ok("account", "set", "longdrop", "suppression=accept-and-drop", "subaddress=yes")
        self.stack.ctl_ok("stoplist", "add", "longdrop", "victim@example.com")
        rcpt = "victim+%s@example.com" % ("B" * 70)
        before = len(self.stack.sink_messages())
        out = self.send(key=key, sender="a@example.org", to=rcpt + ",loud@example.net")
        qid = self.stack.queue_id(out)
        self.assertIsNotNone(qid, out)
        delivered = self.stack.wait_delivered(before + 1)
        self.assertEqual(self.stack.sink_recipients(max(delivered, key=os.path.getmtime)), ["loud@example.net"])
        events = {e["status"]: e for e in self.stack.events(50) if e["queue_id"] == qid}
        self.assertEqual((events["suppressed"]["rcpt"], events["suppressed"]["text"]), (rcpt, "stoplist_suppressed"))

    def test_accept_and_drop_suppresses_in_the_milter(self):
        key, _ = self.stack.make_key("dropper")
        self.stack.ctl_ok("account", "set", "dropper", "suppression=accept-and-drop")
        self.stack.ctl_ok("stoplist", "add", "dropper", "quiet@example.net")
        before = len(self.stack.sink_messages())
        out = self.send(key=key, sender="a@example.org", to="quiet@example.net,loud@example.net")
        qid = self.stack.queue_id(out)
        self.assertIsNotNone(qid, out)
        delivered = self.stack.wait_delivered(before + 1)
        rcpts = self.stack.sink_recipients(max(delivered, key=os.path.getmtime))
        self.assertEqual(rcpts, ["loud@example.net"])
        events = [e for e in self.stack.events(50) if e["queue_id"] == qid]
        by_status = {e["status"]: e for e in events}
        self.assertEqual(by_status["suppressed"]["rcpt"], "quiet@example.net")
        self.assertEqual(by_status["suppressed"]["text"], "stoplist_suppressed")
        self.assertEqual(by_status["accepted"]["rcpt"], "loud@example.net")
        # Only suppressed recipients: accepted over SMTP, never delivered.
        out = self.send(key=key, sender="a@example.org", to="quiet@example.net")
        qid = self.stack.queue_id(out)
        self.assertIsNotNone(qid, out)
        time.sleep(1)
        self.assertEqual(len(self.stack.sink_messages()), before + 1)
        self.assertIn(qid + ": discard: no recipient left after suppression", self.stack.log("milter"))

    def test_message_rules_apply_when_every_recipient_is_suppressed(self):
        key, _ = self.stack.make_key("dropall")
        self.stack.ctl_ok("account", "set", "dropall", "suppression=accept-and-drop")
        self.stack.ctl_ok("stoplist", "add", "dropall", "quiet@example.net")
        self.stack.ctl_ok("campaign", "block", "dropall", "bad-campaign")
        blocked = self.send(key=key, sender="a@example.org", to="quiet@example.net",
                            headers=("MIME-Version: 1.0", "Content-Type: text/plain", "X-Campaign-Id: bad-campaign"))
        self.assertIn("<~* 550 5.7.1 issue is blocked", blocked)
        unknown = self.stack.swaks("--h-From", "a@elsewhere.example", key=key, sender="a@example.org",
                                   to="quiet@example.net")
        self.assertIn("<~* 550 5.7.1 error/sender/unknown", unknown)
        self.assertIsNone(self.stack.queue_id(blocked))
        self.assertIsNone(self.stack.queue_id(unknown))
        refused = [e for e in self.stack.events(50) if e["account"] == "dropall"]
        self.assertEqual([(e["rcpt"], e["status"]) for e in refused], [("quiet@example.net", "rejected")] * 2)

    def test_size_and_recipient_limits(self):
        key, _ = self.stack.make_key("limited", create_account=True)
        self.stack.ctl_ok("limit", "set", "limited", "rcpts=2", "size=2000")
        out = self.send(key=key, sender="a@example.org", to="r1@example.net,r2@example.net,r3@example.net")
        self.assertIn(self.rcpt_rejected("452 4.5.3", "r3@example.net", "too many recipients"), out)
        self.assertIsNotNone(self.stack.queue_id(out), out)
        out = self.send(key=key, sender="a@example.org", body="x" * 5000)
        self.assertIn("<~* 552 5.3.4 <END-OF-MESSAGE>: End-of-data rejected: message too big", out)

    def test_rate_and_daily_quota(self):
        rated, _ = self.stack.make_key("rated")
        self.stack.ctl_ok("limit", "set", "rated", "rate=1/h")
        self.assertIsNotNone(self.stack.queue_id(self.send(key=rated, sender="a@example.org")))
        self.assertIn(self.rcpt_rejected("451 4.7.1", "bob@example.net", "rate limit exceeded, try again later"),
                      self.send(key=rated, sender="a@example.org"))
        quota, _ = self.stack.make_key("quota")
        self.stack.ctl_ok("limit", "set", "quota", "daily=2")
        for _ in range(2):
            self.assertIsNotNone(self.stack.queue_id(self.send(key=quota, sender="a@example.org")))
        self.assertIn(self.rcpt_rejected("452 4.5.3", "bob@example.net", "daily quota exceeded"),
                      self.send(key=quota, sender="a@example.org"))

    def test_account_blocked_after_authentication(self):
        key, _ = self.stack.make_key("flaky")
        self.assertIsNotNone(self.stack.queue_id(self.send(key=key, sender="a@example.org")))
        self.stack.ctl_ok("account", "set", "flaky", "state=blocked")
        # AUTH still passes from the cache (auth_cache_ttl); the policy sees the new state.
        self.assertIn(self.sender_rejected("550 5.7.1", "a@example.org", "client is blocked"),
                      self.send(key=key, sender="a@example.org"))

    def test_refusals_are_recorded(self):
        key, key_id = self.stack.make_key("audited")
        self.send(key=key, sender="a@nowhere.example", to="x@example.net")
        errors = self.stack.ctl("errors", "audited", "--last", "5")
        self.assertEqual(errors.returncode, 0, errors.stderr)
        self.assertIn("550   5.7.1 error/sender/unknown  a@nowhere.example  x@example.net", errors.stdout)
        events = [e for e in self.stack.events(50) if e["account"] == "audited"]
        self.assertEqual(events[0]["status"], "rejected")
        self.assertEqual(events[0]["code"], "550")
        self.assertEqual(events[0]["text"], "5.7.1 error/sender/unknown")
        self.assertEqual(events[0]["key_id"], key_id)
        day = time.strftime("%Y-%m-%d", time.gmtime())
        self.assertEqual(self.stack.redis("HGET", "mg:stats:{audited}:" + day, "rejected").strip(), "1")
        self.assertIn("reject: RCPT from [127.0.0.1]: 550 5.7.1 error/sender/unknown; from=<a@nowhere.example> "
                      "to=<x@example.net> account=audited key=%s rule=sender_domain" % key_id,
                      self.stack.log("policy"))


if __name__ == "__main__":
    unittest.main()
