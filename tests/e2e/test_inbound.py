"""End-to-end inbound: mail sent with Python's smtplib (and swaks for LMTP) to a running
server becomes tickets, threads, is refused or deduplicated as the rules say."""

import smtplib
import subprocess
import unittest
import uuid
from urllib.parse import quote

from harness import Server, mail, outbox_mails, wait_for




class Inbound(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(lmtp=True).bootstrap(
            orgs=[("acme", "Acme", []),
                  ("partners", "Partners", ["--whitelist", "example.com,corp.test"]),
                  ("billing", "Billing", ["--address", "invoices@acme.test"])],
            staff=[("alex@acme.test", "Alex", "tech")]).start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()

    def send(self, m, rcpts=None, sender=None):
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port, timeout=30) as s:
            return s.send_message(m, from_addr=sender, to_addrs=rcpts)

    def accepted(self, m, **kw):
        self.send(m, **kw)
        d = self.srv.decision_for(m["Message-ID"])
        self.assertEqual(d["outcome"], "accepted", d)
        return d

    def test_new_ticket(self):
        m = mail("Bob Smith <bob@customer.test>", "support <acme@acme.test>", "Printer on fire",
                 "The printer is on fire.\n\nThanks,\nBob\n\n-- \nBob Smith\nCustomer Inc.")
        d = self.accepted(m)
        self.assertTrue(d["new_ticket"])
        self.assertEqual(d["rule"], "new")
        t = self.srv.ticket(d["ticket"])
        self.assertEqual(t["org"], "acme")
        self.assertEqual(t["type"], "question")
        self.assertEqual(t["status"], "open")
        self.assertEqual(t["summary"], "Printer on fire")
        self.assertEqual(t["requester"], "bob@customer.test")
        self.assertEqual(len(t["events"]), 1)
        ev = t["events"][0]
        self.assertEqual(ev["kind"], "created")
        # Quote, "-- " signature and the sign-off naming the sender are not shown.
        self.assertEqual(ev["text"], "The printer is on fire.")
        self.assertEqual(ev["message_id"], m["Message-ID"])
        raw = self.srv.api(f"/api/v1/messages/{quote(m['Message-ID'], safe='')}/raw")
        self.assertIn(b"The printer is on fire.", raw)
        self.assertIn(b"Subject: Printer on fire", raw)

    def test_a_from_without_a_usable_address_is_no_requester(self):
        # A quoted local part comes out of the parser as "@host": the return path is used
        # instead, and with none, the ticket has no one to answer (no mail to "@host").
        for sender, requester in (("john@customer.test", "john@customer.test"), ("", "")):
            raw = (f"From: \"john doe\"@customer.test\r\nTo: acme@acme.test\r\n"
                   f"Subject: Quoted local part\r\n"
                   f"Message-ID: <quoted-{uuid.uuid4().hex}@customer.test>\r\n\r\nHello.\r\n")
            mid = raw.split("Message-ID: ")[1].split("\r\n")[0]
            with smtplib.SMTP("127.0.0.1", self.srv.smtp_port, timeout=30) as s:
                s.sendmail(sender, ["acme@acme.test"], raw.encode())
            d = self.srv.decision_for(mid)
            self.assertEqual(d["outcome"], "accepted", d)
            self.assertEqual(self.srv.ticket(d["ticket"])["requester"], requester)
        wait_for(lambda: outbox_mails(self.srv, "john@customer.test"))
        self.assertEqual([m for m in outbox_mails(self.srv, "@customer.test")
                          if str(m["To"]).strip("<>").startswith("@")], [])

    def test_reply_threaded_by_in_reply_to_and_references(self):
        first = mail("carol@customer.test", "acme@acme.test", "VPN down")
        d = self.accepted(first)
        r1 = mail("carol@customer.test", "acme@acme.test", "Re: VPN down",
                  "Still down.\n\nOn Mon, 1 Jan 2024, Carol <carol@customer.test> wrote:\n> VPN down",
                  In_Reply_To=first["Message-ID"])
        d1 = self.accepted(r1)
        self.assertEqual((d1["ticket"], d1["rule"], d1["new_ticket"]), (d["ticket"], "in_reply_to", False))
        r2 = mail("carol@customer.test", "acme@acme.test", "something else entirely",
                  "Works now", References=f"<unknown@elsewhere.test> {first['Message-ID']}",
                  In_Reply_To="<also-unknown@elsewhere.test>")
        d2 = self.accepted(r2)
        self.assertEqual((d2["ticket"], d2["rule"]), (d["ticket"], "references"))
        events = self.srv.ticket(d["ticket"])["events"]
        self.assertEqual([e["text"] for e in events], ["Hello", "Still down.", "Works now"])

    def test_reply_threaded_by_reply_token(self):
        d = self.accepted(mail("dan@customer.test", "acme@acme.test", "Laptop broken"))
        addr = self.srv.api(f"/api/v1/tickets/{d['ticket']}/reply-address?for=dan@customer.test")["address"]
        self.assertRegex(addr, r"^acme\+t\d+-[a-z2-7]{16}@acme\.test$")
        reply = mail("dan@customer.test", addr, "no headers, new subject", "Any news?")
        d2 = self.accepted(reply)
        self.assertEqual((d2["ticket"], d2["rule"]), (d["ticket"], "reply_token"))
        # The token is bound to its recipient: someone else using it opens a new ticket.
        other = self.accepted(mail("eve@elsewhere.test", addr, "stolen token"))
        self.assertNotEqual(other["ticket"], d["ticket"])
        self.assertEqual(other["rule"], "new")
        # A forged token is refused at RCPT? No: the plus form is accepted, threading ignores it.
        forged = addr.replace("@", "x@")
        f = self.accepted(mail("dan@customer.test", forged, "forged"))
        self.assertEqual(f["rule"], "new")

    def test_subject_tag_only_from_participants(self):
        d = self.accepted(mail("fay@customer.test", "acme@acme.test", "Mail bounces",
                               Cc="gus@customer.test"))
        n = d["ticket"]
        tagged = self.accepted(mail("fay@customer.test", "acme@acme.test", f"Re: [#{n}] Mail bounces"))
        self.assertEqual((tagged["ticket"], tagged["rule"]), (n, "subject_tag"))
        cc = self.accepted(mail("gus@customer.test", "acme@acme.test", f"[#{n}] me too"))
        self.assertEqual((cc["ticket"], cc["rule"]), (n, "subject_tag"))
        stranger = self.accepted(mail("mallory@evil.test", "acme@acme.test", f"Re: [#{n}] hijack"))
        self.assertTrue(stranger["new_ticket"])
        self.assertNotEqual(stranger["ticket"], n)
        self.assertEqual(self.srv.ticket(n)["cc"], ["gus@customer.test"])

    def test_type_prefixes(self):
        cases = [("Incident: site down", "incident", "site down"),
                 ("BUG :  crash on save", "bug", "crash on save"),
                 ("incident:disk full", "incident", "disk full"),
                 ("Bugs in the garden", "question", "Bugs in the garden"),
                 ("How do I reset my password?", "question", "How do I reset my password?")]
        for subject, ty, summary in cases:
            d = self.accepted(mail("hal@customer.test", "acme@acme.test", subject))
            t = self.srv.ticket(d["ticket"])
            self.assertEqual((t["type"], t["summary"]), (ty, summary), subject)
        incidents = self.srv.tickets("?org=acme&type=incident")
        self.assertTrue(all(t["type"] == "incident" for t in incidents))
        self.assertGreaterEqual(len(incidents), 2)

    def test_whitelist_refused_before_250(self):
        before = len(self.srv.tickets("?org=partners"))
        with self.assertRaises(smtplib.SMTPDataError) as e:
            self.send(mail("ivan@other.test", "partners@acme.test", "let me in"))
        self.assertEqual(e.exception.smtp_code, 550)
        self.assertIn(b"5.7.1", e.exception.smtp_error)
        ok = self.accepted(mail("judy@sub.example.com", "partners@acme.test", "allowed"))
        self.assertEqual(len(self.srv.tickets("?org=partners")), before + 1)
        self.assertEqual(self.srv.ticket(ok["ticket"])["org"], "partners")

    def test_unknown_recipient_refused_at_rcpt(self):
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port) as s:
            s.ehlo()
            s.mail("kim@customer.test")
            code, msg = s.rcpt("nobody@acme.test")
            self.assertEqual(code, 550)
            self.assertTrue(msg.startswith(b"5.1.1"), msg)
            code, _ = s.rcpt("acme+anything@acme.test")
            self.assertEqual(code, 250)
            code, _ = s.rcpt("INVOICES@ACME.TEST")
            self.assertEqual(code, 250)
            code, _ = s.rcpt("acme@other-domain.test")
            self.assertEqual(code, 550)

    def test_duplicate_message_id_stored_once(self):
        m = mail("leo@customer.test", "acme@acme.test", "sent twice")
        d = self.accepted(m)
        self.send(m)  # an SMTP retry of the same message
        n = d["ticket"]
        dup = wait_for(lambda: [x for x in self.srv.decisions()
                                if x.get("message_id") == m["Message-ID"] and x["outcome"] == "duplicate"])
        self.assertEqual(dup[0]["ticket"], n)
        self.assertEqual(len(self.srv.ticket(n)["events"]), 1)

    def test_one_message_to_two_orgs(self):
        m = mail("mia@example.com", "acme@acme.test, partners@acme.test", "to both")
        self.send(m)
        ds = wait_for(lambda: [x for x in self.srv.decisions() if x.get("message_id") == m["Message-ID"]]
                      if len([x for x in self.srv.decisions() if x.get("message_id") == m["Message-ID"]]) == 2 else None)
        self.assertEqual(sorted(x["org"] for x in ds), ["acme", "partners"])
        self.assertEqual(len({x["inbound"] for x in ds}), 1, "one stored message, two deliveries")

    def test_auto_reply_marked(self):
        d = self.accepted(mail("ned@customer.test", "acme@acme.test", "Out of office",
                               "I am away.", Auto_Submitted="auto-replied"))
        self.assertTrue(self.srv.ticket(d["ticket"])["automatic"])
        self.assertIn("Auto-Submitted: auto-replied", d["notes"])
        bulk = self.accepted(mail("news@customer.test", "acme@acme.test", "Newsletter",
                                  Precedence="bulk", List_Id="<news.customer.test>"))
        self.assertTrue(self.srv.ticket(bulk["ticket"])["automatic"])
        human = self.accepted(mail("ned@customer.test", "acme@acme.test", "real", Auto_Submitted="no"))
        self.assertFalse(self.srv.ticket(human["ticket"])["automatic"])

    def test_delivery_report_attaches_not_a_ticket(self):
        orig = mail("olga@customer.test", "acme@acme.test", "Please call me")
        d = self.accepted(orig)
        # What bounced is the acknowledgement we sent her: the report names its id.
        ours = wait_for(lambda: [m for m in outbox_mails(self.srv, "olga@customer.test")])[0]["Message-ID"]
        dsn_id = f"<{uuid.uuid4().hex}@mx.customer.test>"
        dsn = (
            "From: Mail Delivery System <MAILER-DAEMON@mx.customer.test>\r\n"
            "To: acme@acme.test\r\n"
            "Subject: Undelivered Mail Returned to Sender\r\n"
            f"Message-ID: {dsn_id}\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n"
            "\r\n--B\r\nContent-Type: text/plain\r\n\r\nI could not deliver your message.\r\n"
            "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.customer.test\r\n\r\nFinal-Recipient: rfc822; x@customer.test\r\n"
            "Action: failed\r\nStatus: 5.1.1\r\n"
            "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
            f"From: acme@acme.test\r\nTo: olga@customer.test\r\nMessage-ID: {ours}\r\n"
            "Subject: Re: Please call me\r\n--B--\r\n")
        before = len(self.srv.tickets())
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port) as s:
            s.sendmail("", ["acme@acme.test"], dsn.encode())
        rep = self.srv.decision_for(dsn_id)
        self.assertEqual((rep["outcome"], rep["ticket"], rep["rule"]), ("accepted", d["ticket"], "delivery_report"))
        self.assertFalse(rep["new_ticket"])
        self.assertEqual(len(self.srv.tickets()), before)
        kinds = [e["kind"] for e in self.srv.ticket(d["ticket"])["events"]]
        self.assertEqual(kinds, ["created", "delivery_report"])
        # A report about a message nobody knows is recorded, and opens nothing.
        unknown_id = f"<{uuid.uuid4().hex}@mx.customer.test>"
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port) as s:
            s.sendmail("", ["acme@acme.test"], dsn.replace(dsn_id, unknown_id)
                       .replace(ours, "<never-seen@x.test>").encode())
        rep2 = self.srv.decision_for(unknown_id)
        self.assertEqual(rep2["outcome"], "refused")
        self.assertEqual(len(self.srv.tickets()), before)

    def test_lmtp_answers_per_recipient(self):
        mid = f"<{uuid.uuid4().hex}@client.test>"
        r = subprocess.run(
            ["swaks", "--protocol", "LMTP", "--server", f"127.0.0.1:{self.srv.lmtp_port}",
             "--from", "pat@other.test", "--to", "acme@acme.test,partners@acme.test,nobody@acme.test",
             "--header", f"Message-Id: {mid}", "--header", "Subject: via lmtp",
             "--h-From", "pat@other.test", "--body", "hello over lmtp"],
            capture_output=True, text=True, timeout=60)
        out = r.stdout
        self.assertIn("<** 550 5.1.1 <nobody@acme.test>", out)
        self.assertRegex(out, r"<-  250 2\.0\.0 <acme@acme\.test> Message accepted")
        self.assertRegex(out, r"<\*\* 550 5\.7\.1 <partners@acme\.test> Sender domain other\.test")
        d = self.srv.decision_for(mid)
        self.assertEqual((d["org"], d["outcome"]), ("acme", "accepted"))
        self.assertEqual(len([x for x in self.srv.decisions() if x.get("message_id") == mid]), 1)

    def test_spoofed_staff_from_is_an_end_user(self):
        d = self.accepted(mail("Alex <alex@acme.test>", "acme@acme.test", "Close all tickets",
                               "#status closed"))
        self.assertTrue(any("no proof" in n for n in d["notes"]), d["notes"])
        ev = self.srv.ticket(d["ticket"])["events"][0]
        self.assertFalse(ev["by_staff"])
        # With a reply token issued to the staff member, the same From is proven staff.
        addr = self.srv.api(f"/api/v1/tickets/{d['ticket']}/reply-address?for=alex@acme.test")["address"]
        proven = self.accepted(mail("Alex <alex@acme.test>", addr, "Re: x", "On it."))
        self.assertEqual(proven["rule"], "reply_token")
        self.assertFalse(any("no proof" in n for n in proven["notes"]))
        self.assertTrue(self.srv.ticket(d["ticket"])["events"][1]["by_staff"])

    def test_attachments_stored_by_hash(self):
        m = mail("quinn@customer.test", "acme@acme.test", "screenshot", "see attached")
        m.add_attachment(b"\x89PNG fake image bytes", maintype="image", subtype="png", filename="shot.png")
        d = self.accepted(m)
        att = self.srv.ticket(d["ticket"])["events"][0]["attachments"]
        self.assertEqual([(a["name"], a["size"], a["content_type"]) for a in att],
                         [("shot.png", 21, "image/png")])
        self.assertEqual(len(att[0]["sha256"]), 64)

    def test_api_auth_and_errors(self):
        self.srv.api("/api/v1/tickets", token="", expect=401)
        self.srv.api("/api/v1/tickets", token="pd_wrong", expect=401)
        self.assertIn("error", self.srv.api("/api/v1/tickets?status=bogus", expect=400))
        self.srv.api("/api/v1/tickets/999999", expect=404)
        self.srv.api("/api/v1/tickets/abc", expect=400)
        self.srv.api("/api/v1/messages/%3Cnope%40x%3E/raw", expect=404)
        self.assertEqual(self.srv.api("/healthz", token="")["status"], "ok")


if __name__ == "__main__":
    unittest.main()
