"""The command line: first run, organizations and their address rule, staff, tokens (made,
listed, revoked), configuration from file and environment, the data-folder lock while
serving, and a data folder only its owner can read."""

import glob
import os
import re
import smtplib
import socket
import stat
import subprocess
import time
import unittest
from email.message import EmailMessage

from harness import BIN, Browser, Server, mail, wait_for


class Cli(unittest.TestCase):
    def setUp(self):
        self.srv = Server()
        self.addCleanup(self.srv.close)

    def first_start(self, *extra):
        """Starts `serve` on the empty data folder with the default domain (localhost), as
        the README's first command does; returns what it printed."""
        env = dict(self.srv.env)
        env.pop("POSTDESK_DOMAIN")
        proc = subprocess.Popen(
            [BIN, "--data", self.srv.data, "serve", "--smtp", f"127.0.0.1:{self.srv.smtp_port}",
             "--http", f"127.0.0.1:{self.srv.http_port}", *extra],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.srv.proc = proc
        self.addCleanup(proc.stdout.close)
        lines = []
        while not any("curl" in line for line in lines):
            line = proc.stdout.readline()
            self.assertTrue(line, f"server printed no instructions: {lines}")
            lines.append(line)
        return "".join(lines)

    def test_first_run_accepts_mail_at_once(self):
        text = self.first_start("--owner", "Boss@Example.org")
        self.assertIn("support@localhost", text)
        self.assertIn(f"swaks --server 127.0.0.1:{self.srv.smtp_port}", text)
        token = re.search(r"Bearer (pd_[0-9a-f]+)", text).group(1)
        # The printed one-time link opens the web UI as the owner.
        link = re.search(rf"http://127\.0\.0\.1:{self.srv.http_port}(/signin/link/[a-z0-9]+)", text).group(1)
        browser = Browser(self.srv)
        self.assertEqual(browser.get(link)[0], 303)
        status, _, page = browser.get("/settings/staff")
        self.assertEqual(status, 200)
        self.assertIn("boss@example.org", page)
        m = EmailMessage()
        m["From"] = "newcomer@example.com"
        m["To"] = "support@localhost"
        m["Subject"] = "first mail"
        m["Message-ID"] = "<first@example.com>"
        m.set_content("hello")
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port) as s:
            s.send_message(m)
        self.srv.token = token
        d = self.srv.decision_for("<first@example.com>")
        self.assertEqual(self.srv.ticket(d["ticket"])["org"], "support")

    def test_first_run_without_owner_makes_admin_at_the_domain(self):
        # The README's first start: no --owner.
        self.assertIn("sign-in link for admin@localhost", self.first_start())
        self.srv.stop()
        self.assertIn("admin@localhost\tOwner\towner", self.srv.cli("staff", "list").stdout)

    def test_a_first_start_that_cannot_listen_writes_nothing(self):
        # The SMTP port is taken (as port 25 often is): the start fails before anything is
        # written, so the next start is a first start again, with its owner and link.
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", self.srv.smtp_port))
        taken.listen()
        env = dict(self.srv.env)
        env.pop("POSTDESK_DOMAIN")
        r = subprocess.run([BIN, "--data", self.srv.data, "serve", "--smtp",
                            f"127.0.0.1:{self.srv.smtp_port}", "--http",
                            f"127.0.0.1:{self.srv.http_port}"],
                           env=env, capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("cannot listen for SMTP", r.stderr)
        self.assertEqual(self.srv.cli("org", "list").stdout, "")
        self.assertEqual(self.srv.cli("staff", "list").stdout, "")
        taken.close()
        # Nor one whose settings are refused (a DNS records file that is not there).
        r = subprocess.run([BIN, "--data", self.srv.data, "serve", "--smtp",
                            f"127.0.0.1:{self.srv.smtp_port}", "--http",
                            f"127.0.0.1:{self.srv.http_port}"],
                           env={**env, "POSTDESK_DNS_RECORDS": "/nonexistent/records"},
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("dns_records", r.stderr)
        self.assertEqual(self.srv.cli("staff", "list").stdout, "")
        # Nor one with an owner that is no address; no thread is left running either.
        r = subprocess.run([BIN, "--data", self.srv.data, "serve", "--smtp",
                            f"127.0.0.1:{self.srv.smtp_port}", "--http",
                            f"127.0.0.1:{self.srv.http_port}", "--owner", "boss at example"],
                           env=env, capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("is not an email address", r.stderr)
        self.assertEqual(self.srv.cli("org", "list").stdout, "")
        self.assertIn("sign-in link for admin@localhost", self.first_start())

    def test_org_rules_and_lists(self):
        for bad in ["abc", "1abc", "Acme", "ac_me"]:
            r = self.srv.cli("org", "add", bad, "--name", "X", check=False)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("must start with a letter", r.stderr)
            self.assertNotIn("panicked", r.stderr)
        self.srv.cli("org", "add", "acme-eu", "--name", "Acme EU", "--address", "Help@Acme.EU",
                     "--whitelist", "acme.eu, partner.test")
        r = self.srv.cli("org", "add", "acme-eu", "--name", "again", check=False)
        self.assertIn("organization acme-eu is taken", r.stderr)
        out = self.srv.cli("org", "list").stdout
        self.assertIn("acme-eu\tAcme EU\tacme-eu@acme.test,help@acme.eu\twhitelist: acme.eu,partner.test", out)
        # The settings form's rules: an address with a + part (reply addresses use it), a
        # whitelist entry that is no domain, an address another organization has.
        for args, why in [(["--address", "not-an-address"], "is not an email address"),
                          (["--address", "sales+x@acme.eu"], "no + part"),
                          (["--whitelist", "partner"], "is not a domain"),
                          (["--address", "HELP@acme.eu"], "is taken")]:
            r = self.srv.cli("org", "add", "other", "--name", "O", *args, check=False)
            self.assertNotEqual(r.returncode, 0, args)
            self.assertIn(why, r.stderr, args)
        self.assertNotIn("other", self.srv.cli("org", "list").stdout)

    def test_staff_and_tokens(self):
        self.srv.cli("staff", "add", "Alex@Acme.test", "--name", "Alex", "--role", "manager")
        r = self.srv.cli("staff", "add", "kim@acme.test", "--name", "Kim", "--role", "boss", check=False)
        self.assertIn("unknown role", r.stderr)
        self.assertIn("alex@acme.test\tAlex\tmanager", self.srv.cli("staff", "list").stdout)
        tok = self.srv.cli("token", "create", "alex@acme.test").stdout.strip()
        self.assertRegex(tok, r"^pd_[0-9a-f]{48}$")
        r = self.srv.cli("token", "create", "nobody@acme.test", check=False)
        self.assertIn("nobody@acme.test is not a staff member", r.stderr)
        r = self.srv.cli("staff", "add", "alex@ACME.test", "--name", "Alex", "--role", "tech", check=False)
        self.assertIn("is a staff member already", r.stderr)
        r = self.srv.cli("staff", "add", "kim@acme_corp", "--name", "Kim", "--role", "tech", check=False)
        self.assertIn("is not an email address", r.stderr)
        for root, _, files in os.walk(self.srv.data):
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    self.assertNotIn(tok.encode(), f.read(), "tokens are stored hashed")

    def test_tokens_are_listed_and_revoked(self):
        self.srv.bootstrap(staff=[("alex@acme.test", "Alex", "manager")])
        alex = self.srv.cli("token", "create", "alex@acme.test").stdout.strip()
        listed = self.srv.cli("token", "list").stdout
        rows = [line.split("\t") for line in listed.splitlines()]
        self.assertEqual(len(rows), 2, listed)
        today = time.strftime("%Y-%m-%d", time.gmtime())
        self.assertEqual(sorted((r[1], r[2]) for r in rows),
                         [("alex@acme.test", today), ("tester@ops.test", today)])
        for r in rows:
            self.assertRegex(r[0], r"^[0-9a-f]{12}$")
        self.assertNotIn(alex, listed)
        self.assertNotIn(self.srv.token, listed)
        alex_id = next(r[0] for r in rows if r[1] == "alex@acme.test")
        # A bad or unknown id changes nothing.
        for bad in ("xyz", "0000000000000000"):
            r = self.srv.cli("token", "revoke", bad, check=False)
            self.assertNotEqual(r.returncode, 0)
            self.assertNotIn("panicked", r.stderr)
        self.assertEqual(len(self.srv.cli("token", "list").stdout.splitlines()), 2)
        out = self.srv.cli("token", "revoke", alex_id).stdout
        self.assertIn(f"revoked token {alex_id} of alex@acme.test", out)
        self.srv.start()
        self.srv.api("/api/v1/tickets", token=alex, expect=401)
        self.srv.api("/api/v1/tickets")

    def test_data_folder_is_private(self):
        self.srv.bootstrap().start()
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port) as s:
            s.send_message(mail("c@customer.test", "acme@acme.test", "Private?",
                                message_id="<private@customer.test>"))
        self.srv.decision_for("<private@customer.test>")
        wait_for(lambda: glob.glob(os.path.join(self.srv.data, "outbox", "*.eml")))
        self.srv.stop()
        self.assertEqual(stat.S_IMODE(os.stat(self.srv.data).st_mode), 0o700)
        paths = []
        for root, dirs, files in os.walk(self.srv.data):
            paths += [os.path.join(root, d) for d in dirs] + [os.path.join(root, f) for f in files]
        self.assertTrue(any(p.endswith(".eml") for p in paths), paths)
        for path in paths:
            mode = stat.S_IMODE(os.stat(path).st_mode)
            with self.subTest(path=os.path.relpath(path, self.srv.data)):
                self.assertEqual(mode & 0o077, 0, oct(mode))
        # A folder left open to others is tightened, with a warning.
        os.chmod(self.srv.data, 0o755)
        r = self.srv.cli("org", "list")
        self.assertIn("was open to other users", r.stderr)
        self.assertEqual(stat.S_IMODE(os.stat(self.srv.data).st_mode), 0o700)

    def test_admin_commands_refused_while_serving(self):
        self.srv.bootstrap().start()
        r = self.srv.cli("org", "list", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(f"locked by a running Postdesk server (PID {self.srv.proc.pid})", r.stderr)
        self.assertNotIn("panicked", r.stderr)
        self.srv.stop()
        self.assertIn("acme", self.srv.cli("org", "list").stdout)

    def test_config_file_and_environment(self):
        path = os.path.join(self.srv.dir, "postdesk.toml")
        with open(path, "w") as f:
            f.write('domain = "example.org"\nmax_recipients = 7\nsmtp = "0.0.0.0:25"\n')
        env = dict(self.srv.env, POSTDESK_MAX_RECIPIENTS="9")
        env.pop("POSTDESK_DOMAIN")
        out = subprocess.run([BIN, "--config", path, "config"], env=env, capture_output=True,
                             text=True, check=True).stdout
        self.assertIn('domain = "example.org"', out)
        self.assertIn("max_recipients = 9", out)
        self.assertIn("trusted_proxies = []", out)
        self.assertIn('smtp = "0.0.0.0:25"', out)
        self.assertIn('http = "127.0.0.1:8080"', out)
        with open(path, "w") as f:
            f.write('domian = "typo.org"\n')
        r = subprocess.run([BIN, "--config", path, "config"], env=env, capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("domian", r.stderr)
        r = subprocess.run([BIN, "config"], env=dict(env, POSTDESK_MAX_RECIPIENTS="many"),
                           capture_output=True, text=True)
        self.assertIn("POSTDESK_MAX_RECIPIENTS", r.stderr)
        # Trusted proxies from the environment, a comma-separated list; a bad entry is named.
        out = subprocess.run([BIN, "config"], env=dict(env, POSTDESK_TRUSTED_PROXIES="10.0.0.0/8, ::1"),
                             capture_output=True, text=True, check=True).stdout
        self.assertIn('trusted_proxies = ["10.0.0.0/8", "::1"]', out)
        r = subprocess.run([BIN, "config"], env=dict(env, POSTDESK_TRUSTED_PROXIES="proxy.lan"),
                           capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('trusted_proxies: "proxy.lan" is not an IP address or CIDR block', r.stderr)


if __name__ == "__main__":
    unittest.main()
