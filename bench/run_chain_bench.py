"""run_chain_bench.py — messages/s through a private Postfix on loopback,
plain and with mailgate's whole chain attached (policy service in sender,
recipient and end-of-data restrictions, milter with the message rules, RSA
DKIM signing and outcome records in Redis), measured side by side in one run, alternating
the two set-ups ROUNDS times. Load: smtp-source (20 sessions, 4 KiB
messages) from an allowed network (no AUTH: smtp-source cannot), delivery to
smtp-sink; a round ends when the sink has every message.
Usage: /usr/bin/python3 bench/run_chain_bench.py [MESSAGES] [ROUNDS]"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from harness import Stack, wait_for  # noqa: E402

# smtp-source writes From, To, Date, Message-Id and (with -S) Subject only.
BENCH_CONFIG = "required_headers = From, To, Subject, Date, Message-Id\n"


def cpu_seconds(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(stack, messages):
    start = time.time()
    r = subprocess.run(["smtp-source", "-s", "20", "-m", str(messages), "-l", "4096", "-S", "bench",
                    "-f", "bench@shop.example", "-t", "rcpt@example.net", "127.0.0.1:%d" % stack.smtp_port],
                   capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("smtp-source: " + r.stdout + r.stderr)
    wait_for(lambda: len(stack.sink_messages()) >= messages, timeout=600, what="all messages at the sink")
    return messages / (time.time() - start)


def main():
    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    results = {"plain": [], "mailgate": []}
    for _ in range(rounds):
        for name in ("plain", "mailgate"):
            chain = name == "mailgate"
            stack = Stack(extra_config=BENCH_CONFIG, with_policy=chain, with_milter=chain)
            try:
                stack.start_redis()
                stack.start_sink()
                if chain:
                    stack.start_daemons()
                stack.start_postfix()
                if chain:
                    stack.make_account("bench", domains=("shop.example",))
                    stack.ctl_ok("net", "allow", "bench", "127.0.0.1")
                    stack.ctl_ok("dkim", "generate", "shop.example", "--selector", "s1")  # RSA-2048 signing
                rate = run(stack, messages)
                results[name].append(rate)
                print("%-8s %6.0f msg/s" % (name, rate), flush=True)
                if chain:
                    events = stack.redis("XLEN", "mg:events").strip()
                    cpu = {n: cpu_seconds(stack.procs[n].pid) for n in ("policy", "milter", "redis")}
                    print("         events recorded: %s; CPU s: %s" % (
                        events, ", ".join("%s %.2f" % kv for kv in cpu.items())), flush=True)
            finally:
                stack.stop()
    plain = sum(results["plain"]) / rounds
    chain = sum(results["mailgate"]) / rounds
    print("mean: plain %.0f msg/s, mailgate %.0f msg/s, ratio %.0f%%" % (plain, chain, 100 * chain / plain))


if __name__ == "__main__":
    main()
