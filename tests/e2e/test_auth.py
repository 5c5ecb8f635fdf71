"""test_auth.py — API-key SMTP AUTH through a real private Postfix (STARTTLS,
smtpd_sasl_type = dovecot) against mailgate-policy's auth server, by swaks,
nodemailer (installed with npm under the build directory when missing) and
curl, and the auth socket spoken to directly as Exim does. Every failure text
is asserted exactly as the sender sees it."""

import base64
import os
import re
import smtplib
import socket
import ssl
import subprocess
import time
import unittest

from harness import BUILD_DIR, Stack

AUTH_FAILED = "<~* 535 5.7.8 Error: authentication failed: "
TEMP_FAILED = "<~* 454 4.7.0 Temporary authentication failure: Connection lost to authentication server"


class AuthTest(unittest.TestCase):
    EXTRA = "auth_cache_ttl = 1s\n"

    def setUp(self):
        self.stack = Stack(extra_config=self.EXTRA).start()
        self.addCleanup(self.stack.stop)

    def assert_delivered(self, out, account, key_id, count=1):
        qid = self.stack.queue_id(out)
        self.assertIsNotNone(qid, out + self.stack.diagnostics())
        self.stack.wait_delivered(count)
        events = {e["queue_id"]: e for e in self.stack.events()}
        self.assertEqual(events[qid]["account"], account)
        self.assertEqual(events[qid]["key_id"], key_id)


class SmtpAuth(AuthTest):
    def test_plain_and_login_with_blank_or_account_username(self):
        key, key_id = self.stack.make_key("acme")
        self.assert_delivered(self.stack.swaks(key=key), "acme", key_id, 1)
        self.assert_delivered(self.stack.swaks(key=key, user="acme"), "acme", key_id, 2)
        self.assert_delivered(self.stack.swaks(key=key, mech="LOGIN"), "acme", key_id, 3)
        self.assert_delivered(self.stack.swaks(key=key, user="acme", mech="LOGIN"), "acme", key_id, 4)
        self.assertIn("auth: ok: client=[127.0.0.1] user=acme/" + key_id, self.stack.log("policy"))
        self.assertNotIn(key, self.stack.log("policy") + self.stack.log("milter") + self.stack.maillog())

    def test_failure_texts(self):
        good, _ = self.stack.make_key("acme")
        self.assertIn(AUTH_FAILED + "wrong api key", self.stack.swaks(key="mg_not-a-key"))
        self.assertIn(AUTH_FAILED + "wrong api key", self.stack.swaks(key=good, user="someone-else"))
        nosmtp, _ = self.stack.make_key("acme", "--no-smtp", create_account=False)
        self.assertIn(AUTH_FAILED + "api key doesn't have accesses", self.stack.swaks(key=nosmtp))
        blocked, _ = self.stack.make_key("blockedco")
        self.stack.ctl_ok("account", "set", "blockedco", "state=blocked")
        self.assertIn(AUTH_FAILED + "client is blocked", self.stack.swaks(key=blocked))
        deleted, _ = self.stack.make_key("gone")
        self.stack.ctl_ok("account", "set", "gone", "state=deleted")
        self.assertIn(AUTH_FAILED + "client is deleted", self.stack.swaks(key=deleted))
        self.assertEqual(self.stack.sink_messages(), [])

    def test_no_auth_not_allowed_then_allowed_network(self):
        out = self.stack.swaks()
        self.assertIn("<** 530 5.7.0 <alice@example.org>: Sender address rejected: no username or password", out)
        # Refusals without an account are counted, not added to the customers' events stream.
        self.assertEqual([e for e in self.stack.events(50) if e.get("code") == "530"], [])
        day = time.strftime("%Y-%m-%d", time.gmtime())
        self.assertEqual(self.stack.redis("HGET", "mg:noaccount:" + day, "530").strip(), "1")
        self.assertRegex(self.stack.ctl("status").stdout, r"refused without account today:\s+530: 1\n")
        self.stack.make_account("pinned")
        self.stack.ctl_ok("net", "allow", "pinned", "127.0.0.1/32")
        time.sleep(1.2)  # auth_cache_ttl: the networks index is reloaded
        self.assert_delivered(self.stack.swaks(), "pinned", "")

    def test_revoked_key_is_refused_within_cache_ttl(self):
        key, key_id = self.stack.make_key("acme")
        self.assert_delivered(self.stack.swaks(key=key), "acme", key_id)
        self.stack.ctl_ok("key", "revoke", key_id)
        time.sleep(1.2)
        self.assertIn(AUTH_FAILED + "wrong api key", self.stack.swaks(key=key))

    def test_redis_down_internal_error_then_recovers(self):
        self.stack.stop_redis()
        self.assertIn(AUTH_FAILED + "internal service error", self.stack.swaks(key="mg_whatever"))
        self.stack.start_redis()
        key, key_id = self.stack.make_key("acme")
        time.sleep(0.5)
        self.assert_delivered(self.stack.swaks(key=key), "acme", key_id)


class ClientLibraries(AuthTest):
    """Clients that refuse a blank username send the account name or "apikey"."""
    NODE_DIR = os.path.join(BUILD_DIR, "e2e-node")

    def nodemailer(self, method, user, key):
        modules = os.path.join(self.NODE_DIR, "node_modules")
        if not os.path.isdir(os.path.join(modules, "nodemailer")):
            subprocess.run(["npm", "install", "--prefix", self.NODE_DIR, "--no-audit", "--no-fund", "--loglevel=error",
                            "nodemailer@6"], check=True, capture_output=True, timeout=300)
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node", "send.js")
        r = subprocess.run(["node", script, str(self.stack.smtp_port), method, user, key], capture_output=True,
                           text=True, timeout=60, env=dict(os.environ, NODE_PATH=modules))
        return r.stdout + r.stderr

    def curl(self, user, key):
        message = "From: alice@example.org\r\nTo: bob@example.net\r\nSubject: curl e2e\r\n" \
                  "Date: Mon, 30 Nov 2026 10:00:00 +0000\r\nMessage-Id: <curl-e2e@example.org>\r\n" \
                  "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nsent with curl\r\n"
        r = subprocess.run(["curl", "-sS", "-v", "--ssl-reqd", "--insecure", "smtp://127.0.0.1:%d" % self.stack.smtp_port,
                            "--mail-from", "alice@example.org", "--mail-rcpt", "bob@example.net",
                            "--user", user + ":" + key, "--login-options", "AUTH=PLAIN", "--upload-file", "-"],
                           input=message, capture_output=True, text=True, timeout=60)
        return r.stdout + r.stderr

    def test_nodemailer_account_and_apikey_users_curl_blank_user(self):
        key, key_id = self.stack.make_key("acme")
        self.assert_delivered(self.nodemailer("PLAIN", "acme", key), "acme", key_id, 1)
        self.assert_delivered(self.nodemailer("LOGIN", "apikey", key), "acme", key_id, 2)
        self.assertEqual(self.nodemailer("LOGIN", "someone", key).strip(),
                         "error: Invalid login: 535 5.7.8 Error: authentication failed: wrong api key")
        out = self.curl("", key)
        self.assertIn("> AUTH PLAIN\n", out)  # then the blank-user PLAIN message:
        self.assertIn("\n> %s\n" % base64.b64encode(b"\0\0" + key.encode()).decode(), out)
        self.assert_delivered(out, "acme", key_id, 3)
        self.assertNotIn(key, self.stack.log("policy") + self.stack.maillog())


class AbandonedAuth(unittest.TestCase):
    """Postfix never tells the auth server that a client gave up an exchange."""

    def setUp(self):
        self.stack = Stack()
        self.addCleanup(self.stack.stop)
        # One smtpd process, so every session below shares its one auth connection.
        self.stack.postconf_edits.append(["-Fe", "127.0.0.1:%d/inet/process_limit=1" % self.stack.smtp_port])
        self.stack.start()

    def session(self):
        s = smtplib.SMTP("127.0.0.1", self.stack.smtp_port, timeout=30)
        self.addCleanup(s.close)
        s.ehlo()
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
        s.starttls(context=tls)
        s.ehlo()
        return s

    def test_100_aborted_logins_then_a_good_key_on_the_same_smtpd(self):
        key, _ = self.stack.make_key("acme")
        aborted = 0
        while aborted < 100:
            s = self.session()
            for _ in range(min(9, 100 - aborted)):  # below smtpd_soft_error_limit: no error sleep
                self.assertEqual(s.docmd("AUTH", "LOGIN"), (334, b"VXNlcm5hbWU6"))
                self.assertEqual(s.docmd("*"), (501, b"5.7.0 Authentication aborted"))
                aborted += 1
            s.quit()
        s = self.session()
        self.assertEqual(s.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0\0" + key.encode()).decode()),
                         (235, b"2.7.0 Authentication successful"))
        s.quit()
        pids = set(re.findall(r"postfix/smtpd\[(\d+)\]: connect from", self.stack.maillog()))
        self.assertEqual(len(pids), 1, "not one smtpd process: %s" % pids)


class SmtpAuthDisconnectMode(AuthTest):
    EXTRA = "auth_internal_error = disconnect\nauth_fail_limit = 3\n"

    def test_redis_down_gives_temporary_failure(self):
        self.stack.stop_redis()
        self.assertIn(TEMP_FAILED, self.stack.swaks(key="mg_whatever"))

    def test_brute_force_is_throttled(self):
        for _ in range(3):
            self.assertIn(AUTH_FAILED + "wrong api key", self.stack.swaks(key="mg_guess"))
        self.assertIn(TEMP_FAILED, self.stack.swaks(key="mg_guess"))
        self.assertIn(TEMP_FAILED, self.stack.swaks(key="mg_guess"))
        log = self.stack.log("policy")
        # One line when the throttling starts, none per refused attempt (test_hostile counts Redis writes).
        self.assertEqual(log.count("auth: throttled: client=[127.0.0.1] after 3 failed attempts (auth_fail_limit)"), 1)
        self.assertNotIn("too many failed attempts", log)


class AuthSocket(unittest.TestCase):
    """The auth socket spoken to directly, the way Exim's dovecot driver does."""

    def setUp(self):
        self.stack = Stack()
        self.addCleanup(self.stack.stop)
        self.stack.start_redis()
        self.stack.start_daemons(names=("policy",))

    def session(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(self.stack.path("auth.sock"))
        f = s.makefile("rwb")
        handshake = []
        while True:
            line = f.readline().decode()
            handshake.append(line.rstrip("\n"))
            if line == "DONE\n":
                return s, f, handshake

    def test_exim_style_request(self):
        key, key_id = self.stack.make_key("acme")
        s, f, handshake = self.session()
        self.assertEqual(handshake[:3], ["VERSION\t1\t2", "MECH\tPLAIN\tplaintext", "MECH\tLOGIN\tplaintext"])
        self.assertTrue(handshake[3].startswith("SPID\t"))
        resp = base64.b64encode(b"\0\0" + key.encode()).decode()
        f.write(("VERSION\t1\t0\nCPID\t99\nAUTH\t1\tPLAIN\tservice=smtp\trip=192.0.2.1\tlip=127.0.0.1\t"
                 "nologin\tresp=%s\n" % resp).encode())
        f.flush()
        self.assertEqual(f.readline().decode(), "OK\t1\tuser=acme/%s\n" % key_id)
        s.close()

    def test_garbage_and_overlong_lines_close_only_that_connection(self):
        s, f, _ = self.session()
        f.write(b"VERSION\t1\t0\nGARBAGE\n")
        f.flush()
        self.assertEqual(f.readline(), b"")
        s.close()
        s, f, _ = self.session()
        try:
            s.sendall(b"VERSION\t1\t0\n" + b"A" * 20000)
        except OSError:
            pass
        self.assertEqual(f.readline(), b"")
        s.close()
        s, f, _ = self.session()  # still serving
        s.close()


if __name__ == "__main__":
    unittest.main()
