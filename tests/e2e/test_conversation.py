"""Issue 3's acceptance, end to end over real SMTP: a whole conversation by mail, every
outbound mail DKIM-verified by dkimpy (Ed25519 and RSA), and a naive auto-responder that
answers every mail with a fresh one stopped by the hourly cap."""

import email
import email.policy
import glob
import os
import re
import smtplib
import time
import unittest

import dkim

from harness import Server, mail, wait_for




class Conversation(unittest.TestCase):
    def start(self, algorithm):
        srv = Server().bootstrap(staff=[("alex@acme.test", "Alex Doe", "admin")])
        self.addCleanup(srv.close)
        record = srv.cli("dkim", "generate", "--org", "acme", "--selector", "pd",
                         "--algorithm", algorithm).stdout.strip()
        self.assertEqual(srv.cli("dkim", "show", "--org", "acme").stdout.strip(), record)
        value = "".join(re.findall(r'"([^"]*)"', record.split(" IN TXT ", 1)[1]))
        self.zone = {b"pd._domainkey.acme.test.": value.encode()}
        return srv.start()

    def outbox(self, srv):
        out = []
        for path in sorted(glob.glob(os.path.join(srv.data, "outbox", "*.eml")), key=os.path.getmtime):
            with open(path, "rb") as f:
                raw = f.read()
            out.append((raw, email.message_from_bytes(raw, policy=email.policy.default)))
        return out

    def to(self, srv, recipient, text=None):
        return [m for raw, m in self.outbox(srv) if m["To"].addresses[0].addr_spec == recipient
                and (text is None or text in m.get_body(("plain",)).get_content())]

    def send(self, srv, m):
        with smtplib.SMTP("127.0.0.1", srv.smtp_port) as s:
            s.send_message(m)
        return srv.decision_for(m["Message-ID"])

    def conversation(self, algorithm):
        srv = self.start(algorithm)
        first = mail("Erin <erin@customer.test>", "acme@acme.test", "Cannot print invoices", "The printer says error 42.")
        n = self.send(srv, first)["ticket"]
        ack = wait_for(lambda: self.to(srv, "erin@customer.test"))[0]
        reply_to = ack["Reply-To"].addresses[0].addr_spec
        # The end user answers the acknowledgement three ways, as mail clients do.
        r1 = self.send(srv, mail("erin@customer.test", reply_to, "Re: ack", "Also error 43."))
        r2 = self.send(srv, mail("erin@customer.test", "acme@acme.test", "Re: something", "And 44.",
                                 In_Reply_To=ack["Message-ID"]))
        r3 = self.send(srv, mail("erin@customer.test", "acme@acme.test", f"Re: [#{n}] Cannot print invoices", "And 45."))
        self.assertEqual([(r["ticket"], r["rule"]) for r in (r1, r2, r3)],
                         [(n, "reply_token"), (n, "in_reply_to"), (n, "subject_tag")])
        # Staff were notified; Alex answers the notification from his mail client.
        alert = wait_for(lambda: self.to(srv, "alex@acme.test", "And 45."))[0]
        answer = mail("Alex Doe <alex@acme.test>", alert["Reply-To"].addresses[0].addr_spec,
                      f"Re: [#{n}] Cannot print invoices",
                      "#status resolved\nThe driver is updated; please try again.\n\n"
                      f"On Tue, Acme wrote:\n> Erin replied:\n> And 45.",
                      In_Reply_To=alert["Message-ID"])
        d = self.send(srv, answer)
        self.assertEqual((d["ticket"], d["rule"]), (n, "reply_token"))
        got = wait_for(lambda: self.to(srv, "erin@customer.test", "The driver is updated"))[0]
        body = got.get_body(("plain",)).get_content()
        self.assertNotIn("And 45.", body, "quoted history stripped")
        self.assertNotIn("#status", body)
        self.assertEqual(srv.ticket(n)["status"], "resolved")
        # Every mail Postdesk wrote in this conversation verifies with dkimpy.
        dns = lambda name, timeout=5: self.zone.get(name, b"")
        mails = self.outbox(srv)
        self.assertGreaterEqual(len(mails), 6)
        for raw, m in mails:
            self.assertTrue(dkim.verify(raw, dnsfunc=dns), f"{algorithm}: {m['Subject']} to {m['To']}")

    def test_conversation_ed25519(self):
        self.conversation("ed25519")

    def test_conversation_rsa(self):
        self.conversation("rsa")

    def test_naive_autoresponder_stops_within_the_cap(self):
        srv = Server().bootstrap().start()
        self.addCleanup(srv.close)
        # The bot answers every mail it gets with a brand-new one (no Auto-Submitted, no
        # threading headers, a new subject): each opens a ticket, which is acknowledged...
        sent = 0
        self.send(srv, mail("bot@robots.test", "acme@acme.test", "hello 0", "Thanks for your mail."))
        sent += 1
        seen = 0
        deadline = time.time() + 60
        while time.time() < deadline:
            acks = self.to(srv, "bot@robots.test")
            for _ in acks[seen:]:
                self.send(srv, mail("bot@robots.test", "acme@acme.test", f"hello {sent}", "Thanks for your mail."))
                sent += 1
            if len(acks) == seen and sent > 1:
                time.sleep(2)
                if len(self.to(srv, "bot@robots.test")) == seen:
                    break
            seen = len(acks)
            time.sleep(0.3)
        self.assertEqual(len(self.to(srv, "bot@robots.test")), 10, "the cap ends the loop")
        self.assertEqual(sent, 11)
        # An out-of-office reply is never acknowledged.
        self.send(srv, mail("away@customer.test", "acme@acme.test", "Out of office", "Back Monday.",
                            Auto_Submitted="auto-replied"))
        time.sleep(1)
        self.assertEqual(self.to(srv, "away@customer.test"), [])


if __name__ == "__main__":
    unittest.main()
