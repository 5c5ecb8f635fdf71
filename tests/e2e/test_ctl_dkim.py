"""test_ctl_dkim.py — `mailgatectl dkim` against a real redis-server:
generate (RSA and Ed25519) prints the record to publish, import takes an
openssl-made key, list/dns/remove, and the errors for bad input; export
writes private key files that are never readable by others, not even for a
moment, never through a planted link, and refuses a directory Exim cannot read."""

import grp
import os
import pwd
import re
import stat
import subprocess
import tempfile
import unittest

from harness import Stack, traced_environment


class CtlDkim(unittest.TestCase):
    def setUp(self):
        self.stack = Stack()
        self.addCleanup(self.stack.stop)
        self.stack.start_redis()

    def test_generate_import_list_dns_remove(self):
        out = self.stack.ctl_ok("dkim", "generate", "Shop.Example", "--selector", "s1")
        self.assertIn("DKIM key rsa-sha256 (2048 bits) stored for shop.example, selector s1; publish:", out)
        self.assertIn('s1._domainkey.shop.example. IN TXT ( "v=DKIM1; k=rsa; p=MIIBIjAN', out)
        out = self.stack.ctl_ok("dkim", "generate", "shop.example", "--algo", "ed25519", "--selector", "e1")
        self.assertIn('e1._domainkey.shop.example. IN TXT ( "v=DKIM1; k=ed25519; p=', out)
        with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as f:
            f.write(subprocess.run(["openssl", "genrsa", "-traditional", "1024"], capture_output=True,
                                   text=True, check=True).stdout)
        self.addCleanup(os.unlink, f.name)
        self.stack.ctl_ok("dkim", "import", "news.example", "--selector", "old", "--key", f.name)
        listing = self.stack.ctl_ok("dkim", "list")
        self.assertIn("news.example  old", listing)
        self.assertRegex(listing, r"news.example  old +rsa-sha256 +1024 ")
        self.assertIn("ed25519-sha256", listing)
        dns = self.stack.ctl_ok("dkim", "dns", "shop.example")
        self.assertEqual(dns.count("._domainkey.shop.example. IN TXT"), 2)
        self.stack.ctl_ok("dkim", "remove", "shop.example", "--selector", "s1")
        self.assertEqual(self.stack.ctl_ok("dkim", "dns", "shop.example").count("IN TXT"), 1)
        self.assertNotIn("PRIVATE KEY", listing + dns)

    def test_errors(self):
        r = self.stack.ctl("dkim", "generate", "shop.example", "--algo", "dsa")
        self.assertEqual((r.returncode, r.stderr),
                         (1, 'mailgatectl: unknown algorithm "dsa": expected rsa2048 or ed25519\n'))
        with tempfile.NamedTemporaryFile("w", suffix=".pem") as f:
            f.write(subprocess.run(["openssl", "genrsa", "512"], capture_output=True, text=True).stdout)
            f.flush()
            r = self.stack.ctl("dkim", "import", "shop.example", "--selector", "s", "--key", f.name)
        self.assertEqual(r.stderr, "mailgatectl: RSA key of 512 bits: DKIM needs at least 1024\n")
        r = self.stack.ctl("dkim", "dns", "none.example")
        self.assertEqual(r.stderr, "mailgatectl: no DKIM key for none.example\n")
        r = self.stack.ctl("dkim", "import", "shop.example", "--selector", "s", "--key", "/nonexistent.pem")
        self.assertEqual(r.stderr, "mailgatectl: /nonexistent.pem: cannot open\n")


class CtlDkimExport(unittest.TestCase):
    """`dkim export DIR --group mail` (mail stands for Debian-exim, which exists
    only where Exim is installed)."""

    def setUp(self):
        self.stack = Stack()
        self.addCleanup(self.stack.stop)
        self.stack.start_redis()
        self.stack.ctl_ok("dkim", "generate", "x.example", "--selector", "s1")
        self.dir = self.stack.path("keys")
        self.mail_gid = grp.getgrnam("mail").gr_gid

    def export(self, directory=None, umask=0o022, strace=None, group="mail"):
        argv = [self.stack.binary("mailgatectl"), "-c", self.stack.conf, "dkim", "export", directory or self.dir,
                "--group", group]
        if strace:
            argv = ["strace", "-f", "-o", strace, "-e", "trace=openat,fchmod,fchown,write,rename,renameat,renameat2"] + argv
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, preexec_fn=lambda: os.umask(umask),
                              env=traced_environment() if strace else None)

    def test_missing_directory_is_made_for_the_group(self):
        r = self.export()
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertEqual(r.stdout, "1 keys of 1 domains exported to %s (group mail)\n" % self.dir)
        st = os.stat(self.dir)
        self.assertEqual((oct(stat.S_IMODE(st.st_mode)), st.st_uid, st.st_gid), ("0o750", 0, self.mail_gid))
        for name in ("x.example.s1.pem", "owners"):
            st = os.lstat(os.path.join(self.dir, name))
            self.assertEqual((oct(stat.S_IMODE(st.st_mode)), st.st_uid, st.st_gid), ("0o640", 0, self.mail_gid), name)
        with open(os.path.join(self.dir, "owners")) as f:
            self.assertEqual(f.read(), "# written by mailgatectl dkim export; do not edit\nx.example.s1:\n")

    def test_key_is_private_from_creation_whatever_the_umask(self):
        """The key file is created 0600 with O_EXCL|O_NOFOLLOW and gets its group
        and 0640 before the first byte of the key is written (strace)."""
        os.mkdir(self.dir, 0o750)
        os.chown(self.dir, 0, self.mail_gid)
        for umask in (0, 0o022):
            trace = self.stack.path("strace.%o" % umask)
            r = self.export(umask=umask, strace=trace)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(trace) as f:
                calls = f.read()
            m = re.search(r'openat\(\d+, "x\.example\.s1\.pem\.tmp", ([A-Z_|]+), (0\d+)\) += (\d+)', calls)
            self.assertIsNotNone(m, calls[-3000:])
            flags, mode, fd = m.group(1).split("|"), m.group(2), m.group(3)
            self.assertTrue({"O_CREAT", "O_EXCL", "O_NOFOLLOW"} <= set(flags), flags)
            self.assertEqual(mode, "0600")
            after = calls[m.end():]
            chmod = re.search(r"fchmod\(%s, 0640\) += 0" % fd, after)
            chown = re.search(r"fchown\(%s, -1, %d\) += 0" % (fd, self.mail_gid), after)
            write = re.search(r"write\(%s, \"-----BEGIN PRIVATE KEY" % fd, after)
            self.assertTrue(chmod and chown and write, after[:3000])
            self.assertLess(max(chmod.start(), chown.start()), write.start())
            st = os.stat(os.path.join(self.dir, "x.example.s1.pem"))
            self.assertEqual(oct(stat.S_IMODE(st.st_mode)), "0o640")

    def test_planted_link_at_the_temporary_name_is_not_followed(self):
        os.mkdir(self.dir, 0o750)
        os.chown(self.dir, 0, self.mail_gid)
        victim = self.stack.path("victim")
        with open(victim, "w") as f:
            f.write("victim\n")
        os.chmod(victim, 0o644)
        os.symlink(victim, os.path.join(self.dir, "x.example.s1.pem.tmp"))
        os.symlink(victim, os.path.join(self.dir, "owners.tmp"))
        r = self.export()
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(victim) as f:
            self.assertEqual(f.read(), "victim\n")
        self.assertEqual(oct(stat.S_IMODE(os.stat(victim).st_mode)), "0o644")
        key = os.path.join(self.dir, "x.example.s1.pem")
        self.assertTrue(stat.S_ISREG(os.lstat(key).st_mode))
        with open(key) as f:
            self.assertIn("PRIVATE KEY", f.read())
        self.assertFalse(os.path.lexists(key + ".tmp"))

    def test_concurrent_exports_all_succeed_with_whole_files(self):
        """Two exports at once (cron and an admin) both write DIR/name.tmp: one
        must wait for the other, never rename the other's half-written file
        into place nor fail with "cannot replace"."""
        for i in range(20):
            self.stack.ctl_ok("dkim", "generate", "d%d.example" % i, "--selector", "s1", "--algo", "ed25519")
        os.mkdir(self.dir, 0o750)
        os.chown(self.dir, 0, self.mail_gid)
        argv = [self.stack.binary("mailgatectl"), "-c", self.stack.conf, "dkim", "export", self.dir, "--group", "mail"]
        for _ in range(5):
            runs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(6)]
            for p in runs:
                out, err = p.communicate(timeout=60)
                self.assertEqual((p.returncode, err), (0, ""))
                self.assertEqual(out, "21 keys of 21 domains exported to %s (group mail)\n" % self.dir)
        names = sorted(os.listdir(self.dir))
        self.assertEqual(len(names), 22, names)
        for name in names:
            with open(os.path.join(self.dir, name)) as f:
                text = f.read()
            self.assertTrue(text.endswith("-----END PRIVATE KEY-----\n") if name.endswith(".pem")
                            else text.count("\n") == 22, name)

    def test_directory_others_may_change_is_refused(self):
        """A DIR, or a directory above it, that a local user may write, and a link
        a local user owns, are refused before anything is written or removed: the
        user could swap the keys Exim signs with, or point DIR at another
        directory whose *.pem files the export would remove."""
        nobody = pwd.getpwnam("nobody").pw_uid
        victim = self.stack.path("victim")
        os.mkdir(victim, 0o750)
        os.chown(victim, 0, self.mail_gid)
        with open(os.path.join(victim, "tls.pem"), "w") as f:
            f.write("a key of something else\n")
        open_dir = self.stack.path("open")
        os.mkdir(open_dir)
        os.chmod(open_dir, 0o777)
        link = self.stack.path("link")
        os.symlink(victim, link)
        os.lchown(link, nobody, -1)
        owned = self.stack.path("owned")
        os.mkdir(owned, 0o750)
        os.chown(owned, nobody, self.mail_gid)
        for path, culprit, mode in ((os.path.join(open_dir, "keys"), open_dir, "0777 root:root"),
                                    (link, link, "0777 nobody:root"),
                                    (owned, owned, "0750 nobody:mail")):
            r = self.export(path)
            self.assertEqual((r.returncode, r.stdout, r.stderr), (1, "", (
                "mailgatectl: %s: others than root may change it (%s), and so the keys Exim signs with; export into "
                "a directory only root can write\n") % (culprit, mode)), path)
        self.assertEqual(sorted(os.listdir(victim)), ["tls.pem"])
        self.assertEqual(os.listdir(owned), [])
        # A link root owns to a directory only root can write is followed.
        os.lchown(link, 0, -1)
        r = self.export(link)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertEqual(sorted(os.listdir(victim)), ["owners", "x.example.s1.pem"])

    def test_directory_exim_cannot_read_is_refused(self):
        os.mkdir(self.dir, 0o700)
        r = self.export()
        self.assertEqual((r.returncode, r.stdout, r.stderr), (1, "", (
            "mailgatectl: %s: group mail cannot read this directory (0700 root:root), so Exim would send mail "
            "unsigned; run chgrp mail %s && chmod 0750 %s\n") % (self.dir, self.dir, self.dir)))
        self.assertEqual(os.listdir(self.dir), [])
        # A parent the group cannot enter.
        parent = self.stack.path("closed")
        os.mkdir(parent, 0o700)
        r = self.export(os.path.join(parent, "keys"))
        self.assertEqual((r.returncode, r.stderr), (1, (
            "mailgatectl: %s: group mail cannot enter this directory (0700 root:root), so Exim would send mail "
            "unsigned; run chmod o+x %s\n") % (parent, parent)))
        r = self.export(group="no-such-group")
        self.assertEqual((r.returncode, r.stderr), (
            1, "mailgatectl: group no-such-group does not exist; give the group Exim runs as with --group\n"))


if __name__ == "__main__":
    unittest.main()
