"""fault_load.py — a counting load driver for fault tests: N SMTP sessions
(STARTTLS, AUTH PLAIN with an API key) through a harness.Stack's private
Postfix, each message with a unique Message-ID and X-Letter-Id; every attempt's
SMTP outcome is kept (250 with queue id, 4xx or 5xx with its text), 4xx
messages are sent again once the fault is over (retry_tempfailed), and
count() tallies what reached smtp-sink and which `accepted` events Redis holds,
by unique id, with duplicates. Also Redis fault helpers (kill, restart, freeze)."""

import collections
import os
import re
import signal
import smtplib
import socket
import ssl
import threading
import time
import uuid

from harness import wait_for

QUEUED = re.compile(r"queued as (\w+)")


class Attempt:
    __slots__ = ("uid", "start", "end", "stage", "code", "text", "qid")

    def __init__(self, uid, start):
        self.uid, self.start, self.end = uid, start, None
        self.stage, self.code, self.text, self.qid = None, None, "", None

    @property
    def kind(self):
        """accepted, tempfail or reject."""
        if self.code == 250:
            return "accepted"
        return "tempfail" if self.code is None or 400 <= self.code < 500 else "reject"


class Load:
    """Sends `total` messages from `sessions` parallel SMTP sessions. start() returns at
    once; join() waits for every message to have had one attempt; retry_tempfailed()
    sends the 4xx ones again until each is accepted or refused for good."""

    def __init__(self, stack, key, total=2000, sessions=20, sender="alice@example.org",
                 rcpt="bob@example.net", tempfail_pause=0.1, body_lines=20):
        self.stack, self.key, self.total, self.sessions = stack, key, total, sessions
        self.sender, self.rcpt = sender, rcpt
        self.tempfail_pause = tempfail_pause  # a session waits this long after a 4xx (or a lost connection)
        self.run = uuid.uuid4().hex[:8]
        self.body = "".join("line %d of a fault test message, some text to carry\r\n" % i for i in range(body_lines))
        self.attempts = collections.defaultdict(list)  # uid -> [Attempt]
        self.lock = threading.Lock()
        self.pending = collections.deque(self.uid(i) for i in range(total))
        self.threads = []
        self.started = None

    def uid(self, i):
        return "fault-%s-%06d" % (self.run, i)

    @staticmethod
    def message_id(uid):
        return "<%s@example.org>" % uid

    def message(self, uid):
        return ("From: Alice <%s>\r\nTo: <%s>\r\nSubject: fault test %s\r\nDate: %s\r\nMessage-ID: %s\r\n"
                "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nX-Letter-Id: %s\r\n\r\n%s"
                % (self.sender, self.rcpt, uid, time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
                   self.message_id(uid), uid, self.body))

    # --- sessions ------------------------------------------------------------
    def _connect(self):
        s = smtplib.SMTP("127.0.0.1", self.stack.smtp_port, timeout=120)
        s.ehlo("load.example")
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s.starttls(context=ctx)
        s.ehlo("load.example")
        code, text = s.docmd("AUTH", "PLAIN " + __import__("base64").b64encode(
            ("\0\0" + self.key).encode()).decode())
        if code != 235:
            try:
                s.quit()
            except (smtplib.SMTPException, OSError):
                pass
            raise smtplib.SMTPResponseException(code, text)
        return s

    def _send_one(self, s, uid):
        """One transaction on session `s`; returns (Attempt, session still usable)."""
        a = Attempt(uid, time.time())
        ok = True
        try:
            for stage, call in (("MAIL", lambda: s.mail(self.sender)), ("RCPT", lambda: s.rcpt(self.rcpt)),
                                ("DATA", lambda: s.data(self.message(uid)))):
                a.stage = stage
                code, text = call()
                if code != 250:
                    a.code, a.text = code, text.decode(errors="replace")
                    s.rset()
                    break
            else:
                a.code, a.text = 250, text.decode(errors="replace")
                m = QUEUED.search(a.text)
                a.qid = m.group(1) if m else None
        except smtplib.SMTPDataError as e:  # DATA itself refused
            a.code, a.text = e.smtp_code, e.smtp_error.decode(errors="replace")
            try:
                s.rset()
            except (smtplib.SMTPException, OSError):
                ok = False
        except (smtplib.SMTPException, OSError) as e:
            a.code, a.text, ok = None, "connection: %r" % e, False
        a.end = time.time()
        return a, ok

    def _worker(self, queue):
        s = None
        while True:
            with self.lock:
                if not queue:
                    break
                uid = queue.popleft()
            if s is None:
                try:
                    s = self._connect()
                except (smtplib.SMTPException, OSError) as e:
                    a = Attempt(uid, time.time())
                    a.stage, a.end = "CONNECT", time.time()
                    a.code = getattr(e, "smtp_code", None)
                    a.text = "connect/auth: %r" % e
                    self._note(a)
                    time.sleep(self.tempfail_pause)
                    continue
            a, ok = self._send_one(s, uid)
            self._note(a)
            if not ok:
                try:
                    s.close()
                except OSError:
                    pass
                s = None
            if a.kind == "tempfail":
                time.sleep(self.tempfail_pause)
        if s is not None:
            try:
                s.quit()
            except (smtplib.SMTPException, OSError):
                pass

    def _note(self, a):
        with self.lock:
            self.attempts[a.uid].append(a)

    def _start(self, queue):
        self.threads = [threading.Thread(target=self._worker, args=(queue,), daemon=True)
                        for _ in range(self.sessions)]
        for t in self.threads:
            t.start()

    def start(self):
        self.started = time.time()
        self._start(self.pending)
        return self

    def join(self, timeout=300):
        deadline = time.time() + timeout
        for t in self.threads:
            t.join(max(0.1, deadline - time.time()))
        if any(t.is_alive() for t in self.threads):
            raise TimeoutError("load sessions still running after %d s" % timeout)

    def retry_tempfailed(self, rounds=5, timeout=120):
        """Sends every message whose last attempt was a 4xx (or a lost connection) again,
        up to `rounds` times; returns the uids still not accepted or refused."""
        for _ in range(rounds):
            todo = collections.deque(self.last_tempfailed())
            if not todo:
                return []
            self._start(todo)
            self.join(timeout)
        return self.last_tempfailed()

    # --- what happened ---------------------------------------------------------
    def last(self):
        """uid -> its last Attempt."""
        with self.lock:
            return {uid: att[-1] for uid, att in self.attempts.items()}

    def last_tempfailed(self):
        return sorted(uid for uid, a in self.last().items() if a.kind == "tempfail")

    def accepted_count(self):
        with self.lock:
            return sum(1 for att in self.attempts.values() if att[-1].kind == "accepted")

    def wait_accepted(self, count, timeout=60):
        return wait_for(lambda: self.accepted_count() >= count, timeout, "%d accepted messages" % count)

    def first_accepted_after(self, t):
        """The time of the first 250 reply at or after `t` (None if there was none)."""
        with self.lock:
            ends = [a.end for att in self.attempts.values() for a in att if a.kind == "accepted" and a.end >= t]
        return min(ends, default=None)

    def sink_ids(self):
        """Message-ID uid -> how many copies smtp-sink holds."""
        found = collections.Counter()
        pattern = re.compile(r"^Message-ID: <(fault-%s-\d+)@" % self.run, re.M | re.I)
        for path in self.stack.sink_messages():
            with open(path, errors="replace") as f:
                head = f.read(8192)
            m = pattern.search(head)
            if m:
                found[m.group(1)] += 1
        return found

    def event_ids(self, status="accepted"):
        """uid -> how many events with `status` the events stream holds for it (by msgid)."""
        found = collections.Counter()
        for fields in redis_stream(self.stack):
            msgid = fields.get("msgid", "")
            if fields.get("status") == status and msgid.startswith("<fault-%s-" % self.run):
                found[msgid[1:msgid.index("@")]] += 1
        return found

    def count(self, settle=30):
        """Waits (up to `settle` s) until every accepted message is at the sink, then
        returns the counts: sent (unique messages), accepted (last attempt 250),
        tempfailed (messages that saw at least one 4xx), attempts_4xx, rejected (5xx),
        pending (last attempt still 4xx), delivered and recorded (unique ids),
        sink_duplicates and event_duplicates (extra copies), lost (accepted but not at
        the sink), unrecorded (accepted without an accepted event), unsent (never
        accepted yet at the sink or recorded)."""
        last = self.last()
        accepted = {uid for uid, a in last.items() if a.kind == "accepted"}
        try:
            wait_for(lambda: accepted <= set(self.sink_ids()), settle, "delivery of the accepted messages")
        except TimeoutError:
            pass
        time.sleep(0.5)
        sink, events = self.sink_ids(), self.event_ids()
        with self.lock:
            tempfailed = sum(1 for att in self.attempts.values() if any(a.kind == "tempfail" for a in att))
            attempts_4xx = sum(1 for att in self.attempts.values() for a in att if a.kind == "tempfail")
        never = set(last) - accepted
        return {
            "sent": len(last),
            "accepted": len(accepted),
            "tempfailed": tempfailed,
            "attempts_4xx": attempts_4xx,
            "rejected": sum(1 for a in last.values() if a.kind == "reject"),
            "pending": sum(1 for a in last.values() if a.kind == "tempfail"),
            "delivered": len(sink),
            "recorded": len(events),
            "sink_duplicates": sum(n - 1 for n in sink.values()),
            "event_duplicates": sum(n - 1 for n in events.values()),
            "lost": len(accepted - set(sink)),
            "unrecorded": len(accepted - set(events)),
            "unsent": len(never & (set(sink) | set(events))),
        }

    def tempfail_texts(self):
        """'STAGE code text' -> how many attempts got it."""
        with self.lock:
            return collections.Counter("%s %s %s" % (a.stage, a.code, a.text.split("\n")[0])
                                       for att in self.attempts.values() for a in att if a.kind != "accepted")


def report(name, counts, **extra):
    """Prints one line of counts for the test output (and the note)."""
    fields = dict(counts, **extra)
    print("\n[fault-load] %s: %s" % (name, " ".join("%s=%s" % kv for kv in fields.items())), flush=True)


# --- Redis ----------------------------------------------------------------------
def resp_command(sock_file, *args):
    out = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in
                                             (x.encode() if isinstance(x, str) else x for x in args))
    sock_file.write(out)
    sock_file.flush()
    return resp_read(sock_file)


def resp_read(f):
    line = f.readline()
    if not line:
        raise ConnectionError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind in (b"+", b":"):
        return int(rest) if kind == b":" else rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode(errors="replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [resp_read(f) for _ in range(n)]
    raise RuntimeError("unexpected RESP line %r" % line)


def redis_stream(stack, key="mg:events", batch=1000):
    """Every entry of the stream `key` as a dict of its fields."""
    with socket.create_connection(("127.0.0.1", stack.redis_port), timeout=10) as s:
        f = s.makefile("rwb")
        start = "-"
        while True:
            entries = resp_command(f, "XRANGE", key, start, "+", "COUNT", str(batch))
            for entry_id, flat in entries:
                yield dict(zip(flat[0::2], flat[1::2]))
            if len(entries) < batch:
                return
            start = "(" + entries[-1][0]


def redis_ping(stack, timeout=0.2):
    try:
        with socket.create_connection(("127.0.0.1", stack.redis_port), timeout=timeout) as s:
            return resp_command(s.makefile("rwb"), "PING") == "PONG"
    except (OSError, RuntimeError, ConnectionError):
        return False


def wait_redis_answers(stack, timeout=20):
    """Polls PING every 10 ms; returns the time Redis first answered PONG."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if redis_ping(stack):
            return time.time()
        time.sleep(0.01)
    raise TimeoutError("redis does not answer PING")


def kill_redis(stack):
    p = stack.procs["redis"]
    p.send_signal(signal.SIGKILL)
    p.wait()


def freeze_redis(stack):
    stack.procs["redis"].send_signal(signal.SIGSTOP)


def thaw_redis(stack):
    stack.procs["redis"].send_signal(signal.SIGCONT)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
