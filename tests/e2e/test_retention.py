"""Retention over the real server with its clock moved: set in the organization's
settings, the daily run drops originals older than their days (the tickets' text stays)
and deletes tickets closed longer than their months; an organization deactivated by its
owner takes no mail and is deleted three months later unless reactivated; open tickets
and another organization's data stay; each run that does something is in the audit
log."""

import smtplib
import time
import unittest

from harness import Browser, MovedClock, Server, mail, sign_in_link, staff_link, wait_for
from test_portal_modes import settings_form

DAY = 86400


class Retention(unittest.TestCase):
    def setUp(self):
        srv = Server(env={"POSTDESK_MONITOR_INTERVAL_SECS": "1"}).bootstrap(
            orgs=(("acme", "Acme", []), ("beta", "Beta", [])),
            staff=[("boss@ops.test", "Bo Owner", "owner")])
        self.addCleanup(srv.close)
        self.clock = MovedClock(srv)
        self.owner = srv.cli("token", "create", "boss@ops.test").stdout.strip()
        self.admin_link = staff_link(srv, "tester@ops.test")
        self.owner_link = staff_link(srv, "boss@ops.test")
        self.srv = srv.start()

    def open_ticket(self, to, subject):
        mid = f"<{subject.replace(' ', '-')}-{time.time_ns()}@customer.test>"
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port) as s:
            s.send_message(mail("rita@customer.test", to, subject, f"About {subject}.",
                                message_id=mid))
        return self.srv.decision_for(mid)["ticket"]

    def original(self, n, expect=200):
        seq = self.srv.ticket(n)["events"][0]["seq"]
        return self.srv.api(f"/api/v1/tickets/{n}/events/{seq}/raw", expect=expect)

    def retention_runs(self):
        return [e for e in self.srv.api("/api/v1/audit", token=self.owner)["audit"]
                if e["action"] == "retention"]

    def test_originals_and_closed_tickets_go_on_their_days(self):
        srv = self.srv
        admin = Browser(srv)
        admin.get(self.admin_link)
        page = admin.get("/settings/orgs/acme")[2]
        form = dict(settings_form(page), originals_days="30", closed_months="2")
        status, _, saved = admin.post("/settings/orgs/acme", form)
        self.assertEqual(status, 200)
        self.assertIn("Saved.", saved)
        for bad in ({"originals_days": "0"}, {"closed_months": "121"}, {"originals_days": "x"}):
            self.assertEqual(admin.post("/settings/orgs/acme", dict(form, **bad))[0], 400)
        # A form without the fields (an older page) leaves them as they are.
        older = {k: v for k, v in form.items() if k not in ("originals_days", "closed_months")}
        self.assertEqual(admin.post("/settings/orgs/acme", older)[0], 200)
        page = admin.get("/settings/orgs/acme")[2]
        self.assertIn('name="originals_days" value="30"', page)
        self.assertIn('name="closed_months" value="2"', page)
        changes = [e["detail"] for e in srv.api("/api/v1/audit", token=self.owner)["audit"]
                   if e["action"] == "settings_changed"]
        self.assertIn("settings saved; retention: originals days kept -> 30, "
                      "closed ticket months kept -> 2", changes)
        closed = self.open_ticket("acme@acme.test", "Old question")
        kept = self.open_ticket("acme@acme.test", "Still open")
        other = self.open_ticket("beta@acme.test", "Beta keeps all")
        late = self.open_ticket("acme@acme.test", "Resolved early closed late")
        srv.send("PATCH", f"/api/v1/tickets/{closed}", {"status": "closed"})
        srv.send("PATCH", f"/api/v1/tickets/{late}", {"status": "resolved"})
        self.assertIn(b"About Old question.", self.original(closed))
        # 31 days on: acme's originals are gone, their text stays; beta keeps its own.
        self.clock.move(31 * DAY)
        wait_for(lambda: self.retention_runs() or None, timeout=15)
        for n, subject in ((closed, "Old question"), (kept, "Still open")):
            self.original(n, expect=404)
            self.assertEqual(srv.ticket(n)["events"][0]["text"], f"About {subject}.")
        self.assertIn(b"About Beta keeps all.", self.original(other))
        self.assertEqual(srv.ticket(closed)["status"], "closed")
        runs = self.retention_runs()
        self.assertEqual([(r["org"], r["detail"], r["actor"]) for r in runs],
                         [("acme", "3 originals dropped", "retention")])
        # Resolved 31 days ago, closed now: its months count from now.
        srv.send("PATCH", f"/api/v1/tickets/{late}", {"status": "closed"})
        # Once a day: more ticks the same day do nothing more.
        time.sleep(2.5)
        self.assertEqual(len(self.retention_runs()), 1)
        # Past two months after it was closed: the closed ticket is deleted, the rest stay.
        self.clock.move(30 * DAY)
        wait_for(lambda: len(self.retention_runs()) == 2 or None, timeout=15)
        time.sleep(2)
        srv.api(f"/api/v1/tickets/{closed}", expect=404)
        self.assertEqual(srv.ticket(kept)["status"], "open")
        self.assertEqual(srv.ticket(other)["status"], "open")
        self.assertEqual(srv.ticket(late)["status"], "closed")
        self.assertEqual(self.retention_runs()[0]["detail"],
                         f"1 closed tickets deleted: #{closed}")

    def refusal(self, to):
        """The SMTP answer to RCPT TO `to`, as (code, text); (250, ...) when taken."""
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port) as s:
            s.ehlo()
            s.mail("rita@customer.test")
            code, text = s.rcpt(to)
            return code, text.decode()

    def portal_link(self, address, count=1):
        """A browser that asked for a sign-in link to acme's portal for `address`, and the
        link's path (the `count`th mailed to it)."""
        b = Browser(self.srv)
        page = b.get("/portal/acme")[2]
        b.post("/portal/acme/link", {"csrf": b.csrf(page), "email": address})
        return b, sign_in_link(self.srv, address, count)

    def test_a_deactivated_organization_is_deleted_three_months_later(self):
        srv = self.srv
        first = self.open_ticket("acme@acme.test", "Acme question")
        rita, link = self.portal_link("rita@customer.test")
        self.assertEqual(rita.get(link)[0], 303)
        rita_csrf = rita.csrf(rita.get(f"/portal/acme/tickets/{first}")[2])
        _, unused_link = self.portal_link("rita@customer.test", count=2)
        second = self.open_ticket("acme@acme.test", "Acme follow-up")
        other = self.open_ticket("beta@acme.test", "Beta question")
        # Only the owner deactivates: the admin's token is refused and nothing changes.
        srv.send("POST", "/api/v1/orgs/acme/deactivate", {}, expect=403)
        srv.send("POST", "/api/v1/orgs/nosuch/deactivate", {}, token=self.owner, expect=404)
        self.assertEqual(self.refusal("acme@acme.test")[0], 250)
        owner = Browser(srv)
        owner.get(self.owner_link)
        page = owner.get("/settings/orgs/acme")[2]
        status, _, page = owner.post("/settings/orgs/acme/deactivate",
                                     {"csrf": owner.csrf(page), "confirm": "beta"})
        self.assertEqual(status, 400)
        self.assertIn("Type acme to confirm", page)
        self.assertEqual(self.refusal("acme@acme.test")[0], 250)

        # Deactivated: mail refused at RCPT, the portal closed, staff still see tickets.
        got = srv.send("POST", "/api/v1/orgs/acme/deactivate", {}, token=self.owner)
        self.assertEqual(got["slug"], "acme")
        code, text = self.refusal("acme+t1@acme.test")
        self.assertEqual(code, 550)
        self.assertIn("5.2.1", text)
        self.assertEqual(self.refusal("beta@acme.test")[0], 250)
        self.assertEqual(Browser(srv).get("/portal/acme")[0], 404)
        self.assertEqual(Browser(srv).get("/portal/beta")[0], 200)
        self.assertNotIn("/portal/acme", Browser(srv).get("/portal")[2])
        # Portal sessions end and links die with it: no reply, no sign-in.
        rita.post_files(f"/portal/acme/tickets/{first}", {"csrf": rita_csrf, "text": "Still there?"})
        self.assertNotIn("Still there?", [e["text"] for e in srv.ticket(first)["events"]])
        self.assertNotEqual(Browser(srv).get(unused_link)[0], 303)
        # Staff open no new tickets there.
        srv.send("POST", "/api/v1/tickets", {"org": "acme", "requester": "new@customer.test",
                                             "summary": "x", "text": "y"}, expect=409)
        self.assertEqual(srv.ticket(first)["status"], "open")
        page = owner.get("/settings/orgs/acme")[2]
        self.assertIn('id="deactivated"', page)
        self.assertIn('id="reactivate"', page)
        # An admin's settings save leaves it deactivated.
        admin = Browser(srv)
        admin.get(self.admin_link)
        apage = admin.get("/settings/orgs/acme")[2]
        self.assertNotIn('id="reactivate"', apage)
        self.assertEqual(admin.post("/settings/orgs/acme", settings_form(apage))[0], 200)
        self.assertEqual(self.refusal("acme@acme.test")[0], 550)

        # Reactivated in the web page, then deactivated again there 10 days later: the
        # three months count from then.
        status, _, _ = owner.post("/settings/orgs/acme/reactivate", {"csrf": owner.csrf(page)})
        self.assertEqual(self.refusal("acme@acme.test")[0], 250)
        self.assertEqual(Browser(srv).get("/portal/acme")[0], 200)
        self.clock.move(10 * DAY)
        page = owner.get("/settings/orgs/acme")[2]
        owner.post("/settings/orgs/acme/deactivate",
                   {"csrf": owner.csrf(page), "confirm": "acme"})
        self.assertEqual(self.refusal("acme@acme.test")[0], 550)

        # 89 days on, nothing is deleted; past 90 days, acme's tickets and the
        # organization go, beta stays.
        self.clock.move(89 * DAY)
        time.sleep(2.5)
        self.assertEqual(srv.ticket(second)["status"], "open")
        self.assertEqual(self.retention_runs(), [])
        self.clock.move(2 * DAY)
        runs = wait_for(self.retention_runs, timeout=15)
        self.assertEqual([(r["org"], r["actor"]) for r in runs], [("acme", "retention")])
        self.assertIn("organization deleted, three months after it was deactivated: "
                      "2 tickets", runs[0]["detail"])
        for n in (first, second):
            srv.api(f"/api/v1/tickets/{n}", expect=404)
        self.assertEqual(srv.ticket(other)["status"], "open")
        srv.api("/api/v1/orgs/acme/monitors", expect=404)
        code, text = self.refusal("acme@acme.test")
        self.assertEqual(code, 550)
        self.assertIn("5.1.1", text)
        self.assertEqual(self.refusal("beta@acme.test")[0], 250)
        changes = [(e["action"], e["actor"], e["org"])
                   for e in srv.api("/api/v1/audit", token=self.owner)["audit"]
                   if e["action"].startswith("org_")]
        self.assertEqual(changes, [("org_deactivated", "boss@ops.test", "acme"),
                                   ("org_reactivated", "boss@ops.test", "acme"),
                                   ("org_deactivated", "boss@ops.test", "acme")][::-1])


if __name__ == "__main__":
    unittest.main()
