"""chainlib.py — shared by bench/chain, bench/soak and bench/sessions: builds one
private stack per case (tests/e2e/harness.py: Redis, smtp-sink, private Postfix),
plain, with Debian's OpenDKIM as milter, or with mailgate attached as
contrib/postfix/main.cf.snippet ships it; loads it with smtp-source or smtp_load (bench/smtp_load.cc);
reads the daemons' CPU time and RSS from /proc and checks what reached the sink."""

import os
import re
import shutil
import subprocess
import sys
import threading
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(BENCH_DIR)
sys.path.insert(0, os.path.join(TOP, "tests", "e2e"))
import harness  # noqa: E402
from harness import Stack, wait_for  # noqa: E402

SNIPPET = os.path.join(TOP, "contrib", "postfix", "main.cf.snippet")
SENDER = "bench@shop.example"
RCPT = "rcpt@example.net"
ACCOUNT = "bench"
DOMAIN = "shop.example"
# smtp-source writes From, To, Date, Message-Id and (with -S) Subject only.
MAILGATE_CONFIG = "required_headers = From, To, Subject, Date, Message-Id\n"
# The headers mailgate-milter signs (mailgate-milter(8)), given to OpenDKIM too.
SIGNED = ("From,Reply-To,To,Cc,Subject,Date,Message-Id,MIME-Version,Content-Type,"
          "Content-Transfer-Encoding,Feedback-ID,List-Unsubscribe,List-Unsubscribe-Post")
OVERSIGNED = "From,To,Subject,Date"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def bootstrap(*packages):
    """Installs the build dependencies and `packages` (Debian) and builds build/ if needed."""
    subprocess.run(["bash", os.path.join(BENCH_DIR, "bootstrap.sh")] + list(packages), check=True,
                   stdout=sys.stderr)


def recipe_edits(stack):
    """postconf -e arguments that apply contrib/postfix/main.cf.snippet as shipped, with
    the socket paths (mailgate/policy, mailgate/auth, mailgate/milter) of `stack`."""
    params, name = {}, None
    with open(SNIPPET) as f:
        for line in f:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0].isspace() and name:
                params[name] += " " + line.strip()
                continue
            name, value = (s.strip() for s in line.split("=", 1))
            params[name] = value
    paths = {"mailgate/policy": "policy.sock", "mailgate/auth": "auth.sock", "mailgate/milter": "milter.sock"}
    edits = []
    for name, value in params.items():
        for short, sock in paths.items():
            value = re.sub(r"(?<![\w/])" + re.escape(short) + r"\b", stack.path(sock), value)
        edits.append(["-e", "%s = %s" % (name, value)])
    return edits


# --- cases -------------------------------------------------------------------
class Case:
    """One set-up measured: `kind` plain, opendkim or mailgate; `tls` for the load client
    (STARTTLS, AUTH PLAIN with an API key when `auth`); mailgate `algos` to sign with."""

    def __init__(self, name, kind, tls=False, auth=False, algos=("rsa2048",), client="smtp-source"):
        self.name, self.kind, self.tls, self.auth, self.algos, self.client = name, kind, tls, auth, algos, client

    @property
    def baseline(self):
        return "plain-tls" if self.tls else "plain"


CASES = [
    Case("plain", "plain"),
    Case("opendkim", "opendkim"),
    Case("mailgate", "mailgate"),
    Case("mailgate-dual", "mailgate", algos=("rsa2048", "ed25519")),
    Case("plain-client", "plain", client="smtp_load"),  # smtp_load without TLS: does it keep up with smtp-source?
    Case("plain-tls", "plain", tls=True, client="smtp_load"),
    Case("mailgate-auth-tls", "mailgate", tls=True, auth=True, client="smtp_load"),
]
CASES_BY_NAME = {c.name: c for c in CASES}


class Bench:
    """A started stack for one case: .stack (harness.Stack), .daemons (name -> pid),
    .password (API key for AUTH cases), .dkim_txt (selector -> TXT record)."""

    def __init__(self, case, with_tracker=False, postconf=None, keep=False):
        """`postconf`: a function of the harness.Stack returning more postconf(1) argument lists."""
        self.case, self.keep = case, keep
        self.password = None
        self.dkim_txt = {}
        mailgate = case.kind == "mailgate"
        self.stack = Stack(extra_config=MAILGATE_CONFIG, with_policy=mailgate, with_milter=mailgate,
                           with_tracker=with_tracker and mailgate)
        s = self.stack
        with open(s.conf) as f:  # the shipped default redis_timeout (500ms), not the tests' 300ms
            conf = [line for line in f if not line.startswith("redis_timeout =")]
        with open(s.conf, "w") as f:
            f.writelines(conf)
        s.postconf_edits.append(["-e", "enable_long_queue_ids = yes"])
        if mailgate:
            s.postconf_edits += recipe_edits(s)
        else:
            s.postconf_edits.append(["-e", "smtpd_sasl_auth_enable = no"])  # no Dovecot-protocol server
        if case.kind == "opendkim":
            s.postconf_edits.append(["-e", "smtpd_milters = unix:%s" % s.path("opendkim.sock")])
        s.postconf_edits += postconf(s) if postconf else []
        try:
            steps = [s.start_redis, s.start_sink]
            if mailgate:
                steps.append(s.start_daemons)
            if case.kind == "opendkim":
                steps.append(self._start_opendkim)
            s.start(*steps, s.start_postfix)
            if mailgate:
                self._provision()
        except BaseException:
            self.stop()
            raise

    def _start_opendkim(self):
        s = self.stack
        keys = s.path("opendkim")
        os.makedirs(keys)
        subprocess.run(["opendkim-genkey", "-b", "2048", "-d", DOMAIN, "-s", "s1", "-D", keys], check=True,
                       capture_output=True)
        with open(os.path.join(keys, "s1.txt")) as f:
            self.dkim_txt["s1"] = "".join(re.findall(r'"([^"]*)"', f.read()))
        with open(s.path("opendkim.conf"), "w") as f:
            f.write("Syslog no\nMode s\nDomain %s\nSelector s1\nKeyFile %s/s1.private\n"
                    "Canonicalization relaxed/relaxed\nSignatureAlgorithm rsa-sha256\n"
                    "SignHeaders %s\nOversignHeaders %s\nSocket local:%s\nUMask 000\n"
                    "RequireSafeKeys no\nPidFile %s\nInternalHosts 127.0.0.1\n"
                    % (DOMAIN, keys, SIGNED, OVERSIGNED, s.path("opendkim.sock"), s.path("opendkim.pid")))
        s._spawn("opendkim", ["opendkim", "-f", "-x", s.path("opendkim.conf")])
        wait_for(lambda: os.path.exists(s.path("opendkim.sock")), what="opendkim socket")

    def _provision(self):
        s = self.stack
        s.make_account(ACCOUNT, domains=(DOMAIN,))
        if self.case.auth:
            self.password = s.make_key(ACCOUNT, create_account=False)[0]
        else:
            s.ctl_ok("net", "allow", ACCOUNT, "127.0.0.1")
        for algo in self.case.algos:
            selector = "s1" if algo == "rsa2048" else "e1"
            s.ctl_ok("dkim", "generate", DOMAIN, "--selector", selector, "--algo", algo)
        for line in s.ctl_ok("dkim", "dns", DOMAIN).splitlines():
            m = re.match(r"(\S+)\._domainkey", line)
            if m:
                self.dkim_txt[m.group(1)] = "".join(re.findall(r'"([^"]*)"', line))

    def stop(self):
        self.stack.stop(keep=self.keep)

    # --- what the daemons use ---------------------------------------------
    @property
    def daemons(self):
        """name -> pid of the long-lived processes (without Postfix's)."""
        return {n: p.pid for n, p in self.stack.procs.items() if p.poll() is None}

    def postfix_master(self):
        with open(self.stack.path("queue/pid/master.pid")) as f:
            return int(f.read().split()[0])

    def cpu(self):
        """CPU seconds so far of each daemon, and of Postfix (master, exited and live children)."""
        out = {n: proc_cpu(pid) for n, pid in self.daemons.items()}
        master = self.postfix_master()
        out["postfix"] = proc_cpu(master, children=True) + sum(proc_cpu(pid) for pid in children(master))
        return out

    def sample_postfix(self):
        """Starts a PostfixSampler on this stack's master."""
        return PostfixSampler(self.postfix_master())

    def rss(self):
        """RSS in MB of each daemon, and of the largest of Postfix's smtpd processes."""
        out = {n: proc_rss(pid) for n, pid in self.daemons.items()}
        master = self.postfix_master()
        smtpd = [proc_rss(pid) for pid, ppid, comm in processes() if ppid == master and comm == "smtpd"]
        if smtpd:
            out["smtpd max"] = max(smtpd)
        return out

    # --- what arrived -----------------------------------------------------
    def sink_count(self):
        return sum(1 for _ in os.scandir(self.stack.path("sink")))

    def wait_sink(self, count, timeout=900):
        """Waits until the sink holds `count` messages, as long as deliveries keep coming."""
        last, since = -1, time.time()
        while True:
            n = self.sink_count()
            if n >= count:
                return
            if n != last:
                last, since = n, time.time()
            elif time.time() - since > 60 or time.time() - since > timeout:
                raise TimeoutError("sink has %d of %d messages, none for 60 s; maillog tail:\n%s"
                                   % (n, count, self.stack.maillog()[-3000:]))
            time.sleep(0.02)

    def clear_sink(self):
        d = self.stack.path("sink")
        for e in os.scandir(d):
            os.unlink(e.path)

    def check_sink(self, expected, verify_one=True):
        """Counts the sink's messages by their DKIM-Signature algorithms and verifies one
        message's signatures with python3-dkim; raises unless each of the `expected`
        messages carries one signature per expected algorithm."""
        want = sorted({"rsa2048": "rsa-sha256", "ed25519": "ed25519-sha256"}[a] for a in self.algos())
        files = sorted(e.path for e in os.scandir(self.stack.path("sink")))
        bad = 0
        for path in files:
            with open(path, "rb") as f:
                header = f.read().split(b"\n\n", 1)[0]
            algos = sorted(m.decode() for m in re.findall(rb"^DKIM-Signature:.*?\ba=([\w-]+)", header, re.M | re.S))
            bad += algos != want
        if len(files) != expected or bad:
            raise RuntimeError("%s: sink has %d messages (expected %d), %d without exactly the signatures %s"
                               % (self.case.name, len(files), expected, bad, want))
        if verify_one and want and files:
            self.verify(files[-1], len(want))
        return {"messages": len(files), "signatures": want}

    def algos(self):
        return {"opendkim": ("rsa2048",), "mailgate": self.case.algos}.get(self.case.kind, ())

    def verify(self, path, count):
        """Verifies the `count` DKIM signatures of one sink message (python3-dkim, keys from the set-up)."""
        import dkim  # python3-dkim, for /usr/bin/python3
        with open(path, "rb") as f:
            data = f.read()
        data = data[data.index(b"Received:"):] if b"Received:" in data else data  # smtp-sink's X- lines
        data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")

        def dns(name, timeout=5):
            sel = name.decode().split("._domainkey")[0]
            return self.dkim_txt.get(sel, "").encode()

        d = dkim.DKIM(data)
        for i in range(count):
            if not d.verify(idx=i, dnsfunc=dns):
                raise RuntimeError("%s: signature %d of %s does not verify" % (self.case.name, i, path))

    def accepted(self):
        """mailgate's `accepted` outcomes recorded in Redis (the account's day counters)."""
        keys = self.stack.redis("--scan", "--pattern", "mg:stats:{%s}:*" % ACCOUNT).split()
        return sum(int(self.stack.redis("HGET", k, "accepted").strip() or 0) for k in keys)


# --- load --------------------------------------------------------------------
def send(bench, messages, sessions=20, size=2048):
    """Sends `messages` with the case's client; returns the client's CPU seconds."""
    s = bench.stack
    if bench.case.client == "smtp-source":
        argv = ["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(size), "-S", "bench",
                "-f", SENDER, "-t", RCPT, "127.0.0.1:%d" % s.smtp_port]
    else:  # bench/smtp_load.cc: STARTTLS, AUTH PLAIN with the API key from $MG_BENCH_KEY
        argv = [os.path.join(harness.BUILD_DIR, "bench", "smtp_load"),
                str(s.smtp_port), str(messages), str(sessions), str(size)]
        argv += ["--starttls"] if bench.case.tls else []
        argv += ["--user", ACCOUNT] if bench.password else []
    env = dict(os.environ, MG_BENCH_KEY=bench.password or "")
    with open(s.path("client.log"), "ab") as log:
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s\n%s" % (argv[0], p.returncode, s.log("client")[-2000:],
                                                       s.maillog()[-2000:]))
    return ru.ru_utime + ru.ru_stime


# --- /proc -------------------------------------------------------------------
def _stat(pid):
    with open("/proc/%d/stat" % pid) as f:
        text = f.read()
    comm = text[text.index("(") + 1:text.rindex(")")]
    return comm, text.rsplit(")", 1)[1].split()


def proc_cpu(pid, children=False):
    """utime + stime (and with `children`, of the reaped children) in seconds; 0 if gone."""
    try:
        f = _stat(pid)[1]
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    ticks = int(f[11]) + int(f[12]) + ((int(f[13]) + int(f[14])) if children else 0)
    return ticks / CLK_TCK


def proc_threads(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))
    except FileNotFoundError:
        return 0


def proc_rss(pid, field="VmRSS"):
    """RSS (or another /proc/PID/status size, e.g. VmHWM, the peak RSS) in MB; 0 if gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except FileNotFoundError:
        pass
    return 0.0


class PostfixSampler(threading.Thread):
    """Reads the CPU time of the Postfix master's children every 0.1 s, so that
    processes which exit (smtpd after max_use sessions) count under their name too;
    stop() returns CPU seconds by program (smtpd, cleanup, smtp, ...) since the start,
    short of each exited process's last 0.1 s at most."""

    def __init__(self, master):
        super().__init__(daemon=True)
        self.master = master
        self.first = {pid: proc_cpu(pid) for pid in children(master)}
        self.last = {}
        self.done = threading.Event()
        self.start()

    def sample(self):
        for pid in children(self.master):
            try:
                comm, f = _stat(pid)
            except (FileNotFoundError, ProcessLookupError):
                continue
            self.last[pid] = (comm, (int(f[11]) + int(f[12])) / CLK_TCK)

    def run(self):
        while not self.done.wait(0.1):
            self.sample()

    def stop(self):
        self.done.set()
        self.join()
        self.sample()
        out = {}
        for pid, (comm, t) in self.last.items():
            out[comm] = out.get(comm, 0.0) + t - self.first.get(pid, 0.0)
        return out


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(c) for c in f.read().split()]
    except FileNotFoundError:
        return []


def processes():
    """(pid, ppid, comm) of every process."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                comm, f = _stat(int(d))
            except (FileNotFoundError, ProcessLookupError):
                continue
            out.append((int(d), int(f[1]), comm))
    return out


def machine():
    """What the numbers were taken on."""
    with open("/proc/cpuinfo") as f:
        model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    return {"cpu": model, "cpus": os.cpu_count(), "kernel": os.uname().release,
            "loadavg_at_start": os.getloadavg(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def results_path(name):
    d = os.path.join(BENCH_DIR, "results")
    os.makedirs(d, exist_ok=True)
    return os.path.join(d, "%s-%s.json" % (name, time.strftime("%Y%m%d-%H%M%S", time.gmtime())))


def which(*tools):
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise SystemExit("missing: " + " ".join(missing))
