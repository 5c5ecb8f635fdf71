"""smtpload.py — the load client for the bench cases smtp-source cannot drive: SESSIONS
parallel SMTP sessions (threads spread over a few processes, so that the GIL is not
the limit), one message per connection like smtp-source, optionally over STARTTLS
and with AUTH PLAIN (the password, an API key, from an environment variable).
Exits 1 if any message was not accepted.
Usage: smtpload.py --port P --messages N [--sessions 20] [--size 2048] [--starttls]
       [--user U --password-env VAR] [--from A] [--to A] [--procs K]"""

import argparse
import multiprocessing
import os
import smtplib
import ssl
import sys
import threading
import time
from email.utils import formatdate, make_msgid


def message(sender, rcpt, size):
    body_line = ("La la la " * 8)[:72] + "\r\n"
    body = body_line * max(1, size // len(body_line))
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: bench\r\nDate: %s\r\nMessage-Id: %s\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n%s"
            % (sender, rcpt, formatdate(), make_msgid(domain="shop.example"), body)).encode()


def send_one(args, ctx, password):
    with smtplib.SMTP("127.0.0.1", args.port, local_hostname="bench.example", timeout=60) as smtp:
        if args.starttls:
            smtp.starttls(context=ctx)
            smtp.ehlo("bench.example")
        if args.user is not None:
            smtp.user, smtp.password = args.user, password
            smtp.auth("PLAIN", smtp.auth_plain)
        refused = smtp.sendmail(args.sender, [args.rcpt], message(args.sender, args.rcpt, args.size))
        if refused:
            raise smtplib.SMTPRecipientsRefused(refused)


def worker(args, threads, counter, failures):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    password = os.environ.get(args.password_env, "") if args.password_env else None

    def loop():
        while True:
            with counter.get_lock():
                if counter.value >= args.messages:
                    return
                counter.value += 1
            try:
                send_one(args, ctx, password)
            except (OSError, smtplib.SMTPException) as e:
                with failures.get_lock():
                    failures.value += 1
                print("smtpload: %s" % e, file=sys.stderr, flush=True)

    pool = [threading.Thread(target=loop) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--messages", type=int, required=True)
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--starttls", action="store_true")
    p.add_argument("--user")
    p.add_argument("--password-env")
    p.add_argument("--from", dest="sender", default="bench@shop.example")
    p.add_argument("--to", dest="rcpt", default="rcpt@example.net")
    p.add_argument("--procs", type=int, default=min(4, os.cpu_count() or 1))
    args = p.parse_args()
    procs = max(1, min(args.procs, args.sessions))
    counter = multiprocessing.Value("i", 0)
    failures = multiprocessing.Value("i", 0)
    start = time.time()
    children = []
    for i in range(procs):
        threads = args.sessions // procs + (1 if i < args.sessions % procs else 0)
        c = multiprocessing.Process(target=worker, args=(args, threads, counter, failures))
        c.start()
        children.append(c)
    for c in children:
        c.join()
    elapsed = time.time() - start
    print("smtpload: %d messages in %.2f s (%.0f/s), %d failed"
          % (args.messages, elapsed, args.messages / elapsed, failures.value))
    return 1 if failures.value or any(c.exitcode for c in children) else 0


if __name__ == "__main__":
    sys.exit(main())
