"""DKIM: `postdesk dkim generate` prints the record to publish, `dkim show` prints it again,
and every outbound mail of that organization verifies with dkimpy (the referee) against
that record, for Ed25519 and RSA keys; a modified mail does not."""

import email
import glob
import os
import re
import smtplib
import unittest
import uuid
from email.message import EmailMessage

import dkim

from harness import Server, wait_for

RECORD = re.compile(r'^(?P<sel>[a-z0-9.-]+)\._domainkey\.(?P<dom>[a-z0-9.-]+)\. IN TXT (?P<val>(?:"[^"]*" ?)+)$')


class Dkim(unittest.TestCase):
    def run_with(self, algorithm):
        srv = Server().bootstrap(orgs=[("acme", "Acme", []), ("beta", "Beta", [])])
        self.addCleanup(srv.close)
        r = srv.cli("dkim", "show", "--org", "acme", check=False)
        self.assertIn("has no DKIM key", r.stderr)
        self.assertIn("no organization", srv.cli("dkim", "generate", "--org", "nope", "--selector", "s1", check=False).stderr)
        record = srv.cli("dkim", "generate", "--org", "acme", "--selector", "pd2026",
                         "--algorithm", algorithm).stdout.strip()
        m = RECORD.match(record)
        self.assertIsNotNone(m, record)
        self.assertEqual((m["sel"], m["dom"]), ("pd2026", "acme.test"))
        value = "".join(re.findall(r'"([^"]*)"', m["val"]))
        self.assertTrue(value.startswith(f"v=DKIM1; k={algorithm}; p="), value)
        self.assertEqual(srv.cli("dkim", "show", "--org", "acme").stdout.strip(), record)
        srv.start()
        zone = {b"pd2026._domainkey.acme.test.": value.encode()}
        outbox = os.path.join(srv.data, "outbox")
        for org in ("acme", "beta"):
            msg = EmailMessage()
            msg["From"] = "carl@customer.test"
            msg["To"] = f"{org}@acme.test"
            msg["Subject"] = f"hello {org}"
            msg["Message-ID"] = f"<{uuid.uuid4().hex}@customer.test>"
            msg.set_content("hi")
            with smtplib.SMTP("127.0.0.1", srv.smtp_port) as s:
                s.send_message(msg)
        def acks():
            found = {}
            for path in glob.glob(os.path.join(outbox, "*.eml")):
                with open(path, "rb") as f:
                    raw = f.read()
                if b"To: <carl@customer.test>" in raw:
                    found["acme" if b"<acme@acme.test>" in raw.split(b"\r\n\r\n")[0] else "beta"] = raw
            return found if len(found) == 2 else None
        signed = wait_for(acks)
        raw = signed["acme"]
        dns = lambda name, timeout=5: zone.get(name, b"")
        self.assertTrue(raw.count(b"\r\n") > 0)
        self.assertIn(b"DKIM-Signature:", signed["acme"])
        self.assertTrue(dkim.verify(signed["acme"], dnsfunc=dns), "dkimpy rejects the signature")
        sig = email.message_from_bytes(signed["acme"])["DKIM-Signature"]
        for h in ("from", "subject", "message-id", "in-reply-to", "references", "reply-to"):
            self.assertIn(h, sig.lower().split("h=")[1].split(";")[0], f"{h} not signed")
        tampered = signed["acme"].replace(b"we have received", b"we have NOT received")
        self.assertFalse(dkim.verify(tampered, dnsfunc=dns))
        self.assertNotIn(b"DKIM-Signature:", signed["beta"], "an org without a key sends unsigned")

    def test_ed25519(self):
        self.run_with("ed25519")

    def test_rsa(self):
        self.run_with("rsa")


if __name__ == "__main__":
    unittest.main()
