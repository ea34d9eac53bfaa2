"""The JSON API's writes for integrations: replies go out by mail to the requester, notes
stay internal, field changes are events; bad input changes nothing; the policy that guards
reading guards writing (a Tech acts only on tickets they are involved in)."""

import smtplib
import unittest

from harness import Server, mail, outbox_mails, wait_for


class ApiWrites(unittest.TestCase):
    def setUp(self):
        self.srv = Server().bootstrap(staff=[("alex@acme.test", "Alex", "tech")]).start()
        self.addCleanup(self.srv.close)
        for n, who in enumerate(("rita@customer.test", "sam@customer.test")):
            with smtplib.SMTP("127.0.0.1", self.srv.smtp_port) as s:
                s.send_message(mail(who, "acme@acme.test", f"Problem {n}",
                                    message_id=f"<p{n}@customer.test>"))
            self.srv.decision_for(f"<p{n}@customer.test>")
        self.first = self.srv.decision_for("<p0@customer.test>")["ticket"]
        self.second = self.srv.decision_for("<p1@customer.test>")["ticket"]

    def outbox_for(self, recipient):
        return [o for o in self.srv.api("/api/v1/outbox?limit=1000")["outbox"]
                if o["recipient"] == recipient]

    def test_reply_note_and_fields(self):
        srv, n = self.srv, self.first
        wait_for(lambda: self.outbox_for("rita@customer.test"))  # the acknowledgement
        before = len(self.outbox_for("rita@customer.test"))
        r = srv.send("POST", f"/api/v1/tickets/{n}/replies", {"text": "Please restart it."},
                     expect=201)
        self.assertEqual([(e["kind"], e["visibility"], e["author"]) for e in r["events"]],
                         [("reply", "public", "tester@ops.test")])
        # The requester gets the answer by mail.
        wait_for(lambda: len(self.outbox_for("rita@customer.test")) == before + 1)
        answer = self.outbox_for("rita@customer.test")[0]
        self.assertEqual(answer["kind"], "staff_answer")
        # Written to the outbox folder once delivered (no relay configured).
        wait_for(lambda: [m for m in outbox_mails(srv, "rita@customer.test")
                          if "Please restart it." in m.get_body(("plain",)).get_content()])

        srv.send("POST", f"/api/v1/tickets/{n}/notes", {"text": "Customer seems upset."},
                 expect=201)
        r = srv.send("PATCH", f"/api/v1/tickets/{n}",
                     {"status": "waiting", "priority": "high", "due": "2026-12-24",
                      "assignee": "alex@acme.test"})
        self.assertEqual([e["change"]["field"] for e in r["events"]],
                         ["status", "priority", "due", "assignee"])
        t = srv.ticket(n)
        self.assertEqual((t["status"], t["priority"], t["due"], t["assignee"]),
                         ("waiting", "high", "2026-12-24", "alex@acme.test"))
        srv.send("PATCH", f"/api/v1/tickets/{n}", {"assignee": None, "due": None})
        t = srv.ticket(n)
        self.assertEqual((t["assignee"], t["due"]), (None, None))
        # The note never reaches the customer.
        self.assertEqual(len(self.outbox_for("rita@customer.test")), before + 1)

    def test_bad_input_changes_nothing(self):
        srv, n = self.srv, self.first
        events = len(srv.ticket(n)["events"])
        for method, path, body in [
            ("PATCH", f"/api/v1/tickets/{n}", {"status": "done"}),
            ("PATCH", f"/api/v1/tickets/{n}", {"status": "resolved", "due": "2026-02-30"}),
            ("PATCH", f"/api/v1/tickets/{n}", {"assignee": "stranger@elsewhere.test"}),
            ("PATCH", f"/api/v1/tickets/{n}", {"colour": "red"}),
            ("PATCH", f"/api/v1/tickets/{n}", {}),
            ("POST", f"/api/v1/tickets/{n}/replies", {"text": "   "}),
            ("POST", f"/api/v1/tickets/{n}/replies", {"text": "x" * 100_001}),
            ("POST", f"/api/v1/tickets/{n}/notes", b"{not json"),
            ("POST", f"/api/v1/tickets/{n}/notes", {"text": 5}),
            ("POST", "/api/v1/tickets/abc/notes", {"text": "hi"}),
        ]:
            with self.subTest(body=body):
                r = srv.send(method, path, body, expect=400)
                self.assertTrue(r["error"])
        srv.send("POST", "/api/v1/tickets/999/replies", {"text": "hi"}, expect=404)
        srv.send("POST", f"/api/v1/tickets/{n}/replies", {"text": "hi"}, token="", expect=401)
        self.assertEqual(len(srv.ticket(n)["events"]), events)
        self.assertEqual(srv.ticket(n)["status"], "open")

    def test_a_tech_acts_only_where_involved(self):
        srv = self.srv
        srv.stop()
        tech = srv.cli("token", "create", "alex@acme.test").stdout.strip()
        srv.start()
        for method, path, body in [
            ("POST", f"/api/v1/tickets/{self.first}/replies", {"text": "hi"}),
            ("POST", f"/api/v1/tickets/{self.first}/notes", {"text": "hi"}),
            ("PATCH", f"/api/v1/tickets/{self.first}", {"status": "closed"}),
        ]:
            # Not involved: the same answer as a ticket that does not exist.
            srv.send(method, path, body, token=tech, expect=404)
        srv.send("PATCH", f"/api/v1/tickets/{self.first}", {"assignee": "alex@acme.test"})
        srv.send("POST", f"/api/v1/tickets/{self.first}/notes", {"text": "On it."},
                 token=tech, expect=201)
        srv.send("PATCH", f"/api/v1/tickets/{self.first}", {"status": "resolved"}, token=tech)
        srv.send("PATCH", f"/api/v1/tickets/{self.second}", {"status": "resolved"}, token=tech,
                 expect=404)
        self.assertEqual(srv.ticket(self.second)["status"], "open")
        self.assertEqual(srv.ticket(self.first)["status"], "resolved")


if __name__ == "__main__":
    unittest.main()
