"""test_ctl_dkim.py — `mailgatectl dkim` against a real redis-server:
generate (RSA and Ed25519) prints the record to publish, import takes an
openssl-made key, list/dns/remove, and the errors for bad input."""

import os
import subprocess
import tempfile
import unittest

from harness import Stack


class CtlDkim(unittest.TestCase):
    def setUp(self):
        self.stack = Stack()
        self.addCleanup(self.stack.stop)
        self.stack.start_redis()

    def test_generate_import_list_dns_remove(self):
        out = self.stack.ctl_ok("dkim", "generate", "Shop.Example", "--selector", "s1")
        self.assertIn("DKIM key rsa-sha256 (2048 bits) stored for shop.example, selector s1; publish:", out)
        self.assertIn('s1._domainkey.shop.example. IN TXT ( "v=DKIM1; k=rsa; p=MIIBIjAN', out)
        out = self.stack.ctl_ok("dkim", "generate", "shop.example", "--algo", "ed25519", "--selector", "e1")
        self.assertIn('e1._domainkey.shop.example. IN TXT ( "v=DKIM1; k=ed25519; p=', out)
        with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as f:
            f.write(subprocess.run(["openssl", "genrsa", "-traditional", "1024"], capture_output=True,
                                   text=True, check=True).stdout)
        self.addCleanup(os.unlink, f.name)
        self.stack.ctl_ok("dkim", "import", "news.example", "--selector", "old", "--key", f.name)
        listing = self.stack.ctl_ok("dkim", "list")
        self.assertIn("news.example  old", listing)
        self.assertRegex(listing, r"news.example  old +rsa-sha256 +1024 ")
        self.assertIn("ed25519-sha256", listing)
        dns = self.stack.ctl_ok("dkim", "dns", "shop.example")
        self.assertEqual(dns.count("._domainkey.shop.example. IN TXT"), 2)
        self.stack.ctl_ok("dkim", "remove", "shop.example", "--selector", "s1")
        self.assertEqual(self.stack.ctl_ok("dkim", "dns", "shop.example").count("IN TXT"), 1)
        self.assertNotIn("PRIVATE KEY", listing + dns)

    def test_errors(self):
        r = self.stack.ctl("dkim", "generate", "shop.example", "--algo", "dsa")
        self.assertEqual((r.returncode, r.stderr),
                         (1, 'mailgatectl: unknown algorithm "dsa": expected rsa2048 or ed25519\n'))
        with tempfile.NamedTemporaryFile("w", suffix=".pem") as f:
            f.write(subprocess.run(["openssl", "genrsa", "512"], capture_output=True, text=True).stdout)
            f.flush()
            r = self.stack.ctl("dkim", "import", "shop.example", "--selector", "s", "--key", f.name)
        self.assertEqual(r.stderr, "mailgatectl: RSA key of 512 bits: DKIM needs at least 1024\n")
        r = self.stack.ctl("dkim", "dns", "none.example")
        self.assertEqual(r.stderr, "mailgatectl: no DKIM key for none.example\n")
        r = self.stack.ctl("dkim", "import", "shop.example", "--selector", "s", "--key", "/nonexistent.pem")
        self.assertEqual(r.stderr, "mailgatectl: /nonexistent.pem: cannot open\n")


if __name__ == "__main__":
    unittest.main()
