"""test_milter_cost.py — what one message costs mailgate-milter in Redis, through
a real private Postfix: at most two round trips per AUTH message once the
caches are warm (the account load, which also reads dkim:version, and the
outcome record), counted by a TCP relay between the milter alone and Redis
(a pipeline or MULTI/EXEC is one round trip: a request burst answered before
the next). And a burst of 200 concurrent SMTP sessions that finish DATA
together, against a pool of 8 Redis connections: none is tempfailed for a
busy pool (a connection is leased for a round trip only)."""

import re
import smtplib
import socket
import ssl
import threading
import time
import unittest

from harness import SharedStackTest, Stack, wait_for

MESSAGE = ("From: Shop <news@shop.example>\r\nTo: bob@example.net\r\nSubject: {subject}\r\n"
           "Date: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-Id: <{subject}@shop.example>\r\n"
           "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello {subject}\r\n")


class RoundTripCounter:
    """A TCP relay to Redis that counts round trips: on each connection, data
    from the client after Redis last answered (or first) starts one."""

    def __init__(self, redis_port):
        self.redis_port = redis_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.round_trips = 0
        self.commands = []  # the first command name of each round trip
        threading.Thread(target=self.accept, daemon=True).start()

    def close(self):
        self.listener.close()

    def reset(self):
        with self.lock:
            self.round_trips = 0
            self.commands = []

    def accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.redis_port))
            state = {"waiting": False}
            threading.Thread(target=self.pump, args=(client, upstream, state, True), daemon=True).start()
            threading.Thread(target=self.pump, args=(upstream, client, state, False), daemon=True).start()

    def pump(self, src, dst, state, from_client):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            # The state changes before the data is passed on: the other side
            # can only answer what it was given.
            with self.lock:
                if from_client and not state["waiting"]:
                    self.round_trips += 1
                    m = re.match(rb"\*\d+\r\n\$\d+\r\n([A-Za-z]+)", data)
                    self.commands.append(m.group(1).decode().upper() if m else "?")
                state["waiting"] = from_client
            try:
                dst.sendall(data)
            except OSError:
                break
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def milter_behind(stack, relay_port):
    """Starts mailgate-milter on a copy of the stack's configuration whose Redis is the relay."""
    conf = stack.path("milter.conf")
    with open(stack.conf) as src, open(conf, "w") as dst:
        dst.write(re.sub(r"(?m)^redis_server = .*$", "redis_server = tcp:127.0.0.1:%d" % relay_port, src.read()))
    stack._spawn("milter", [stack.binary("mailgate-milter"), "-f", "-c", conf])
    wait_for(lambda: can_connect_unix(stack.path("milter.sock")), what="mailgate-milter")


def can_connect_unix(path):
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(path)
        return True
    except OSError:
        return False


class MilterCost(SharedStackTest):
    @classmethod
    def makeStack(cls):
        # The policy service handles AUTH (its own Redis connections) but is
        # not asked about envelopes: only the milter goes through the relay.
        stack = Stack(with_policy=False, extra_config="redis_pool_size = 8\n")
        stack.counter = None

        def daemons():
            stack.start_daemons(["policy"])
            stack.counter = RoundTripCounter(stack.redis_port)
            milter_behind(stack, stack.counter.port)

        stack.postconf_edits = [["-e", "default_process_limit = 250"]]
        return stack.start(stack.start_redis, stack.start_sink, daemons, stack.start_postfix)

    @classmethod
    def prepare(cls):
        s = cls.stack
        s.make_account("shop", domains=("shop.example",))
        cls.key, _ = s.make_key("shop", create_account=False)
        s.ctl_ok("dkim", "generate", "shop.example", "--selector", "s1")

    @classmethod
    def tearDownClass(cls):
        if cls.stack.counter:
            cls.stack.counter.close()
        super().tearDownClass()

    def send(self, subject):
        out = self.stack.swaks(sender="news@shop.example", key=self.key, data=MESSAGE.format(subject=subject))
        qid = self.stack.queue_id(out)
        self.assertIsNotNone(qid, out[-1500:] + self.stack.diagnostics())
        return qid

    def test_at_most_two_round_trips_per_message(self):
        s = self.stack
        for i in range(2):  # warms the key cache, the loaded scripts and the pool's connections
            self.send("warm%d" % i)
        s.counter.reset()
        count = 5
        for i in range(count):
            self.send("cost%d" % i)
        with s.counter.lock:
            trips, commands = s.counter.round_trips, list(s.counter.commands)
        self.assertIn("dkim=shop.example/s1", s.log("milter"))  # the messages were signed
        self.assertGreaterEqual(trips, count, commands)  # the relay sees the milter's traffic
        self.assertLessEqual(trips, 2 * count, "round trips per message: %.1f %s" % (trips / count, commands))

    def test_200_concurrent_sessions_finish_data_together(self):
        sessions = 200
        ready = threading.Barrier(sessions + 1, timeout=60)
        replies = [None] * sessions
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        body = MESSAGE.format(subject="burst").encode()

        def session(i):
            try:
                with smtplib.SMTP("127.0.0.1", self.stack.smtp_port, timeout=90) as smtp:
                    smtp.starttls(context=context)
                    smtp.login("", self.key)
                    smtp.mail("news@shop.example")
                    smtp.rcpt("bob@example.net")
                    code, _ = smtp.docmd("DATA")
                    if code != 354:
                        raise RuntimeError("DATA: %d" % code)
                    smtp.send(body.replace(b"burst", b"burst%d" % i))
                    ready.wait()  # every session mid-DATA, then all end it at once
                    smtp.send(b".\r\n")
                    replies[i] = smtp.getreply()
            except Exception as e:  # the report names what failed
                replies[i] = (0, repr(e))
                ready.abort()

        threads = [threading.Thread(target=session, args=(i,), daemon=True) for i in range(sessions)]
        start = time.time()
        for t in threads:
            t.start()
        ready.wait()
        for t in threads:
            t.join(90)
        failed = [r for r in replies if r is None or r[0] != 250]
        busy = self.stack.log("milter").count("connections busy")
        self.assertEqual(failed, [], "%d of %d sessions not accepted, %d busy-pool tempfails in %.1f s\n%s" %
                         (len(failed), sessions, busy, time.time() - start, self.stack.diagnostics()[-3000:]))
        self.assertEqual(busy, 0)


if __name__ == "__main__":
    unittest.main()
