"""test_hostile.py — hostile clients against mailgate-policy's policy and auth
sockets and mailgate-milter's socket, directly and through the private Postfix:
slowloris, 1,000 idle connections per socket, a 100 MB line, 10,000 pipelined
AUTH lines, a wrong-key brute force, keys one character off, and header values
with NUL, bare CR, invalid UTF-8 or 1 MB long. Each prints what it measured."""

import base64
import os
import resource
import select
import smtplib
import socket
import struct
import threading
import time
import unittest

import harness
from harness import SharedStackTest, Stack, can_connect, wait_for
from test_policy import DUNNO, REQUEST

WRONG_KEY = b"FAIL\t1\treason=wrong api key\n"


def proc_status(pid):
    """VmRSS and VmHWM (peak RSS) of `pid` in KiB."""
    with open("/proc/%d/status" % pid) as f:
        fields = dict(line.split(":", 1) for line in f)
    return {k: int(fields[k].split()[0]) for k in ("VmRSS", "VmHWM")}


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def soft_nofile(pid):
    with open("/proc/%d/limits" % pid) as f:
        line = next(line for line in f if line.startswith("Max open files"))
    return int(line.split()[3])


def read_reply(s):
    data = b""
    while not data.endswith(b"\n\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def raise_own_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


def auth_line(key, ip, request_id=1, padding=""):
    resp = base64.b64encode(b"\0\0" + key.encode()).decode()
    return ("AUTH\t%d\tPLAIN\tservice=smtp\trip=%s\tlip=127.0.0.1\tnologin%s\tresp=%s\n"
            % (request_id, ip, padding, resp)).encode()


class DaemonSockets(unittest.TestCase):
    """The three sockets spoken to directly, with short timeouts so the test stays fast."""

    def setUp(self):
        self.stack = Stack(extra_config="policy_request_timeout = 2s\npolicy_idle_timeout = 60s\n"
                                        "auth_fail_limit = 3\nauth_fail_window = 1m\n")
        self.addCleanup(self.stack.stop)
        self.stack.start_redis()
        # Started with a low soft open-files limit (and a higher hard one): each daemon raises it itself.
        low = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (512, 8192))  # noqa: E731
        for name, socks in (("policy", ("policy.sock", "auth.sock")), ("milter", ("milter.sock",))):
            self.stack._spawn(name, [self.stack.binary("mailgate-" + name), "-f", "-c", self.stack.conf],
                              preexec_fn=low)
            for sock in socks:
                wait_for(lambda: can_connect(self.stack.path(sock)), what="mailgate-%s %s" % (name, sock))
        self.policy_pid = self.stack.procs["policy"].pid
        self.milter_pid = self.stack.procs["milter"].pid
        self.stack.make_account("acme")

    def connect(self, name, timeout=10):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        deadline = time.time() + timeout
        while True:
            try:
                s.connect(self.stack.path(name))
                return s
            except BlockingIOError:  # the listen backlog is full until the daemon accepts
                if time.time() > deadline:
                    raise
                time.sleep(0.01)

    def auth_session(self):
        s = self.connect("auth.sock")
        f = s.makefile("rb")
        while f.readline() != b"DONE\n":
            pass
        s.sendall(b"VERSION\t1\t2\nCPID\t42\n")
        return s, f

    def assert_alive(self):
        self.assertIsNone(self.stack.procs["policy"].poll(), "mailgate-policy exited")
        self.assertIsNone(self.stack.procs["milter"].poll(), "mailgate-milter exited")

    def slowloris(self, s, payload, interval=0.5):
        """Sends `payload` one byte per `interval` until the server closes; returns (bytes sent, seconds)."""
        start = time.time()
        for sent in range(min(len(payload), int(10 / interval))):  # 10 s at most
            try:
                s.sendall(payload[sent:sent + 1])
            except (BrokenPipeError, ConnectionResetError):
                return sent, time.time() - start
            if select.select([s], [], [], interval)[0]:
                try:
                    if s.recv(4096) == b"":
                        return sent + 1, time.time() - start
                except ConnectionResetError:
                    return sent + 1, time.time() - start
        return len(payload), time.time() - start

    # An idle timeout that every byte resets cannot stop a client that trickles a request:
    # policy_request_timeout counts from the first byte of a request (auth: of a line).
    def test_slowloris_policy_socket(self):
        with self.connect("policy.sock") as s:
            sent, took = self.slowloris(s, REQUEST)
        print("policy slowloris: closed after %d bytes, %.1f s" % (sent, took))
        self.assertLess(sent, len(REQUEST))
        self.assertGreater(took, 1.5)
        self.assertLess(took, 6)
        self.assertEqual(self.stack.log("policy").count(
            "policy: request not completed within 2000 ms (policy_request_timeout); closing connection"), 1)
        with self.connect("policy.sock") as s:  # others are served as usual
            s.sendall(REQUEST)
            self.assertEqual(read_reply(s), DUNNO)

    def test_slowloris_auth_socket(self):
        s, f = self.auth_session()
        with s:
            sent, took = self.slowloris(s, auth_line("mg_slow", "192.0.2.9"))
        print("auth slowloris: closed after %d bytes, %.1f s" % (sent, took))
        self.assertGreater(took, 1.5)
        self.assertLess(took, 6)
        self.assertEqual(self.stack.log("policy").count(
            "auth: request not completed within 2000 ms (policy_request_timeout); closing connection"), 1)

    # A client pipelining whole requests is not a slow request even when every read ends inside
    # the next one (a busy smtpd's policy connection, or the 10,000-line test under ASan, was cut
    # at policy_request_timeout when the timer ran from the first partial read on).
    def test_steady_pipelining_outlives_the_request_timeout(self):
        for name, payload, answer in (("policy.sock", REQUEST, DUNNO),
                                      ("auth.sock", auth_line("", "192.0.2.2"),
                                       b"FAIL\t1\treason=wrong api key\n")):
            if name == "auth.sock":
                s, f = self.auth_session()
            else:
                s = self.connect(name)
                f = s.makefile("rb")
            with s:
                answers = []
                reader = threading.Thread(target=lambda: answers.extend(iter(
                    lambda: f.read(len(answer)), b"")))
                reader.start()
                half = len(payload) // 2
                s.sendall(payload[:half])
                sent, start = 0, time.time()
                while time.time() - start < 3.5:  # 1.75 x policy_request_timeout
                    s.sendall(payload[half:] + payload[:half])  # ends inside the next request
                    sent += 1
                    time.sleep(0.05)
                s.sendall(payload[half:])
                sent += 1
                s.shutdown(socket.SHUT_WR)
                reader.join(10)
            print("%s: %d pipelined requests over 3.5 s, %d answered" % (name, sent, len(answers)))
            self.assertEqual(answers, [answer] * sent, name)
        self.assertNotIn("policy_request_timeout", self.stack.log("policy"))

    def test_1000_idle_connections_per_socket(self):
        raise_own_nofile(4000)
        self.assertGreaterEqual(soft_nofile(self.policy_pid), 2 * 1000 + 32)
        self.assertEqual(soft_nofile(self.milter_pid), 8192)
        idle = {name: [] for name in ("policy.sock", "auth.sock", "milter.sock")}
        self.addCleanup(lambda: [s.close() for socks in idle.values() for s in socks])
        for name, socks in idle.items():
            for _ in range(1000):
                socks.append(self.connect(name))
        wait_for(lambda: fd_count(self.policy_pid) >= 2000 and fd_count(self.milter_pid) >= 1000, 20,
                 "the daemons to accept every connection")
        print("1,000 idle connections per socket: policy holds %d fds, milter %d fds"
              % (fd_count(self.policy_pid), fd_count(self.milter_pid)))
        # Over policy_max_connections (1000) a new connection is closed at once, not left hanging.
        with self.connect("policy.sock") as s:
            self.assertEqual(s.recv(100), b"")
        with self.connect("milter.sock") as s:  # libmilter has no cap: served beside the idle ones
            self.assert_milter_negotiates(s)
        self.assert_alive()
        for socks in idle.values():
            for s in socks:
                s.close()
            socks.clear()

        def served():
            with self.connect("policy.sock") as s:
                try:
                    s.sendall(REQUEST)
                    return read_reply(s) == DUNNO
                except (BrokenPipeError, ConnectionResetError):
                    return False
        wait_for(served, 10, "a policy answer after the idle connections closed")
        s, f = self.auth_session()
        with s:
            s.sendall(auth_line("", "192.0.2.1"))
            self.assertEqual(f.readline(), WRONG_KEY)
        with self.connect("milter.sock") as s:
            self.assert_milter_negotiates(s)
        wait_for(lambda: fd_count(self.milter_pid) < 100, 20, "the milter to close the idle connections")
        self.assert_alive()

    def assert_milter_negotiates(self, s):
        """SMFIC_OPTNEG (version 6, every action and protocol step) answered with SMFIC_OPTNEG."""
        s.sendall(struct.pack(">IcIII", 13, b"O", 6, 0x1FF, 0x1FFFFF))
        head = s.recv(5)
        self.assertEqual(head[4:5], b"O", head)

    def test_policy_line_of_100_mb(self):
        before = proc_status(self.policy_pid)
        chunk = b"x" * (1 << 20)
        sent = 0
        with self.connect("policy.sock") as s:
            try:
                while sent < 100 << 20:
                    s.sendall(chunk)
                    sent += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            reply = read_reply(s)
        after = proc_status(self.policy_pid)
        print("100 MB policy line: closed after %d MiB sent; VmRSS %d -> %d KiB, VmHWM %d -> %d KiB"
              % (sent >> 20, before["VmRSS"], after["VmRSS"], before["VmHWM"], after["VmHWM"]))
        self.assertEqual(reply, b"action=DEFER malformed policy request: request longer than 65536 bytes\n\n")
        self.assertLess(sent, 8 << 20)
        self.assertLess(after["VmHWM"] - before["VmHWM"], 8 * 1024)
        self.assert_alive()

    def test_10000_pipelined_auth_lines(self):
        # Padding makes the lines large against the short answers: a daemon reading everything
        # before its answers are read would take all 10 MB.
        lines = b"".join(auth_line("", "192.0.2.1", i, "\tx=" + "p" * 1000) for i in range(1, 10001))
        s, f = self.auth_session()
        before = proc_status(self.policy_pid)
        s.setblocking(False)
        sent, stalled_at = 0, time.time()
        while sent < len(lines) and time.time() - stalled_at < 1.5:
            if select.select([], [s], [], 0.2)[1]:
                try:
                    sent += s.send(lines[sent:sent + 65536])
                    stalled_at = time.time()
                except BlockingIOError:
                    pass
        accepted_unread = sent
        s.setblocking(True)
        writer = threading.Thread(target=lambda: s.sendall(lines[sent:]))
        writer.start()
        answers = [f.readline() for _ in range(10000)]
        writer.join()
        s.close()
        after = proc_status(self.policy_pid)
        print("10,000 pipelined AUTH lines (%d bytes): %d bytes (%d lines) taken while no answer was read; "
              "VmHWM %d -> %d KiB" % (len(lines), accepted_unread, accepted_unread // (len(lines) // 10000),
                                      before["VmHWM"], after["VmHWM"]))
        # Bounded by the answers the daemon holds (kMaxPendingOutput) and the socket buffers.
        self.assertLess(accepted_unread // len(auth_line("", "192.0.2.1", 5000, "\tx=" + "p" * 1000)), 7000)
        self.assertEqual(answers, [b"FAIL\t%d\treason=wrong api key\n" % i for i in range(1, 10001)])
        # ASan's allocator keeps freed memory in quarantine (256 MB by default): the memory
        # bound is checked in the plain build only; the bytes-taken bound above holds in both.
        if not harness.SANITIZE:
            self.assertLess(after["VmHWM"] - before["VmHWM"], 16 * 1024)
        self.assert_alive()

    def auth_attempt(self, key, ip):
        s, f = self.auth_session()
        with s:
            s.sendall(auth_line(key, ip))
            return f.readline()

    def commandstats(self):
        calls = {}
        for line in self.stack.redis("INFO", "commandstats").splitlines():
            if line.startswith("cmdstat_"):
                name, stats = line[len("cmdstat_"):].split(":", 1)
                calls[name] = int(dict(kv.split("=") for kv in stats.split(","))["calls"])
        return calls

    def test_brute_force_from_one_address(self):
        before = self.commandstats()
        answers = [self.auth_attempt("mg_guess%d" % i, "192.0.2.7") for i in range(50)]
        after = self.commandstats()
        # auth_fail_limit = 3: three answers, then the connection is dropped (Postfix: 454 4.7.0).
        self.assertEqual(answers, [WRONG_KEY] * 3 + [b""] * 47)
        writes = {c: after.get(c, 0) - before.get(c, 0) for c in ("incr", "expire", "set", "hset")}
        print("50 wrong keys from one address: Redis writes %s" % writes)
        self.assertEqual(writes, {"incr": 3, "expire": 3, "set": 0, "hset": 0})
        log = self.stack.log("policy")
        self.assertEqual(log.count("auth: fail: client=[192.0.2.7]"), 3)
        self.assertEqual(log.count("auth: throttled: client=[192.0.2.7] after 3 failed attempts (auth_fail_limit); "
                                   "its attempts are refused until 60s pass without one (auth_fail_window)"), 1)
        self.assertNotIn("too many failed attempts", log)  # one line for the window, not one per attempt
        self.assertEqual(self.auth_attempt("mg_guess", "192.0.2.8"), WRONG_KEY)  # other addresses unaffected

    def test_keys_one_character_off(self):
        # The key is looked up by its SHA-256 (key:<sha256> in Redis), never compared byte by
        # byte, so there is no timing oracle; and a key that matches a real one except in its
        # first or last character is just another unknown hash.
        key, key_id = self.stack.make_key("acme", create_account=False)
        other = lambda c: "A" if c != "A" else "B"  # noqa: E731
        last_off = key[:-1] + other(key[-1])
        first_off = other(key[0]) + key[1:]
        self.assertEqual(self.auth_attempt(last_off, "192.0.2.21"), WRONG_KEY)
        self.assertEqual(self.auth_attempt(first_off, "192.0.2.22"), WRONG_KEY)
        self.assertEqual(self.auth_attempt(key + "x", "192.0.2.23"), WRONG_KEY)
        self.assertEqual(self.auth_attempt(key[:-1], "192.0.2.24"), WRONG_KEY)
        self.assertEqual(self.auth_attempt(key, "192.0.2.25"), b"OK\t1\tuser=acme/%s\n" % key_id.encode())


if __name__ == "__main__":
    unittest.main()


class MilterHostileHeaders(SharedStackTest):
    """Hostile header bytes through the private Postfix into the milter (raw bytes with
    smtplib, not swaks, which would re-encode them): a 1 MB header line is refused with
    the milter's exact reply; NUL, a bare CR and invalid UTF-8 in header values are
    accepted, delivered and recorded, and the milter keeps serving."""

    @classmethod
    def prepare(cls):
        cls.key, _ = cls.stack.make_key("acme")

    def send(self, extra_header, subject):
        from fault_load import Load
        s = Load(self.stack, self.key)._connect()
        try:
            msg = (b"From: <alice@example.org>\r\nTo: <bob@example.net>\r\nSubject: " + subject +
                   b"\r\nMessage-ID: <" + subject + b"@example.org>\r\nDate: Thu, 03 Dec 2026 10:00:00 +0000\r\n"
                   b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n" + extra_header + b"\r\n\r\nbody\r\n")
            try:
                s.sendmail("alice@example.org", ["bob@example.net"], msg)
                return 250, b""
            except smtplib.SMTPDataError as e:
                return e.smtp_code, e.smtp_error
        finally:
            s.quit()

    def test_a_1_mb_header_line_is_refused(self):
        code, text = self.send(b"X-Long: " + b"a" * (1024 * 1024), b"long")
        self.assertEqual((code, text), (550, b"5.6.0 header line longer than 998 octets cannot be folded"))

    def test_nul_bare_cr_and_invalid_utf8_are_delivered(self):
        before = len(self.stack.sink_messages())
        for header, subject in ((b"X-Nul: a\0b", b"nul"), (b"X-Cr: a\rb", b"cr"),
                                (b"X-Bad: \xc3\x28 \xed\xa0\x80 \xff", b"utf8")):
            self.assertEqual(self.send(header, subject), (250, b""), subject)
        self.stack.wait_delivered(before + 3)
        self.assertIsNone(self.stack.procs["milter"].poll())
        msgids = [e["message_id"] for e in self.stack.events(50) if e["status"] == "accepted"]
        for subject in ("nul", "cr", "utf8"):
            self.assertIn("<%s@example.org>" % subject, msgids)
