"""test_recipes.py — the Postfix recipes in contrib/postfix are valid for the
Postfix this machine has: main.cf and master.cf built from Debian's
defaults plus the snippets (gateway, submission, per-provider throttling)
pass `postfix check` and `postconf` without a single warning (a misspelt or
unused parameter is a warning); and the recipe's restriction lists, run by
the private Postfix, let a pinned client outside mynetworks relay."""
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from harness import Stack

SOURCE_DIR = os.environ.get("MG_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
CONTRIB = os.path.join(SOURCE_DIR, "contrib", "postfix")


def read(*parts):
    with open(os.path.join(*parts)) as f:
        return f.read()


class PostfixRecipes(unittest.TestCase):
    def test_snippets_pass_postfix_check_without_warnings(self):
        d = tempfile.mkdtemp(prefix="mg-recipes-", dir="/var/tmp")
        self.addCleanup(shutil.rmtree, d, True)
        for sub in ("etc", "queue", "data"):
            os.makedirs(os.path.join(d, sub))
        shutil.chown(os.path.join(d, "data"), "postfix")
        transport = os.path.join(d, "etc", "mailgate-transport")
        shutil.copy(os.path.join(CONTRIB, "throttling", "mailgate-transport"), transport)
        main = ("compatibility_level = 3.6\nqueue_directory = %s/queue\ndata_directory = %s/data\n"
                "myhostname = recipes.localdomain\ninet_interfaces = 127.0.0.1\nalias_maps =\n"
                "alias_database =\nmaillog_file = %s/maillog\n" % (d, d, d))
        main += read(CONTRIB, "main.cf.snippet")
        main += read(CONTRIB, "throttling", "main.cf.snippet").replace("/etc/postfix/mailgate-transport", transport)
        with open(os.path.join(d, "etc", "main.cf"), "w") as f:
            f.write(main)
        master = read("/usr/share/postfix/master.cf.dist")
        master += read(CONTRIB, "master.cf.snippet") + read(CONTRIB, "throttling", "master.cf.snippet")
        with open(os.path.join(d, "etc", "master.cf"), "w") as f:
            f.write(master)
        etc = os.path.join(d, "etc")
        pm = subprocess.run(["postmap", "-c", etc, transport], capture_output=True, text=True)
        self.assertEqual((pm.returncode, pm.stderr), (0, ""))
        for argv in (["postconf", "-c", etc, "-n"], ["postconf", "-c", etc, "-M"], ["postfix", "-c", etc, "check"]):
            r = subprocess.run(argv, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertNotIn("warning", r.stderr, " ".join(argv))
        n = subprocess.run(["postconf", "-c", etc, "-h", "mg-yahoo_destination_rate_delay",
                            "smtpd_policy_service_default_action"], capture_output=True, text=True)
        self.assertEqual(n.stdout.split("\n")[:2], ["1s", "451 4.3.5 Server configuration problem"])
        # Dead-destination detection stays Postfix's quick default (1 failed cohort) for every
        # transport and is set per provider transport only (postconf(5)).
        providers = ("mg-gmail", "mg-microsoft", "mg-yahoo", "mg-mailru", "mg-yandex")
        c = subprocess.run(["postconf", "-c", etc, "-h", "default_destination_concurrency_failed_cohort_limit"] +
                           ["%s_destination_concurrency_failed_cohort_limit" % t for t in providers],
                           capture_output=True, text=True)
        self.assertEqual((c.stdout.split(), c.stderr), (["1"] * 6, ""))
        self.assertNotIn("default_destination_concurrency_failed_cohort_limit",
                         subprocess.run(["postconf", "-c", etc, "-n"], capture_output=True, text=True).stdout)


RESTRICTION_LISTS = ("smtpd_relay_restrictions", "smtpd_sender_restrictions", "smtpd_recipient_restrictions",
                     "smtpd_end_of_data_restrictions")


def recipe_restrictions(policy_socket):
    """The restriction lists of main.cf.snippet, with its policy socket replaced."""
    d = tempfile.mkdtemp(prefix="mg-recipes-", dir="/var/tmp")
    try:
        with open(os.path.join(d, "main.cf"), "w") as f:
            f.write(read(CONTRIB, "main.cf.snippet"))
        r = subprocess.run(["postconf", "-c", d, "-h"] + list(RESTRICTION_LISTS), capture_output=True, text=True,
                           check=True)
    finally:
        shutil.rmtree(d, True)
    values = r.stdout.rstrip("\n").split("\n")
    return {name: value.replace("unix:mailgate/policy", "unix:" + policy_socket)
            for name, value in zip(RESTRICTION_LISTS, values)}


class PostfixRecipeRelay(unittest.TestCase):
    """Clients bound to 127.0.0.2, outside mynetworks = 127.0.0.1/32."""

    def setUp(self):
        self.stack = Stack(extra_config="auth_cache_ttl = 1s\n")
        self.addCleanup(self.stack.stop)
        self.stack.postconf_edits.append(["-e", "mynetworks = 127.0.0.1/32"])
        for name, value in recipe_restrictions(self.stack.path("policy.sock")).items():
            self.stack.postconf_edits.append(["-e", "%s = %s" % (name, value)])
        self.stack.start()

    def send(self, **kw):
        return self.stack.swaks("--local-interface", "127.0.0.2", **kw)

    def test_pinned_client_outside_mynetworks_relays(self):
        self.stack.make_account("pinned")
        out = self.send()
        self.assertIn("<** 530 5.7.0 <alice@example.org>: Sender address rejected: no username or password", out)
        self.stack.ctl_ok("net", "allow", "pinned", "127.0.0.2/32")
        time.sleep(1.2)  # auth_cache_ttl: the networks index is reloaded
        out = self.send()
        qid = self.stack.queue_id(out)
        self.assertIsNotNone(qid, out + self.stack.diagnostics())
        self.stack.wait_delivered(1)
        self.assertEqual({e["queue_id"]: e["account"] for e in self.stack.events()}[qid], "pinned")
        self.assertRegex(self.stack.maillog(), r"%s: client=\S*\[127\.0\.0\.2\]" % qid)
        # An authenticated client from the same address still relays, a stranger still does not.
        key, _ = self.stack.make_key("acme")
        self.assertIsNotNone(self.stack.queue_id(self.send(key=key)), self.stack.diagnostics())
        self.stack.ctl_ok("net", "deny", "pinned", "127.0.0.2/32")
        time.sleep(1.2)
        out = self.send()
        self.assertIn("<** 530 5.7.0 <alice@example.org>: Sender address rejected: no username or password", out)


if __name__ == "__main__":
    unittest.main()
