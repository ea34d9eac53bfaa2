"""Files in outbound mail, with smtplib as the mail client and dkimpy as the referee: a
staff member's DKIM-aligned answer with files reaches the requester and the CC carrying
the same bytes (checked by SHA-256), DKIM-signed so that dkimpy verifies it; an end user's
file reaches staff in the alert and no other end user; held mail's files go nowhere; files
over the outbound cap are named in the text instead; and through a relay (aiosmtpd) that
refuses the mail for its size, the mail goes again without its files, naming them."""

import email
import email.policy
import email.utils
import glob
import hashlib
import os
import re
import smtplib
import unittest
import uuid
from email.message import EmailMessage

import dkim
from aiosmtpd.controller import Controller

from harness import Server, free_port, mail, rsa_key, wait_for

RECORD = re.compile(r'^(?P<sel>[a-z0-9.-]+)\._domainkey\.(?P<dom>[a-z0-9.-]+)\. IN TXT (?P<val>(?:"[^"]*" ?)+)$')

# Outbound mails over this many bytes leave their files out (inbound stays at 25 MiB).
OUTBOUND_CAP = 1_000_000


def sha(data):
    return hashlib.sha256(data).hexdigest()


def outbound_zone(srv):
    """`dkim generate` for the organization: the DNS answer dkimpy checks outbound mail by."""
    record = srv.cli("dkim", "generate", "--org", "acme", "--selector", "out").stdout.strip()
    m = RECORD.match(record)
    value = "".join(re.findall(r'"([^"]*)"', m["val"]))
    return {f"{m['sel']}._domainkey.{m['dom']}.".encode(): value.encode()}


def files_of(msg):
    """(file name, content type, SHA-256) of each attachment of a parsed mail."""
    return [(p.get_filename(), p.get_content_type(), sha(p.get_payload(decode=True)))
            for p in msg.iter_attachments()]


def text_of(msg):
    return msg.get_body(("plain",)).get_content()


class Attachments(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(env={"POSTDESK_RELAY_MAX_MESSAGE_SIZE": str(OUTBOUND_CAP)})
        keys = os.path.join(cls.srv.dir, "keys")
        os.makedirs(keys)
        # Alex's own mail system signs his mail for acme.test; DMARC makes it proof.
        cls.staff_key, staff_pub = rsa_key(os.path.join(keys, "staff.pem"))
        records = os.path.join(cls.srv.dir, "records.txt")
        with open(records, "w") as f:
            f.write(f'sel._domainkey.acme.test. IN TXT "v=DKIM1; k=rsa; " "p={staff_pub}"\n')
            f.write('_dmarc.acme.test. IN TXT "v=DMARC1; p=reject"\n')
        cls.srv.env["POSTDESK_DNS_RECORDS"] = records
        cls.srv.bootstrap(staff=[("alex@acme.test", "Alex Doe", "admin")])
        cls.zone = outbound_zone(cls.srv)
        cls.srv.start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()

    def send(self, m):
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port) as s:
            s.send_message(m)
        return self.srv.decision_for(m["Message-ID"])

    def outbox(self):
        """Every mail written to the outbox folder: (raw bytes, parsed)."""
        out = []
        for path in glob.glob(os.path.join(self.srv.data, "outbox", "*.eml")):
            with open(path, "rb") as f:
                raw = f.read()
            out.append((raw, email.message_from_bytes(raw, policy=email.policy.default)))
        return out

    def mails(self, to, ticket, containing):
        return [(raw, m) for raw, m in self.outbox()
                if m["To"].addresses[0].addr_spec == to and f"[#{ticket}]" in m["Subject"]
                and containing in text_of(m)]

    def verifies(self, raw):
        return dkim.verify(raw, dnsfunc=lambda name, timeout=5: self.zone.get(name, b""))

    def open_ticket(self, summary):
        d = self.send(mail("Carol <carol@customer.test>", "acme@acme.test", summary,
                           "It fails since 9:00.", Cc="dave@customer.test"))
        return d["ticket"], self.srv.ticket(d["ticket"])["events"][0]["message_id"]

    def staff_answer(self, ticket, in_reply_to, text, files):
        """Alex answers from his own mail system, DKIM-signed for acme.test (aligned)."""
        m = EmailMessage()
        m["From"] = "Alex Doe <alex@acme.test>"
        m["To"] = "acme@acme.test"
        m["Subject"] = f"Re: [#{ticket}] answer"
        m["Message-ID"] = f"<{uuid.uuid4().hex}@acme.test>"
        m["Date"] = email.utils.formatdate()
        m["In-Reply-To"] = in_reply_to
        m.set_content(text)
        for name, ctype, data in files:
            maintype, subtype = ctype.split("/")
            m.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
        raw = m.as_bytes(policy=email.policy.SMTP)
        sig = dkim.sign(raw, b"sel", b"acme.test", self.staff_key,
                        include_headers=[b"from", b"to", b"subject", b"message-id", b"date",
                                         b"in-reply-to"])
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port) as s:
            s.sendmail("alex@acme.test", ["acme@acme.test"], sig + raw)
        return self.srv.decision_for(m["Message-ID"])

    def test_staff_mail_answer_relays_its_files_byte_for_byte(self):
        n, first = self.open_ticket("VPN down")
        report = os.urandom(200_000)
        log = b"line one\nline two\r\n.\r\nFrom here\n\x00\xff"
        files = [("diagnose \u00fcml\u00e4ut \"x\".bin", "application/octet-stream", report),
                 ("vpn.log", "text/plain", log)]
        d = self.staff_answer(n, first, "Please run the attached tool.", files)
        self.assertEqual(d["ticket"], n)
        self.assertTrue(any("proven by DKIM aligned" in x for x in d["notes"]), d["notes"])
        answer = self.srv.ticket(n)["events"][-1]
        self.assertTrue(answer["by_staff"])
        self.assertEqual([a["sha256"] for a in answer["attachments"]], [sha(report), sha(log)])
        for person in ("carol@customer.test", "dave@customer.test"):
            raw, m = wait_for(lambda: self.mails(person, n, "Please run the attached tool."))[0]
            self.assertEqual(files_of(m), [(files[0][0], "application/octet-stream", sha(report)),
                                           ("vpn.log", "text/plain", sha(log))], person)
            self.assertTrue(self.verifies(raw), f"dkimpy rejects the mail to {person}")
            self.assertFalse(self.verifies(raw.replace(b"Please run", b"Please ran")))
        self.assertEqual(self.mails("alex@acme.test", n, "Please run the attached tool."), [],
                         "never mailed to its author")

    def test_an_end_users_file_reaches_staff_only(self):
        n, first = self.open_ticket("Printer jams")
        shot = os.urandom(5_000)
        m = mail("carol@customer.test", "acme@acme.test", f"Re: [#{n}] Printer jams",
                 "Here is a photo.", In_Reply_To=first)
        m.add_attachment(shot, maintype="image", subtype="jpeg", filename="jam.jpg")
        self.assertEqual(self.send(m)["ticket"], n)
        raw, alert = wait_for(lambda: self.mails("alex@acme.test", n, "Here is a photo."))[0]
        self.assertEqual(files_of(alert), [("jam.jpg", "image/jpeg", sha(shot))])
        self.assertTrue(self.verifies(raw))
        # Someone who takes no part writes with a file: staff hear of it, without the file.
        held = mail("mallory@elsewhere.test", "acme@acme.test", f"Re: [#{n}] Printer jams",
                    "Open this.", In_Reply_To=first)
        held.add_attachment(b"MZ not a virus", maintype="application", subtype="x-msdownload",
                            filename="invoice.exe")
        self.assertEqual(self.send(held)["ticket"], n)
        _, held_alert = wait_for(lambda: self.mails("alex@acme.test", n, "Open this."))[0]
        self.assertEqual(files_of(held_alert), [])
        staff = {"alex@acme.test", "tester@ops.test"}
        for raw, m in self.outbox():
            if m["To"].addresses[0].addr_spec not in staff:
                hashes = {h for _, _, h in files_of(m)}
                self.assertNotIn(sha(shot), hashes, f"to {m['To']}")
                self.assertNotIn(sha(b"MZ not a virus"), hashes, f"to {m['To']}")

    def test_files_over_the_cap_are_named_instead(self):
        n, first = self.open_ticket("Big logs")
        big, small = os.urandom(1_500_000), os.urandom(4_000)
        d = self.staff_answer(n, first, "Both logs attached.",
                              [("full.tar", "application/x-tar", big),
                               ("summary.txt", "text/plain", small)])
        self.assertEqual(d["ticket"], n)
        raw, m = wait_for(lambda: self.mails("carol@customer.test", n, "Both logs attached."))[0]
        self.assertLessEqual(len(raw), OUTBOUND_CAP)
        self.assertEqual(files_of(m), [("summary.txt", "text/plain", sha(small))])
        self.assertIn("Not attached, too large to send by mail: full.tar (1.5 MB). "
                      "Reply to this mail if you need them.", text_of(m))
        self.assertTrue(self.verifies(raw))


class SizeLimitedRelay:
    """A relay with a small message size limit (aiosmtpd answers 552 over it)."""

    def __init__(self):
        self.received = []

    async def handle_DATA(self, server, session, envelope):
        self.received.append((list(envelope.rcpt_tos), envelope.content))
        return "250 2.0.0 Queued"


class ThroughARelay(unittest.TestCase):
    def test_relay_gets_the_same_bytes_and_a_size_refusal_still_delivers_the_text(self):
        handler = SizeLimitedRelay()
        relay_port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=relay_port,
                                data_size_limit=150_000)
        controller.start()
        self.addCleanup(controller.stop)
        srv = Server(env={"POSTDESK_RELAY_URL": f"smtp://127.0.0.1:{relay_port}",
                          "POSTDESK_RELAY_TLS": "none"})
        self.addCleanup(srv.close)
        srv.bootstrap(staff=[("alex@acme.test", "Alex Doe", "admin")])
        zone = outbound_zone(srv)
        srv.start()
        with smtplib.SMTP("127.0.0.1", srv.smtp_port) as s:
            s.send_message(mail("carol@customer.test", "acme@acme.test", "Scanner", "It is slow."))
        n = wait_for(lambda: srv.tickets())[0]["number"]
        # Alex answers through the reply address his alerts carry (a reply token).
        addr = srv.api(f"/api/v1/tickets/{n}/reply-address?for=alex@acme.test")["address"]

        def answer(text, name, data):
            m = mail("Alex Doe <alex@acme.test>", addr, f"Re: [#{n}] Scanner", text)
            m.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
            with smtplib.SMTP("127.0.0.1", srv.smtp_port) as s:
                s.send_message(m)
            self.assertTrue(srv.decision_for(m["Message-ID"])["ticket"] == n)

        def to_carol(text):
            return [c for rcpt, c in handler.received
                    if rcpt == ["carol@customer.test"] and text.encode() in c]

        fits, too_big = os.urandom(20_000), os.urandom(400_000)
        answer("A small driver.", "driver.bin", fits)
        content = wait_for(lambda: to_carol("A small driver."), timeout=30)[0]
        m = email.message_from_bytes(content, policy=email.policy.default)
        self.assertEqual(files_of(m), [("driver.bin", "application/octet-stream", sha(fits))])
        self.assertTrue(dkim.verify(content, dnsfunc=lambda name, timeout=5: zone.get(name, b"")))

        answer("The full firmware.", "firmware.img", too_big)
        content = wait_for(lambda: to_carol("The full firmware."), timeout=30)[0]
        m = email.message_from_bytes(content, policy=email.policy.default)
        self.assertEqual(files_of(m), [])
        self.assertIn("firmware.img (400 KB)", text_of(m))
        self.assertTrue(dkim.verify(content, dnsfunc=lambda name, timeout=5: zone.get(name, b"")))
        # The relay has the mail a moment before the outbox records it as sent.
        item = wait_for(lambda: [o for o in srv.api("/api/v1/outbox")["outbox"]
                                 if o["recipient"] == "carol@customer.test"
                                 and o["status"]["state"] == "sent"
                                 and "552" in (o["last_error"] or "")])
        self.assertEqual(len(item), 1, srv.api("/api/v1/outbox")["outbox"])
        self.assertIn("sent without them", item[0]["last_error"])


if __name__ == "__main__":
    unittest.main()
