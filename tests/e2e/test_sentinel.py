"""test_sentinel.py — redis_server = sentinel:NAME@host:port,...: a private Redis
master and replica watched by three private redis-sentinel processes on
loopback (never the system Sentinel on 26379). The daemons find the master
through the Sentinels; when it is killed during a load through the private
Postfix they follow the promoted replica, and the counts say what was lost."""

import os
import re
import signal
import socket
import time
import unittest

from fault_load import Load, report, resp_command
from harness import Stack, can_connect, free_port, wait_for

MASTER = "mg"


def ask(port, *args, timeout=1.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        return resp_command(s.makefile("rwb"), *args)


def info(port, section):
    try:
        return ask(port, "INFO", section)
    except (OSError, RuntimeError, ConnectionError):
        return ""


def master_port(sentinel_port):
    try:
        return int(ask(sentinel_port, "SENTINEL", "get-master-addr-by-name", MASTER)[1])
    except (OSError, RuntimeError, ConnectionError, TypeError):
        return None


class SentinelStack:
    """A Stack whose Redis is a master (the Stack's redis_port) with one replica and
    three Sentinels; the mailgate.conf names the Sentinels."""

    def __init__(self, **kw):
        self.stack = s = Stack(**kw)
        self.replica_port = free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        with open(s.conf) as f:
            conf = f.read()
        spec = "sentinel:%s@%s" % (MASTER, ",".join("127.0.0.1:%d" % p for p in self.sentinel_ports))
        with open(s.conf, "w") as f:
            f.write(re.sub(r"(?m)^redis_server = .*$", "redis_server = " + spec, conf))

    def start_replica(self):
        s = self.stack
        os.makedirs(s.path("replica"), exist_ok=True)
        s._spawn("replica", ["redis-server", "--port", str(self.replica_port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", s.path("replica"),
                             "--replicaof", "127.0.0.1", str(s.redis_port), "--loglevel", "warning"])
        wait_for(lambda: "master_link_status:up" in info(self.replica_port, "replication"), 20,
                 "the replica in sync")

    def start_sentinels(self):
        s = self.stack
        for i, port in enumerate(self.sentinel_ports):
            conf = s.path("sentinel%d.conf" % i)
            with open(conf, "w") as f:
                f.write("port %d\nbind 127.0.0.1\ndaemonize no\ndir %s\n"
                        "sentinel monitor %s 127.0.0.1 %d 2\n"
                        "sentinel down-after-milliseconds %s 1000\n"
                        "sentinel failover-timeout %s 10000\n"
                        "sentinel parallel-syncs %s 1\n"
                        % (port, s.dir, MASTER, s.redis_port, MASTER, MASTER, MASTER))
            s._spawn("sentinel%d" % i, ["redis-sentinel", conf])
        for port in self.sentinel_ports:
            wait_for(lambda: can_connect(("127.0.0.1", port)), what="redis-sentinel :%d" % port)

        # A failover needs each Sentinel to know the replica and the other two (hello messages).
        def ready():
            for port in self.sentinel_ports:
                try:
                    if len(ask(port, "SENTINEL", "replicas", MASTER)) < 1 or \
                            len(ask(port, "SENTINEL", "sentinels", MASTER)) < 2:
                        return False
                except (OSError, RuntimeError, ConnectionError):
                    return False
            return True
        wait_for(ready, 30, "the Sentinels to find the replica and each other")

    def start(self):
        s = self.stack
        return s.start(s.start_redis, self.start_replica, self.start_sentinels, s.start_sink, s.start_daemons,
                       s.start_postfix)

    def wait_promoted(self, timeout=30):
        """Waits until every Sentinel names the replica as the master."""
        wait_for(lambda: all(master_port(p) == self.replica_port for p in self.sentinel_ports), timeout,
                 "the Sentinels to promote the replica")


class Sentinel(unittest.TestCase):
    def setUp(self):
        self.sentinel = SentinelStack(with_tracker=True)
        self.stack = self.sentinel.start()
        self.addCleanup(self.stack.stop)
        self.key, _ = self.stack.make_key("acme")  # mailgatectl finds the master too

    def test_master_found_through_the_sentinels(self):
        s = self.stack
        qid = s.queue_id(s.swaks(key=self.key))
        self.assertIsNotNone(qid, s.diagnostics())
        wait_for(lambda: "delivered" in s.ctl("message", qid).stdout, 30, "the delivered event")
        status = s.ctl("status")
        self.assertIn("redis sentinel:%s@127.0.0.1:%d" % (MASTER, self.sentinel.sentinel_ports[0]), status.stdout)

    def test_master_killed_under_load_daemons_follow_the_new_master(self):
        s = self.stack
        load = Load(s, self.key, total=1200, sessions=20).start()
        load.wait_accepted(300, 60)
        killed = time.time()
        s.procs["redis"].send_signal(signal.SIGKILL)
        s.procs.pop("redis").wait()
        self.sentinel.wait_promoted()
        promoted = time.time()
        load.join(180)
        left = load.retry_tempfailed()
        self.assertEqual(left, [], load.tempfail_texts())
        with load.lock:  # the first 250 to a message whose attempt began after the kill
            first = min((a.end for att in load.attempts.values() for a in att
                         if a.kind == "accepted" and a.start > killed), default=None)
        s.redis_port = self.sentinel.replica_port  # count on the new master
        counts = load.count()
        report("sentinel failover (master SIGKILLed)", counts,
               promoted_after_s="%.2f" % (promoted - killed),
               first_accepted_after_kill_s="%.2f" % ((first or 0) - killed),
               first_accepted_after_promotion_s="%.2f" % ((first or 0) - promoted))
        self.assertEqual(counts["pending"], 0)
        self.assertEqual(counts["rejected"], 0, load.tempfail_texts())
        self.assertEqual(counts["accepted"], counts["sent"])
        self.assertEqual(counts["lost"], 0)
        self.assertEqual(counts["sink_duplicates"], 0)
        self.assertEqual(counts["event_duplicates"], 0)
        self.assertEqual(counts["unsent"], 0)
        # Replication is asynchronous: an event the old master acknowledged in its last
        # moment may not have reached the replica (mailgate.conf(5), "Sentinel"). On
        # loopback that is a handful at most; everything after the promotion is recorded.
        self.assertLessEqual(counts["unrecorded"], 20, counts)
        self.assertIsNotNone(first)
        self.assertLess(first - promoted, 5.0)

    def test_master_demoted_daemons_ask_the_sentinels_again(self):
        """A manual failover: the old master stays up as a replica (READONLY to writes,
        or its clients killed by the Sentinel); the daemons move to the new master."""
        s = self.stack
        self.assertIsNotNone(s.queue_id(s.swaks(key=self.key)))
        ask(self.sentinel.sentinel_ports[0], "SENTINEL", "FAILOVER", MASTER)
        self.sentinel.wait_promoted()
        wait_for(lambda: "role:slave" in info(s.redis_port, "replication"), 20, "the old master demoted")
        qid = wait_for(lambda: s.queue_id(s.swaks(key=self.key)), 20, "a message accepted after the failover")
        s.redis_port = self.sentinel.replica_port
        wait_for(lambda: qid in [e["queue_id"] for e in s.events()], 20, "its event on the new master")


if __name__ == "__main__":
    unittest.main()
