"""test_policy.py — mailgate-policy over its real socket: many requests per
connection, many concurrent connections, Exim-style half-close, garbage,
over-long requests and clients that vanish mid-request. The daemon must keep
serving the others in every case."""

import os
import resource
import shutil
import signal
import socket
import subprocess
import threading
import time
import unittest

from harness import Stack, can_connect, wait_for

REQUEST = (b"request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
           b"client_address=192.0.2.10\nsender=alice@example.org\nrecipient=bob@example.net\n"
           b"queue_id=\ninstance=a1b.2c3d.4\nsasl_method=plain\nsasl_username=acme/k1\n\n")
UNAUTHENTICATED = REQUEST.replace(b"sasl_username=acme/k1", b"sasl_username=")
DUNNO = b"action=DUNNO\n\n"


def read_text(path):
    with open(path) as f:
        return f.read()


class PolicyServer(unittest.TestCase):
    def setUp(self):
        self.stack = Stack(extra_config="policy_idle_timeout = 2s\nauth_cache_ttl = 200ms\n")
        self.addCleanup(self.stack.stop)
        self.stack.start_redis()
        self.stack.start_daemons(names=("policy",))
        self.stack.make_account("acme")

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(self.stack.path("policy.sock"))
        return s

    @staticmethod
    def read_reply(s):
        data = b""
        while not data.endswith(b"\n\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data

    @staticmethod
    def read_to_eof(s):
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return data
            data += chunk

    def assert_still_serving(self):
        with self.connect() as s:
            s.sendall(REQUEST)
            self.assertEqual(self.read_reply(s), DUNNO)
        self.assertIsNone(self.stack.procs["policy"].poll(), "mailgate-policy exited")

    def test_many_requests_per_connection(self):
        with self.connect() as s:
            for _ in range(200):
                s.sendall(REQUEST)
                self.assertEqual(self.read_reply(s), DUNNO)
            s.sendall(REQUEST * 50)  # pipelined
            got = b""
            while got.count(DUNNO) < 50:
                got += s.recv(65536)
            self.assertEqual(got, DUNNO * 50)

    def test_many_concurrent_connections(self):
        socks = [self.connect() for _ in range(150)]
        errors = []

        def client(s):
            try:
                for _ in range(20):
                    s.sendall(REQUEST)
                    if self.read_reply(s) != DUNNO:
                        errors.append("bad reply")
            except OSError as e:
                errors.append(str(e))

        threads = [threading.Thread(target=client, args=(s,)) for s in socks]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for s in socks:
            s.close()
        self.assertEqual(errors, [])

    @unittest.skipUnless(shutil.which("strace"), "needs strace")
    def test_syscalls_per_request(self):
        """One recv and one send per request on the Postfix side; the epoll interest
        set is left alone while answers fit in the socket."""
        with self.connect() as s:
            s.sendall(REQUEST)
            self.assertEqual(self.read_reply(s), DUNNO)
            log = self.stack.path("strace.txt")
            tracer = subprocess.Popen(["strace", "-f", "-c", "-o", log, "-e", "trace=epoll_ctl,sendto,recvfrom",
                                       "-p", str(self.stack.procs["policy"].pid)], stderr=subprocess.PIPE)
            self.addCleanup(lambda: tracer.poll() is None and tracer.kill())
            if b"attached" not in tracer.stderr.readline():  # "strace: Process N attached"
                self.skipTest("strace cannot attach here (ptrace not permitted)")
            time.sleep(0.5)  # and its threads
            for _ in range(200):
                s.sendall(REQUEST)
                self.assertEqual(self.read_reply(s), DUNNO)
            tracer.terminate()
            tracer.wait(10)
        calls = {}
        with open(log) as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 5 and fields[-1] in ("epoll_ctl", "sendto", "recvfrom"):
                    calls[fields[-1]] = int(fields[3])
        self.assertEqual(calls.get("sendto"), 200, calls)
        self.assertLess(calls.get("epoll_ctl", 0), 5, calls)

    def test_exim_half_close(self):
        # Exim's ${readsocket}: new connection, request, shutdown(SHUT_WR), read to EOF.
        for req in (REQUEST, REQUEST.rstrip(b"\n")):
            with self.connect() as s:
                s.sendall(req)
                s.shutdown(socket.SHUT_WR)
                self.assertEqual(self.read_to_eof(s), DUNNO)

    def test_garbage_gets_defer_and_close(self):
        with self.connect() as s:
            s.sendall(b"\x00\x01garbage without equals\n\n")
            self.assertEqual(self.read_to_eof(s),
                             b"action=DEFER malformed policy request: malformed attribute line\n\n")
        with self.connect() as s:
            s.sendall(b"sender=a@x\n\n")
            self.assertEqual(self.read_to_eof(s),
                             b"action=DEFER malformed policy request: missing request attribute\n\n")
        self.assert_still_serving()
        self.assertIn("malformed request", self.stack.log("policy"))

    def test_overlong_request(self):
        with self.connect() as s:
            s.sendall(b"request=smtpd_access_policy\nsender=")
            try:
                s.sendall(b"a" * (70 * 1024))
            except OSError:
                pass  # the server may close while we are still writing
            reply = self.read_to_eof(s)
            self.assertEqual(reply, b"action=DEFER malformed policy request: request longer than 65536 bytes\n\n")
        self.assert_still_serving()

    def test_disconnect_mid_request(self):
        for _ in range(20):
            s = self.connect()
            s.sendall(b"request=smtpd_access_policy\nsender=a@")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()  # RST, not a half-close
        self.assert_still_serving()

    def test_unauthenticated_client(self):
        with self.connect() as s:
            s.sendall(UNAUTHENTICATED)
            self.assertEqual(self.read_reply(s), b"action=530 5.7.0 no username or password\n\n")
        self.assertIn("NOQUEUE: reject: RCPT from [192.0.2.10]: 530 5.7.0 no username or password; "
                      "from=<alice@example.org> to=<bob@example.net> account= key= rule=unauthenticated",
                      self.stack.log("policy"))
        self.stack.ctl_ok("net", "allow", "acme", "192.0.2.0/24")
        self.stack.make_account("other")
        self.stack.ctl_ok("net", "allow", "other", "2001:db8::/32")
        with self.connect() as s:
            time.sleep(0.3)  # auth_cache_ttl: the networks index is reloaded
            s.sendall(UNAUTHENTICATED)
            self.assertEqual(self.read_reply(s), DUNNO)
            s.sendall(UNAUTHENTICATED.replace(b"192.0.2.10", b"2001:db8::25"))
            self.assertEqual(self.read_reply(s), DUNNO)
            s.sendall(UNAUTHENTICATED.replace(b"192.0.2.10", b"198.51.100.1"))
            self.assertEqual(self.read_reply(s), b"action=530 5.7.0 no username or password\n\n")

    def test_unauthenticated_client_redis_down(self):
        self.stack.stop_redis()
        with self.connect() as s:
            s.sendall(UNAUTHENTICATED)
            self.assertEqual(self.read_reply(s), b"action=451 4.3.0 internal service error\n\n")

    def test_sighup_reloads_and_keeps_a_good_config_on_errors(self):
        self.stack.stop_redis()
        with self.connect() as s:
            s.sendall(UNAUTHENTICATED)
            self.assertEqual(self.read_reply(s), b"action=451 4.3.0 internal service error\n\n")
        with open(self.stack.conf) as f:
            good = f.read().replace("on_redis_failure = tempfail", "on_redis_failure = accept")
        with open(self.stack.conf, "w") as f:
            f.write(good)
        p = self.stack.procs["policy"]
        p.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload: configuration" in self.stack.log("policy"), 10, "the reload")
        with self.connect() as s:  # a new connection serves with the new configuration
            s.sendall(UNAUTHENTICATED)
            self.assertEqual(self.read_reply(s), DUNNO)
        with open(self.stack.conf, "a") as f:
            f.write("redis_sever = oops\n")
        p.send_signal(signal.SIGHUP)
        wait_for(lambda: "keeping the running configuration" in self.stack.log("policy"), 10, "the refusal")
        self.assertIn('reload: %s:%d: unknown parameter "redis_sever"; keeping the running configuration'
                      % (self.stack.conf, good.count("\n") + 1), self.stack.log("policy"))
        with self.connect() as s:
            s.sendall(UNAUTHENTICATED)
            self.assertEqual(self.read_reply(s), DUNNO)
        self.assertIsNone(p.poll())
        # A restart-only parameter is named, not applied.
        with open(self.stack.conf, "w") as f:
            f.write(good.replace("policy_idle_timeout = 2s", "policy_idle_timeout = 3s"))
        p.send_signal(signal.SIGHUP)
        wait_for(lambda: "a restart is needed to apply policy_idle_timeout" in self.stack.log("policy"), 10,
                 "the restart-only warning")

    def test_detached_daemon_writes_and_removes_its_pid_file(self):
        self.stack._kill("policy")
        pid_file = self.stack.path("policy.pid")
        r = subprocess.run([self.stack.binary("mailgate-policy"), "-c", self.stack.conf, "-p", pid_file],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)  # the parent returns once the child has detached
        pid = int(wait_for(lambda: os.path.exists(pid_file) and read_text(pid_file).strip(), 10, "pid file"))
        self.addCleanup(lambda: os.path.exists("/proc/%d" % pid) and os.kill(pid, signal.SIGKILL))
        self.assertEqual(os.getsid(pid), pid)  # its own session, no terminal
        with self.connect() as s:
            s.sendall(REQUEST)
            self.assertEqual(self.read_reply(s), DUNNO)
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not os.path.exists(pid_file), 10, "the pid file to go")
        wait_for(lambda: not os.path.exists("/proc/%d" % pid) or
                 read_text("/proc/%d/stat" % pid).split()[2] == "Z", 10, "the daemon to exit")
        self.assertFalse(os.path.exists(self.stack.path("policy.sock")))

    def test_idle_connection_is_closed(self):
        with self.connect() as s:
            s.sendall(REQUEST)
            self.assertEqual(self.read_reply(s), DUNNO)
            s.settimeout(10)
            self.assertEqual(s.recv(100), b"")  # closed by the server after policy_idle_timeout

    def test_sigterm_stops_cleanly(self):
        p = self.stack.procs["policy"]
        p.terminate()
        self.assertEqual(p.wait(10), 0)
        self.assertFalse(os.path.exists(self.stack.path("policy.sock")))
        self.assertIn("stopping", self.stack.log("policy"))


def message_requests(instance, user=b"acme/k1", sender=b"alice@example.org", rcpts=(b"bob@example.net",)):
    """What Postfix sends for one message with the recipe's lists: policy_context=sender
    and =recipient at each RCPT, then END-OF-MESSAGE, all with the message's instance."""
    def req(state, context, rcpt, count):
        return (b"request=smtpd_access_policy\nprotocol_state=%s\nprotocol_name=ESMTP\n"
                b"client_address=192.0.2.10\nclient_name=mx.example.org\nhelo_name=mx.example.org\n"
                b"sender=%s\nrecipient=%s\nrecipient_count=%d\nqueue_id=\ninstance=%s\nsize=%s\n"
                b"sasl_method=PLAIN\nsasl_username=%s\npolicy_context=%s\n\n"
                % (state, sender, rcpt, count, instance, b"1200" if state == b"END-OF-MESSAGE" else b"0",
                   user, context))
    out = []
    for i, rcpt in enumerate(rcpts):
        out += [req(b"RCPT", b"sender", rcpt, i), req(b"RCPT", b"recipient", rcpt, i)]
    return out + [req(b"END-OF-MESSAGE", b"", rcpts[0] if len(rcpts) == 1 else b"", len(rcpts))]


class TransactionRequests(unittest.TestCase):
    """The requests about one message share one read of the account, never
    across transactions or senders, and still count the message once."""

    def setUp(self):
        self.stack = Stack(extra_config="auth_cache_ttl = 500ms\n")
        self.addCleanup(self.stack.stop)
        self.stack.start_redis()
        self.stack.start_daemons(names=("policy",))
        self.stack.make_account("acme")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.stack.path("policy.sock"))
        self.addCleanup(self.sock.close)

    def ask(self, request):
        self.sock.sendall(request)
        return PolicyServer.read_reply(self.sock)

    def commands(self):
        """The daemon's own commands since CONFIG RESETSTAT (not those its scripts run)."""
        calls = {}
        for line in self.stack.redis("INFO", "commandstats").splitlines():
            name, _, rest = line.partition(":")
            if name[8:] in ("hgetall", "hmget", "smismember", "evalsha", "eval", "sismember", "hget"):
                calls[name[8:]] = int(rest.split(",")[0].split("=")[1])
        return calls

    def test_one_message_reads_the_account_once(self):
        self.stack.ctl_ok("limit", "set", "acme", "rate=1000/s", "daily=1000")
        for r in message_requests(b"a1.b0"):  # loads the limits script (NOSCRIPT, EVAL)
            self.assertEqual(self.ask(r), DUNNO)
        self.stack.redis("CONFIG", "RESETSTAT")
        for r in message_requests(b"a1.b1"):
            self.assertEqual(self.ask(r), DUNNO)
        calls = self.commands()
        # Sender context: the account, the sender domain and (for the request that
        # follows) the recipient's sets; recipient context: the limits script; end of
        # message: nothing.
        self.assertEqual(calls, {"hgetall": 1, "hmget": 1, "smismember": 3, "evalsha": 1})
        self.assertEqual(self.stack.redis("GET", "mg:quota:{acme}:" + time.strftime("%Y%m%d", time.gmtime())),
                         "2\n")
        # A second recipient: its own sets, no second count.
        self.stack.redis("CONFIG", "RESETSTAT")
        for r in message_requests(b"a1.b2", rcpts=(b"bob@example.net", b"carol@example.net")):
            self.assertEqual(self.ask(r), DUNNO)
        self.assertEqual(self.commands(), {"hgetall": 1, "hmget": 1, "smismember": 6, "evalsha": 1})

    def test_never_across_transactions_or_senders(self):
        self.stack.make_account("beta", domains=("beta.example",))
        self.stack.ctl_ok("stoplist", "add", "acme", "carol@example.net")
        ask = self.ask
        self.assertEqual(ask(message_requests(b"a1.b1")[0]), DUNNO)
        # Same instance, another account's key: its own data (example.org is not its domain).
        self.assertEqual(ask(message_requests(b"a1.b1", user=b"beta/k2")[0]),
                         b"action=550 5.7.1 error/sender/unknown\n\n")
        # The next recipient of the transaction is looked up, not answered from the last one.
        reqs = message_requests(b"a1.b1", rcpts=(b"bob@example.net", b"carol@example.net"))
        self.assertEqual([ask(r) for r in reqs[:3]], [DUNNO] * 3)
        self.assertEqual(ask(reqs[3]), b"action=550 5.0.0 Email is in the account stoplist\n\n")
        # A blocked account: refused at once in the next transaction, and within
        # auth_cache_ttl in one in hand (on another connection, with its own cache).
        other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(other.close)
        other.settimeout(10)
        other.connect(self.stack.path("policy.sock"))
        in_hand = message_requests(b"a2.b1", rcpts=(b"bob@example.net", b"dave@example.net"))
        for r in in_hand[:2]:
            other.sendall(r)
            self.assertEqual(PolicyServer.read_reply(other), DUNNO)
        self.stack.ctl_ok("account", "set", "acme", "state=blocked")
        blocked = b"action=550 5.7.1 client is blocked\n\n"
        self.assertEqual(ask(message_requests(b"a1.b2")[0]), blocked)
        time.sleep(0.6)
        other.sendall(in_hand[2])
        self.assertEqual(PolicyServer.read_reply(other), blocked)

    def test_counted_once_per_message(self):
        self.stack.ctl_ok("limit", "set", "acme", "daily=2")
        for n in range(2):
            for r in message_requests(b"a1.c%d" % n, rcpts=(b"bob@example.net", b"carol@example.net")):
                self.assertEqual(self.ask(r), DUNNO)
        reqs = message_requests(b"a1.c2")
        self.assertEqual(self.ask(reqs[0]), DUNNO)
        self.assertEqual(self.ask(reqs[1]), b"action=452 4.5.3 daily quota exceeded\n\n")


def cpu_seconds(pid):
    """User + system CPU time of a process, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ConnectionLimits(unittest.TestCase):
    """More connections than the daemon may hold: refused cleanly, no spin."""

    def start(self, extra="", nofile=None):
        self.stack = Stack(extra_config=extra)
        self.addCleanup(self.stack.stop)
        self.stack.start_redis()
        limit = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))) if nofile else None
        self.stack._spawn("policy", [self.stack.binary("mailgate-policy"), "-f", "-c", self.stack.conf],
                          preexec_fn=limit)
        wait_for(lambda: can_connect(self.stack.path("policy.sock")), what="mailgate-policy policy.sock")
        self.stack.make_account("acme")
        self.pid = self.stack.procs["policy"].pid

    def flood(self, count):
        """Opens `count` connections, sends a request on each; returns (answers, closed)."""
        socks = []
        for _ in range(count):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect(self.stack.path("policy.sock"))
            socks.append(s)
        self.addCleanup(lambda: [s.close() for s in socks])
        answers, closed = [], 0
        for s in socks:
            try:
                s.sendall(REQUEST)
                reply = PolicyServer.read_reply(s)
            except (BrokenPipeError, ConnectionResetError):
                reply = b""
            if reply:
                answers.append(reply)
            else:
                closed += 1
        return socks, answers, closed

    def assert_serves_again(self, socks):
        for s in socks:
            s.close()

        def answered():  # refused until the daemon has seen the closes
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(10)
                s.connect(self.stack.path("policy.sock"))
                try:
                    s.sendall(REQUEST)
                    return PolicyServer.read_reply(s) == DUNNO
                except (BrokenPipeError, ConnectionResetError):
                    return False
        wait_for(answered, 10, "an answer after the connections closed")
        self.assertIn("policy: accepting connections again", self.stack.log("policy"))

    def test_out_of_descriptors_refuses_without_spinning(self):
        self.start(nofile=64)
        socks, answers, closed = self.flood(200)
        # The served connections keep room for the workers' Redis connections: every answer is a real one.
        self.assertGreater(len(answers), 0)
        self.assertEqual(answers, [DUNNO] * len(answers))
        self.assertEqual(closed, 200 - len(answers))
        before = cpu_seconds(self.pid)
        time.sleep(3)  # the refused connections are gone, the accepted ones stay open
        self.assertLess(cpu_seconds(self.pid) - before, 0.5)
        log = self.stack.log("policy")
        self.assertIn("open files limited to 64 (RLIMIT_NOFILE): serving at most %d connections per listener"
                      % len(answers), log)
        self.assertEqual(log.count("policy: %d connections open, the most it serves" % len(answers)), 1, log[-3000:])
        self.assertNotIn("Too many open files", log)
        self.assert_serves_again(socks)

    def test_policy_max_connections(self):
        self.start(extra="policy_max_connections = 20\n")
        socks, answers, closed = self.flood(50)
        self.assertEqual((answers, closed), ([DUNNO] * 20, 30))
        log = self.stack.log("policy")
        self.assertEqual(log.count("policy: 20 connections open, the most it serves; closing new connections"
                                   " until some end"), 1, log[-3000:])
        self.assert_serves_again(socks)


if __name__ == "__main__":
    unittest.main()
