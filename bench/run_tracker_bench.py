"""run_tracker_bench.py — how fast mailgate-tracker turns Postfix log lines
into Redis records, against a real redis-server: N messages with q:<queueid>
records, each with one delivery line among the other lines a busy Postfix
writes (connect, cleanup, qmgr, removed: about 8 lines per message), piped in
through standard input (tracker_log = -); the tracker exits at the end of its
input, after recording everything. Prints lines/s, delivery events/s and the tracker's
peak RSS, and checks that every message got exactly one event.
Usage: /usr/bin/python3 bench/run_tracker_bench.py [MESSAGES]"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from harness import Stack  # noqa: E402


def log_lines(n):
    for i in range(n):
        q = "%010X" % (0x1A2B3C0000 + i)
        t = "Nov 26 01:17:%02d mx1 " % (i % 60)
        yield t + "postfix/smtpd[101]: connect from client[192.0.2.%d]" % (i % 250)
        yield t + "postfix/smtpd[101]: %s: client=client[192.0.2.%d], sasl_method=PLAIN, sasl_username=acme/k1" % (q, i % 250)
        yield t + "postfix/cleanup[102]: %s: message-id=<%d@shop.example>" % (q, i)
        yield t + "postfix/qmgr[103]: %s: from=<news@shop.example>, size=4321, nrcpt=1 (queue active)" % q
        yield t + "postfix/smtpd[101]: disconnect from client[192.0.2.%d] ehlo=1 auth=1 mail=1 rcpt=1 data=1 quit=1 commands=6" % (i % 250)
        status = ("sent (250 2.0.0 Ok: queued as ABC)", "deferred (host mx[203.0.113.5] said: 450 4.2.0 busy "
                  "(in reply to RCPT TO command))")[i % 10 == 0]
        yield (t + "postfix/smtp[104]: %s: to=<user%d@example.net>, relay=mx.example.net[203.0.113.5]:25, "
               "delay=0.4, delays=0.1/0/0.1/0.2, dsn=%s, status=%s" % (q, i, "4.2.0" if i % 10 == 0 else "2.0.0",
                                                                       status))
        yield t + "postfix/qmgr[103]: %s: removed" % q
        yield t + "postfix/anvil[105]: statistics: max connection rate 1/60s for (smtp:192.0.2.1) at Nov 26 01:17:00"


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50000
    stack = Stack(tracker_log="-")
    try:
        stack.start_redis()
        cmds = "".join("HSET mg:q:%010X account acme campaign spring msgid <%d@shop.example>\n" % (0x1A2B3C0000 + i, i)
                       for i in range(n))
        subprocess.run(["redis-cli", "-p", str(stack.redis_port), "--pipe"], input=cmds, text=True,
                       capture_output=True, check=True)
        lines = stack.path("lines.txt")
        with open(lines, "w") as f:
            count = f.write("\n".join(log_lines(n)) + "\n") and sum(1 for _ in log_lines(n))
        peak_kb = 0
        start = time.monotonic()
        with open(lines) as inp, open(stack.path("tracker.log"), "w") as log:
            p = subprocess.Popen([stack.binary("mailgate-tracker"), "-f", "-c", stack.conf], stdin=inp, stderr=log)
            while p.poll() is None:  # sample the peak RSS (VmHWM) while it runs
                try:
                    with open("/proc/%d/status" % p.pid) as st:
                        peak_kb = max([peak_kb] + [int(line.split()[1]) for line in st if line.startswith("VmHWM")])
                except (FileNotFoundError, ProcessLookupError):
                    pass
                time.sleep(0.02)
        elapsed = time.monotonic() - start
        if p.returncode != 0:
            sys.exit(stack.log("tracker")[-2000:])
        rss_mb = peak_kb / 1024
        events = int(stack.redis("XLEN", "mg:events").strip())
        print("%d log lines, %d messages: %.2f s, %.0f lines/s, %.0f delivery events/s, %d events recorded (%s); "
              "tracker max RSS %.1f MB" % (count, n, elapsed, count / elapsed, events / elapsed, events,
                                           "ok" if events == n else "MISMATCH", rss_mb))
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
