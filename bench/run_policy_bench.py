"""run_policy_bench.py — mailgate-policy against a real redis-server on this
machine, measured OPEN-LOOP: bench/policy_load sends at fixed arrival rates
(default 5,000, 10,000 and 20,000/s) over 100 persistent connections and
counts latency from each request's scheduled time, so queueing cannot hide
behind a slow generator. Requests are those Postfix sends for the recipe's
main.cf, per message: policy_context=sender and =recipient at each RCPT,
then END-OF-MESSAGE, all with the message's `instance`, authenticated as a
demo account's key, with a rate limit and a daily quota set (so every
message runs the limits script). Then one closed-loop run (as fast as the
answers come) for the most the daemon does, and per mix the Redis commands
and round trips per decision (INFO commandstats; hiredis writes each round
trip with one write(2), which strace counts) and the daemon's syscalls per
decision.

Several daemons can be compared in one run (--daemon LABEL=PATH, repeated;
each with its own Redis), e.g. a build of the base commit and this one: the
runs alternate between them, --rounds times, and the table shows per case
the run with the median p99 (these machines' load moves).
Prints a table and, with --json FILE, writes the results as JSON.
Usage: /usr/bin/python3 bench/run_policy_bench.py [--seconds 5] [--rates 5000,10000,20000]
         [--connections 100] [--workers 4] [--redis tcp|unix] [--daemon LABEL=PATH[,tcp|,unix]]...
         [--rounds N] [--no-strace] [--json FILE]"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from harness import BUILD_DIR, Stack, can_connect, wait_for  # noqa: E402

LOAD = os.path.join(BUILD_DIR, "bench", "policy_load")
USER = "bench/kbench"


def load(stack, args, pids):
    argv = [LOAD, "--socket", stack.path("policy.sock")] + args
    for name, pid in pids.items():
        argv += ["--cpu", "%s=%d" % (name, pid)]
    r = subprocess.run(argv, capture_output=True, text=True)
    line = [x for x in r.stdout.splitlines() if x.startswith("JSON ")]
    if r.returncode != 0 or not line:
        raise RuntimeError("policy_load failed: " + r.stdout + r.stderr)
    return json.loads(line[0][5:])


def commandstats(stack):
    """calls per Redis command since the last CONFIG RESETSTAT."""
    stats = {}
    for line in stack.redis("INFO", "commandstats").splitlines():
        m = re.match(r"cmdstat_(\w+):calls=(\d+)", line)
        if m and m.group(1) not in ("info", "config"):
            stats[m.group(1)] = int(m.group(2))
    return stats


def redis_counts(stack, pids, args, strace):
    """Redis commands and round trips per decision for one short closed-loop run
    at low concurrency; syscalls per decision of the daemon under strace."""
    stack.redis("CONFIG", "RESETSTAT")
    r = load(stack, args, {})
    calls = commandstats(stack)
    out = {"decisions": r["decisions"],
           "commands_per_decision": round(sum(calls.values()) / max(r["decisions"], 1), 3),
           "commands": {k: round(v / max(r["decisions"], 1), 3) for k, v in sorted(calls.items())}}
    if not strace:
        return out
    log = stack.path("strace.txt")
    tracer = subprocess.Popen(["strace", "-c", "-f", "-o", log, "-p", str(pids["policy"])],
                              stderr=subprocess.DEVNULL)
    time.sleep(1)
    r = load(stack, args, {})
    tracer.terminate()
    tracer.wait()
    counts = {}
    with open(log) as f:
        for line in f:
            m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$", line)
            if m and m.group(2) != "total":
                counts[m.group(2)] = int(m.group(1))
    n = max(r["decisions"], 1)
    out["syscalls_per_decision"] = round(sum(counts.values()) / n, 2)
    out["syscalls"] = {k: round(v / n, 3) for k, v in sorted(counts.items(), key=lambda kv: -kv[1]) if v / n >= 0.01}
    # hiredis sends each round trip with one write(2); replies to Postfix go by sendto(2).
    out["redis_round_trips_per_decision"] = round(counts.get("write", 0) / n, 3)
    return out


def start_redis(stack, transport):
    """redis-server on loopback TCP (as the e2e tests) or, as mailgate.conf's default
    redis_server, on a Unix socket (also on TCP, for redis-cli)."""
    if transport == "tcp":
        stack.start_redis()
        return
    sock = stack.path("redis.sock")
    with open(stack.conf) as f:
        conf = re.sub(r"^redis_server = .*$", "redis_server = unix:" + sock, f.read(), flags=re.M)
    with open(stack.conf, "w") as f:
        f.write(conf)
    stack._spawn("redis", ["redis-server", "--port", str(stack.redis_port), "--bind", "127.0.0.1",
                           "--unixsocket", sock, "--unixsocketperm", "777", "--save", "", "--appendonly", "no",
                           "--dir", stack.dir, "--loglevel", "warning"])
    wait_for(lambda: can_connect(sock), what="redis-server")


def start_daemon(label, binary, transport, opts):
    stack = Stack(extra_config="policy_workers = %d\nauth_cache_ttl = 5s\n" % opts.workers)
    try:
        start_redis(stack, transport)
        stack._spawn("policy", [binary, "-f", "-c", stack.conf])
        wait_for(lambda: can_connect(stack.path("policy.sock")), what="mailgate-policy")
        stack.make_account("bench", domains=("shop.example",))
        stack.ctl_ok("stoplist", "add", "bench", "stopped@example.net")
        stack.ctl_ok("limit", "set", "bench", "rate=1000000/s", "daily=1000000000")
    except BaseException:
        stack.stop()
        raise
    pids = {"policy": stack.procs["policy"].pid, "redis": stack.procs["redis"].pid}
    return {"label": label, "binary": binary, "redis_transport": transport, "stack": stack, "pids": pids,
            "runs": [], "redis": {}}


def median_run(runs):
    """The run with the median p99 (ties: the first), so that its figures belong together."""
    return sorted(runs, key=lambda r: r["p99_ms"])[len(runs) // 2]


def measure(daemons, opts):
    """Every rate and the closed loop, each daemon in turn, `rounds` times: side by
    side on a machine whose load moves."""
    common = ["--connections", str(opts.connections), "--user", USER, "--mix", "message",
              "--seconds", str(opts.seconds)]
    cases = [["--rate", str(rate)] for rate in opts.rates] + [["--closed"]]
    for _ in range(opts.rounds):
        for case in cases:
            for d in daemons:
                d["runs"].append(load(d["stack"], common + case, d["pids"]))
    for d in daemons:
        d["open"] = [median_run([r for r in d["runs"] if r["mode"] == "open" and r["target_rate"] == rate])
                     for rate in opts.rates]
        d["closed"] = median_run([r for r in d["runs"] if r["mode"] == "closed"])
        small = ["--connections", "4", "--user", USER, "--closed", "--seconds", "2", "--warmup", "0"]
        d["redis"]["message"] = redis_counts(d["stack"], d["pids"], small + ["--mix", "message"], opts.strace)
        d["redis"]["rcpt"] = redis_counts(d["stack"], d["pids"], small + ["--mix", "rcpt", "--rcpt-every", "500"],
                                          opts.strace)
        status = open("/proc/%d/status" % d["pids"]["policy"]).read()
        d["policy_rss_kb"] = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))


def print_table(results):
    print("\n%-10s %-7s %9s %9s %8s %8s %8s %9s %9s %6s %9s %9s %9s" % (
        "daemon", "mode", "target/s", "got/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "errors",
        "policy*", "redis*", "gen*"))
    for res in results:
        for r in res["open"] + [res["closed"]]:
            print("%-10s %-7s %9s %9.0f %8.3f %8.3f %8.3f %9.3f %9.3f %6d %9.1f %9.1f %9.1f" % (
                res["label"], r["mode"], "%.0f" % r["target_rate"] if r["mode"] == "open" else "-", r["rate"],
                r["p50_ms"], r["p90_ms"], r["p99_ms"], r["p999_ms"], r["max_ms"], r["errors"] + r["unanswered"],
                r.get("policy_cpu_ms_per_1k", 0), r.get("redis_cpu_ms_per_1k", 0), r["generator_cpu_ms_per_1k"]))
    print("* CPU milliseconds per 1,000 decisions (policy daemon, redis-server, load generator)")
    for res in results:
        for r in res["open"] + [res["closed"]]:
            if r["first_error"]:
                print("%s %s %s: first unexpected reply: %s" % (res["label"], r["mode"], r["target_rate"],
                                                               r["first_error"]))
    print("\n%-10s %-8s %10s %12s %10s  %s" % ("daemon", "mix", "redis cmd", "round trips", "syscalls",
                                              "per decision"))
    for res in results:
        for mix, r in res["redis"].items():
            print("%-10s %-8s %10.3f %12s %10s  %s" % (
                res["label"], mix, r["commands_per_decision"], r.get("redis_round_trips_per_decision", "-"),
                r.get("syscalls_per_decision", "-"),
                " ".join("%s=%s" % kv for kv in r["commands"].items())))
            if "syscalls" in r:
                print("%21s syscalls: %s" % ("", " ".join("%s=%s" % kv for kv in r["syscalls"].items())))
        print("%-10s policy RSS %d kB" % (res["label"], res["policy_rss_kb"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rates", default="5000,10000,20000")
    ap.add_argument("--connections", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=1, help="repetitions, alternating the daemons (medians)")
    ap.add_argument("--workers", type=int, default=int(os.environ.get("MG_POLICY_WORKERS", "4")))
    ap.add_argument("--daemon", action="append", default=[],
                    help="LABEL=PATH[,tcp|,unix]: a mailgate-policy binary (and how it reaches Redis)")
    ap.add_argument("--redis", choices=("tcp", "unix"), default="tcp",
                    help="how the daemons reach redis-server unless --daemon says (default tcp)")
    ap.add_argument("--no-strace", dest="strace", action="store_false")
    ap.add_argument("--json")
    opts = ap.parse_args()
    opts.rates = [int(r) for r in opts.rates.split(",") if r]
    daemons = []
    for spec in opts.daemon or ["build=" + Stack.binary("mailgate-policy")]:
        label, path = spec.split("=", 1)
        path, _, transport = path.partition(",")
        daemons.append((label, path, transport or opts.redis))
    print("machine: %d CPUs, load average %s; policy_workers = %d, %d connections, %.0f s per run, %d rounds" % (
        os.cpu_count(), " ".join(open("/proc/loadavg").read().split()[:3]), opts.workers, opts.connections,
        opts.seconds, opts.rounds))
    results = []
    try:
        for label, path, transport in daemons:
            results.append(start_daemon(label, path, transport, opts))
        measure(results, opts)
    finally:
        for d in results:
            d.pop("stack").stop()
    print("load average after: %s" % " ".join(open("/proc/loadavg").read().split()[:3]))
    print_table(results)
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
