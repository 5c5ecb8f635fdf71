"""test_package.py — the installed Debian package (run by tests/package/
test-deb.sh after `apt-get install ./mailgate_*.deb`; skipped otherwise):
the shipped /etc/mailgate/mailgate.conf passes `config check`; the packaged
binaries run as the package's `mailgate` user with that configuration (only
the Redis address and socket paths pointed at this test's private Redis and
Postfix) and a message goes through them, its delivery recorded."""
import grp
import os
import pwd
import re
import shutil
import subprocess
import unittest

from harness import Stack, wait_for

PACKAGED_CONF = "/etc/mailgate/mailgate.conf"


@unittest.skipUnless(os.environ.get("MG_INSTALLED") and os.path.exists("/usr/sbin/mailgate-policy"),
                     "needs the installed package (MG_INSTALLED=1)")
class InstalledPackage(unittest.TestCase):
    def test_user_groups_and_files(self):
        user = pwd.getpwnam("mailgate")
        groups = [g.gr_name for g in grp.getgrall() if "mailgate" in g.gr_mem]
        self.assertIn("postfix", groups)
        self.assertIn("adm", groups)
        st = os.stat("/var/spool/postfix/mailgate")
        self.assertEqual((st.st_uid, grp.getgrgid(st.st_gid).gr_name, oct(st.st_mode & 0o777)),
                         (user.pw_uid, "postfix", "0o750"))
        with open("/usr/share/doc/mailgate/copyright") as f:
            self.assertIn("\nLicense: Apache-2.0\n", f.read())  # a distributable licence, not "proprietary"
        conf = os.stat(PACKAGED_CONF)
        self.assertEqual(oct(conf.st_mode & 0o777), "0o640")
        for unit in ("mailgate-policy", "mailgate-milter", "mailgate-tracker"):
            self.assertTrue(os.path.exists("/lib/systemd/system/%s.service" % unit), unit)
        for page in ("man8/mailgate-policy.8.gz", "man8/mailgate-tracker.8.gz", "man5/mailgate.conf.5.gz"):
            self.assertTrue(os.path.exists("/usr/share/man/" + page), page)
        r = subprocess.run(["mailgatectl", "-c", PACKAGED_CONF, "config", "check"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        if shutil.which("systemd-analyze"):
            units = ["/lib/systemd/system/%s.service" % u for u in ("mailgate-policy", "mailgate-milter",
                                                                    "mailgate-tracker")]
            v = subprocess.run(["systemd-analyze", "verify"] + units, capture_output=True, text=True)
            self.assertEqual((v.returncode, v.stdout + v.stderr), (0, ""))

    def test_message_through_the_packaged_daemons(self):
        s = Stack(with_tracker=True)
        self.addCleanup(s.stop)
        with open(PACKAGED_CONF) as f:
            conf = f.read()
        conf = re.sub(r"(?m)^redis_server = .*$", "redis_server = tcp:127.0.0.1:%d" % s.redis_port, conf)
        conf += ("policy_listen = unix:%s/policy.sock\nauth_listen = unix:%s/auth.sock\n"
                 "milter_listen = unix:%s/milter.sock\ntracker_log = %s/maillog\n" % ((s.dir,) * 4))
        with open(s.conf, "w") as f:
            f.write(conf)
        shutil.chown(s.conf, "root", "mailgate")
        os.chmod(s.conf, 0o640)
        shutil.chown(s.dir, "mailgate")  # the daemons create their sockets here, as in /var/spool/postfix/mailgate
        s.start_redis()
        s.start_sink()
        s.start_daemons(("policy", "milter"), user="mailgate")
        s.start_postfix()
        s.start_daemons(("tracker",))  # Postfix's maillog_file is root's, mode 0600
        for sock in ("policy.sock", "auth.sock", "milter.sock"):
            st = os.stat(s.path(sock))
            self.assertEqual((pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name),
                             ("mailgate", "postfix"), sock)
        key, _ = s.make_key("acme")
        out = s.swaks(key=key, subject="through the package")
        qid = s.queue_id(out)
        self.assertIsNotNone(qid, out + s.diagnostics())
        wait_for(lambda: "delivered" in s.ctl_ok("message", qid), 30, "the delivered event")


if __name__ == "__main__":
    unittest.main()
