"""test_daemon.py — daemon process handling through the private Postfix:
SIGHUP (and SIGTERM/SIGINT) reach only the milter's main thread, so SIGHUP
storms during reloads while mail flows never stop it; and daemons started as
root switch to the configured `user` after opening their sockets."""

import ctypes
import grp
import os
import pwd
import stat
import signal
import subprocess
import threading
import time
import unittest

from harness import Stack, wait_for

SYS_TGKILL = 234  # x86_64
DAEMON_SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGTERM)


def tgkill(pid, tid, sig):
    if ctypes.CDLL(None, use_errno=True).syscall(SYS_TGKILL, pid, tid, sig) != 0:
        raise OSError(ctypes.get_errno(), "tgkill %d/%d" % (pid, tid))


def status(pid, tid=None):
    """/proc status fields of a process (or one of its threads) as a dict."""
    path = "/proc/%d/status" % pid if tid is None else "/proc/%d/task/%d/status" % (pid, tid)
    with open(path) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def threads(pid):
    return sorted(int(t) for t in os.listdir("/proc/%d/task" % pid))


class StackTest(unittest.TestCase):
    USER = "root"

    def setUp(self):
        self.stack = Stack(user=self.USER).start()
        self.addCleanup(self.stack.stop)
        self.key, self.key_id = self.stack.make_key("acme")

    def send(self, n):
        for i in range(n):
            out = self.stack.swaks(key=self.key, subject="message %d" % i)
            self.assertIsNotNone(self.stack.queue_id(out), out + self.stack.diagnostics())

    def assert_delivered_and_recorded(self, n):
        self.stack.wait_delivered(n)
        time.sleep(0.5)
        self.assertEqual(len(self.stack.sink_messages()), n)
        events = self.stack.events(count=n + 10)
        self.assertEqual([e["status"] for e in events], ["accepted"] * n, events)


class MilterSignals(StackTest):
    def milter(self):
        p = self.stack.procs["milter"]
        self.assertIsNone(p.poll(), "mailgate-milter exited:\n" + self.stack.log("milter"))
        return p.pid

    def test_only_the_main_thread_waits_for_the_daemon_signals(self):
        """Structure: every thread but the main one blocks SIGHUP/SIGINT/SIGTERM and
        waits for none of them (a thread in sigwait shows its waited set unblocked in
        SigBlk), so the kernel cannot hand them to libmilter's signal thread; a
        SIGHUP aimed at each other thread is never taken and stops nothing."""
        self.send(1)  # libmilter's threads are all running now
        pid = self.milter()
        bits = sum(1 << (s - 1) for s in DAEMON_SIGNALS)
        others = [t for t in threads(pid) if t != pid]
        for tid in others:
            blocked = int(status(pid, tid)["SigBlk"], 16)
            self.assertEqual(blocked & bits, bits, "thread %d of %s waits for a daemon signal" % (tid, threads(pid)))
        self.assertEqual(int(status(pid)["SigBlk"], 16) & bits, 0, "the main thread is not waiting for signals")
        for tid in others:
            for sig in DAEMON_SIGNALS:
                try:
                    tgkill(pid, tid, sig)
                except ProcessLookupError:
                    pass  # a connection thread that ended meanwhile
        time.sleep(1)
        self.milter()
        self.assertNotIn("stopping", self.stack.log("milter"))
        self.send(1)
        self.assert_delivered_and_recorded(2)

    def test_sighup_storms_during_reloads_while_mail_flows(self):
        pid = self.milter()
        sent = {"signals": 0}
        done = threading.Event()

        def storm():
            while not done.is_set():
                for _ in range(200):  # tight: most arrive while a reload is running
                    os.kill(pid, signal.SIGHUP)
                    sent["signals"] += 1
                time.sleep(0.05)

        stormer = threading.Thread(target=storm)
        stormer.start()
        try:
            self.send(15)
        finally:
            done.set()
            stormer.join()
        self.assertGreaterEqual(sent["signals"], 600)
        wait_for(lambda: self.stack.log("milter").count("reload: configuration") >= 2, 10, "reloads")
        time.sleep(0.5)
        self.milter()
        self.assertNotIn("stopping", self.stack.log("milter"))
        self.assert_delivered_and_recorded(15)
        # And it still stops cleanly, with status 0, on SIGTERM.
        p = self.stack.procs["milter"]
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(30), 0, self.stack.log("milter"))


class DropPrivileges(StackTest):
    """Started as root with user = nobody: sockets opened as root (mode 0660,
    group postfix) and then serves as nobody, reached by Postfix through them."""
    USER = "nobody"

    def test_daemons_run_as_the_configured_user_and_serve(self):
        nobody = pwd.getpwnam("nobody")
        for name in ("policy", "milter"):
            pid = self.stack.procs[name].pid
            wait_for(lambda: "running as user nobody" in self.stack.log(name), 10, name + " switching user")
            st = status(pid)
            self.assertEqual(st["Uid"].split(), [str(nobody.pw_uid)] * 4, name)
            self.assertEqual(st["Gid"].split(), [str(nobody.pw_gid)] * 4, name)
            self.assertEqual(st["Groups"].split(), [str(g) for g in os.getgrouplist("nobody", nobody.pw_gid)], name)
            self.assertEqual(int(st["CapEff"], 16), 0, name)
            self.assertEqual(int(st["CapPrm"], 16), 0, name)
        for sock in ("policy.sock", "auth.sock", "milter.sock"):
            st = os.stat(self.stack.path(sock))
            self.assertEqual(oct(st.st_mode & 0o777), "0o660", sock)
            self.assertEqual((st.st_uid, st.st_gid), (0, grp.getgrnam("postfix").gr_gid), sock)
        self.send(2)  # AUTH, policy and milter, all through Postfix
        self.assert_delivered_and_recorded(2)
        self.assertIn("running as user nobody (uid %d, gid %d)" % (nobody.pw_uid, nobody.pw_gid),
                      self.stack.log("milter"))


class RootWrites(unittest.TestCase):
    """What root writes before the switch to `user` never follows a link the
    user could have planted: the pid file, the sockets' access rights; and the
    start-up checks of what the user must be able to read."""

    def setUp(self):
        self.stack = Stack(user="nobody", with_tracker=True)
        self.addCleanup(self.stack.stop)

    def test_a_symlink_at_the_pid_file_is_replaced_not_followed(self):
        victim = self.stack.path("victim")
        with open(victim, "w") as f:
            f.write("precious\n")
        os.chmod(victim, 0o600)
        pid_file = self.stack.path("policy.pid")
        os.symlink(victim, pid_file)
        p = self.stack._spawn("policy", [self.stack.binary("mailgate-policy"), "-f", "-c", self.stack.conf,
                                         "-p", pid_file])
        wait_for(lambda: "running as user nobody" in self.stack.log("policy"), 10, "the switch to nobody")
        with open(victim) as f:
            self.assertEqual(f.read(), "precious\n")
        self.assertEqual(oct(os.stat(victim).st_mode & 0o777), "0o600")
        st = os.lstat(pid_file)
        self.assertTrue(stat.S_ISREG(st.st_mode), "the pid file is still a symlink")
        self.assertEqual((st.st_uid, oct(st.st_mode & 0o777)), (0, "0o644"))
        with open(pid_file) as f:
            self.assertEqual(f.read(), "%d\n" % p.pid)
        self.assertEqual(sorted(os.listdir(self.stack.dir)),
                         sorted(["mailgate.conf", "policy.log", "policy.pid", "victim", "policy.sock", "auth.sock"]))
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(10), 0, self.stack.log("policy"))

    def test_tracker_refuses_a_log_its_user_cannot_read(self):
        log = self.stack.path("maillog")
        with open(log, "w") as f:
            f.write("")
        os.chmod(log, 0o600)
        r = subprocess.run([self.stack.binary("mailgate-tracker"), "-f", "-c", self.stack.conf],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("fatal: user nobody cannot read tracker_log %s: Permission denied; add nobody to group adm"
                      % log, r.stderr)

    def test_warns_when_the_user_cannot_read_the_config_for_reloads(self):
        os.chmod(self.stack.conf, 0o600)
        self.stack.start(self.stack.start_redis, lambda: self.stack.start_daemons(["policy"]))
        p = self.stack.procs["policy"]
        wait_for(lambda: "running as user nobody" in self.stack.log("policy"), 10, "the switch to nobody")
        self.assertIn("warning: user nobody cannot read %s: Permission denied; SIGHUP reloads will fail until it can"
                      % self.stack.conf, self.stack.log("policy"))
        p.send_signal(signal.SIGHUP)
        wait_for(lambda: "keeping the running configuration" in self.stack.log("policy"), 10, "the failed reload")
        self.assertIsNone(p.poll(), self.stack.log("policy"))


class UnknownUser(unittest.TestCase):
    def test_refuses_to_start_as_root_when_the_user_does_not_exist(self):
        stack = Stack(user="mg-no-such-user")
        self.addCleanup(stack.stop)
        for name in ("policy", "milter", "tracker"):
            r = subprocess.run([stack.binary("mailgate-" + name), "-f", "-c", stack.conf],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 1, name + ": " + r.stderr)
            self.assertIn('fatal: user "mg-no-such-user" does not exist: create it or set user = root in '
                          + stack.conf, r.stderr)


if __name__ == "__main__":
    unittest.main()
