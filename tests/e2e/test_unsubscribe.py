"""test_unsubscribe.py — one-click unsubscribe links (RFC 8058) added by
mailgate-milter through a real private Postfix: for an account with
unsubscribe=one-click the message smtp-sink receives has List-Unsubscribe
(our link first, the sender's mailto: merged into the one field) and
List-Unsubscribe-Post, both in the DKIM signature's h= and verified by
python3-dkim; the token verifies with `mailgatectl unsubscribe-token verify`
and, independently, in Python from the format of mailgate-redis(7); a
changed character is refused; a rotated secret (SIGHUP) signs new links
while links under the previous one still verify. X-Mailgate-Unsubscribe: no,
unsubscribe=off and several recipients: no link, the sender's fields as
sent, X-Mailgate-Unsubscribe never delivered."""

import base64
import contextlib
import email
import email.policy
import hashlib
import hmac
import json
import os
import re
import signal
import struct
import time

import dkim

import test_dkim
from harness import SharedStackTest, Stack, wait_for

SECRET = "e2e-current-secret-0123456789abcdefghijklmnop"
NEXT_SECRET = "e2e-next-secret-0123456789abcdefghijklmnopqrs"
BASE = "https://mail.example.com/mg"
MESSAGE = ("From: Shop <news@shop.example>\nTo: bob@example.net\nSubject: {subject}\n"
           "Date: Wed, 25 Nov 2026 10:00:00 +0000\nMessage-Id: <{subject}@shop.example>\nMIME-Version: 1.0\n"
           "Content-Type: text/plain\nX-Campaign-Id: spring\n{extra}\nhello\n")


def decode_token(token, secrets):
    """The fields of a token, checked as mailgate-redis(7) describes it (not with mailgate's code)."""
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    payload, tag = raw[:-16], raw[-16:]
    assert any(hmac.compare_digest(hmac.new(s.encode(), payload, hashlib.sha256).digest()[:16], tag)
               for s in secrets), "no secret signed the token"
    assert payload[0] == 1, payload[0]
    issued, = struct.unpack(">I", payload[1:5])
    fields, pos = [], 5
    for _ in range(4):
        n = payload[pos]
        fields.append(payload[pos + 1:pos + 1 + n].decode())
        pos += 1 + n
    assert pos == len(payload)
    return dict(zip(("account", "recipient", "campaign", "queue_id"), fields), issued=issued)


class Unsubscribe(SharedStackTest):
    @classmethod
    def makeStack(cls):
        stack = Stack(extra_config="web_base_url = %s/\n" % BASE)
        cls.secret_file = stack.path("web-secret")
        cls.write_secrets(SECRET)
        with open(stack.conf, "a") as f:
            f.write("web_secret_file = %s\n" % cls.secret_file)
        return stack.start()

    @classmethod
    def write_secrets(cls, *secrets):
        with open(cls.secret_file, "w") as f:
            f.write("".join(s + "\n" for s in secrets))
        os.chmod(cls.secret_file, 0o640)

    @classmethod
    def prepare(cls):
        cls.stack.make_account("shop", domains=("shop.example",))
        cls.key, _ = cls.stack.make_key("shop", create_account=False)
        cls.stack.ctl_ok("dkim", "generate", "shop.example", "--selector", "e1", "--algo", "ed25519")
        cls.stack.ctl_ok("account", "set", "shop", "unsubscribe=one-click")
        rec = json.loads(cls.stack.ctl_ok("--json", "dkim", "dns", "shop.example"))[0]
        cls.dns = {b"e1._domainkey.shop.example.": rec["txt"].encode()}

    @contextlib.contextmanager
    def shop_setting(self, assignment):
        self.stack.ctl_ok("account", "set", "shop", assignment)
        try:
            yield
        finally:
            self.stack.ctl_ok("account", "set", "shop", "unsubscribe=one-click")

    def send(self, extra="", to="bob@example.net"):
        """Sends one message; returns its queue id and the message as delivered (bytes, CRLF)."""
        subject = "u%d" % time.time_ns()
        out = self.stack.swaks(sender="news@shop.example", to=to, key=self.key,
                               data=MESSAGE.format(subject=subject, extra=extra))
        qid = self.stack.queue_id(out)
        self.assertIsNotNone(qid, out[-1500:])
        for _ in range(300):
            for path in self.stack.sink_messages():
                with open(path, "rb") as f:
                    dump = f.read()
                if subject.encode() in dump:
                    return qid, test_dkim.Dkim.message_of(dump)
            time.sleep(0.1)
        self.fail("message %s not delivered\n%s" % (qid, self.stack.diagnostics()))

    def fields(self, msg, name):
        parsed = email.message_from_bytes(msg, policy=email.policy.compat32)
        return [re.sub(r"\r?\n[ \t]", " ", v) for v in parsed.get_all(name, [])]

    def assert_signed_with(self, msg, *names):
        d = dkim.DKIM(msg)
        self.assertTrue(d.verify(dnsfunc=lambda name, timeout=5: self.dns.get(name, b"")), msg[:3000])
        h = re.search(rb"(?is)\bh=([^;]*)", msg).group(1)
        signed = [n.strip().lower() for n in re.sub(rb"\s", b"", h).decode().split(":")]
        for name in names:
            self.assertIn(name, signed)

    def link_of(self, msg):
        values = self.fields(msg, "List-Unsubscribe")
        self.assertEqual(len(values), 1, values)
        m = re.match(r"<%s/u/([A-Za-z0-9_-]+)>" % re.escape(BASE), values[0])
        self.assertIsNotNone(m, values[0])
        return m.group(1), values[0]

    def test_one_click_signed_merged_and_verifiable(self):
        qid, msg = self.send(extra="List-Unsubscribe: <mailto:unsub@shop.example?subject=stop>,\n"
                                   " <https://shop.example/old-link>\nList-Unsubscribe-Post: List-Unsubscribe=One-Click")
        token, value = self.link_of(msg)
        # Ours first, the sender's mailto: kept, its https: dropped (one HTTPS URI for one-click).
        self.assertEqual(value, "<%s/u/%s>, <mailto:unsub@shop.example?subject=stop>" % (BASE, token))
        self.assertEqual(self.fields(msg, "List-Unsubscribe-Post"), ["List-Unsubscribe=One-Click"])
        self.assert_signed_with(msg, "list-unsubscribe", "list-unsubscribe-post")
        print("token: %d characters, link %d" % (len(token), len(BASE) + 3 + len(token)))
        # mailgatectl (mailgate's own check) and Python (the documented format) agree.
        shown = json.loads(self.stack.ctl_ok("--json", "unsubscribe-token", "verify", "%s/u/%s" % (BASE, token)))
        self.assertEqual((shown["account"], shown["recipient"], shown["campaign"], shown["queue_id"]),
                         ("shop", "bob@example.net", "spring", qid))
        fields = decode_token(token, [SECRET])
        self.assertEqual((fields["account"], fields["recipient"], fields["campaign"], fields["queue_id"]),
                         ("shop", "bob@example.net", "spring", qid))
        self.assertLess(abs(fields["issued"] - time.time()), 120)
        # One character changed: refused, exactly as mailgate-web will say it.
        i = len(token) // 2
        forged = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1:]
        r = self.stack.ctl("unsubscribe-token", "verify", forged)
        self.assertEqual((r.returncode, r.stderr), (1, "mailgatectl: bad token signature\n"))
        r = self.stack.ctl("unsubscribe-token", "verify", token + "!")
        self.assertEqual((r.returncode, r.stderr), (1, "mailgatectl: malformed token\n"))
        self.assertIn(qid + ": accepted:", self.stack.log("milter"))
        self.assertRegex(self.stack.log("milter"), qid + r": accepted: .* unsubscribe=one-click")

    def test_header_mode_adds_only_the_link(self):
        with self.shop_setting("unsubscribe=header"):
            qid, msg = self.send()
        token, value = self.link_of(msg)
        self.assertEqual(self.fields(msg, "List-Unsubscribe-Post"), [])
        self.assertEqual(decode_token(token, [SECRET])["queue_id"], qid)
        self.assert_signed_with(msg, "list-unsubscribe")

    def test_sender_says_no(self):
        qid, msg = self.send(extra="X-Mailgate-Unsubscribe: no\nList-Unsubscribe: <mailto:own@shop.example>")
        self.assertEqual(self.fields(msg, "List-Unsubscribe"), ["<mailto:own@shop.example>"])
        self.assertEqual(self.fields(msg, "List-Unsubscribe-Post"), [])
        self.assertEqual(self.fields(msg, "X-Mailgate-Unsubscribe"), [])
        self.assertRegex(self.stack.log("milter"), qid + r": accepted: .* unsubscribe=sender-no")

    def test_off_leaves_the_message_untouched(self):
        with self.shop_setting("unsubscribe=off"):
            shown = self.stack.ctl_ok("account", "show", "shop")
            qid, msg = self.send(extra="List-Unsubscribe: <https://shop.example/u/1>\nX-Mailgate-Unsubscribe: yes")
        self.assertRegex(shown, r"unsubscribe:\s+off \(scope account\)")
        self.assertEqual(self.fields(msg, "List-Unsubscribe"), ["<https://shop.example/u/1>"])
        self.assertEqual(self.fields(msg, "List-Unsubscribe-Post"), [])
        self.assertEqual(self.fields(msg, "X-Mailgate-Unsubscribe"), [])  # never delivered
        self.assertNotRegex(self.stack.log("milter"), qid + r": accepted: .* unsubscribe=")

    def test_several_recipients_get_no_link(self):
        qid, msg = self.send(to="bob@example.net,carol@example.net")
        self.assertEqual(self.fields(msg, "List-Unsubscribe"), [])
        self.assertEqual(self.fields(msg, "List-Unsubscribe-Post"), [])
        self.assertRegex(self.stack.log("milter"), qid + r": accepted: .* unsubscribe=several-recipients")

    def test_rotated_secret_signs_new_links_and_accepts_old_ones(self):
        _, before = self.send()
        old_token, _ = self.link_of(before)
        reloads = self.stack.log("milter").count("reload: configuration")
        self.write_secrets(NEXT_SECRET, SECRET)
        try:
            self.stack.procs["milter"].send_signal(signal.SIGHUP)
            wait_for(lambda: self.stack.log("milter").count("reload: configuration") > reloads, 10, "milter reload")
            qid, after = self.send()
            new_token, _ = self.link_of(after)
            self.assertEqual(decode_token(new_token, [NEXT_SECRET])["queue_id"], qid)
            self.assertRaises(AssertionError, decode_token, new_token, [SECRET])
            for token in (old_token, new_token):
                self.stack.ctl_ok("unsubscribe-token", "verify", token)
            # The rotation over: the previous secret dropped, its links refused.
            self.write_secrets(NEXT_SECRET)
            r = self.stack.ctl("unsubscribe-token", "verify", old_token)
            self.assertEqual((r.returncode, r.stderr), (1, "mailgatectl: bad token signature\n"))
        finally:
            self.write_secrets(SECRET)
            reloads = self.stack.log("milter").count("reload: configuration")
            self.stack.procs["milter"].send_signal(signal.SIGHUP)
            wait_for(lambda: self.stack.log("milter").count("reload: configuration") > reloads, 10, "milter reload")
