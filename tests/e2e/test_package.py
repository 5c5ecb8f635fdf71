"""test_package.py — the installed Debian package (run by tests/package/
test-deb.sh after `apt-get install ./mailgate_*.deb`; skipped otherwise):
the shipped /etc/mailgate/mailgate.conf passes `config check`; the packaged
binaries run as their units run them (user `mailgate`, the user's groups plus
the unit's SupplementaryGroups) with that configuration (only the Redis
address and the log pointed at this test's private Redis and Postfix), their
sockets in the package's socket directory, and a message goes through them,
its delivery recorded by the tracker reading the log as `mailgate`."""
import grp
import os
import pwd
import re
import shutil
import subprocess
import unittest

from harness import Stack, can_connect, wait_for

PACKAGED_CONF = "/etc/mailgate/mailgate.conf"
SOCKET_DIR = "/var/spool/postfix/mailgate"
UNITS = "/lib/systemd/system"


def unit_argv(name):
    """The unit's ExecStart under the identity systemd gives it: User, Group and
    the user's groups from /etc/group plus SupplementaryGroups."""
    settings = {}
    with open("%s/mailgate-%s.service" % (UNITS, name)) as f:
        for line in f:
            key, eq, value = line.strip().partition("=")
            if eq and not key.startswith("#"):
                settings.setdefault(key, []).append(value)
    user = pwd.getpwnam(settings["User"][0])
    gid = grp.getgrnam(settings["Group"][0]).gr_gid
    groups = set(os.getgrouplist(user.pw_name, gid))
    groups |= {grp.getgrnam(g).gr_gid for v in settings.get("SupplementaryGroups", []) for g in v.split()}
    return (["setpriv", "--reuid=%d" % user.pw_uid, "--regid=%d" % gid,
             "--groups=" + ",".join(str(g) for g in sorted(groups)), "--"] + settings["ExecStart"][0].split())


def process_groups(pid):
    with open("/proc/%d/status" % pid) as f:
        ids = re.search(r"^Groups:\s*(.*)$", f.read(), re.M).group(1).split()
    return sorted(grp.getgrgid(int(g)).gr_name for g in ids)


@unittest.skipUnless(os.environ.get("MG_INSTALLED") and os.path.exists("/usr/sbin/mailgate-policy"),
                     "needs the installed package (MG_INSTALLED=1)")
class InstalledPackage(unittest.TestCase):
    def test_user_groups_and_files(self):
        user = pwd.getpwnam("mailgate")
        # No group besides its own: each unit adds what its daemon needs.
        self.assertEqual([g.gr_name for g in grp.getgrall() if "mailgate" in g.gr_mem], [])
        self.assertEqual(subprocess.run(["id", "-Gn", "mailgate"], capture_output=True, text=True).stdout,
                         "mailgate\n")
        st = os.stat(SOCKET_DIR)
        self.assertEqual((st.st_uid, grp.getgrgid(st.st_gid).gr_name, oct(st.st_mode & 0o7777)),
                         (user.pw_uid, "postfix", "0o2750"))
        with open("/usr/share/doc/mailgate/copyright") as f:
            self.assertIn("\nLicense: Apache-2.0\n", f.read())  # a distributable licence, not "proprietary"
        conf = os.stat(PACKAGED_CONF)
        self.assertEqual(oct(conf.st_mode & 0o777), "0o640")
        for unit in ("mailgate-policy", "mailgate-milter", "mailgate-tracker", "mailgate-web"):
            self.assertTrue(os.path.exists("/lib/systemd/system/%s.service" % unit), unit)
        for page in ("man8/mailgate-policy.8.gz", "man8/mailgate-tracker.8.gz", "man8/mailgate-web.8.gz",
                     "man5/mailgate.conf.5.gz", "../doc/mailgate/examples/nginx/mailgate-web.conf"):
            self.assertTrue(os.path.exists("/usr/share/man/" + page), page)
        r = subprocess.run(["mailgatectl", "-c", PACKAGED_CONF, "config", "check"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        if shutil.which("systemd-analyze"):
            units = ["/lib/systemd/system/%s.service" % u for u in ("mailgate-policy", "mailgate-milter",
                                                                    "mailgate-tracker", "mailgate-web")]
            v = subprocess.run(["systemd-analyze", "verify"] + units, capture_output=True, text=True)
            self.assertEqual((v.returncode, v.stdout + v.stderr), (0, ""))

    def test_message_through_the_packaged_daemons(self):
        s = Stack(with_tracker=True)
        self.addCleanup(s.stop)
        with open(PACKAGED_CONF) as f:
            conf = f.read()
        conf = re.sub(r"(?m)^redis_server = .*$", "redis_server = tcp:127.0.0.1:%d" % s.redis_port, conf)
        # Rsyslog's /var/log/mail.log is root:adm 0640 (test-install-order.sh checks it with rsyslog
        # itself); Postfix's postlogd appends to an existing maillog_file without changing its mode.
        conf += "tracker_log = %s/maillog\n" % s.dir
        with open(s.conf, "w") as f:
            f.write(conf)
        shutil.chown(s.conf, "root", "mailgate")
        os.chmod(s.conf, 0o640)
        with open(s.path("maillog"), "w"):
            pass
        shutil.chown(s.path("maillog"), "root", "adm")
        os.chmod(s.path("maillog"), 0o640)
        # The private Postfix reaches the packaged daemons' sockets in the package's directory.
        for sock in ("policy", "auth", "milter"):
            os.symlink(os.path.join(SOCKET_DIR, sock), s.path(sock + ".sock"))
        s.start_redis()
        s.start_sink()
        for name in ("policy", "milter", "tracker"):
            s._spawn(name, unit_argv(name)[:-1] + ["-f", "-c", s.conf])
        for sock in ("policy.sock", "auth.sock", "milter.sock"):
            wait_for(lambda: can_connect(s.path(sock)), what=sock)
        s.start_postfix()
        for sock in ("policy", "auth", "milter"):
            st = os.stat(os.path.join(SOCKET_DIR, sock))
            self.assertEqual((pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name,
                              oct(st.st_mode & 0o777)), ("mailgate", "postfix", "0o660"), sock)
        self.assertEqual(process_groups(s.procs["policy"].pid), ["mailgate"])
        self.assertEqual(process_groups(s.procs["milter"].pid), ["mailgate"])
        self.assertEqual(process_groups(s.procs["tracker"].pid), ["adm", "mailgate"])
        key, _ = s.make_key("acme")
        out = s.swaks(key=key, subject="through the package")
        qid = s.queue_id(out)
        self.assertIsNotNone(qid, out + s.diagnostics())
        wait_for(lambda: "delivered" in s.ctl_ok("message", qid), 30, "the delivered event")


if __name__ == "__main__":
    unittest.main()
