"""Staff proof by DKIM aligned under DMARC: a staff member's mail signed with DKIM by their
domain (dkimpy as the signer, DNS answers from a records file) counts as staff; unsigned,
tampered or unaligned mail with the same From does not."""

import email.utils
import os
import smtplib
import unittest
import uuid
from email.message import EmailMessage

import dkim

from harness import Server, rsa_key


class Dmarc(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server()
        keys = os.path.join(cls.srv.dir, "keys")
        os.makedirs(keys)
        cls.acme_key, acme_pub = rsa_key(os.path.join(keys, "acme.pem"))
        cls.evil_key, evil_pub = rsa_key(os.path.join(keys, "evil.pem"))
        cls.dns = {b"sel._domainkey.acme.test.": f"v=DKIM1; k=rsa; p={acme_pub}".encode(),
                   b"sel._domainkey.evil.test.": f"v=DKIM1; k=rsa; p={evil_pub}".encode()}
        records = os.path.join(cls.srv.dir, "records.txt")
        with open(records, "w") as f:
            f.write("; test zone\n")
            f.write(f'sel._domainkey.acme.test. IN TXT "v=DKIM1; k=rsa; " "p={acme_pub}"\n')
            f.write('_dmarc.acme.test. IN TXT "v=DMARC1; p=reject"\n')
            f.write(f'sel._domainkey.evil.test TXT "v=DKIM1; k=rsa; p={evil_pub}"\n')
            f.write('_dmarc.evil.test TXT "v=DMARC1; p=none"\n')
        cls.srv.env["POSTDESK_DNS_RECORDS"] = records
        cls.srv.bootstrap(staff=[("alex@acme.test", "Alex", "tech")]).start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()

    def signed(self, body, domain="acme.test", key=None, tamper=False):
        m = EmailMessage()
        m["From"] = "Alex <alex@acme.test>"
        m["To"] = "acme@acme.test"
        m["Subject"] = "Resetting the router"
        m["Message-ID"] = f"<{uuid.uuid4().hex}@acme.test>"
        m["Date"] = email.utils.formatdate()
        m.set_content(body)
        raw = m.as_bytes().replace(b"\n", b"\r\n")
        sig = dkim.sign(raw, b"sel", domain.encode(), key or self.acme_key,
                        include_headers=[b"from", b"to", b"subject", b"message-id", b"date"])
        raw = sig + raw
        if tamper:
            raw = raw.replace(body.encode(), b"Something else entirely.")
        # dkimpy, the referee, agrees on the signature before Postdesk sees the mail.
        valid = dkim.verify(raw, dnsfunc=lambda name, timeout=5: self.dns.get(name, b""))
        self.assertEqual(valid, not tamper)
        return m["Message-ID"], raw

    def deliver(self, raw, mid):
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port) as s:
            s.sendmail("alex@acme.test", ["acme@acme.test"], raw)
        return self.srv.decision_for(mid)

    def test_dkim_aligned_mail_proves_staff(self):
        mid, raw = self.signed("I restarted the router.")
        d = self.deliver(raw, mid)
        self.assertTrue(any("proven by DKIM aligned" in n for n in d["notes"]), d["notes"])
        self.assertTrue(self.srv.ticket(d["ticket"])["events"][0]["by_staff"])

    def test_tampered_mail_is_not_proof(self):
        mid, raw = self.signed("Original words.", tamper=True)
        d = self.deliver(raw, mid)
        self.assertTrue(any("no proof" in n for n in d["notes"]), d["notes"])
        self.assertFalse(self.srv.ticket(d["ticket"])["events"][0]["by_staff"])

    def test_signature_of_another_domain_is_not_proof(self):
        mid, raw = self.signed("Signed by someone else.", domain="evil.test", key=self.evil_key)
        d = self.deliver(raw, mid)
        self.assertTrue(any("no proof" in n for n in d["notes"]), d["notes"])
        self.assertFalse(self.srv.ticket(d["ticket"])["events"][0]["by_staff"])

    def test_unsigned_mail_is_not_proof(self):
        m = EmailMessage()
        m["From"] = "alex@acme.test"
        m["To"] = "acme@acme.test"
        m["Subject"] = "unsigned"
        m["Message-ID"] = f"<{uuid.uuid4().hex}@acme.test>"
        m.set_content("hi")
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port) as s:
            s.send_message(m)
        d = self.srv.decision_for(m["Message-ID"])
        self.assertTrue(any("no proof" in n for n in d["notes"]), d["notes"])


if __name__ == "__main__":
    unittest.main()
