"""Issue 11's attacks by mail, each performed over real sockets against a running server
and asserted to fail: joining someone else's ticket with a guessed Message-ID, forging a
staff member where SPF covers the sending host, a Tech steering a ticket they may not see,
the whitelist refusing a proven staff member's answer, one mail stalling the desk, reading
another organization's original, removed people still hearing of tickets, and
acknowledgements sent back to forged senders. smtplib and swaks are the clients, dkimpy
signs, DNS answers come from a records file."""

import email
import email.policy
import email.utils
import glob
import os
import smtplib
import subprocess
import time
import unittest
import uuid
from email.message import EmailMessage

import dkim

from dns_server import DnsServer
from harness import Browser, Server, mail, rsa_key, staff_link, wait_for


def outbox(srv):
    """Every mail written to the outbox folder, oldest first."""
    out = []
    for path in sorted(glob.glob(os.path.join(srv.data, "outbox", "*.eml")), key=os.path.getmtime):
        with open(path, "rb") as f:
            out.append(email.message_from_binary_file(f, policy=email.policy.default))
    return out


def mails_to(srv, address):
    return [m for m in outbox(srv) if m["To"].addresses[0].addr_spec == address]


def text_of(m):
    return m.get_body(("plain",)).get_content()


def send_only(srv, m):
    """Delivers `m` to its To address only (its Cc is header text, not recipients)."""
    sender = email.utils.parseaddr(str(m["From"]))[1]
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=60) as s:
        s.sendmail(sender, [email.utils.parseaddr(str(m["To"]))[1]], m.as_bytes())


def send(srv, m):
    """Delivers `m` and waits for the pipeline's decision."""
    send_only(srv, m)
    return srv.decision_for(m["Message-ID"], timeout=20)


def acknowledgement_of(srv, requester):
    return wait_for(lambda: [m for m in mails_to(srv, requester)
                             if m["Auto-Submitted"] == "auto-replied"])[0]


class Hijack(unittest.TestCase):
    """Attack 1: a stranger who knows the Message-ID of a mail sent to a requester threads
    into that ticket; the mail must stay internal and widen nobody's mail."""

    def setUp(self):
        self.srv = Server().bootstrap(staff=[("alex@ops.test", "Alex", "tech")])
        self.addCleanup(self.srv.close)
        self.alex_token = self.srv.cli("token", "create", "alex@ops.test").stdout.strip()
        self.admin_link = staff_link(self.srv, "tester@ops.test")
        self.srv.start()
        d = send(self.srv, mail("Victim <victim@customer.test>", "acme@acme.test",
                                "Payroll export broken", "Salary data attached."))
        self.n = d["ticket"]
        self.ack = acknowledgement_of(self.srv, "victim@customer.test")

    def test_message_ids_are_keyed_per_installation(self):
        other = Server().bootstrap()
        self.addCleanup(other.close)
        other.start()
        send(other, mail("victim@customer.test", "acme@acme.test", "Payroll export broken"))
        theirs = acknowledgement_of(other, "victim@customer.test")
        # Same ticket, event and recipient in two fresh installations: different ids,
        # neither naming the ticket and event as the guessable ones did.
        self.assertNotEqual(self.ack["Message-ID"], theirs["Message-ID"])
        self.assertNotRegex(self.ack["Message-ID"], r"^<t\d+\.e\d+\.")

    def test_stranger_threading_in_is_held_and_widens_nothing(self):
        srv, n = self.srv, self.n
        d = send(srv, mail("stranger@customer.test", "acme@acme.test", "Re: Payroll export broken",
                           "Please copy my friend on everything.", Cc="friend@evil.test",
                           In_Reply_To=self.ack["Message-ID"]))
        self.assertEqual((d["outcome"], d["ticket"]), ("accepted", n))
        self.assertTrue(any("takes no part" in x for x in d["notes"]), d["notes"])
        t = srv.ticket(n)
        self.assertEqual(t["cc"], [])
        held = t["events"][-1]
        self.assertEqual((held["held"], held["visibility"]), (True, "internal"))
        # Staff are told, in the bell and by mail; the stranger and his friend are not.
        wait_for(lambda: [m for m in mails_to(srv, "tester@ops.test")
                          if "takes no part" in text_of(m)])
        srv.send("POST", f"/api/v1/tickets/{n}/replies", {"text": "Fixed, here is the export."},
                 expect=201)
        wait_for(lambda: [m for m in mails_to(srv, "victim@customer.test")
                          if "Fixed, here is the export." in text_of(m)])
        time.sleep(1)
        self.assertEqual(mails_to(srv, "friend@evil.test"), [])
        self.assertEqual(mails_to(srv, "stranger@customer.test"), [])

    def test_tech_copying_themselves_does_not_see_the_ticket(self):
        srv, n = self.srv, self.n
        # From a throwaway address, copying his staff address.
        send(srv, mail("throwaway@customer.test", "acme@acme.test", "Re: Payroll export broken",
                       "me too", Cc="alex@ops.test", In_Reply_To=self.ack["Message-ID"]))
        self.assertNotIn("alex@ops.test", srv.ticket(n)["cc"])
        srv.api(f"/api/v1/tickets/{n}", token=self.alex_token, expect=404)

    def test_staff_accept_the_sender_or_open_a_ticket_of_its_own(self):
        srv, n = self.srv, self.n
        send(srv, mail("colleague@customer.test", "acme@acme.test", "Re: Payroll export broken",
                       "I work with the victim.", In_Reply_To=self.ack["Message-ID"]))
        seq = srv.ticket(n)["events"][-1]["seq"]
        outcome = srv.send("POST", f"/api/v1/tickets/{n}/held/{seq}/accept", {})
        self.assertEqual(outcome["outcome"], "accepted")
        self.assertEqual(srv.ticket(n)["cc"], ["colleague@customer.test"])
        srv.send("POST", f"/api/v1/tickets/{n}/held/{seq}/accept", {}, expect=409)
        # Now a participant, the colleague's next mail is conversation.
        send(srv, mail("colleague@customer.test", "acme@acme.test", "Re: Payroll export broken",
                       "Thanks!", In_Reply_To=self.ack["Message-ID"]))
        last = srv.ticket(n)["events"][-1]
        self.assertEqual((last["held"], last["visibility"]), (False, "public"))
        # Another outsider's mail becomes a ticket of its own, acknowledged to its sender.
        send(srv, mail("other@customer.test", "acme@acme.test", "Re: [#%d] Bug: my own problem" % n,
                       "Unrelated, really.", In_Reply_To=self.ack["Message-ID"]))
        seq = srv.ticket(n)["events"][-1]["seq"]
        opened = srv.send("POST", f"/api/v1/tickets/{n}/held/{seq}/ticket", {}, expect=201)
        m = srv.ticket(opened["number"])
        self.assertEqual((m["requester"], m["summary"], m["type"]),
                         ("other@customer.test", "my own problem", "bug"))
        acknowledgement_of(srv, "other@customer.test")
        # A Tech who may not see the ticket cannot decide about its mail.
        srv.send("POST", f"/api/v1/tickets/{n}/held/{seq}/accept", {}, token=self.alex_token,
                 expect=404)

    def test_a_forged_requester_from_widens_nothing(self):
        srv, n = self.srv, self.n
        d = send(srv, mail("Victim <victim@customer.test>", "acme@acme.test",
                           f"Re: [#{n}] Payroll export broken", "Please copy my colleagues.",
                           Cc="spy@evil.test, alex@ops.test"))
        self.assertEqual(d["ticket"], n)
        self.assertTrue(any("nothing proves the sender's address" in x for x in d["notes"]), d["notes"])
        self.assertEqual(srv.ticket(n)["cc"], [])
        srv.api(f"/api/v1/tickets/{n}", token=self.alex_token, expect=404)

    def test_an_old_reply_token_of_a_removed_employee_lets_nobody_in(self):
        srv, n = self.srv, self.n
        addr = srv.api(f"/api/v1/tickets/{n}/reply-address?for=alex@ops.test")["address"]
        admin = Browser(srv)
        admin.get(self.admin_link)
        page = admin.get("/settings/staff")[2]
        admin.post("/settings/staff/delete", {"csrf": admin.csrf(page), "email": "alex@ops.test"})
        d = send(srv, mail("alex@ops.test", addr, "Re: Payroll export broken", "Still here.",
                           Cc="alex.private@evil.test"))
        self.assertEqual((d["ticket"], d["rule"]), (n, "reply_token"))
        last = srv.ticket(n)["events"][-1]
        self.assertEqual((last["held"], last["visibility"]), (True, "internal"))
        self.assertEqual(srv.ticket(n)["cc"], [])

    def test_a_fake_delivery_report_attaches_nothing(self):
        srv, n = self.srv, self.n
        victim_id = srv.ticket(n)["events"][0]["message_id"]
        fake = ("From: Mail Delivery System <MAILER-DAEMON@evil.test>\r\nTo: acme@acme.test\r\n"
                "Subject: Undelivered\r\nMessage-ID: <fake-dsn@evil.test>\r\nMIME-Version: 1.0\r\n"
                "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"
                "--B\r\nContent-Type: text/plain\r\n\r\nThe victim's new address is victim@evil.test.\r\n"
                "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
                "Reporting-MTA: dns; mx.evil.test\r\n\r\nFinal-Recipient: rfc822; victim@customer.test\r\n"
                "Action: failed\r\nStatus: 5.1.1\r\n"
                "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
                f"From: victim@customer.test\r\nTo: acme@acme.test\r\nMessage-ID: {victim_id}\r\n"
                "Subject: Payroll export broken\r\n--B--\r\n")
        with smtplib.SMTP("127.0.0.1", srv.smtp_port) as s:
            s.sendmail("", ["acme@acme.test"], fake.encode())
        d = srv.decision_for("<fake-dsn@evil.test>")
        self.assertEqual(d["outcome"], "refused")
        self.assertEqual([e["kind"] for e in srv.ticket(n)["events"]], ["created"])

    def test_a_message_id_used_first_by_someone_else_does_not_make_mail_vanish(self):
        srv = self.srv

        def decided(m, count):
            """The decisions on mail with this Message-ID, once there are `count`."""
            send_only(srv, m)
            return wait_for(lambda: (lambda ds: ds if len(ds) >= count else None)(
                [d for d in srv.decisions() if d["message_id"] == "<tomorrow@customer.test>"]))

        decided(mail("squatter@evil.test", "acme@acme.test", "first",
                     message_id="<tomorrow@customer.test>"), 1)
        real, squat = decided(mail("ceo@customer.test", "acme@acme.test", "The real request",
                                   message_id="<tomorrow@customer.test>"), 2)
        self.assertEqual((real["from"], real["outcome"]), ("ceo@customer.test", "accepted"))
        self.assertNotEqual(real["ticket"], squat["ticket"])
        acknowledgement_of(srv, "ceo@customer.test")
        again = decided(mail("ceo@customer.test", "acme@acme.test", "The real request",
                             message_id="<tomorrow@customer.test>"), 3)[0]
        self.assertEqual(again["outcome"], "duplicate", "the same sender's retry is one")
        # A reply naming the id goes where its sender's own mail went; anyone else's is
        # kept for staff, public in neither ticket (the squatter would read it in his).
        follow = send(srv, mail("ceo@customer.test", "acme@acme.test", "Re: The real request",
                                "More detail.", In_Reply_To="<tomorrow@customer.test>"))
        self.assertEqual((follow["outcome"], follow["ticket"]), ("accepted", real["ticket"]))
        self.assertFalse(srv.ticket(real["ticket"])["events"][-1]["held"])
        other = send(srv, mail("carol@customer.test", "acme@acme.test", "Re: The real request",
                               "CAROL-SECRET", In_Reply_To="<tomorrow@customer.test>"))
        self.assertEqual(other["ticket"], squat["ticket"])
        self.assertTrue(any("more than one sender" in x for x in other["notes"]), other["notes"])
        held = srv.ticket(squat["ticket"])["events"][-1]
        self.assertEqual((held["held"], held["visibility"]), (True, "internal"))

    def test_forged_or_staff_senders_are_not_accepted_as_ccs(self):
        srv, n = self.srv, self.n
        send(srv, mail("Alex <alex@ops.test>", "acme@acme.test", "Re: Payroll export broken",
                       "Loop me in.", In_Reply_To=self.ack["Message-ID"]))
        seq = srv.ticket(n)["events"][-1]["seq"]
        srv.send("POST", f"/api/v1/tickets/{n}/held/{seq}/accept", {}, expect=409)
        srv.api(f"/api/v1/tickets/{n}", token=self.alex_token, expect=404)
        # Answers to the requester name no held or internal mail in References.
        srv.send("POST", f"/api/v1/tickets/{n}/notes", {"text": "internal"}, expect=201)
        srv.send("POST", f"/api/v1/tickets/{n}/replies", {"text": "Answer."}, expect=201)
        answer = wait_for(lambda: [m for m in mails_to(srv, "victim@customer.test")
                                   if "Answer." in text_of(m)])[0]
        held_id = srv.ticket(n)["events"][1]["message_id"]
        self.assertNotIn(held_id, str(answer["References"]))

    def test_thousands_of_addresses_are_cut_off(self):
        srv, n = self.srv, self.n
        many = ", ".join(f"p{i}@evil.test" for i in range(3000))
        started = time.time()
        d = send(srv, mail("victim@customer.test", "acme@acme.test", "Re: Payroll export broken",
                           "Adding a few people.", Cc=many, In_Reply_To=self.ack["Message-ID"]))
        self.assertLess(time.time() - started, 15)
        self.assertEqual(d["ticket"], n)
        self.assertLessEqual(len(srv.ticket(n)["cc"]), 10)
        self.assertTrue(any("not copied" in x for x in d["notes"]), d["notes"])
        self.assertTrue(any("more address" in x for x in d["notes"]), d["notes"])


class StaffProof(unittest.TestCase):
    """Attacks 2 and 3: SPF covering the sending host (as it always does behind an MTA)
    must not prove a staff member, while a reply token or aligned DKIM does, also for an
    organization with a sender whitelist; and a proven Tech may only steer tickets they
    may see."""

    @classmethod
    def setUpClass(cls):
        cls.srv = Server(lmtp=True)
        keys = os.path.join(cls.srv.dir, "keys")
        os.makedirs(keys)
        cls.key, pub = rsa_key(os.path.join(keys, "ops.pem"))
        cls.dns = {b"sel._domainkey.ops.test.": f"v=DKIM1; k=rsa; p={pub}".encode()}
        records = os.path.join(cls.srv.dir, "records.txt")
        with open(records, "w") as f:
            f.write(f'sel._domainkey.ops.test. IN TXT "v=DKIM1; k=rsa; " "p={pub}"\n')
            f.write('_dmarc.ops.test. IN TXT "v=DMARC1; p=reject"\n')
            # The staff domain's SPF covers the host mail arrives from.
            f.write('ops.test. IN TXT "v=spf1 ip4:127.0.0.1 -all"\n')
        cls.srv.env["POSTDESK_DNS_RECORDS"] = records
        # "acme" takes mail only from customer.test; "open" from everyone.
        cls.srv.bootstrap(orgs=(("acme", "Acme", ["--whitelist", "customer.test"]),
                                ("open", "Open", [])),
                          staff=[("alex@ops.test", "Alex", "tech"),
                                 ("boss@ops.test", "Boss", "manager")]).start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()

    def ticket(self, assign=None, org="acme"):
        # A requester of its own each time: acknowledgements to one are capped per hour.
        d = send(self.srv, mail(f"carol.{uuid.uuid4().hex[:6]}@customer.test", f"{org}@acme.test",
                                f"VPN {uuid.uuid4().hex[:6]}", "It fails."))
        if assign:
            self.srv.send("PATCH", f"/api/v1/tickets/{d['ticket']}", {"assignee": assign})
        return d["ticket"], acknowledgement_of_ticket(self.srv, d["ticket"])

    def signed(self, body, irt, length=False, date=None, two_froms=False, to="acme@acme.test",
               who="Alex <alex@ops.test>",
               headers=(b"from", b"to", b"subject", b"message-id", b"date", b"in-reply-to")):
        m = EmailMessage()
        m["From"] = "Alex <alex@ops.test>, Eve <eve@ops.test>" if two_froms else who
        m["To"] = to
        m["Subject"] = "Re: VPN"
        m["Message-ID"] = f"<{uuid.uuid4().hex}@ops.test>"
        m["Date"] = date or email.utils.formatdate()
        if irt:
            m["In-Reply-To"] = irt
        m.set_content(body)
        raw = m.as_bytes().replace(b"\n", b"\r\n")
        sig = dkim.sign(raw, b"sel", b"ops.test", self.key, length=length,
                        include_headers=list(headers))
        raw = sig + raw
        self.assertTrue(dkim.verify(raw, dnsfunc=lambda name, timeout=5: self.dns.get(name, b"")))
        return m["Message-ID"], raw

    def deliver_raw(self, mid, raw, to="acme@acme.test"):
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port) as s:
            s.sendmail("alex@ops.test", [to], raw)
        return self.srv.decision_for(mid, timeout=20)

    def test_spf_alone_proves_nobody_by_smtp_or_lmtp(self):
        n, ack = self.ticket(assign="alex@ops.test", org="open")
        forged = mail("Alex <alex@ops.test>", "open@acme.test", "Re: VPN", "#status closed\nDone.",
                      In_Reply_To=ack)
        d = send(self.srv, forged)
        self.assertTrue(any("no proof" in x for x in d["notes"]), d["notes"])
        self.assertEqual(self.srv.ticket(n)["status"], "open")
        forged = mail("Alex <alex@ops.test>", "open@acme.test", "Re: VPN", "#status closed\nDone.",
                      In_Reply_To=ack)
        with smtplib.LMTP("127.0.0.1", self.srv.lmtp_port) as s:
            s.sendmail("alex@ops.test", ["open@acme.test"], forged.as_bytes())
        d = self.srv.decision_for(forged["Message-ID"])
        self.assertTrue(any("no proof" in x for x in d["notes"]), d["notes"])
        t = self.srv.ticket(n)
        self.assertEqual(t["status"], "open")
        self.assertFalse(any(e["by_staff"] for e in t["events"] if e["kind"] != "update"))

    def test_aligned_dkim_proves_the_staff_member_past_the_whitelist(self):
        n, ack = self.ticket(assign="alex@ops.test")
        mid, raw = self.signed("#status waiting\nPlease restart the client.", ack)
        d = self.deliver_raw(mid, raw)
        self.assertEqual(d["outcome"], "accepted")
        self.assertTrue(any("proven by DKIM aligned" in x for x in d["notes"]), d["notes"])
        self.assertEqual(self.srv.ticket(n)["status"], "waiting")
        requester = self.srv.ticket(n)["requester"]
        wait_for(lambda: [m for m in mails_to(self.srv, requester)
                          if "Please restart the client." in text_of(m)])

    def test_signatures_that_prove_too_little(self):
        n, ack = self.ticket(assign="alex@ops.test", org="open")
        for why, kwargs in [("l= leaves room for appended text", {"length": True}),
                            ("a signed mail from last month", {"date": "Mon, 02 Nov 2026 10:00:00 +0000"}),
                            ("two From addresses", {"two_froms": True})]:
            mid, raw = self.signed("#status closed", ack, to="open@acme.test", **kwargs)
            d = self.deliver_raw(mid, raw, to="open@acme.test")
            self.assertTrue(any("no proof" in x for x in d["notes"]), (why, d["notes"]))
            self.assertEqual(self.srv.ticket(n)["status"], "open", why)

    def test_reply_token_answer_passes_the_whitelist(self):
        n, _ = self.ticket(assign="alex@ops.test")
        addr = self.srv.api(f"/api/v1/tickets/{n}/reply-address?for=alex@ops.test")["address"]
        # swaks as the staff member's mail client, straight to the reply address.
        r = subprocess.run(["swaks", "--server", f"127.0.0.1:{self.srv.smtp_port}",
                            "--from", "alex@ops.test", "--to", addr,
                            "--header", "Subject: Re: VPN", "--header", "Message-Id: <tok1@ops.test>",
                            "--body", "#priority high\nOn it."],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        d = self.srv.decision_for("<tok1@ops.test>")
        self.assertEqual((d["ticket"], d["rule"]), (n, "reply_token"))
        t = self.srv.ticket(n)
        self.assertEqual(t["priority"], "high")
        self.assertTrue([e for e in t["events"] if e["kind"] == "reply" and e["by_staff"]])
        # The whitelist still refuses everyone else, at the reply address too.
        for to in ("acme@acme.test", addr):
            with self.assertRaises(smtplib.SMTPDataError) as refused:
                send(self.srv, mail("someone@elsewhere.test", to, "hi"))
            self.assertEqual(refused.exception.smtp_code, 550)

    def test_a_signed_mail_cannot_be_rewritten_or_given_fields(self):
        n, ack = self.ticket(org="open")
        mid, raw = self.signed("The quote is attached.", ack, to="open@acme.test",
                               who="Boss <boss@ops.test>")
        d = self.deliver_raw(mid, raw, to="open@acme.test")
        self.assertTrue(any("proven by DKIM aligned" in x for x in d["notes"]), d["notes"])
        other, other_ack = self.ticket(org="open")
        # Unsigned twins below the signed fields (mail-parser reads "Subject :" as Subject,
        # DKIM does not see it): another ticket's tag, a fresh Message-ID, a CC.
        twin = raw.replace(b"\r\n\r\n", (f"\r\nSubject : Re: [#{other}] VPN\r\n"
                                            f"Message-ID : <twin-{uuid.uuid4().hex}@x.test>\r\n"
                                            "Cc : spy@evil.test\r\n\r\n").encode(), 1)
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port) as s:
            s.sendmail("boss@ops.test", ["open@acme.test"], twin)
        time.sleep(2)
        # A signature that left In-Reply-To and Cc out, given them afterwards.
        mid2, bare = self.signed("#status closed\nDone.", None, to="open@acme.test",
                                 who="Boss <boss@ops.test>",
                                 headers=(b"from", b"to", b"subject", b"message-id", b"date"))
        given = bare.replace(b"\r\n\r\n", (f"\r\nIn-Reply-To: {other_ack}\r\n"
                                             "Cc: spy@evil.test\r\n\r\n").encode(), 1)
        d = self.deliver_raw(mid2, given, to="open@acme.test")
        self.assertTrue(any("no proof" in x for x in d["notes"]), d["notes"])
        for t in (self.srv.ticket(n), self.srv.ticket(other)):
            self.assertEqual((t["status"], t["cc"]), ("open", []))
            self.assertEqual(len([e for e in t["events"] if e["kind"] == "reply" and e["by_staff"]]),
                             1 if t["number"] == n else 0)
        self.assertEqual(mails_to(self.srv, "spy@evil.test"), [])

    def test_a_field_hidden_in_front_of_the_header_proves_nothing(self):
        n, ack = self.ticket(org="open")
        mid, raw = self.signed("Here is the export.", None, to="attacker@evil.test",
                               who="Boss <boss@ops.test>",
                               headers=(b"from", b"to", b"subject", b"message-id", b"date"))
        for hidden in (f" In-Reply-To: {ack}\r\n", f"\tIn-Reply-To: {ack}\r\n"):
            d = self.deliver_raw(f"{mid}", hidden.encode() + raw, to="open@acme.test")
            self.assertTrue(any("no proof" in x for x in d["notes"]), d["notes"])
            mid, raw = self.signed("Here is the export.", None, to="attacker@evil.test",
                                   who="Boss <boss@ops.test>",
                                   headers=(b"from", b"to", b"subject", b"message-id", b"date"))
        t = self.srv.ticket(n)
        self.assertEqual(t["cc"], [])
        self.assertFalse([e for e in t["events"] if e["kind"] == "reply" and e["by_staff"]])

    def test_a_signature_listing_thousands_of_fields_costs_little(self):
        n, ack = self.ticket(org="open")
        m = EmailMessage()
        m["From"], m["To"], m["Subject"] = "Alex <alex@ops.test>", "open@acme.test", "Re: VPN"
        m["Message-ID"], m["Date"], m["In-Reply-To"] = "<wide@ops.test>", email.utils.formatdate(), ack
        m.set_content("#status closed")
        raw = m.as_bytes().replace(b"\n", b"\r\n")
        names = [f"x-absent-{i}".encode() for i in range(20_000)]
        sig = dkim.sign(raw, b"sel", b"ops.test", self.key,
                        include_headers=[b"from", b"to", b"subject", b"message-id", b"date",
                                         b"in-reply-to"] + names)
        normal = mail("carol@customer.test", "open@acme.test", "Another one", "Hello?")
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port) as s:
            s.sendmail("alex@ops.test", ["open@acme.test"], sig + raw)
            s.sendmail("carol@customer.test", ["open@acme.test"], normal.as_bytes())
            sent = time.time()
        self.srv.decision_for(normal["Message-ID"], timeout=20)
        self.assertLess(time.time() - sent, 10)
        d = self.srv.decision_for("<wide@ops.test>")
        self.assertTrue(any("fields" in x and "no proof" in x for x in d["notes"]), d["notes"])
        self.assertEqual(self.srv.ticket(n)["status"], "open")

    def test_a_flood_of_signature_fields_costs_nothing(self):
        n, ack = self.ticket(org="open")
        bogus = "".join(f"DKIM-Signature : v=1; a=rsa-sha256; d=ops.test; s=sel; h=from; "
                        f"bh=AAAA; b={i:04d}\r\n" for i in range(300))
        padding = "".join(f"X-Pad-{i}: {'p' * 5000}\r\n" for i in range(50))
        flood = (f"From: Alex <alex@ops.test>\r\nTo: open@acme.test\r\nSubject: Re: VPN\r\n"
                 f"Message-ID: <flood@ops.test>\r\nIn-Reply-To: {ack}\r\n{bogus}{padding}\r\n"
                 "#status closed\r\n").encode()
        normal = mail("carol@customer.test", "open@acme.test", "Another question", "Hello?")
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port) as s:
            s.sendmail("alex@ops.test", ["open@acme.test"], flood)
            s.sendmail("carol@customer.test", ["open@acme.test"], normal.as_bytes())
            sent = time.time()
        self.srv.decision_for(normal["Message-ID"], timeout=20)
        self.assertLess(time.time() - sent, 10)
        d = self.srv.decision_for("<flood@ops.test>")
        self.assertTrue(any("malformed" in x for x in d["notes"]), d["notes"])
        self.assertEqual(self.srv.ticket(n)["status"], "open")

    def test_a_forged_staff_from_does_not_pass_the_whitelist(self):
        forged = mail("Alex <alex@ops.test>", "acme@acme.test", "Please help", "Copy me.",
                      Cc="outsider@evil.test")
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port) as s:
            s.sendmail("outsider@evil.test", ["acme@acme.test"], forged.as_bytes())
        d = self.srv.decision_for(forged["Message-ID"])
        self.assertEqual(d["outcome"], "refused")
        self.assertIn("whitelist", d["reason"])
        time.sleep(1)
        self.assertEqual(mails_to(self.srv, "outsider@evil.test"), [])

    def test_tech_may_not_steer_a_ticket_they_may_not_see(self):
        n, ack = self.ticket(org="open")
        mid, raw = self.signed("#assign me\n#status closed", ack, to="open@acme.test")
        d = self.deliver_raw(mid, raw, to="open@acme.test")
        self.assertTrue(any("may not see" in x for x in d["notes"]), d["notes"])
        t = self.srv.ticket(n)
        self.assertEqual((t["status"], t["assignee"]), ("open", None))
        self.assertEqual(t["events"][-1]["kind"], "commands_rejected")
        told = wait_for(lambda: [m for m in mails_to(self.srv, "alex@ops.test")
                                 if "may not change" in text_of(m)])
        self.assertNotIn("VPN", str(told[0]["Subject"]), "nothing of the ticket is told")


def acknowledgement_of_ticket(srv, n):
    """The Message-ID of ticket n's acknowledgement."""
    return wait_for(lambda: [m["Message-ID"] for m in outbox(srv)
                             if m["Auto-Submitted"] == "auto-replied" and f"[#{n}]" in str(m["Subject"])])[0]


class Stall(unittest.TestCase):
    """Attack 4: mail built to make stripping quadratic or deep; a normal mail sent right
    after is decided within seconds."""

    def setUp(self):
        self.srv = Server().bootstrap().start()
        self.addCleanup(self.srv.close)

    def test_hostile_bodies_do_not_stall_the_desk(self):
        srv = self.srv
        many_lines = mail("a@customer.test", "acme@acme.test", "200,000 lines", "x\n" * 200_000)
        blocks = mail("b@customer.test", "acme@acme.test", "30,000 quote blocks",
                      "Hi\n> quoted\n" * 30_000 + "end")
        nested = EmailMessage()
        nested["From"], nested["To"], nested["Subject"] = "c@customer.test", "acme@acme.test", "nested"
        nested["Message-ID"] = f"<{uuid.uuid4().hex}@customer.test>"
        nested.set_content("<blockquote>" * 30_000 + "line<br>" * 30_000, subtype="html")
        normal = mail("d@customer.test", "acme@acme.test", "Printer", "The printer jams.")
        with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=60) as s:
            for m in (many_lines, blocks, nested, normal):
                s.sendmail(str(m["From"]), ["acme@acme.test"], m.as_bytes())
            sent = time.time()
        d = srv.decision_for(normal["Message-ID"], timeout=20)
        took = time.time() - sent
        print(f"\nstall: the normal mail was decided {took:.2f} s after the hostile ones", flush=True)
        self.assertLess(took, 10)
        self.assertEqual(d["outcome"], "accepted")
        for m in (many_lines, blocks, nested):
            self.assertEqual(srv.decision_for(m["Message-ID"])["outcome"], "accepted")
        shown = [e["text"] for e in srv.ticket(srv.decision_for(many_lines["Message-ID"])["ticket"])["events"]]
        self.assertLessEqual(len(shown[0]), 100_200, "display text is capped; the original is whole")
        raw = srv.api(f"/api/v1/messages/{urllib_quote(many_lines['Message-ID'])}/raw")
        self.assertGreater(len(raw), 400_000)


    def test_nested_messages_do_not_kill_the_server(self):
        srv = self.srv
        nested = ("From: a@customer.test\r\nTo: acme@acme.test\r\nSubject: nested\r\n"
                  "Message-ID: <nested@customer.test>\r\nMIME-Version: 1.0\r\n"
                  + "Content-Type: message/rfc822\r\n\r\n" * 20_000
                  + "Subject: x\r\n\r\nhi\r\n").encode()
        normal = mail("d@customer.test", "acme@acme.test", "Printer", "The printer jams.")
        with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=60) as s:
            s.sendmail("a@customer.test", ["acme@acme.test"], nested)
            s.sendmail("d@customer.test", ["acme@acme.test"], normal.as_bytes())
            sent = time.time()
        self.assertEqual(srv.decision_for(normal["Message-ID"], timeout=20)["outcome"], "accepted")
        self.assertLess(time.time() - sent, 10)
        self.assertEqual(srv.decision_for("<nested@customer.test>")["outcome"], "accepted")
        self.assertIsNone(srv.proc.poll(), "the server is still running")
        # The same nesting hidden in a quoted-printable part, where no scan of the raw
        # bytes sees it, and in digests.
        hidden = ("From: b@customer.test\r\nTo: acme@acme.test\r\nSubject: hidden\r\n"
                  "Message-ID: <hidden@customer.test>\r\nMIME-Version: 1.0\r\n"
                  "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
                  + "Content-Type: message=2Frfc822\r\n\r\n" * 30_000 + "Subject: x\r\n\r\nhi\r\n").encode()
        digests = ("From: c@customer.test\r\nTo: acme@acme.test\r\nSubject: digests\r\n"
                   "Message-ID: <digests@customer.test>\r\nMIME-Version: 1.0\r\n"
                   + "".join(f"Content-Type: multipart/digest; boundary=\"d{i}\"\r\n\r\n--d{i}\r\n"
                             for i in range(20_000)) + "Subject: x\r\n\r\nhi\r\n").encode()
        with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=60) as s:
            s.sendmail("b@customer.test", ["acme@acme.test"], hidden)
            s.sendmail("c@customer.test", ["acme@acme.test"], digests)
        for mid in ("<hidden@customer.test>", "<digests@customer.test>"):
            self.assertEqual(srv.decision_for(mid, timeout=20)["outcome"], "accepted")
        self.assertIsNone(srv.proc.poll(), "the server is still running")


def urllib_quote(s):
    import urllib.parse
    return urllib.parse.quote(s, safe="")


class Originals(unittest.TestCase):
    """Attack 5: a Tech mails their own ticket with the Message-ID of another
    organization's message and asks for that original."""

    def test_the_original_comes_from_the_callers_own_ticket(self):
        srv = Server().bootstrap(orgs=(("acme", "Acme", []), ("beta", "Beta", [])),
                                 staff=[("alex@ops.test", "Alex", "tech")])
        self.addCleanup(srv.close)
        token = srv.cli("token", "create", "alex@ops.test").stdout.strip()
        srv.start()
        def decided(m, org):
            send_only(srv, m)
            return wait_for(lambda: [d for d in srv.decisions()
                                     if d["message_id"] == "<shared@x.test>" and d["org"] == org])[0]

        secret = decided(mail("ceo@beta-customer.test", "beta@acme.test", "Merger",
                              "Confidential: we buy Acme.", message_id="<shared@x.test>"), "beta")
        mine = decided(mail("alex@ops.test", "acme@acme.test", "My own ticket",
                            "Nothing to see here.", message_id="<shared@x.test>"), "acme")
        self.assertNotEqual(secret["ticket"], mine["ticket"])
        raw = srv.api("/api/v1/messages/%3Cshared%40x.test%3E/raw", token=token)
        self.assertIn(b"Nothing to see here.", raw)
        self.assertNotIn(b"Confidential", raw)
        beta = srv.ticket(secret["ticket"])
        seq = beta["events"][0]["seq"]
        srv.api(f"/api/v1/tickets/{secret['ticket']}/events/{seq}/raw", token=token, expect=404)
        # The admin still reads each from its own ticket.
        self.assertIn(b"Confidential", srv.api(f"/api/v1/tickets/{secret['ticket']}/events/{seq}/raw"))


class RemovedPeople(unittest.TestCase):
    """Attack 9: a Tech no longer assigned (but still following) and a deleted employee
    must hear nothing more of a ticket."""

    def test_alerts_follow_the_view_policy(self):
        srv = Server().bootstrap(staff=[("alex@ops.test", "Alex", "tech"),
                                        ("mia@ops.test", "Mia", "tech")])
        self.addCleanup(srv.close)
        alex_link = staff_link(srv, "alex@ops.test")
        admin_link = staff_link(srv, "tester@ops.test")
        srv.start()
        d = send(srv, mail("carol@customer.test", "acme@acme.test", "Laptop", "It is slow."))
        n = d["ticket"]
        ack = acknowledgement_of_ticket(srv, n)
        srv.send("PATCH", f"/api/v1/tickets/{n}", {"assignee": "alex@ops.test"})
        alex = Browser(srv)
        alex.get(alex_link)
        page = alex.get(f"/desk/tickets/{n}")[2]
        alex.post(f"/desk/tickets/{n}/follow", {"csrf": alex.csrf(page), "follow": "yes"})
        self.assertEqual(srv.ticket(n)["followers"], ["alex@ops.test"])
        srv.send("PATCH", f"/api/v1/tickets/{n}", {"assignee": "mia@ops.test"})
        # Mia leaves the company.
        admin = Browser(srv)
        admin.get(admin_link)
        staff_page = admin.get("/settings/staff")[2]
        status, _, _ = admin.post("/settings/staff/delete", {"csrf": admin.csrf(staff_page),
                                                            "email": "mia@ops.test"})
        self.assertIn(status, (200, 303))
        send(srv, mail("carol@customer.test", "acme@acme.test", "Re: Laptop", "Still slow, any news?",
                       In_Reply_To=ack))
        srv.send("POST", f"/api/v1/tickets/{n}/notes", {"text": "Internal: order a new one."},
                 expect=201)
        # The ticket's assignee is gone: owners, admins and managers hear of the reply.
        wait_for(lambda: [m for m in mails_to(srv, "tester@ops.test") if "any news?" in text_of(m)])
        time.sleep(1)
        for former in ("alex@ops.test", "mia@ops.test"):
            heard = [m for m in mails_to(srv, former)
                     if "any news?" in text_of(m) or "order a new one" in text_of(m)]
            self.assertEqual(heard, [], former)


class DnsSilence(unittest.TestCase):
    """Through a real DNS server (dnspython) that never answers for one zone: a sender
    cannot make the check of someone else's domain go silent, nor stall the desk with
    signatures or return paths that point into a silent zone."""

    def setUp(self):
        self.keys = os.path.join(tempfile_dir(), "ops.pem")
        self.key, pub = rsa_key(self.keys)
        self.dns = DnsServer({"_dmarc.bank.test": ["v=DMARC1; p=reject"],
                              "_dmarc.ops.test": ["v=DMARC1; p=reject"],
                              "sel._domainkey.ops.test": [f"v=DKIM1; k=rsa; p={pub}"]},
                             silent=["slow.evil.test"])
        self.addCleanup(self.dns.close)
        srv = Server(env={"POSTDESK_DNS_SERVER": f"127.0.0.1:{self.dns.port}",
                          "POSTDESK_DNS_RECORDS": ""})
        srv.bootstrap(staff=[("boss@ops.test", "Boss", "manager")]).start()
        self.addCleanup(srv.close)
        self.srv = srv

    def raw_signed_by_a_silent_zone(self, frm, message_id, body="#status closed"):
        return (f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=x.slow.evil.test; "
                f"s=sel; h=from:to:subject; bh=AAAA; b=AAAA\r\nFrom: {frm}\r\n"
                f"To: acme@acme.test\r\nSubject: Re: hello\r\nMessage-ID: {message_id}\r\n"
                f"Date: {email.utils.formatdate()}\r\n\r\n{body}\r\n").encode()

    def test_a_silent_zone_neither_stalls_the_desk_nor_blinds_it(self):
        srv = self.srv
        first = send(srv, mail("alice@bank.test", "acme@acme.test", "Wire transfer", "Urgent."))
        n = first["ticket"]
        self.assertTrue(srv.ticket(n)["events"][0]["suspected_spoofing"])
        started = time.time()
        with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=60) as s:
            # Signatures and return paths pointing into the silent zone, from a staff
            # address and from a domain that enforces DMARC.
            for i in range(4):
                s.sendmail(f"x@{i}.slow.evil.test", ["acme@acme.test"],
                           self.raw_signed_by_a_silent_zone("Boss <boss@ops.test>", f"<boss{i}@x>"))
                s.sendmail(f"x@{i}.slow.evil.test", ["acme@acme.test"],
                           self.raw_signed_by_a_silent_zone("nobody@bank.test", f"<bank{i}@x>"))
            # The attacker's own silent domains: each registered domain costs one wait.
            for i in range(4):
                s.sendmail(f"x@{i}.slow.evil.test", ["acme@acme.test"],
                           mail(f"x@{i}.slow.evil.test", "acme@acme.test", "hi").as_bytes())
            normal = mail("carol@customer.test", "acme@acme.test", "Printer", "It jams.")
            s.sendmail("carol@customer.test", ["acme@acme.test"], normal.as_bytes())
        srv.decision_for(normal["Message-ID"], timeout=30)
        took = time.time() - started
        print(f"\ndns silence: the normal mail was decided {took:.1f} s after the first "
              "hostile one", flush=True)
        self.assertLess(took, 10)
        # bank.test is still checked: a forged reply as its requester is held.
        again = send(srv, mail("alice@bank.test", "acme@acme.test", f"Re: [#{n}] Wire transfer",
                               "Copy my lawyer.", Cc="lawyer@evil.test"))
        last = srv.ticket(n)["events"][-1]
        self.assertEqual((again["ticket"], last["held"], last["suspected_spoofing"]), (n, True, True))
        self.assertFalse([q for q in self.dns.asked if q.endswith("slow.evil.test")
                          and "_domainkey" in q], "no key is looked up for an unaligned signature")


def tempfile_dir():
    import tempfile
    return tempfile.mkdtemp(prefix="postdesk-dns-")


class Backscatter(unittest.TestCase):
    """From the issue's list: no acknowledgement to mail that fails DMARC for a domain that
    asks receivers to reject or quarantine it; the ticket is flagged."""

    def test_forged_sender_gets_no_acknowledgement(self):
        srv = Server()
        records = os.path.join(srv.dir, "records.txt")
        with open(records, "w") as f:
            f.write('_dmarc.bank.test. IN TXT "v=DMARC1; p=reject"\n')
            f.write('bank.test. IN TXT "v=spf1 ip4:192.0.2.1 -all"\n')
        srv.env["POSTDESK_DNS_RECORDS"] = records
        srv.bootstrap().start()
        self.addCleanup(srv.close)
        forged = send(srv, mail("ceo@bank.test", "acme@acme.test", "Wire transfer", "Urgent."))
        several = send(srv, mail("CEO <ceo@bank.test>, Someone <x@other.test>", "acme@acme.test",
                                 "Wire transfer, again", "Urgent."))
        self.assertTrue(any("suspected spoofing" in x for x in several["notes"]), several["notes"])
        honest = send(srv, mail("someone@customer.test", "acme@acme.test", "Question", "Hi."))
        self.assertTrue(any("suspected spoofing" in x for x in forged["notes"]), forged["notes"])
        self.assertTrue(srv.ticket(forged["ticket"])["events"][0]["suspected_spoofing"])
        acknowledgement_of(srv, "someone@customer.test")
        time.sleep(1)
        self.assertEqual(mails_to(srv, "ceo@bank.test"), [])
        # Writing into the ticket as its requester, with the same forged From: held.
        n = forged["ticket"]
        again = send(srv, mail("ceo@bank.test", "acme@acme.test", f"Re: [#{n}] Wire transfer",
                               "Copy my lawyer.", Cc="lawyer@evil.test"))
        self.assertEqual(again["ticket"], n)
        last = srv.ticket(n)["events"][-1]
        self.assertEqual((last["held"], last["suspected_spoofing"], last["visibility"]),
                         (True, True, "internal"))
        self.assertEqual(srv.ticket(n)["cc"], [])


if __name__ == "__main__":
    unittest.main()
