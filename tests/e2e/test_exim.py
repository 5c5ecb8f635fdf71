"""test_exim.py — the same mailgate-policy serving a private Exim 4.96
(Debian's exim4-daemon-heavy, unpacked beside Postfix) configured with
contrib/exim: AUTH with an API key through the dovecot authenticator, policy
refusals through ${readsocket} reaching the sender verbatim, and a delivery to
smtp-sink recorded under the account."""

import json
import os
import shutil
import smtplib
import socket
import threading
import time
import unittest

import dkim

from harness import SharedStackTest, Stack, wait_for
from test_dkim import Dkim


class Exim(SharedStackTest):
    @classmethod
    def makeStack(cls):
        # Exim's processes run as Debian-exim: the daemons' sockets belong to that group.
        stack = Stack(socket_group="Debian-exim")
        return stack.start(stack.install_exim, stack.start_redis, stack.start_sink, lambda: stack.start_daemons(names=("policy",)),
                           stack.start_exim)

    @classmethod
    def prepare(cls):
        cls.key, cls.key_id = cls.stack.make_key("acme")
        # DKIM keys from Redis, exported for the transport (contrib/exim/dkim.conf).
        s = cls.stack
        s.ctl_ok("dkim", "generate", "example.org", "--selector", "s1")
        s.ctl_ok("dkim", "generate", "example.org", "--selector", "e1", "--algo", "ed25519")
        # Two customers, each with its own domain and key; beta also owns a key
        # of alpha's domain, which must never sign alpha's mail.
        s.make_account("alpha", domains=("a.example",))
        s.ctl_ok("domain", "add", "alpha", "mod.a.example", "--status", "onmoderation")
        s.make_account("beta", domains=("b.example",))
        cls.alpha_key, _ = s.make_key("alpha", create_account=False)
        cls.alpha_sandbox_key, cls.alpha_sandbox_id = s.make_key("alpha", "--sandbox", create_account=False)
        s.ctl_ok("dkim", "generate", "a.example", "--selector", "a1", "--account", "alpha")
        s.ctl_ok("dkim", "generate", "b.example", "--selector", "b1", "--account", "beta")
        s.ctl_ok("dkim", "generate", "a.example", "--selector", "intruder", "--account", "beta")
        os.makedirs(s.path("dkim"), mode=0o750)
        shutil.chown(s.path("dkim"), "root", "Debian-exim")
        s.ctl_ok("dkim", "export", s.path("dkim"))

    def send(self, *extra, **kw):
        kw.setdefault("key", self.key)
        return self.stack.swaks(*extra, port=self.stack.exim_port, tls=False, **kw)

    def test_auth_and_delivery(self):
        out = self.send()
        self.assertIn("<-  235 Authentication succeeded", out)
        self.assertIn("<-  250 OK id=", out)
        self.stack.wait_delivered()
        self.assertIn("auth: ok: client=[127.0.0.1] user=acme/" + self.key_id, self.stack.log("policy"))

    def test_dkim_signed_delivery(self):
        s = self.stack
        with open(s.path("dkim/owners")) as f:
            owners = f.read()
        self.assertIn("\nexample.org.s1:\n", owners)
        self.assertIn("\na.example.a1: alpha\n", owners)
        self.assertEqual(oct(os.stat(s.path("dkim/example.org.s1.pem")).st_mode & 0o777), "0o640")
        subject = "exim dkim %d" % time.time_ns()
        out = self.send(subject=subject)
        self.assertIn("<-  250 OK id=", out)
        msg = wait_for(lambda: next((m for m in map(self.read, s.sink_messages()) if subject.encode() in m), None),
                       30, "the signed message at smtp-sink")
        msg = Dkim.message_of(msg)
        records = {}
        for rec in json.loads(s.ctl_ok("--json", "dkim", "dns", "example.org")):
            records[("%s._domainkey.%s." % (rec["selector"], rec["domain"])).encode()] = rec["txt"].encode()
        sigs = [line for line in msg.split(b"\r\n") if line.lower().startswith(b"dkim-signature:")]
        self.assertEqual(len(sigs), 2, msg[:2000])
        d = dkim.DKIM(msg)
        for i in range(len(sigs)):
            self.assertTrue(d.verify(idx=i, dnsfunc=lambda name, timeout=5: records.get(name, b"")),
                            "signature %d does not verify:\n%s" % (i, msg[:2000]))
        self.assertIn(b"a=rsa-sha256", msg)
        self.assertIn(b"a=ed25519-sha256", msg)

        # A key removed from Redis is gone from the export too.
        s.ctl_ok("dkim", "remove", "example.org", "--selector", "e1")
        self.assertIn("1 stale key files removed", s.ctl_ok("dkim", "export", s.path("dkim")))
        self.assertFalse(os.path.exists(s.path("dkim/example.org.e1.pem")))
        s.ctl_ok("dkim", "generate", "example.org", "--selector", "e1", "--algo", "ed25519")
        s.ctl_ok("dkim", "export", s.path("dkim"))

    def delivered(self, subject):
        msg = wait_for(lambda: next((m for m in map(self.read, self.stack.sink_messages()) if subject.encode() in m),
                                    None), 30, "the message at smtp-sink")
        return Dkim.message_of(msg)

    def verify_all(self, msg):
        """The d= of each DKIM-Signature, after checking that each verifies (python3-dkim)."""
        records = {}
        for rec in json.loads(self.stack.ctl_ok("--json", "dkim", "dns", "a.example")):
            records[("%s._domainkey.%s." % (rec["selector"], rec["domain"])).encode()] = rec["txt"].encode()
        sigs = [line for line in msg.split(b"\r\n") if line.lower().startswith(b"dkim-signature:")]
        d = dkim.DKIM(msg)
        for i in range(len(sigs)):
            self.assertTrue(d.verify(idx=i, dnsfunc=lambda name, timeout=5: records.get(name, b"")),
                            "signature %d does not verify:\n%s" % (i, msg[:2000]))
        return sigs

    def test_header_from_of_another_account_is_refused(self):
        """Under Exim too the header From must be a sending domain of the account
        (the milter's rule, asked in the data ACL): account alpha may not write
        From: ceo@b.example, which beta's key would have signed (issue 14 item 1)."""
        s = self.stack
        cases = (("CEO <ceo@b.example>", "550 5.7.1 error/sender/unknown"),
                 ("News <news@a.example>, CEO <ceo@b.example>", "550 5.7.1 error/sender/unknown"),
                 ("news@mod.a.example", "550 5.7.1 error/sender/onmoderation"),
                 ("news@a.example, a..b@victim.example", "550 5.6.0 invalid From:"))
        for frm, reply in cases:
            subject = "exim cross from %d" % time.time_ns()
            out = self.send("--header", "From: " + frm, key=self.alpha_key, sender="news@a.example", subject=subject)
            self.assertIn("<** " + reply, out, frm)
            self.assertNotIn("250 OK id=", out, frm)
        # A second From header: "duplicate From:", as the milter answers (Exim
        # joins the two in $h_from:, the ACL counts the fields).
        subject = "exim cross from %d" % time.time_ns()
        out = self.send("--add-header", "From: CEO <ceo@b.example>", key=self.alpha_key, sender="news@a.example",
                        subject=subject)
        self.assertIn("<** 550 5.6.0 duplicate From:", out)
        time.sleep(2)
        self.assertFalse([m for m in map(self.read, s.sink_messages()) if b"exim cross from" in m])
        self.assertIn("account=alpha", s.log("policy"))

    def test_second_from_hidden_from_h_from_is_refused(self):
        """$h_from: joins two From fields into one (the first can open a comment
        the second closes) and does not see "From :" at all: a second From of
        another tenant must not pass under Exim either ("duplicate From:" as
        the milter answers), nor one behind the 64 KiB of header Exim shows."""
        message = ("{froms}To: bob@example.net\nSubject: {subject}\nDate: Wed, 25 Nov 2026 10:00:00 +0000\n"
                   "Message-Id: <{subject}@a.example>\nMIME-Version: 1.0\nContent-Type: text/plain\n\nbody\n")
        pad = "X-Pad: " + "p" * 70000 + "\n"
        cases = (("From: news@a.example (\nFrom: CEO <ceo@b.example>)\n", "<** 550 5.6.0 duplicate From:"),
                 ("From: news@a.example\nFrom : CEO <ceo@b.example>\n", "<** 550 5.6.0 duplicate From:"),
                 ("From: news@a.example\nfrom\t: ceo@b.example\n", "<** 550 5.6.0 duplicate From:"),
                 (pad + "From: news@a.example\nFrom : ceo@b.example\n", "<** 550 5.6.0 too many header fields"),
                 ("From : CEO <ceo@b.example>\n", "<** 550 5.6.0 no From:"),
                 ("From: news@a.example (folded\n  comment)\nX-Pad: " + "p" * 900 + "\n", "<-  250 OK id="))
        for froms, reply in cases:
            subject = "exim hidden from %d" % time.time_ns()
            out = self.send(key=self.alpha_key, sender="news@a.example",
                            data=message.format(froms=froms, subject=subject))
            self.assertIn(reply, out, froms[:200])
        msg = self.delivered("exim hidden from")
        self.assertIn(b"(folded", msg)
        time.sleep(2)
        self.assertEqual(len([m for m in map(self.read, self.stack.sink_messages()) if b"exim hidden from" in m]), 1)

    def test_many_long_recipients_are_accepted(self):
        """1000 recipients (max_recipients) of 72 octets: the data ACL's request
        must stay under mailgate-policy's 64 KiB limit (the recipient list, only
        needed for sandbox records, is left out), not be deferred at every try."""
        rcpts = ["recipient.number.%04d.with.a.long.name@mail.subdomain.example.net" % i for i in range(1000)]
        for key, reply in ((self.alpha_key, "250"), (self.alpha_sandbox_key, "250")):
            with smtplib.SMTP("127.0.0.1", self.stack.exim_port, timeout=60) as smtp:
                smtp.login("", key)
                smtp.mail("news@a.example")
                self.assertEqual([smtp.rcpt(r)[0] for r in rcpts], [250] * 1000)
                code, text = smtp.data(b"From: news@a.example\r\nTo: news@a.example\r\nSubject: many\r\n\r\nbody\r\n")
            self.assertEqual(code, 250, text)
        self.assertIn("sandbox message not recorded: recipient list too long for the request (1000 recipients)",
                      self.stack.log("policy"))

    def test_tags_are_checked_and_blocked_campaigns_refused(self):
        """The milter's tag rules under Exim too: an invalid X-Campaign-Id and a
        campaign the admin blocked are refused."""
        self.stack.ctl_ok("campaign", "block", "alpha", "spring")
        for header, reply in (("X-Campaign-Id: spring", "<** 550 5.7.1 issue is blocked"),
                              ("X-Campaign-Id: bad campaign!", "<** 550 5.6.0 invalid X-Campaign-Id"),
                              ("X-Letter-Id: %s" % ("x" * 129), "<** 550 5.6.0 invalid X-Letter-Id"),
                              ("X-Campaign-Id: autumn", "<-  250 OK id=")):
            out = self.send("--header", header, key=self.alpha_key, sender="news@a.example")
            self.assertIn(reply, out, header)

    def test_own_from_is_signed_only_with_own_key(self):
        """alpha's own From leaves signed d=a.example with alpha's key only: not
        with the key beta owns for a.example, never d=b.example."""
        subject = "exim own from %d" % time.time_ns()
        out = self.send("--header", "From: News <news@a.example>", key=self.alpha_key, sender="news@a.example",
                        subject=subject)
        self.assertIn("<-  250 OK id=", out)
        msg = self.delivered(subject)
        sigs = self.verify_all(msg)
        self.assertEqual(len(sigs), 1, msg[:2000])
        self.assertIn(b"d=a.example", msg)
        self.assertIn(b"s=a1", msg)
        self.assertNotIn(b"s=intruder", msg)
        self.assertNotIn(b"d=b.example", msg)

    def test_sandbox_key_is_accepted_and_not_delivered(self):
        """A sandbox key's message is accepted (250), discarded by Exim, recorded
        as sandbox, as under the milter."""
        s = self.stack
        subject = "exim sandbox %d" % time.time_ns()
        out = self.send(key=self.alpha_sandbox_key, sender="news@a.example", to="r1@example.net,r2@example.net",
                        subject=subject)
        self.assertRegex(out, r"<-  250 OK id=[\w-]+\n -> QUIT")
        events = wait_for(lambda: [e for e in s.events(50) if e["status"] == "sandbox"], 10, "sandbox events")
        self.assertEqual(sorted(e["rcpt"] for e in events), ["r1@example.net", "r2@example.net"])
        self.assertEqual({(e["account"], e["key_id"]) for e in events}, {("alpha", self.alpha_sandbox_id)})
        time.sleep(3)
        self.assertFalse([m for m in map(self.read, s.sink_messages()) if subject.encode() in m])
        self.assertIn("discard (sandbox)", s.log("policy"))

    def test_sink_and_suppressed_recipients_are_dropped(self):
        """What the milter removes under Postfix, Exim drops at RCPT (DISCARD from
        mailgate-policy, x_checks=recipient): a sink recipient and one that
        accept-and-drop suppression keeps; both get 250 and are recorded."""
        s = self.stack
        key, _ = s.make_key("dropper")
        s.ctl_ok("account", "set", "dropper", "suppression=accept-and-drop")
        s.ctl_ok("stoplist", "add", "dropper", "stopped@example.net")
        subject = "exim dropped %d" % time.time_ns()
        out = self.send(key=key, to="test@test.ru,stopped@example.net,live@example.net", subject=subject)
        self.assertEqual(out.count("<-  250 Accepted"), 3, out)
        self.assertIn("<-  250 OK id=", out)
        path = wait_for(lambda: next((p for p in s.sink_messages() if subject.encode() in self.read(p)), None), 30,
                        "the message at smtp-sink")
        self.assertEqual(s.sink_recipients(path), ["live@example.net"])
        events = [e for e in s.events(100) if e["account"] == "dropper"]
        self.assertIn(("test@test.ru", "sink", "250"), [(e["rcpt"], e["status"], e["code"]) for e in events])
        self.assertIn(("stopped@example.net", "suppressed", "stoplist_suppressed"),
                      [(e["rcpt"], e["status"], e["text"]) for e in events])

    @staticmethod
    def read(path):
        with open(path, "rb") as f:
            return f.read()

    def test_wrong_key(self):
        self.assertIn("<** 535 Incorrect authentication data", self.send(key="mg_wrong"))

    def test_policy_refusals_reach_the_sender_verbatim(self):
        self.assertIn("<** 550 5.7.1 error/sender/unknown", self.send(sender="a@unknown.example"))
        self.assertIn("<** 530 5.7.0 no username or password", self.send(key=None))
        self.stack.ctl_ok("stoplist", "add", "acme", "stopped@example.net")
        self.assertIn("<** 550 5.0.0 Email is in the account stoplist", self.send(to="stopped@example.net"))
        self.stack.ctl_ok("limit", "set", "acme", "rcpts=1")
        out = self.send(to="r1@example.net,r2@example.net")
        self.assertIn("<** 452 4.5.3 too many recipients", out)
        self.stack.ctl_ok("limit", "set", "acme", "rcpts=0", "size=2000")
        self.assertIn("<** 552 5.3.4 message too big", self.send(body="x" * 5000))
        self.stack.ctl_ok("limit", "set", "acme", "size=0")

    def test_rate_limit_once_per_message_at_mail(self):
        key, _ = self.stack.make_key("rated")
        self.stack.ctl_ok("limit", "set", "rated", "rate=1/h")
        out = self.send(key=key, to="r1@example.net,r2@example.net")
        self.assertIn("<-  250 OK id=", out)
        self.assertIn("<** 451 4.7.1 rate limit exceeded, try again later", self.send(key=key))

    def test_policy_service_gone_mid_request_defers(self):
        """The policy service dies while Exim waits for its answer (a socket that
        reads the request and closes: ${readsocket} returns an empty string, as
        after a SIGKILL mid-request): that command is deferred, whatever the stage,
        and nothing is delivered (the old ACLs accepted an empty answer)."""
        s = self.stack
        real = s.path("policy.sock.real")
        for stage, reply in (("MAIL", "451 4.3.5 policy service unavailable"),
                             ("RCPT", "451 4.3.5 policy service unavailable"),
                             ("END-OF-MESSAGE", "451 4.3.5 policy service unavailable")):
            subject = "exim gone at %s %d" % (stage, time.time_ns())
            with self.DyingPolicy(s.path("policy.sock"), real, stage):
                out = self.send(subject=subject)
            self.assertIn("<** " + reply, out, stage)
            self.assertNotIn("250 OK id=", out, stage)
            time.sleep(2)
            self.assertFalse([m for m in map(self.read, s.sink_messages()) if subject.encode() in m], stage)
        # The real service is back: mail passes again.
        self.assertIn("<-  250 OK id=", self.send())

    class DyingPolicy:
        """Takes the place of policy.sock (the real socket moved aside): forwards
        each request to the real service, except requests of `stage`, which it
        reads and then closes without a word."""

        def __init__(self, path, real, stage):
            self.path, self.real, self.stage = path, real, stage

        def __enter__(self):
            os.rename(self.path, self.real)
            self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.srv.bind(self.path)
            os.chmod(self.path, 0o666)
            self.srv.listen(16)
            self.srv.settimeout(0.2)
            self.stopped = False
            self.thread = threading.Thread(target=self.serve, daemon=True)
            self.thread.start()
            return self

        def serve(self):
            while not self.stopped:
                try:
                    conn, _ = self.srv.accept()
                except socket.timeout:
                    continue
                except OSError:
                    return
                conn.settimeout(10)
                with conn:
                    request = b""
                    while True:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        request += chunk
                    if b"protocol_state=%s\n" % self.stage.encode() in request:
                        continue  # "dies" mid-request
                    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as up:
                        up.connect(self.real)
                        up.sendall(request)
                        up.shutdown(socket.SHUT_WR)
                        while True:
                            chunk = up.recv(65536)
                            if not chunk:
                                break
                            conn.sendall(chunk)

        def __exit__(self, *exc):
            self.stopped = True
            self.thread.join(5)
            self.srv.close()
            os.unlink(self.path)
            os.rename(self.real, self.path)


if __name__ == "__main__":
    unittest.main()
