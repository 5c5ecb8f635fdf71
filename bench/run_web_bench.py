#!/usr/bin/python3
"""run_web_bench.py — requests/s of mailgate-web for POST /u/TOKEN (RFC 8058
one-click) on this machine: a throw-away redis-server and mailgate-web,
N distinct valid tokens (issued here in Python from the format of
mailgate-web(8)), T client threads on keep-alive connections, each POST
verified, recorded (one Lua script) and answered 200.

usage: bench/run_web_bench.py BUILD_DIR [requests=20000] [threads=8] [web_threads=4]"""

import base64
import hashlib
import hmac
import http.client
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

SECRET = "bench-secret-0123456789abcdefghijklmnopqrstuvwxyz"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def token(account, rcpt, campaign, qid, issued):
    payload = bytes([1]) + struct.pack(">I", issued)
    for field in (account, rcpt, campaign, qid):
        payload += bytes([len(field)]) + field.encode()
    tag = hmac.new(SECRET.encode(), payload, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(payload + tag).rstrip(b"=").decode()


def wait_port(port):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("port %d never opened" % port)


def main():
    build = sys.argv[1]
    total = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    web_threads = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    d = tempfile.mkdtemp(prefix="mg-web-bench-")
    redis_port, web_port = free_port(), free_port()
    with open(os.path.join(d, "secret"), "w") as f:
        f.write(SECRET + "\n")
    conf = os.path.join(d, "mailgate.conf")
    with open(conf, "w") as f:
        f.write("redis_server = tcp:127.0.0.1:%d\nweb_listen = inet:127.0.0.1:%d\nweb_threads = %d\n"
                "web_secret_file = %s/secret\nuser = %s\n" % (redis_port, web_port, web_threads, d,
                                                              os.environ.get("USER", "root")))
    procs = [subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--loglevel", "warning"], stdout=subprocess.DEVNULL)]
    wait_port(redis_port)
    log = open(os.path.join(d, "web.log"), "w")
    procs.append(subprocess.Popen([os.path.join(build, "web", "mailgate-web"), "-f", "-c", conf],
                                  stdout=log, stderr=subprocess.STDOUT))
    wait_port(web_port)
    now = int(time.time())
    paths = ["/u/" + token("bench", "r%d@example.net" % i, "c%d" % (i % 10), "Q%d" % i, now) for i in range(total)]
    errors = []
    counts = [0] * threads

    def client(n):
        conn = http.client.HTTPConnection("127.0.0.1", web_port)
        for i in range(n, total, threads):
            conn.request("POST", paths[i], "List-Unsubscribe=One-Click",
                         {"Content-Type": "application/x-www-form-urlencoded"})
            r = conn.getresponse()
            body = r.read()
            if r.status != 200 or body != b"unsubscribed\n":
                errors.append((r.status, body))
            counts[n] += 1
        conn.close()

    start = time.monotonic()
    workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.monotonic() - start
    stop = subprocess.run(["redis-cli", "-p", str(redis_port), "SCARD", "mg:acct:{bench}:stop"],
                          capture_output=True, text=True).stdout.strip()
    events = subprocess.run(["redis-cli", "-p", str(redis_port), "XLEN", "mg:events"],
                            capture_output=True, text=True).stdout.strip()
    for p in reversed(procs):
        p.terminate()
        p.wait()
    log.close()
    shutil.rmtree(d, ignore_errors=True)
    print("POST /u/: %d requests, %d client threads, web_threads %d: %.2f s, %.0f requests/s; errors %d; "
          "stoplist %s, events %s" % (sum(counts), threads, web_threads, elapsed, sum(counts) / elapsed,
                                      len(errors), stop, events))
    if errors:
        print("first error:", errors[0])
        sys.exit(1)


if __name__ == "__main__":
    main()
