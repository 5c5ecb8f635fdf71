"""test_recipes.py — the Postfix recipes in contrib/postfix are valid for the
Postfix this machine has: main.cf and master.cf built from Debian's
defaults plus the snippets (gateway, submission, per-provider throttling)
pass `postfix check` and `postconf` without a single warning (a misspelt or
unused parameter is a warning)."""
import os
import shutil
import subprocess
import tempfile
import unittest

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


if __name__ == "__main__":
    unittest.main()
