"""test_dkim.py — DKIM signing by mailgate-milter through a real private
Postfix: what smtp-sink receives verifies with python3-dkim (DNS answered
from `mailgatectl dkim dns`) for RSA and Ed25519 (both sign), for folded
headers, trailing whitespace, empty and whitespace-only bodies, 8-bit
bodies, a body without final newline, 1 MB and 10 MB bodies, headers
mailgate changed and a rewritten From with a display name longer than a
line; keys change without a restart. Mail submitted with sendmail(1)
(non_smtpd_milters, no account) is never signed. Lines over 998 octets
(which Postfix's smtp client breaks after signing): header fields refolded,
bodies re-encoded (single part and inside multipart/alternative, siblings
unchanged), or refused under long_lines = reject; a body without long lines
arrives byte for byte as sent."""

import base64
import contextlib
import email
import email.header
import email.policy
import quopri
import email.utils
import json
import re
import signal
import time
import unittest

import dkim

from harness import SharedStackTest, Stack, wait_for

MESSAGE = ("From: {frm}\nTo: bob@example.net\nSubject: {subject}\nDate: Wed, 25 Nov 2026 10:00:00 +0000\n"
           "Message-Id: <{subject}@shop.example>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
           "{extra}\n{body}")


class Dkim(SharedStackTest):
    @classmethod
    def makeStack(cls):
        return Stack(extra_config="dkim_default_domain = shop.example\ndkim_expire = 7d\n", local_milter=True).start()

    @classmethod
    def prepare(cls):
        cls.stack.make_account("shop", domains=("shop.example",))
        cls.stack.ctl_ok("account", "set", "shop", "default_sender=default@shop.example")
        cls.key, _ = cls.stack.make_key("shop", create_account=False)
        cls.stack.ctl_ok("dkim", "generate", "shop.example", "--selector", "s1")
        cls.stack.ctl_ok("dkim", "generate", "shop.example", "--selector", "e1", "--algo", "ed25519")

    def dns(self):
        records = {}
        for domain in ("shop.example", "other.example", "bee.example", "parent.example"):
            r = self.stack.ctl("--json", "dkim", "dns", domain)
            for rec in json.loads(r.stdout) if r.returncode == 0 else []:
                records[("%s._domainkey.%s." % (rec["selector"], rec["domain"])).encode()] = rec["txt"].encode()
        return lambda name, timeout=5: records.get(name, b"")

    @contextlib.contextmanager
    def shop_setting(self, assignment, restore):
        """`account set shop ASSIGNMENT` for the body of a with block, then RESTORE."""
        self.stack.ctl_ok("account", "set", "shop", assignment)
        try:
            yield
        finally:
            self.stack.ctl_ok("account", "set", "shop", restore)

    def send_and_receive(self, **fields):
        fields.setdefault("frm", "Shop <news@shop.example>")
        fields.setdefault("extra", "")
        fields.setdefault("body", "hello\n")
        data = MESSAGE.format(subject="s%d" % time.time_ns(), **fields)
        out = self.stack.swaks(sender="news@shop.example", key=self.key, data=data)
        qid = self.stack.queue_id(out)
        self.assertIsNotNone(qid, out[-1500:])
        return self.received(qid)

    def received(self, qid):
        # The sink writes the file as it receives it: read it once Postfix logged the delivery.
        wait_for(lambda: qid + ": to=<bob@example.net>" in self.stack.maillog() and "status=sent" in
                 self.stack.maillog().split(qid + ": to=<bob@example.net>", 1)[1][:400], 60, "delivery of " + qid)
        for _ in range(300):
            for path in self.stack.sink_messages():
                with open(path, "rb") as f:
                    dump = f.read()
                if qid.encode() in dump:
                    return self.message_of(dump)
            time.sleep(0.1)
        self.fail("not delivered")

    @staticmethod
    def message_of(dump):
        """The message as Postfix relayed it: smtp-sink's X- lines and its own Received: removed."""
        lines = dump.split(b"\n")
        i = 0
        while not lines[i].startswith(b"Received:"):
            i += 1
        i += 1
        while lines[i][:1] in (b" ", b"\t"):
            i += 1
        return b"\r\n".join(lines[i:])

    def assert_verifies(self, msg, algorithms=(b"rsa-sha256", b"ed25519-sha256")):
        d = dkim.DKIM(msg)
        sigs = [line for line in msg.split(b"\r\n") if line.lower().startswith(b"dkim-signature:")]
        self.assertEqual(len(sigs), len(algorithms), msg[:3000])
        for i in range(len(sigs)):
            self.assertTrue(d.verify(idx=i, dnsfunc=self.dns()), "signature %d does not verify:\n%s" % (i, msg[:3000]))
        for alg in algorithms:
            self.assertIn(b"a=" + alg, msg)

    def test_rsa_and_ed25519_both_sign(self):
        msg = self.send_and_receive()
        self.assert_verifies(msg)
        self.assertRegex(msg, rb"x=\d+;")  # dkim_expire
        self.assertRegex(msg, rb"(?is)h=[^;]*from:[^;]*feedback-id")

    def test_folded_headers_8bit_and_no_final_newline(self):
        extra = "X-Folded: first part\n\tsecond part\n  third part"
        msg = self.send_and_receive(extra=extra,
                                    body="Grüße aus München — 8bit\nline two without newline")
        self.assert_verifies(msg)

    def test_changed_headers_are_signed(self):
        # EMPTY-FROM, marked: signed with dkim_default_domain.
        msg = self.send_and_receive(frm="Sales Team", extra="X-Campaign-Id: dk1\nX-Letter-Id: L1")
        self.assertIn(b"Feedback-ID: dk1:shop:mailgate", msg)
        self.assertIn(b"X-Mailgate-From: EMPTY-FROM", msg)
        self.assertNotIn(b"X-Campaign-Id", msg)
        self.assert_verifies(msg)
        # EMPTY-FROM, rewritten: signed for the default sender's domain.
        with self.shop_setting("empty_from=rewrite", restore="empty_from=mark"):
            msg = self.send_and_receive(frm="Sales Team")
        self.assertIn(b'From: "Sales Team" <default@shop.example>', msg)
        self.assert_verifies(msg)

    def test_long_rewritten_display_name_is_folded(self):
        # EMPTY-FROM rewritten with a display name longer than a line (998 octets): folded by the
        # milter into RFC 2047 words (or at blanks), so the signed header is the one delivered.
        names = (" ".join(["Sales"] * 250), "x" * 1200, "Отдел продаж " * 50, "Продажи" * 100)
        with self.shop_setting("empty_from=rewrite", restore="empty_from=mark"):
            for name in names:
                msg = self.send_and_receive(frm=name)
                self.assert_verifies(msg)
                header = msg.split(b"\r\n\r\n", 1)[0]
                from_field = re.search(rb"(?ms)^From: .*?(?=^\S)", header + b"\r\nX").group(0)
                for line in from_field.split(b"\r\n"):
                    self.assertLessEqual(len(line), 78, from_field[:500])
                decoded = str(email.header.make_header(email.header.decode_header(
                    re.sub(r"\r\n[ \t]", " ", from_field[len(b"From: "):].decode().rstrip()))))
                self.assertEqual(email.utils.parseaddr(decoded), (name.strip(), "default@shop.example"), name)

    def test_edge_case_messages_verify(self):
        """The signer's edge cases through Postfix, each signed with both of shop.example's keys
        (RSA and Ed25519 on one message) and verified by python3-dkim as delivered."""
        head = ("From: Shop <news@shop.example>\nTo: bob@example.net\nDate: Wed, 25 Nov 2026 10:00:00 +0000\n"
                "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n")
        mb = ("0123456789abcdef 0123456789abcdef\t 0123456789abcdef  " + "\n") * (1024 * 1024 // 53)
        cases = {
            "folded": ("Subject: a subject\n\tfolded\n  twice\nCc: carol@example.net,\n dave@example.net\n", "x\n"),
            "trailing whitespace": ("Subject: trailing blanks   \t\nCc: carol@example.net \n", "x\n"),
            "empty body": ("Subject: empty\n", ""),
            "no final newline": ("Subject: no newline\n", "first\nlast line"),
            "whitespace-only lines": ("Subject: blanks\n", "a\n \t \n\t\nb  \t\n  \n\n \n"),
            "8-bit": ("Subject: Grüße aus München\nContent-Transfer-Encoding: 8bit\n", "Grüße — 8bit\n\tcafé  \n"),
            "1 MB": ("Subject: one megabyte\n", mb),
            "repeated and odd case": ("sUbJeCt: odd case\nCC: one@example.net\ncc: two@example.net\n"
                                      "MESSAGE-ID: <odd@shop.example>\n", "x\n"),
        }
        for name, (extra, body) in cases.items():
            with self.subTest(name):
                out = self.stack.swaks(sender="news@shop.example", key=self.key, subject=None,
                                       data=head + extra + "\n" + body)
                qid = self.stack.queue_id(out)
                self.assertIsNotNone(qid, out[-1500:])
                msg = self.received(qid)
                self.assert_verifies(msg)

    def test_ten_megabyte_body(self):
        # 10 MiB in lines of 64 bytes: Postfix's smtp client folds lines over 998 bytes
        # (smtp_line_length_limit), which would change a signed body on the way.
        body = ("0123456789abcdef" * 4 + "\n") * (10 * 1024 * 1024 // 65)
        self.assert_verifies(self.send_and_receive(body=body))

    def test_account_default_signing_domain(self):
        self.stack.ctl_ok("dkim", "generate", "other.example", "--selector", "o1")
        with self.shop_setting("dkim_domain=other.example", restore="dkim_domain="):
            msg = self.send_and_receive(frm="Sales Team")
        self.assertIn(b"d=other.example", msg)
        self.assert_verifies(msg, algorithms=(b"rsa-sha256",))

    def test_keys_of_another_account_never_sign(self):
        """Account bee owns bee.example and its key; the admin gives shop the subdomain
        shop.bee.example: shop's mail from it is not signed d=bee.example through the
        parent-domain fallback (dkim_default_domain signs it), nor with bee's key as shop's
        own dkim_domain (unsigned). An unowned key of a parent domain shop was not given
        does not sign either."""
        self.stack.make_account("bee", domains=("bee.example",))
        self.stack.ctl_ok("dkim", "generate", "bee.example", "--selector", "b1", "--account", "bee")
        self.stack.ctl_ok("domain", "add", "shop", "shop.bee.example")
        self.stack.ctl_ok("dkim", "generate", "parent.example", "--selector", "p1")
        self.stack.ctl_ok("domain", "add", "shop", "news.parent.example")
        for frm in ("news@shop.bee.example", "news@news.parent.example"):
            msg = self.send_and_receive(frm=frm)
            self.assertNotIn(b"d=bee.example", msg)
            self.assertNotIn(b"d=parent.example", msg)
            self.assertIn(b"d=shop.example", msg)
            self.assert_verifies(msg)
        with self.shop_setting("dkim_domain=bee.example", restore="dkim_domain="):
            msg = self.send_and_receive(frm="news@shop.bee.example")
        self.assertNotIn(b"DKIM-Signature", msg)

    def test_broken_keys_tempfail(self):
        self.stack.ctl_ok("domain", "add", "shop", "broken.example")
        bad = '{"algo":"rsa-sha256","bits":2048,"key":"-----BEGIN PRIVATE KEY-----\\ngarbage\\n-----END PRIVATE KEY-----\\n"}'
        self.stack.redis("HSET", "mg:dkim:broken.example", "b1", bad)
        self.stack.redis("INCR", "mg:dkim:version")
        data = MESSAGE.format(frm="a@broken.example", subject="broken", extra="", body="x\n")
        out = self.stack.swaks(sender="news@shop.example", key=self.key, data=data)
        self.assertIn("<~* 451 4.3.0 internal service error", out)
        # The key is parsed when the key cache loads it and the signer refuses it at end of
        # headers; the failure is acted upon at end of message and is logged and recorded like
        # every other refusal (one line with the queue id).
        qid = re.search(r"(\w+): dkim: key broken\.example/b1: unreadable private key",
                        self.stack.log("milter")).group(1)
        line = wait_for(lambda: [l for l in self.stack.log("milter").splitlines()
                                 if l.startswith("mailgate-milter: info: %s: tempfail: END-OF-MESSAGE" % qid)],
                        10, "the milter's END-OF-MESSAGE line")[0]
        self.assertIn(": 451 4.3.0 internal service error;", line)
        self.assertIn("rule=dkim_error", line)
        events = [e for e in self.stack.events(200) if e["queue_id"] == qid]
        self.assertEqual([(e["status"], e["code"]) for e in events], [("tempfailed", "451")])

    def reload_milter(self, line):
        """Appends `line` to mailgate.conf ("" restores it) and reloads mailgate-milter."""
        with open(self.stack.conf) as f:
            conf = f.read().split("# test:\n")[0]
        with open(self.stack.conf, "w") as f:
            f.write(conf + ("# test:\n" + line + "\n" if line else ""))
        reloads = self.stack.log("milter").count("reload: configuration")
        self.stack.procs["milter"].send_signal(signal.SIGHUP)
        wait_for(lambda: self.stack.log("milter").count("reload: configuration") > reloads, 10, "milter reload")

    def test_local_submission_is_never_signed(self):
        """sendmail(1) with From: a customer's domain: no account, so delivered untouched and
        unsigned (neither the From domain's key nor dkim_default_domain), even when an
        account's allowed network holds 127.0.0.1; the account's own mail is still signed."""
        self.stack.ctl_ok("net", "allow", "shop", "127.0.0.0/8", "--wide")
        try:
            for frm in ("News <news@shop.example>", "cron@elsewhere.example"):
                data = MESSAGE.format(frm=frm, subject="local%d" % time.time_ns(), extra="X-Campaign-Id: local-c",
                                      body="from cron\n")
                qid = self.stack.sendmail(data)
                msg = self.received(qid)
                self.assertNotIn(b"DKIM-Signature", msg)
                self.assertIn(b"X-Campaign-Id: local-c", msg)  # no customer rules: untouched
                self.assertNotIn(b"Feedback-ID", msg)
                wait_for(lambda: qid + ": local: from=<root@localhost>" in self.stack.log("milter"), 10, "milter log")
        finally:
            self.stack.ctl_ok("net", "deny", "shop", "127.0.0.0/8")
        self.assertEqual([e for e in self.stack.events(200) if e["queue_id"] == qid], [])
        self.assert_verifies(self.send_and_receive())

    def test_local_submission_reject(self):
        self.reload_milter("local_submission = reject")
        try:
            data = MESSAGE.format(frm="news@shop.example", subject="refused", extra="", body="x\n")
            qid = self.stack.sendmail(data)
            line = wait_for(lambda: [l for l in self.stack.maillog().splitlines() if qid + ": milter-reject:" in l],
                            30, "the milter's refusal")[0]
            self.assertIn(": milter-reject: END-OF-MESSAGE from localhost[127.0.0.1]: "
                          "5.7.1 mail without an account is not accepted here;", line)
        finally:
            self.reload_milter("")

    def test_keys_change_without_restart(self):
        self.stack.ctl_ok("dkim", "remove", "shop.example", "--selector", "e1")
        try:
            msg = self.send_and_receive()
            self.assert_verifies(msg, algorithms=(b"rsa-sha256",))
        finally:
            self.stack.ctl_ok("dkim", "generate", "shop.example", "--selector", "e1", "--algo", "ed25519")
        self.assert_verifies(self.send_and_receive())


    # --- lines over 998 octets (long_lines) ---

    @staticmethod
    def html_line(octets=5000):
        """Minified HTML on one line of exactly `octets` octets (UTF-8)."""
        head, tail = "<html><body>", "</body></html>"
        out = head + "".join('<p class="c%d">caf\u00e9 &amp; item %d</p>' % (i, i) for i in range(300))
        while len((out + tail).encode()) > octets:
            out = out[:-1]
        return out + "x" * (octets - len((out + tail).encode())) + tail

    HTML = html_line.__func__()

    def send_data(self, data):
        out = self.stack.swaks(sender="news@shop.example", key=self.key, data=data, subject=None)
        qid = self.stack.queue_id(out)
        self.assertIsNotNone(qid, out[-1500:])
        return self.received(qid)

    def long_message(self, subject="long%d", content_type="text/html; charset=utf-8", extra="", body=""):
        subject = subject % time.time_ns() if "%d" in subject else subject
        return ("From: Shop <news@shop.example>\nTo: bob@example.net\nSubject: %s\n"
                "Date: Wed, 25 Nov 2026 10:00:00 +0000\nMessage-Id: <%d@shop.example>\nMIME-Version: 1.0\n"
                "Content-Type: %s\n%s\n%s" % (subject, time.time_ns(), content_type, extra, body))

    @staticmethod
    def delivered_body(msg):
        """The body as delivered: message_of() gives it with two more CRLF (smtp-sink's dump)."""
        body = msg.split(b"\r\n\r\n", 1)[1]
        assert body.endswith(b"\r\n\r\n"), body[-20:]
        return body[:-4]

    def assert_no_long_line(self, msg):
        for line in msg.split(b"\r\n"):
            self.assertLessEqual(len(line), 998, line[:100])

    def test_long_subject_line_is_refolded(self):
        words = "\t" + " ".join("w%04d" % i for i in range(700))
        # A 1,601-octet continuation line, one without blanks, and one past Postfix's
        # line_length_limit (2048), which its queue file keeps in pieces.
        for subject in ("start\n" + words[:1601], "x" * 1601, "start\n" + words[:3000]):
            msg = self.send_data(self.long_message(subject=subject, content_type="text/plain", body="hi\n"))
            self.assert_verifies(msg)
            self.assert_no_long_line(msg)
            parsed = email.message_from_bytes(msg, policy=email.policy.default)
            self.assertEqual(str(parsed["Subject"]), subject.replace("\n", ""))  # unfolded as sent
            self.assertIn("folded=Subject", self.stack.log("milter"))

    def test_long_html_line_single_part_is_quoted_printable(self):
        self.assertEqual(len(self.HTML.encode()), 5000)
        msg = self.send_data(self.long_message(extra="Content-Transfer-Encoding: 8bit\n",
                                               body=self.HTML + "\nsecond line\n"))
        self.assert_verifies(msg)
        self.assert_no_long_line(msg)
        self.assertIn(b"Content-Transfer-Encoding: quoted-printable\r\n", msg)
        self.assertNotIn(b"Content-Transfer-Encoding: 8bit", msg)
        self.assertEqual(quopri.decodestring(self.delivered_body(msg)).replace(b"\r\n", b"\n"),
                         (self.HTML + "\nsecond line\n").encode())

    def test_long_html_line_in_multipart_alternative(self):
        png = base64.encodebytes(bytes(range(256)) * 8).decode()
        plain_qp = "Caf=C3=A9 and a soft=\nbreak, with a trailing blank=20\n"
        parts = ("--alt\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
                 + plain_qp +
                 "--alt\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
                 + self.HTML + "\n"
                 "--alt\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\n" + png +
                 "--alt--\n")
        msg = self.send_data(self.long_message(content_type='multipart/alternative; boundary="alt"',
                                               body="This is a MIME message.\n\n" + parts))
        self.assert_verifies(msg)
        self.assert_no_long_line(msg)
        crlf = lambda text: text.replace("\n", "\r\n").encode()
        # The siblings within the limit arrive byte for byte.
        self.assertIn(crlf("Content-Transfer-Encoding: quoted-printable\n\n" + plain_qp + "--alt\n"), msg)
        self.assertIn(crlf("Content-Transfer-Encoding: base64\n\n" + png + "--alt--\n"), msg)
        parsed = email.message_from_bytes(msg, policy=email.policy.default)
        html = [p for p in parsed.walk() if p.get_content_type() == "text/html"][0]
        self.assertEqual(html["Content-Transfer-Encoding"], "quoted-printable")
        self.assertEqual(html.get_content(), self.HTML)  # the CRLF before a boundary is the boundary's
        self.assertIn("reencoded=text/html:quoted-printable", self.stack.log("milter"))

    def test_long_line_in_an_attachment_becomes_base64(self):
        data = "id;name;note\n" + ";".join("field%d" % i for i in range(400)) + "\nlast;row\n"
        body = ("--mix\nContent-Type: text/plain; charset=utf-8\n\nsee the attachment\n"
                "--mix\nContent-Type: application/octet-stream; name=data.csv\nContent-Transfer-Encoding: 8bit\n\n"
                + data + "--mix--\n")
        msg = self.send_data(self.long_message(content_type="multipart/mixed; boundary=mix", body=body))
        self.assert_verifies(msg)
        self.assert_no_long_line(msg)
        self.assertIn(b"\r\n\r\nsee the attachment\r\n--mix\r\n", msg)
        parsed = email.message_from_bytes(msg, policy=email.policy.default)
        attachment = [p for p in parsed.walk() if p.get_content_type() == "application/octet-stream"][0]
        self.assertEqual(attachment["Content-Transfer-Encoding"], "base64")
        self.assertEqual(attachment.get_content(), data.rstrip("\n").replace("\n", "\r\n").encode())

    def test_long_line_in_a_signed_part_is_refused(self):
        body = ("--sig\nContent-Type: text/html; charset=utf-8\n\n" + self.HTML + "\n"
                "--sig\nContent-Type: application/pkcs7-signature; name=smime.p7s\nContent-Transfer-Encoding: base64\n\n"
                "MIAGCSqGSIb3DQEHAqCAMIACAQExDzANBglghkgBZQMEAgEFADCABgkqhkiG9w0BBwEAAA==\n--sig--\n")
        data = self.long_message(content_type='multipart/signed; protocol="application/pkcs7-signature"; '
                                 'micalg=sha-256; boundary=sig', body=body)
        out = self.stack.swaks(sender="news@shop.example", key=self.key, data=data, subject=None)
        self.assertIn("<~* 550 5.6.0 message has lines longer than 998 octets", out)
        self.assertIn("long lines: body not re-encoded", self.stack.log("milter"))

    def test_body_without_long_lines_arrives_byte_for_byte(self):
        body = ("x" * 998 + "\n" + "Grüße 8bit  \n\n.leading dot\n" + "<p>" * 300 + "\n" + "tail \t\n\n\n")
        msg = self.send_data(self.long_message(content_type="text/html; charset=utf-8",
                                               extra="Content-Transfer-Encoding: 8bit\n", body=body))
        self.assert_verifies(msg)
        self.assertEqual(self.delivered_body(msg), body.replace("\n", "\r\n").encode())
        self.assertIn(b"Content-Transfer-Encoding: 8bit\r\n", msg)
        qid = re.search(rb"with ESMTPSA id (\w+)", msg).group(1).decode()
        accepted = [l for l in self.stack.log("milter").splitlines() if "%s: accepted:" % qid in l]
        self.assertEqual(len(accepted), 1)
        self.assertNotIn("reencoded=", accepted[0])  # signed as it streamed, never replaced
        self.assertNotIn("folded=", accepted[0])

    def test_long_lines_reject(self):
        self.reload_milter("long_lines = reject")
        try:
            for data in (self.long_message(body=self.HTML + "\n"),
                         self.long_message(subject="start\n\t" + "w " * 600, body="short\n")):
                out = self.stack.swaks(sender="news@shop.example", key=self.key, data=data, subject=None)
                self.assertIn("<~* 550 5.6.0 message has lines longer than 998 octets", out)
        finally:
            self.reload_milter("")
        # encode refuses a header line with no blank to fold at outside unstructured text.
        data = self.long_message(extra="References: <%s@x>\n" % ("r" * 1200), body="short\n")
        out = self.stack.swaks(sender="news@shop.example", key=self.key, data=data)
        self.assertIn("<~* 550 5.6.0 header line longer than 998 octets cannot be folded", out)


if __name__ == "__main__":
    unittest.main()
