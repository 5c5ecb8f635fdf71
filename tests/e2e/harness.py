"""harness.py — starts a private, throw-away mail stack for end-to-end tests
and the demo: redis-server on a free loopback port, smtp-sink as the final
destination, mailgate-policy and mailgate-milter, and a private Postfix
(own config_directory and queue_directory, chroot off, loopback only).
Never touches the system Postfix or Redis. Everything is torn down by stop().

In a sanitizer build (MG_SANITIZE, set by tests/e2e/CMakeLists.txt) every
program the tests start writes its sanitizer reports to files in
SANITIZER_DIR; each Stack's stop() and the end of the run fail on any.

Run `python3 harness.py demo` for the README demo."""

import atexit
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

SOURCE_DIR = os.environ.get("MG_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD_DIR = os.environ.get("MG_BUILD_DIR", os.path.join(SOURCE_DIR, "build"))
TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "postfix")
EXIM_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "exim")
EXIM_ROOT = "/var/tmp/mailgate-exim"  # unpacked exim4-daemon-heavy (install-exim.sh)
EXIM_REEXEC = "/usr/sbin/exim4"  # Exim re-executes itself from its built-in path


SANITIZE = os.environ.get("MG_SANITIZE", "")  # "" (none), "address" (ASan+UBSan) or "thread"


def sanitizer_environment():
    """Sets the sanitizers' options for every program started from here (children inherit
    them) and returns the directory of their report files: a daemon detached or run through
    runuser loses its stderr, so reports go to files (log_path), and any file there is a
    failure. A sanitizer stops the program at its first error, but TSan, whose reports
    are the point of the run, reports every race and lets it run on."""
    directory = os.environ.get("MG_SANITIZER_DIR") or tempfile.mkdtemp(prefix="mg-san-", dir="/var/tmp")
    os.makedirs(directory, exist_ok=True)
    os.chmod(directory, 0o1777)  # daemons write here after switching to their user
    supp = os.path.join(SOURCE_DIR, "tests")
    os.environ["ASAN_OPTIONS"] = "log_path=%s/asan:log_exe_name=1:halt_on_error=1:abort_on_error=1:" \
                                 "detect_leaks=1:disable_coredump=1" % directory
    os.environ["UBSAN_OPTIONS"] = "log_path=%s/ubsan:log_exe_name=1:print_stacktrace=1:halt_on_error=1" % directory
    os.environ["LSAN_OPTIONS"] = "suppressions=%s/lsan.supp" % supp
    os.environ["TSAN_OPTIONS"] = "log_path=%s/tsan:log_exe_name=1:halt_on_error=0:second_deadlock_stack=1:" \
                                 "suppressions=%s/tsan.supp" % (directory, supp)
    return directory


SANITIZER_DIR = sanitizer_environment() if SANITIZE else None


def traced_environment():
    """The environment for a program started under strace: LeakSanitizer cannot run
    under ptrace (it would fail the program at exit), so leak checks are off there."""
    env = dict(os.environ)
    if SANITIZE:
        env["ASAN_OPTIONS"] += ":detect_leaks=0"
    return env


def sanitizer_reports():
    """The sanitizer reports written since the last call (each is then marked reported)."""
    if SANITIZER_DIR is None:
        return ""
    texts = []
    for path in sorted(glob.glob(os.path.join(SANITIZER_DIR, "*"))):
        if path.endswith(".reported"):
            continue
        with open(path, errors="replace") as f:
            texts.append("===== %s =====\n%s" % (os.path.basename(path), f.read()))
        os.rename(path, path + ".reported")
    return "\n".join(texts)


@atexit.register
def fail_on_sanitizer_reports():
    """Reports from programs no Stack owned (e.g. a daemon refusing a bad config) fail the run."""
    reports = sanitizer_reports()
    if reports:
        sys.stderr.write("sanitizer reports:\n%s\n" % reports)
        sys.stderr.flush()
        os._exit(1)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=20.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise TimeoutError("timed out waiting for " + what)


def can_connect(addr):
    family = socket.AF_UNIX if isinstance(addr, str) else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            s.connect(addr)
        return True
    except OSError:
        return False


class Stack:
    """One private stack. Call start(); always call stop() (tests use addCleanup)."""

    def __init__(self, on_redis_failure="tempfail", extra_config="", with_policy=True, socket_group="postfix",
                 with_milter=True, with_tracker=False, tracker_log=None, local_milter=False, user="root",
                 redis_persist=False):
        self.dir = tempfile.mkdtemp(prefix="mg-e2e-", dir="/var/tmp")
        os.chmod(self.dir, 0o755)
        self.redis_port = free_port()
        self.sink_port = free_port()
        self.smtp_port = free_port()
        self.procs = {}
        # redis_persist: an append-only file (written before Redis replies, so a SIGKILLed
        # and restarted Redis still holds every write it acknowledged).
        self.redis_persist = redis_persist
        # Without the policy service in smtpd_recipient_restrictions the milter alone decides.
        policy = "check_policy_service { unix:%s/policy.sock%%s }" % self.dir
        self.sender_restrictions = policy % ", policy_context=sender" if with_policy else ""
        self.recipient_restrictions = (policy % ", policy_context=recipient" if with_policy
                                       else "permit_sasl_authenticated, permit_mynetworks, reject")
        self.end_of_data_restrictions = policy % "" if with_policy else ""
        self.milters = "unix:%s/milter.sock" % self.dir if with_milter else ""
        # local_milter: non_smtpd_milters = $smtpd_milters, as the recipe sets it.
        self.non_smtpd_milters = "$smtpd_milters" if local_milter else ""
        self.daemons = ("policy", "milter", "tracker") if with_tracker else ("policy", "milter")
        self.postfix_started = False
        self.transport = []  # transport_maps lines, written at start_postfix()
        # postconf(1) arguments applied before Postfix starts, e.g. ["-e", "mynetworks = 127.0.0.1/32"]
        # or ["-Fe", "127.0.0.1:PORT/inet/process_limit=1"] (one smtpd process).
        self.postconf_edits = []
        self.exim_port = None
        self.exim_symlink = False
        self.conf = os.path.join(self.dir, "mailgate.conf")
        with open(self.conf, "w") as f:
            f.write(
                "redis_server = tcp:127.0.0.1:%d\n"
                "redis_timeout = 300ms\n"
                "policy_listen = unix:%s/policy.sock\n"
                "auth_listen = unix:%s/auth.sock\n"
                "milter_listen = unix:%s/milter.sock\n"
                "socket_group = %s\n"
                "tracker_log = %s\n"
                "on_redis_failure = %s\n"
                "user = %s\n%s"
                % (self.redis_port, self.dir, self.dir, self.dir, socket_group,
                   tracker_log or os.path.join(self.dir, "maillog"), on_redis_failure, user,
                   extra_config)
            )

    # --- processes -------------------------------------------------------
    def _spawn(self, name, argv, **kw):
        with open(os.path.join(self.dir, name + ".log"), "ab") as log:
            self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, **kw)
        return self.procs[name]

    def _kill(self, name, sig=signal.SIGTERM, timeout=10):
        p = self.procs.pop(name, None)
        if p is None or p.poll() is not None:
            return
        p.send_signal(sig)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def start_redis(self):
        self._spawn("redis", ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "yes" if self.redis_persist else "no",
                              "--appendfsync", "no", "--dir", self.dir,
                              "--loglevel", "warning"])
        wait_for(lambda: can_connect(("127.0.0.1", self.redis_port)), what="redis-server")

    def stop_redis(self):
        self._kill("redis", signal.SIGKILL)

    def start_sink(self, name="sink", port=None, flags=()):
        """smtp-sink on `port` (default: the relayhost's); `flags` e.g. ("-r", "RCPT") for 4xx."""
        sink_dir = os.path.join(self.dir, name)
        os.makedirs(sink_dir, exist_ok=True)
        shutil.chown(sink_dir, "nobody")
        port = port or self.sink_port
        self._spawn(name, ["smtp-sink", "-u", "nobody", "-d", sink_dir + "/%Y%m%d%H%M%S."] + list(flags) +
                    ["127.0.0.1:%d" % port, "256"])
        wait_for(lambda: can_connect(("127.0.0.1", port)), what="smtp-sink " + name)
        return port

    def start_daemons(self, names=None, user=None):
        """Starts the daemons in the foreground, as `user` when given (runuser)."""
        names = names or self.daemons
        for name in names:
            argv = [self.binary("mailgate-" + name), "-f", "-c", self.conf]
            self._spawn(name, (["runuser", "-u", user, "--"] if user else []) + argv)
        sockets = {"policy": ("policy.sock", "auth.sock"), "milter": ("milter.sock",), "tracker": ()}
        for name in names:
            for sock in sockets[name]:
                wait_for(lambda: can_connect(self.path(sock)), what="mailgate-%s %s" % (name, sock))

    def start_postfix(self):
        etc = self.path("postfix")
        for sub in ("postfix", "queue", "data", "tls"):
            os.makedirs(self.path(sub), exist_ok=True)
        shutil.chown(self.path("data"), "postfix")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", self.path("tls/key.pem"), "-out", self.path("tls/cert.pem"),
                        "-days", "2", "-subj", "/CN=mailgate-e2e.localdomain"],
                       check=True, capture_output=True)
        values = {"dir": self.dir, "smtp_port": self.smtp_port, "sink_port": self.sink_port,
                  "sender_restrictions": self.sender_restrictions,
                  "recipient_restrictions": self.recipient_restrictions,
                  "end_of_data_restrictions": self.end_of_data_restrictions,
                  "milters": self.milters, "non_smtpd_milters": self.non_smtpd_milters}
        with open(self.path("transport"), "w") as f:
            f.write("".join(line + "\n" for line in self.transport))
        for name in ("main.cf", "master.cf"):
            with open(os.path.join(TEMPLATES, name + ".in")) as src, open(os.path.join(etc, name), "w") as dst:
                dst.write(src.read().format(**values))
        for edit in self.postconf_edits:
            subprocess.run(["postconf", "-c", etc] + edit, check=True, capture_output=True)
        self.postfix("start")
        self.postfix_started = True
        wait_for(lambda: can_connect(("127.0.0.1", self.smtp_port)), what="postfix smtpd")

    def install_exim(self):
        """Unpacks Exim and creates its Debian-exim user and group: a step before
        the daemons, whose socket_group may be Debian-exim."""
        subprocess.run(["bash", os.path.join(EXIM_DIR, "install-exim.sh"), EXIM_ROOT], check=True,
                       capture_output=True)

    def start_exim(self):
        """A private Exim (Debian's exim4-daemon-heavy, unpacked by install_exim) with contrib/exim included."""
        if not os.path.lexists(EXIM_REEXEC):
            os.symlink(os.path.join(EXIM_ROOT, "usr/sbin/exim4"), EXIM_REEXEC)
            self.exim_symlink = True
        self.exim_port = free_port()
        os.makedirs(self.path("exim/spool"), exist_ok=True)
        for d in ("exim", "exim/spool"):
            shutil.chown(self.path(d), "Debian-exim", "Debian-exim")
        values = {"dir": self.dir, "source": SOURCE_DIR, "exim_port": self.exim_port, "sink_port": self.sink_port}
        with open(os.path.join(EXIM_DIR, "exim.conf.in")) as src, open(self.path("exim.conf"), "w") as dst:
            dst.write(src.read().format(**values))
        self._spawn("exim", [EXIM_REEXEC, "-C", self.path("exim.conf"), "-bdf", "-q1m"])
        wait_for(lambda: can_connect(("127.0.0.1", self.exim_port)), what="exim")

    def postfix(self, *args):
        r = subprocess.run(["postfix", "-c", self.path("postfix")] + list(args),
                           capture_output=True, text=True)
        if r.returncode != 0 and args[0] == "start":
            raise RuntimeError("postfix start failed: " + r.stdout + r.stderr)
        return r

    def start(self, *steps):
        """Runs `steps` (default: Redis, smtp-sink, the daemons, Postfix); if
        one fails, stops what was started and re-raises."""
        try:
            for step in steps or (self.start_redis, self.start_sink, self.start_daemons, self.start_postfix):
                step()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, keep=False):
        if self.postfix_started:
            if self.postfix("stop").returncode != 0:
                self.postfix("abort")
            self.postfix_started = False
        self.exim_port = None
        for name in list(self.procs):
            self._kill(name)
        if self.exim_symlink:
            os.unlink(EXIM_REEXEC)
            self.exim_symlink = False
        if not keep and os.environ.get("MG_E2E_KEEP") is None:
            shutil.rmtree(self.dir, ignore_errors=True)
        reports = sanitizer_reports()
        if reports:
            raise AssertionError("sanitizer reports from the stack's programs:\n" + reports)

    # --- helpers ---------------------------------------------------------
    def path(self, name):
        return os.path.join(self.dir, name)

    @staticmethod
    def binary(name):
        if os.environ.get("MG_INSTALLED"):  # the Debian package's binaries
            return os.path.join("/usr/sbin", name)
        sub = "tools" if name == "mailgatectl" else name.replace("mailgate-", "")
        return os.path.join(BUILD_DIR, sub, name)

    def log(self, name):
        try:
            with open(self.path(name + ".log"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def maillog(self):
        try:
            with open(self.path("maillog"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def swaks(self, *extra, to="bob@example.net", sender="alice@example.org", subject="e2e test",
              key=None, user="", mech="PLAIN", body=None, port=None, tls=True, headers=None, data=None):
        """Sends one message; with `key`, with AUTH (the key is the password), over STARTTLS
        unless tls is False. `port` defaults to the Postfix smtpd. swaks writes Date, To,
        From, Subject (unless it is None) and Message-Id; `headers` (default MIME-Version and Content-Type)
        are added. `data` replaces the whole message (header and body, LF line ends)."""
        argv = ["swaks", "--server", "127.0.0.1", "--port", str(port or self.smtp_port), "--from", sender or "<>",
                "--to", to, "--timeout", "60"] + (["--h-Subject", subject] if subject is not None else [])
        if body is not None:
            argv += ["--body", body]
        if data is not None:
            argv += ["--data", "-"]  # from stdin: a message may be larger than one argv string
        for h in (("MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8") if headers is None else headers):
            argv += ["--add-header", h] if data is None else []
        if key is not None:
            argv += (["--tls"] if tls else []) + ["--auth", mech, "--auth-user", user, "--auth-password", key]
        argv += list(extra)
        r = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                           **({"input": data} if data is not None else {"stdin": subprocess.DEVNULL}))
        return r.stdout + r.stderr

    def sendmail(self, data, sender="root@localhost", to="bob@example.net"):
        """Submits `data` with Postfix's sendmail(1) to the private instance (non-SMTP mail,
        through pickup and cleanup); returns the queue id cleanup logged for it."""
        def picked():
            return set(re.findall(r"postfix/pickup\[\d+\]: (\w+): uid=", self.maillog()))

        before = picked()
        r = subprocess.run(["sendmail", "-C", self.path("postfix"), "-f", sender, to], input=data,
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("sendmail failed: " + r.stdout + r.stderr)
        return wait_for(lambda: min(picked() - before, default=None), 30, "pickup of the submitted message")

    @staticmethod
    def queue_id(client_output):
        """The queue id in Postfix's reply to DATA, as swaks, curl -v or nodemailer print it."""
        m = re.search(r"250 2\.0\.0 Ok: queued as (\w+)", client_output)
        return m.group(1) if m else None

    def sink_messages(self):
        return sorted(glob.glob(self.path("sink/*")))

    @staticmethod
    def sink_recipients(path):
        """The envelope recipients smtp-sink recorded (its X-Rcpt-Args lines)."""
        with open(path, errors="replace") as f:
            return re.findall(r"^X-Rcpt-Args: <([^>]*)>", f.read(), re.M)

    def delivered_headers(self, path):
        """The message header smtp-sink received (after its own X- lines and Received:)."""
        with open(path, errors="replace") as f:
            text = f.read()
        header = text.split("\n\n", 1)[0]
        return header[header.index("Received:"):] if "Received:" in header else header

    def wait_delivered(self, count=1, timeout=30):
        return wait_for(lambda: len(self.sink_messages()) >= count and self.sink_messages(),
                        timeout, "delivery to smtp-sink")

    def redis(self, *args):
        r = subprocess.run(["redis-cli", "-p", str(self.redis_port), "--raw"] + list(args),
                           capture_output=True, text=True, timeout=10)
        return r.stdout

    def ctl(self, *args):
        return subprocess.run([self.binary("mailgatectl"), "-c", self.conf] + list(args),
                              capture_output=True, text=True, timeout=30)

    def ctl_ok(self, *args):
        r = self.ctl(*args)
        if r.returncode != 0:
            raise RuntimeError("mailgatectl %s failed: %s" % (" ".join(args), r.stderr))
        return r.stdout

    def make_account(self, account, domains=("example.org",)):
        """Creates `account` with verified sending `domains`."""
        self.ctl_ok("account", "add", account)
        for d in domains:
            self.ctl_ok("domain", "add", account, d)

    def make_key(self, account="acme", *flags, create_account=True):
        """Creates `account` (sending domain example.org) unless it exists, and a key;
        returns (key, key_id)."""
        if create_account:
            self.make_account(account)
        k = json.loads(self.ctl_ok("--json", "key", "create", account, *flags))
        return k["key"], k["id"]

    def events(self, count=20):
        r = self.ctl("--json", "events", "--count", str(count))
        if r.returncode != 0:
            raise RuntimeError("mailgatectl events failed: " + r.stderr)
        return json.loads(r.stdout)

    def diagnostics(self):
        return "\n".join("----- %s -----\n%s" % (n, self.log(n)[-3000:]) for n in ("policy", "milter")) + \
            "\n----- maillog -----\n" + self.maillog()[-5000:]


class SharedStackTest(unittest.TestCase):
    """A test class whose tests share one stack: subclasses build it in
    makeStack() (a started Stack) and may prepare it further in prepare()."""

    @classmethod
    def makeStack(cls):
        return Stack().start()

    @classmethod
    def prepare(cls):
        pass

    @classmethod
    def setUpClass(cls):
        cls.stack = cls.makeStack()
        try:
            cls.prepare()
        except BaseException:
            cls.stack.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.stack.stop()


def demo():
    """Starts a stack, sends one message through it and prints its recorded event."""
    stack = Stack(with_tracker=True).start()
    try:
        print("mailgate demo: redis-server :%d, Postfix smtpd :%d, smtp-sink :%d, daemons from %s"
              % (stack.redis_port, stack.smtp_port, stack.sink_port, BUILD_DIR))
        key, key_id = stack.make_key("demo")
        print("$ mailgatectl account add demo && mailgatectl key create demo    # key id %s" % key_id)
        out = stack.swaks(subject="mailgate demo", key=key)
        qid = stack.queue_id(out)
        if qid is None:
            print(out)
            print(stack.diagnostics())
            sys.exit("demo: message was not accepted")
        stack.wait_delivered()
        print("sent one message with swaks (STARTTLS, AUTH PLAIN with the API key);"
              " Postfix queued it as %s and smtp-sink received it" % qid)
        # mailgate-tracker reads Postfix's log and records the delivery.
        wait_for(lambda: "delivered" in stack.ctl("message", qid).stdout, 30, "the delivered event")
        print("\n$ mailgatectl message %s\n" % qid)
        r = stack.ctl("message", qid)
        print(r.stdout + r.stderr)
        return 0 if r.returncode == 0 and "delivered" in r.stdout else 1
    finally:
        stack.stop()


if __name__ == "__main__":
    if sys.argv[1:] == ["demo"]:
        sys.exit(demo())
    sys.exit("usage: harness.py demo")
