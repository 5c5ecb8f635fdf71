"""run_policy_bench.py — decisions/s and latency of mailgate-policy at 100
persistent connections against a real redis-server, for three request mixes
measured side by side in one run:
  plain     a RCPT decision: account, domain, stoplist and bounce lookups in
            one pipelined round trip (a new message every 500 requests, no limits)
  limited   the same with a rate limit and daily quota: a new message every
            5 requests runs the GCRA/quota script (a second round trip)
  per-msg   every request starts a new message (worst case for the script)
Usage: [MG_POLICY_WORKERS=N] /usr/bin/python3 bench/run_policy_bench.py [SECONDS]
The load generator runs closed-loop (100 requests always outstanding), so its
latency is about 100 / rate: compare rates, not only percentiles."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from harness import BUILD_DIR, Stack  # noqa: E402


def main():
    seconds = sys.argv[1] if len(sys.argv) > 1 else "5"
    load = os.path.join(BUILD_DIR, "bench", "policy_load")
    workers = os.environ.get("MG_POLICY_WORKERS", "4")
    stack = Stack(extra_config="policy_workers = %s\n" % workers)
    print("policy_workers = %s" % workers)
    try:
        stack.start_redis()
        stack.start_daemons(names=("policy",))
        stack.make_account("bench", domains=("shop.example",))
        stack.ctl_ok("stoplist", "add", "bench", "stopped@example.net")
        for name, every, limits in (("plain", "500", None), ("limited", "5", "rate=1000000/s"),
                                    ("per-msg", "1", "rate=1000000/s")):
            if limits:
                stack.ctl_ok("limit", "set", "bench", limits, "daily=1000000000")
            r = subprocess.run([load, stack.path("policy.sock"), "100", seconds, every],
                               capture_output=True, text=True)
            print("%-8s %s" % (name, (r.stdout + r.stderr).strip()))
        rss = open("/proc/%d/status" % stack.procs["policy"].pid).read()
        print("policy daemon " + [line for line in rss.splitlines() if line.startswith("VmRSS")][0])
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
