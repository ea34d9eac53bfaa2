"""Change alerts over the real server: the new assignee is told (never the author), the
requester when staff resolve or close (with a reply address that reopens), followers hear
colleagues' answers and notes but not their own, and alerts off still rings the bell."""

import smtplib
import time
import unittest

from harness import Browser, Server, mail, outbox_mails, staff_link, wait_for


class ChangeAlerts(unittest.TestCase):
    def setUp(self):
        srv = Server().bootstrap(staff=[("alex@ops.test", "Alex", "manager"),
                                        ("mia@ops.test", "Mia", "manager"),
                                        ("quiet@ops.test", "Quiet", "manager")])
        self.addCleanup(srv.close)
        srv.cli("staff", "alerts", "quiet@ops.test", "off")
        srv.cli("contact", "alerts", "optout@customer.test", "off")
        self.alex = srv.cli("token", "create", "alex@ops.test").stdout.strip()
        self.mia = srv.cli("token", "create", "mia@ops.test").stdout.strip()
        self.mia_link = staff_link(srv, "mia@ops.test")
        self.quiet_link = staff_link(srv, "quiet@ops.test")
        self.srv = srv.start()

    def open_ticket(self, frm, subject, mid):
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port) as s:
            s.send_message(mail(frm, "acme@acme.test", subject, "It is broken.",
                                message_id=f"<{mid}@customer.test>"))
        return self.srv.decision_for(f"<{mid}@customer.test>")["ticket"]

    def outbox(self, recipient, kind=None):
        return [o for o in self.srv.api("/api/v1/outbox?limit=1000")["outbox"]
                if o["recipient"] == recipient and (kind is None or o["kind"] == kind)]

    def planned_through(self, n):
        """Waits until the notifier has planned everything so far: it plans events in
        order, so a marker event's mail (a resolution notice to a fresh ticket's
        requester) means every earlier event was planned."""
        marker = f"marker{n}@customer.test"
        t = self.open_ticket(marker, "Marker", f"marker{n}")
        self.srv.send("PATCH", f"/api/v1/tickets/{t}", {"status": "resolved"})
        wait_for(lambda: self.outbox(marker, "resolved_notice"))

    def test_the_assignee_is_told_once_never_the_author(self):
        srv = self.srv
        n = self.open_ticket("rita@customer.test", "Printer", "p1")
        srv.send("PATCH", f"/api/v1/tickets/{n}", {"assignee": "alex@ops.test"})
        wait_for(lambda: self.outbox("alex@ops.test", "assigned_alert"))
        mails = wait_for(lambda: [m for m in outbox_mails(srv, "alex@ops.test")
                                  if f"assigned #{n} to you" in
                                  m.get_body(("plain",)).get_content()])
        self.assertEqual(mails[0]["Auto-Submitted"], "auto-generated")
        # The same assignment again changes nothing; other changes tell nobody; Alex
        # handing it on (by mail) tells Mia, not Alex; Alex taking it back tells nobody.
        srv.send("PATCH", f"/api/v1/tickets/{n}", {"assignee": "alex@ops.test"})
        srv.send("PATCH", f"/api/v1/tickets/{n}", {"priority": "high", "status": "waiting"})
        # Alex hands it on by a mail command, answering his alert (its Reply-To proves him).
        reply_to = mails[0]["Reply-To"].addresses[0].addr_spec
        with smtplib.SMTP("127.0.0.1", srv.smtp_port) as s:
            s.send_message(mail("Alex <alex@ops.test>", reply_to, f"Re: [#{n}] Printer",
                                "#assign mia@ops.test\n", message_id="<hand-on@ops.test>"))
        self.assertEqual(srv.decision_for("<hand-on@ops.test>")["ticket"], n)
        self.assertEqual(srv.ticket(n)["assignee"], "mia@ops.test")
        # (Planned only while Mia still holds it: news already undone is not sent.)
        wait_for(lambda: self.outbox("mia@ops.test", "assigned_alert"))
        srv.send("PATCH", f"/api/v1/tickets/{n}", {"assignee": "alex@ops.test"},
                 token=self.alex)
        self.planned_through(1)
        self.assertEqual(len(self.outbox("alex@ops.test", "assigned_alert")), 1)
        self.assertEqual(len(self.outbox("mia@ops.test", "assigned_alert")), 1)
        self.assertEqual(self.outbox("tester@ops.test", "assigned_alert"), [])
        self.assertEqual(self.outbox("rita@customer.test", "resolved_notice"), [])

    def test_the_requester_is_told_on_resolve_and_a_reply_reopens(self):
        srv = self.srv
        n = self.open_ticket("rita@customer.test", "Laptop", "l1")
        srv.send("PATCH", f"/api/v1/tickets/{n}", {"status": "resolved"})
        notice = wait_for(lambda: [m for m in outbox_mails(srv, "rita@customer.test")
                                   if "reopen" in m.get_body(("plain",)).get_content()])[0]
        text = notice.get_body(("plain",)).get_content()
        self.assertIn("reply to this mail to reopen it", text)
        self.assertIn(f"[#{n}]", str(notice["Subject"]))
        reply_to = notice["Reply-To"].addresses[0].addr_spec
        self.assertTrue(reply_to.startswith("acme+"), reply_to)
        # Closed after resolved: told once. Then the requester answers the notice.
        srv.send("PATCH", f"/api/v1/tickets/{n}", {"status": "closed"})
        with smtplib.SMTP("127.0.0.1", srv.smtp_port) as s:
            s.send_message(mail("rita@customer.test", reply_to, f"Re: [#{n}] Laptop",
                                "It broke again.", message_id="<l2@customer.test>",
                                in_reply_to=notice["Message-ID"]))
        self.assertEqual(srv.decision_for("<l2@customer.test>")["ticket"], n)
        self.assertEqual(srv.ticket(n)["status"], "open")
        # Done again by another member of staff: told again. An end user who opted out of
        # automatic mail is not told.
        srv.send("PATCH", f"/api/v1/tickets/{n}", {"status": "closed"}, token=self.mia)
        other = self.open_ticket("optout@customer.test", "Mouse", "m1")
        srv.send("PATCH", f"/api/v1/tickets/{other}", {"status": "resolved"})
        self.planned_through(2)
        self.assertEqual(len(self.outbox("rita@customer.test", "resolved_notice")), 2)
        self.assertEqual(self.outbox("optout@customer.test", "resolved_notice"), [])

    def test_a_follower_hears_colleagues_notes_and_answers_not_their_own(self):
        srv = self.srv
        n = self.open_ticket("rita@customer.test", "Screen", "s1")
        mia = Browser(srv)
        mia.get(self.mia_link)
        page = mia.get(f"/desk/tickets/{n}")[2]
        mia.post(f"/desk/tickets/{n}/follow", {"csrf": mia.csrf(page), "follow": "yes"})
        self.assertEqual(srv.ticket(n)["followers"], ["mia@ops.test"])

        def heard(text):
            return [m for m in outbox_mails(srv, "mia@ops.test")
                    if text in m.get_body(("plain",)).get_content()]
        srv.send("POST", f"/api/v1/tickets/{n}/notes", {"text": "Alex thinks: cable."},
                 token=self.alex, expect=201)
        wait_for(lambda: heard("Alex thinks: cable."))
        srv.send("POST", f"/api/v1/tickets/{n}/replies", {"text": "Please try another cable."},
                 token=self.alex, expect=201)
        answer = wait_for(lambda: heard("Please try another cable."))[0]
        self.assertIn("Alex answered rita@customer.test:",
                      answer.get_body(("plain",)).get_content())
        srv.send("POST", f"/api/v1/tickets/{n}/notes", {"text": "Mia's own note."},
                 token=self.mia, expect=201)
        self.planned_through(3)
        time.sleep(0.5)  # the folder transport writes what was planned
        self.assertEqual(heard("Mia's own note."), [])
        self.assertEqual([o["kind"] for o in self.outbox("mia@ops.test")
                          if o["kind"] != "new_ticket_alert"],
                         ["reply_alert", "note_alert"])
        # The requester got the answer, never the notes.
        self.assertEqual([o["kind"] for o in self.outbox("rita@customer.test")],
                         ["staff_answer", "acknowledgement"])

    def test_alerts_off_means_no_mail_but_a_bell_entry(self):
        srv = self.srv
        n = self.open_ticket("rita@customer.test", "Phone", "ph1")
        srv.send("PATCH", f"/api/v1/tickets/{n}", {"assignee": "quiet@ops.test"})
        self.planned_through(4)
        self.assertEqual(self.outbox("quiet@ops.test", "assigned_alert"), [])
        quiet = Browser(srv)
        quiet.get(self.quiet_link)
        page = quiet.get("/dashboard")[2]
        entries = page.split('id="recent-notifications"')[1].split("</ul>")[0]
        self.assertIn(f"tester@ops.test assigned #{n} to you", entries)


if __name__ == "__main__":
    unittest.main()
