"""Outbound, first slice: a new ticket from a person's mail is acknowledged by a mail in the
data folder's outbox/ (no relay configured) that threads for mail clients and whose reply
lands in the same ticket; automatic mail gets none; a crash never sends one twice; the
hourly cap holds."""

import email
import email.policy
import glob
import os
import smtplib
import time
import unittest

from harness import Server, mail, wait_for




class Outbound(unittest.TestCase):
    def setUp(self):
        self.srv = Server(env={"POSTDESK_LOG": "info"}).bootstrap().start()
        self.addCleanup(self.srv.close)
        self.outbox = os.path.join(self.srv.data, "outbox")

    def send(self, m):
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port) as s:
            s.send_message(m)
        return self.srv.decision_for(m["Message-ID"])

    def acks_to(self, recipient):
        found = []
        for path in sorted(glob.glob(os.path.join(self.outbox, "*.eml"))):
            with open(path, "rb") as f:
                msg = email.message_from_binary_file(f, policy=email.policy.default)
            if recipient in str(msg["To"]):
                found.append(msg)
        return found

    def test_acknowledgement_threads_and_its_reply_lands_in_the_ticket(self):
        # The subject decodes to "Printer\r\nBcc: evil@x.test": header injection if copied raw.
        first = mail("Bob <bob@customer.test>", "acme@acme.test", "=?utf-8?q?Printer=0D=0ABcc:_evil@x.test?=")
        d = self.send(first)
        n = d["ticket"]
        acks = wait_for(lambda: self.acks_to("bob@customer.test"), timeout=10)
        self.assertEqual(len(acks), 1)
        ack = acks[0]
        summary = self.srv.ticket(n)["summary"]
        self.assertTrue(summary.startswith("Printer") and "\n" not in summary, summary)
        self.assertEqual(ack["Subject"], f"[#{n}] {summary}")
        self.assertIsNone(ack["Bcc"])
        self.assertEqual(ack["Auto-Submitted"], "auto-replied")
        self.assertIn("acme@acme.test", str(ack["From"]))
        self.assertEqual(ack["In-Reply-To"], first["Message-ID"])
        self.assertIn(first["Message-ID"], ack["References"])
        # Keyed with the installation's secret: nothing in it can be computed from outside.
        self.assertRegex(ack["Message-ID"], r"^<pd\.[a-z2-7]{26}@acme\.test>$")
        reply_to = ack["Reply-To"].addresses[0].addr_spec
        self.assertRegex(reply_to, rf"^acme\+t{n}-[a-z2-7]{{16}}@acme\.test$")
        self.assertEqual(ack["Thread-Topic"], summary)
        self.assertTrue(ack["Thread-Index"])
        self.assertEqual(ack.get_content_type(), "multipart/alternative")
        kinds = [p.get_content_type() for p in ack.iter_parts()]
        self.assertEqual(kinds, ["text/plain", "text/html"])
        self.assertIn(f"#{n}", ack.get_body(("plain",)).get_content())
        outbox = self.srv.api("/api/v1/outbox")["outbox"]
        self.assertEqual(sorted((o["recipient"], o["kind"], o["status"]["state"]) for o in outbox),
                         [("bob@customer.test", "acknowledgement", "sent"),
                          ("tester@ops.test", "new_ticket_alert", "sent")])
        # The customer answers the acknowledgement from their mail client.
        reply = mail("bob@customer.test", reply_to, f"Re: [#{n}] Printer",
                     "It is out now.\n\nOn Mon, Acme wrote:\n> we have received", In_Reply_To=ack["Message-ID"])
        d2 = self.send(reply)
        self.assertEqual((d2["ticket"], d2["rule"]), (n, "reply_token"))
        # A reply that kept only the threading headers also lands there.
        reply2 = mail("bob@customer.test", "acme@acme.test", "no tag", "More.",
                      In_Reply_To=ack["Message-ID"])
        d3 = self.send(reply2)
        self.assertEqual((d3["ticket"], d3["rule"]), (n, "in_reply_to"))
        time.sleep(1)
        self.assertEqual(len(self.acks_to("bob@customer.test")), 1, "replies are not acknowledged")

    def test_automatic_mail_is_never_acknowledged(self):
        for headers in ({"Auto_Submitted": "auto-replied"}, {"Precedence": "bulk"},
                        {"List_Id": "<x.list.test>"}):
            self.send(mail("robot@customer.test", "acme@acme.test", "automatic", **headers))
        human = self.send(mail("human@customer.test", "acme@acme.test", "a person"))
        wait_for(lambda: self.acks_to("human@customer.test"), timeout=10)
        self.assertEqual(self.acks_to("robot@customer.test"), [])
        self.assertTrue(human["new_ticket"])

    def test_no_duplicate_after_sigkill_and_hourly_cap(self):
        for i in range(12):
            self.send(mail("many@customer.test", "acme@acme.test", f"request {i}"))
        wait_for(lambda: len(self.acks_to("many@customer.test")) >= 10, timeout=15)
        self.srv.kill()
        self.srv.start()
        time.sleep(1.5)
        self.assertEqual(len(self.acks_to("many@customer.test")), 10, "capped at 10 an hour, none twice")
        to_many = [o for o in self.srv.api("/api/v1/outbox?limit=1000")["outbox"]
                   if o["recipient"] == "many@customer.test"]
        self.assertEqual(len(to_many), 10)


if __name__ == "__main__":
    unittest.main()


class OptOut(unittest.TestCase):
    def test_staff_and_end_user_opt_out(self):
        srv = Server().bootstrap(staff=[("quiet@ops.test", "Quiet", "admin")])
        self.addCleanup(srv.close)
        srv.cli("staff", "alerts", "quiet@ops.test", "off")
        srv.cli("contact", "alerts", "Silent@Customer.test", "off")
        self.assertIn("quiet@ops.test\tQuiet\tadmin\talerts off", srv.cli("staff", "list").stdout)
        self.assertIn("is not a staff member", srv.cli("staff", "alerts", "nobody@ops.test", "on", check=False).stderr)
        srv.start()
        for frm in ("silent@customer.test", "loud@customer.test"):
            m = mail(frm, "acme@acme.test", f"from {frm}")
            with smtplib.SMTP("127.0.0.1", srv.smtp_port) as s:
                s.send_message(m)
        outbox = lambda: srv.api("/api/v1/outbox")["outbox"]
        wait_for(lambda: [o for o in outbox() if o["recipient"] == "loud@customer.test"])
        time.sleep(1)
        recipients = sorted({o["recipient"] for o in outbox()})
        self.assertEqual(recipients, ["loud@customer.test", "tester@ops.test"])
