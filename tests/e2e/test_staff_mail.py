"""A whole conversation by mail: a customer writes, the assigned staff member answers from
their mail client through the alert's Reply-To, with command lines on top; the answer
reaches the customer (not the staff author) with the commands applied as events. Bad
commands change nothing and are answered; #note stays internal; the same lines from a
customer or an unproven sender are plain text."""

import email
import email.policy
import glob
import os
import smtplib
import time
import unittest

from harness import Server, mail, wait_for




class StaffByMail(unittest.TestCase):
    def setUp(self):
        self.srv = Server().bootstrap(staff=[("alex@acme.test", "Alex Doe", "tech")]).start()
        self.addCleanup(self.srv.close)

    def send(self, m):
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port) as s:
            s.send_message(m)
        return self.srv.decision_for(m["Message-ID"])

    def mails_to(self, recipient):
        out = []
        for path in sorted(glob.glob(os.path.join(self.srv.data, "outbox", "*.eml")), key=os.path.getmtime):
            with open(path, "rb") as f:
                msg = email.message_from_binary_file(f, policy=email.policy.default)
            if msg["To"].addresses[0].addr_spec == recipient:
                out.append(msg)
        return out

    def open_ticket(self):
        d = self.send(mail("Carol <carol@customer.test>", "acme@acme.test", "VPN down", "It fails since 9:00.",
                           Cc="dave@customer.test"))
        n = d["ticket"]
        # The admin assigns the ticket to Alex, a Tech, who may then see it; Alex answers
        # through a reply address issued to him (the one his alerts carry).
        self.srv.send("PATCH", f"/api/v1/tickets/{n}", {"assignee": "alex@acme.test"})
        addr = self.srv.api(f"/api/v1/tickets/{n}/reply-address?for=alex@acme.test")["address"]
        return n, addr

    def test_staff_answer_with_commands_reaches_the_customer(self):
        n, addr = self.open_ticket()
        answer = mail("Alex Doe <alex@acme.test>", addr, f"Re: [#{n}] VPN down",
                      "#status waiting\n#assign me\n#priority high\n#due 2026-12-01\n"
                      "Please restart the client and tell me.\n\nOn Mon, Carol wrote:\n> It fails since 9:00.")
        d = self.send(answer)
        self.assertEqual((d["ticket"], d["rule"]), (n, "reply_token"))
        t = self.srv.ticket(n)
        self.assertEqual((t["status"], t["assignee"], t["priority"], t["due"]),
                         ("waiting", "alex@acme.test", "high", "2026-12-01"))
        reply = [e for e in t["events"] if e["kind"] == "reply"][0]
        self.assertEqual(reply["text"], "Please restart the client and tell me.")
        self.assertTrue(reply["by_staff"])
        self.assertEqual([e["change"]["field"] for e in t["events"] if e["kind"] == "update"],
                         ["assignee", "status", "assignee", "priority", "due"])
        got = wait_for(lambda: [m for m in self.mails_to("carol@customer.test") if m.get("Auto-Submitted") is None])
        relayed = got[0]
        self.assertEqual((relayed["From"].addresses[0].display_name, relayed["From"].addresses[0].addr_spec),
                         ("Alex Doe via Acme", "acme@acme.test"))
        self.assertIn("Please restart the client", relayed.get_body(("plain",)).get_content())
        self.assertNotIn("#status", relayed.get_body(("plain",)).get_content())
        self.assertEqual(relayed["In-Reply-To"], answer["Message-ID"])
        wait_for(lambda: self.mails_to("dave@customer.test"))  # the CC hears of it too
        self.assertEqual([m for m in self.mails_to("alex@acme.test") if "answered" in m.get_body(("plain",)).get_content()], [],
                         "never mailed to the author")
        # The customer's answer to the relayed mail lands in the ticket and alerts Alex,
        # now the assignee, and reopens the ticket.
        back = mail("carol@customer.test", relayed["Reply-To"].addresses[0].addr_spec,
                    f"Re: [#{n}] VPN down", "Restarted, works.", In_Reply_To=relayed["Message-ID"])
        d2 = self.send(back)
        self.assertEqual(d2["ticket"], n)
        self.assertEqual(self.srv.ticket(n)["status"], "open")
        alert = wait_for(lambda: [m for m in self.mails_to("alex@acme.test")
                                  if "Restarted, works." in m.get_body(("plain",)).get_content()])
        self.assertEqual(alert[0]["Auto-Submitted"], "auto-generated")

    def test_bad_command_changes_nothing_and_is_answered(self):
        n, addr = self.open_ticket()
        before = self.srv.ticket(n)
        d = self.send(mail("alex@acme.test", addr, "Re: x", "#status maybe\n#assign nobody@else.test\nDone."))
        self.assertTrue(any("not understood" in x for x in d["notes"]), d["notes"])
        after = self.srv.ticket(n)
        self.assertEqual((after["status"], after["assignee"]), (before["status"], before["assignee"]))
        self.assertEqual(after["events"][-1]["kind"], "commands_rejected")
        self.assertEqual(after["events"][-1]["visibility"], "internal")
        told = wait_for(lambda: [m for m in self.mails_to("alex@acme.test")
                                 if "not understood" in m.get_body(("plain",)).get_content()])
        self.assertIn("#status maybe", told[0].get_body(("plain",)).get_content())
        self.assertIn("not a staff member", told[0].get_body(("plain",)).get_content())
        time.sleep(1)
        self.assertEqual([m for m in self.mails_to("carol@customer.test") if m.get("Auto-Submitted") is None], [])

    def test_note_stays_internal(self):
        n, addr = self.open_ticket()
        self.send(mail("alex@acme.test", addr, "Re: x", "#note\nCustomer is on the old client."))
        ev = self.srv.ticket(n)["events"][-1]
        self.assertEqual((ev["kind"], ev["visibility"], ev["text"]), ("reply", "internal", "Customer is on the old client."))
        time.sleep(1.5)
        self.assertEqual([m for m in self.mails_to("carol@customer.test") if m.get("Auto-Submitted") is None], [])

    def test_commands_from_customers_or_unproven_staff_are_text(self):
        n, _ = self.open_ticket()
        d = self.send(mail("carol@customer.test", "acme@acme.test", f"Re: [#{n}] VPN down", "#status closed\nplease"))
        self.assertEqual(d["ticket"], n)
        self.assertEqual(self.srv.ticket(n)["status"], "open")
        self.assertEqual(self.srv.ticket(n)["events"][-1]["text"], "#status closed\nplease")
        spoof = self.send(mail("alex@acme.test", "acme@acme.test", f"Re: [#{n}] VPN down", "#status closed",
                               In_Reply_To=self.srv.ticket(n)["events"][0]["message_id"]))
        self.assertEqual(spoof["ticket"], n)
        self.assertEqual(self.srv.ticket(n)["status"], "open")


if __name__ == "__main__":
    unittest.main()
