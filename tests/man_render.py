#!/usr/bin/python3
"""man_render.py — the man pages as `man` shows them (man -l | col -b): a
.TP tag must be one line, so a tag with an unclosed bracket, or a body whose
first word closes a bracket (the rest of a synopsis that spilled into the
text), fails; every mailgatectl command's full synopsis is one tag line."""

import glob
import os
import re
import subprocess
import sys

MAN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "man")

# Each mailgatectl(8) command as its tag must read.
CTL_SYNOPSES = [
    "config check",
    "config defaults",
    "events [--count N] [--account NAME] [--follow]",
    "message QUEUEID",
    "stats NAME [--day YYYY-MM-DD] [--campaign C]",
    "campaign block|unblock NAME CAMPAIGN",
    "account add NAME [--default-sender ADDR]",
    "account set NAME key=value ...",
    "account show NAME",
    "key create NAME [--no-smtp] [--sandbox]",
    "key list NAME",
    "key revoke KEYID",
    "net allow NAME CIDR [--wide]",
    "net deny NAME CIDR",
    "domain add NAME DOMAIN [--status S] [--subdomains]",
    "domain set NAME DOMAIN [--status S] [--subdomains|--no-subdomains]",
    "domain remove NAME DOMAIN, domain list NAME",
    "stoplist add|remove NAME ADDR, stoplist list NAME",
    "bounced list [ADDR], bounced remove ADDR",
    "limit set NAME [--key KEYID] rate=N/s|/m|/h daily=N rcpts=N size=N",
    "errors NAME [--last N]",
    "dkim generate DOMAIN [--selector S] [--algo rsa2048|ed25519] [--account NAME]",
    "dkim import DOMAIN --selector S --key FILE [--account NAME]",
    "dkim list [DOMAIN]",
    "dkim remove DOMAIN [--selector S]",
    "dkim dns DOMAIN",
    "dkim export DIR [--group GROUP]",
    "webhook set NAME URL",
    "webhook show NAME",
    "webhook remove NAME",
    "webhook test NAME",
    "webhook failures NAME [--count N]",
    "status",
]


def render(page):
    env = dict(os.environ, MANWIDTH="1000", LC_ALL="C.UTF-8", MAN_KEEP_FORMATTING="")
    man = subprocess.run(["man", "-l", page], capture_output=True, text=True, env=env, check=True)
    return subprocess.run(["col", "-bx"], input=man.stdout, capture_output=True, text=True, check=True).stdout


def indent(line):
    return len(line) - len(line.lstrip(" "))


def tags(text):
    """(tag, first body line) of every .TP paragraph: after a blank line or a
    heading, a tag line whose body is indented 7 more, or a tag narrower than
    that followed on the same line by its body (lines are not wrapped)."""
    lines = [""] + text.splitlines() + [""]
    for before, line, after in zip(lines, lines[1:], lines[2:]):
        n = indent(line)
        if (before.strip() and indent(before) > 0) or not line.strip():
            continue
        if after.strip() and indent(after) == n + 7:
            yield line.strip(), after.strip()
        elif len(line) > n + 7 and line[n + 6] == " " and line[n + 7] != " ":
            yield line[n:n + 7].strip(), line[n + 7:].strip()


def unbalanced(text):
    return text.count("[") != text.count("]") or text.count("(") != text.count(")")


def spilled(body):
    """The body starts with the rest of a synopsis: "N] [--account NAME] ..." or "| ...". """
    word = body.split()[0]
    return word[0] in "[|" or re.match(r"[^\[(]*[\])]", word) is not None


def main():
    failures = []
    for page in sorted(glob.glob(os.path.join(MAN_DIR, "*.[1-8]"))):
        name = os.path.basename(page)
        found = list(tags(render(page)))
        for tag, body in found:
            if unbalanced(tag):
                failures.append("%s: tag split over lines: %r" % (name, tag))
            if spilled(body):
                failures.append("%s: body starts with part of the tag %r: %r" % (name, tag, body[:60]))
        if name == "mailgatectl.8":
            shown = {tag for tag, _ in found}
            failures += ["%s: no tag line %r" % (name, s) for s in CTL_SYNOPSES if s not in shown]
    for f in failures:
        print(f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
