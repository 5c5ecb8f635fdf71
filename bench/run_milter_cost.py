"""run_milter_cost.py — what each message costs mailgate-milter itself: CPU
seconds (user and kernel), context switches and system calls per 1,000
messages of the milter process (perf stat on its threads, libmilter's
per-connection workers included), and Redis commands per message (INFO
commandstats; the milter is Redis's only client). Load as in
run_chain_bench.py: smtp-source (20 sessions, 4 KiB, from an allowed network)
through a private Postfix with the milter alone (no policy service), RSA-2048
DKIM signing. Each milter binary given (default: this build's) is measured in
turn, ROUNDS times alternating, so that a before/after pair is side by side.
Usage: /usr/bin/python3 bench/run_milter_cost.py [MESSAGES] [ROUNDS] [MILTER...]"""

import os
import re
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from harness import Stack, can_connect, wait_for  # noqa: E402

BENCH_CONFIG = "required_headers = From, To, Subject, Date, Message-Id\n"
EVENTS = "task-clock,context-switches,raw_syscalls:sys_enter"


def cpu_seconds(pid):
    """User and system CPU seconds of the whole process (dead threads included)."""
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def redis_calls(stack):
    """Commands Redis has run (INFO commandstats), without the INFO calls themselves."""
    total = 0
    for m in re.finditer(r"^cmdstat_(\w+):calls=(\d+)", stack.redis("INFO", "commandstats"), re.M):
        if m.group(1) != "info":
            total += int(m.group(2))
    return total


def measure(milter, messages):
    stack = Stack(extra_config=BENCH_CONFIG, with_policy=False)
    try:
        stack.start_redis()
        stack.start_sink()
        p = stack._spawn("milter", [milter, "-f", "-c", stack.conf])
        wait_for(lambda: can_connect(stack.path("milter.sock")), what="mailgate-milter")
        stack.start_postfix()
        stack.make_account("bench", domains=("shop.example",))
        stack.ctl_ok("net", "allow", "bench", "127.0.0.1")
        stack.ctl_ok("dkim", "generate", "shop.example", "--selector", "s1")
        send(stack, 20)  # warm: key cache, scripts, pool
        wait_for(lambda: len(stack.sink_messages()) >= 20, 60, "warm-up delivery")
        calls0, (user0, sys0) = redis_calls(stack), cpu_seconds(p.pid)
        perf = subprocess.Popen(["perf", "stat", "-x", ",", "-e", EVENTS, "-p", str(p.pid)],
                                stderr=subprocess.PIPE, text=True)
        time.sleep(0.3)  # perf attached
        start = time.time()
        send(stack, messages)
        wait_for(lambda: len(stack.sink_messages()) >= messages + 20, 600, "all messages at the sink")
        elapsed = time.time() - start
        perf.send_signal(signal.SIGINT)
        counters = {}
        for line in perf.communicate(timeout=30)[1].splitlines():
            f = line.split(",")
            if len(f) > 2 and f[0].replace(".", "").isdigit():
                counters[f[2]] = float(f[0])
        user1, sys1 = cpu_seconds(p.pid)
        calls = redis_calls(stack) - calls0
        per_k = 1000.0 / messages
        return {"msg/s": messages / elapsed, "user s/1k": (user1 - user0) * per_k, "sys s/1k": (sys1 - sys0) * per_k,
                "task-clock s/1k": counters.get("task-clock", 0) / 1000 * per_k,
                "csw/1k": counters.get("context-switches", 0) * per_k,
                "syscalls/1k": counters.get("raw_syscalls:sys_enter", 0) * per_k,
                "redis cmds/msg": calls / messages}
    finally:
        stack.stop()


def send(stack, messages):
    r = subprocess.run(["smtp-source", "-s", "20", "-m", str(messages), "-l", "4096", "-S", "bench",
                        "-f", "bench@shop.example", "-t", "rcpt@example.net", "127.0.0.1:%d" % stack.smtp_port],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("smtp-source: " + r.stdout + r.stderr)


def main():
    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    milters = sys.argv[3:] or [Stack.binary("mailgate-milter")]
    results = {m: [] for m in milters}
    for _ in range(rounds):
        for m in milters:
            r = measure(m, messages)
            results[m].append(r)
            print("%s: %s" % (m, "  ".join("%s %.3g" % kv for kv in r.items())), flush=True)
    print("\nmedians over %d round(s), %d messages each (CPU per 1,000 messages of the milter process):" %
          (rounds, messages))
    keys = list(next(iter(results.values()))[0])
    print("%-40s" % "milter" + "".join("%16s" % k for k in keys))
    for m, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in keys}
        print("%-40s" % m[-40:] + "".join("%16.3f" % med[k] for k in keys))


if __name__ == "__main__":
    main()
