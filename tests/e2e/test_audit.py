"""The audit log over the real server: the operator's commands, sign-ins by link and by
password, settings and monitor changes, exports and deletions are recorded with who, what,
when and from where (the client's address); only the owner reads it, newest first, a page
at a time."""

import smtplib
import unittest

from harness import Browser, Server, mail, staff_link


class Audit(unittest.TestCase):
    def setUp(self):
        srv = Server().bootstrap(staff=[("boss@ops.test", "Bo Owner", "owner"),
                                        ("mgr@ops.test", "Mona", "manager")])
        self.addCleanup(srv.close)
        self.owner = srv.cli("token", "create", "boss@ops.test").stdout.strip()
        self.mgr = srv.cli("token", "create", "mgr@ops.test").stdout.strip()
        self.admin_link = staff_link(srv, "tester@ops.test")
        self.srv = srv.start()

    def log(self, query=""):
        return self.srv.api(f"/api/v1/audit{query}", token=self.owner)["audit"]

    def test_who_did_what_from_where(self):
        srv = self.srv
        # The operator's commands before the start.
        before_start = [(e["action"], e["actor"], e["detail"]) for e in self.log()]
        self.assertIn(("staff_changed", "command line", "added boss@ops.test as owner"),
                      before_start)
        self.assertTrue(any(d.startswith("API token") and "boss@ops.test" in d
                            for _, _, d in before_start))
        self.assertIn(("staff_changed", "command line", "sign-in link made for tester@ops.test"),
                      before_start)
        # The admin signs in by link and saves the organization's settings.
        admin = Browser(srv)
        self.assertEqual(admin.get(self.admin_link)[0], 303)
        page = admin.get("/settings/orgs/acme/monitors")[2]
        status = admin.post("/settings/orgs/acme/monitors", {
            "csrf": admin.csrf(page), "kind_0": "unassigned", "hours_0": "4",
            "email_0": "on", "auto_close_days": ""})[0]
        self.assertEqual(status, 200)
        # Over the API: monitors, an export, a deletion as spam.
        srv.send("PUT", "/api/v1/orgs/acme/monitors", {"monitors": []})
        srv.api("/api/v1/exports/tickets.csv?status=open")
        with smtplib.SMTP("127.0.0.1", srv.smtp_port) as s:
            s.send_message(mail("spam@junk.test", "acme@acme.test", "Buy now", "Cheap.",
                                message_id="<spam1@junk.test>"))
        n = srv.decision_for("<spam1@junk.test>")["ticket"]
        srv.send("DELETE", f"/api/v1/tickets/{n}?spam=true", b"")
        entries = self.log()
        seen = [(e["action"], e["actor"], e["from"], e["org"], e["detail"]) for e in entries[:5]]
        self.assertEqual(seen, [
            ("deleted", "tester@ops.test", "127.0.0.1", "acme",
             f"ticket #{n} deleted as spam; spam@junk.test blocked"),
            ("exported", "tester@ops.test", "127.0.0.1", None, "tickets.csv status=open"),
            ("settings_changed", "tester@ops.test", "127.0.0.1", "acme",
             "monitors and auto-close saved"),
            ("settings_changed", "tester@ops.test", "127.0.0.1", "acme",
             "monitors and auto-close saved"),
            ("signed_in", "tester@ops.test", "127.0.0.1", None, "by sign-in link"),
        ])
        self.assertNotIn("Buy now", str(entries), "no content of what was deleted")
        seqs = [e["seq"] for e in entries]
        self.assertEqual(seqs, sorted(seqs, reverse=True))
        self.assertTrue(all(e["at"].endswith("Z") for e in entries))
        # A page at a time.
        older = self.log(f"?before={seqs[1]}&limit=2")
        self.assertEqual([e["seq"] for e in older], seqs[2:4])
        # An export filter naming no organization is refused, and nothing is recorded.
        srv.api("/api/v1/exports/tickets.csv?org=nosuch%0Aseq%3D1", expect=404)
        self.assertEqual(self.log()[0]["seq"], seqs[0])
        # Only the owner reads it.
        srv.api("/api/v1/audit", expect=403)
        srv.api("/api/v1/audit", token=self.mgr, expect=403)
        srv.api("/api/v1/audit?before=x", token=self.owner, expect=400)


if __name__ == "__main__":
    unittest.main()
