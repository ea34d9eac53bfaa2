"""Monitors & alerts over the real server with its clock moved: each of the seven kinds
fires once per ticket (a DKIM-signed mail with the ticket's tag and a reply address to the
assignee, else to the owners, admins and managers; a bell entry), not again on the next
ticks or after a restart, and again once the state ended and came back (a staff member
acting on the alert by mail, a reply, a new due date). Monitors set in Chromium and over
the API are the same; bad ones are refused and change nothing; a Tech may not see them.
Auto-close closes a resolved ticket after its days without a reply, once, and tells the
requester, whose answer opens it again."""

import datetime
import re
import smtplib
import time
import unittest

import dkim
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from chromium import chromium, page_text
from harness import (Browser, MovedClock, Server, mail, outbox_mails, outbox_raw, staff_link,
                     wait_for)

HOUR = 3600
ALL_SEVEN = [
    {"kind": "past_due", "email": True},
    {"kind": "due_in", "hours": 24, "email": True},
    {"kind": "unassigned", "hours": 2, "email": True},
    {"kind": "open", "hours": 10, "email": True},
    {"kind": "inactive", "hours": 5, "email": True},
    {"kind": "stale", "hours": 3, "email": True},
    {"kind": "waiting", "hours": 4, "email": True},
]
MANAGERS = {"tester@ops.test", "mgr@ops.test"}


class Monitors(unittest.TestCase):
    def setUp(self):
        srv = Server(env={"POSTDESK_MONITOR_INTERVAL_SECS": "1"}).bootstrap(
            staff=[("mgr@ops.test", "Mona Manager", "manager"),
                   ("alex@ops.test", "Alex", "tech"),
                   ("tech@ops.test", "Theo", "tech")])
        self.addCleanup(srv.close)
        self.clock = MovedClock(srv)
        record = srv.cli("dkim", "generate", "--org", "acme", "--selector", "pd",
                         "--algorithm", "ed25519").stdout.strip()
        self.dkim_value = "".join(re.findall(r'"([^"]*)"', record)).encode()
        self.alex = srv.cli("token", "create", "alex@ops.test").stdout.strip()
        self.tech = srv.cli("token", "create", "tech@ops.test").stdout.strip()
        self.mgr = srv.cli("token", "create", "mgr@ops.test").stdout.strip()
        self.mgr_link = staff_link(srv, "mgr@ops.test")
        self.tech_link = staff_link(srv, "tech@ops.test")
        self.admin_link = staff_link(srv, "tester@ops.test")
        self.srv = srv.start()

    # --- helpers ---
    def open_ticket(self, frm, subject):
        mid = f"<{subject.lower().replace(' ', '-')}-{time.time_ns()}@customer.test>"
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port) as s:
            s.send_message(mail(frm, "acme@acme.test", subject, "It is broken.",
                                message_id=mid))
        return self.srv.decision_for(mid)["ticket"]

    def alerts(self):
        """(ticket, monitor id) of every alert in the tickets' logs, in order."""
        out = []
        for t in self.srv.tickets("?limit=1000"):
            for e in self.srv.ticket(t["number"])["events"]:
                if e["kind"] == "alert":
                    m = e["monitor"]
                    name = m["kind"] + (f"-{m['hours']}" if "hours" in m else "")
                    out.append((t["number"], name, e["seq"]))
        return sorted(out, key=lambda a: a[2])

    def fired(self):
        return sorted((t, name) for t, name, _ in self.alerts())

    def settle(self):
        """Lets three more ticks run: whatever they would raise, they have."""
        time.sleep(3.5)

    def alert_mail(self, seq):
        return [o for o in self.srv.api("/api/v1/outbox?limit=2000")["outbox"]
                if o["event"] == seq and o["kind"] == "monitor_alert"]

    # --- tests ---
    def test_each_kind_fires_once_per_episode_by_mail_and_in_the_bell(self):
        srv = self.srv
        srv.send("PUT", "/api/v1/orgs/acme/monitors", {"monitors": ALL_SEVEN})
        a = self.open_ticket("rita@customer.test", "Printer jams")
        b = self.open_ticket("sam@customer.test", "VPN drops")
        c = self.open_ticket("tom@customer.test", "New laptop")
        srv.send("PATCH", f"/api/v1/tickets/{b}", {"assignee": "alex@ops.test",
                                                   "status": "waiting"})
        # C is due on the day 36 hours from now: its day ends 36 to 60 hours from now.
        due_day = (self.clock.now() + datetime.timedelta(hours=36)).date()
        due_end = datetime.datetime.combine(due_day + datetime.timedelta(days=1),
                                            datetime.time(), datetime.timezone.utc)
        srv.send("PATCH", f"/api/v1/tickets/{c}", {"assignee": "alex@ops.test",
                                                   "due": due_day.isoformat()})
        self.settle()
        self.assertEqual(self.fired(), [])

        # Eleven hours on: everything but the due dates has fired, once each.
        self.clock.move(11 * HOUR)
        expected = sorted([
            (a, "unassigned-2"), (a, "stale-3"), (a, "inactive-5"), (a, "open-10"),
            (b, "stale-3"), (b, "inactive-5"), (b, "waiting-4"), (b, "open-10"),
            (c, "stale-3"), (c, "inactive-5"), (c, "open-10")])
        wait_for(lambda: self.fired() == expected or None, timeout=15)
        self.settle()
        self.assertEqual(self.fired(), expected)

        # Mail: unassigned A goes to the owners, admins and managers; B's to its assignee.
        seq = {(t, name): s for t, name, s in self.alerts()}
        to_managers = wait_for(lambda: self.alert_mail(seq[(a, "unassigned-2")]))
        wait_for(lambda: len(self.alert_mail(seq[(a, "unassigned-2")])) >= 2 or None)
        self.assertEqual({o["recipient"] for o in self.alert_mail(seq[(a, "unassigned-2")])},
                         MANAGERS)
        self.assertEqual([o["recipient"] for o in
                          wait_for(lambda: self.alert_mail(seq[(b, "waiting-4")]))],
                         ["alex@ops.test"])
        del to_managers
        alert = wait_for(lambda: [m for m in outbox_mails(srv, "mgr@ops.test")
                                  if "unassigned for more than 2 hours" in
                                  m.get_body(("plain",)).get_content()])[0]
        self.assertIn(f"[#{a}]", str(alert["Subject"]))
        self.assertEqual(alert["Auto-Submitted"], "auto-generated")
        raw = outbox_raw(srv, alert)
        zone = {b"pd._domainkey.acme.test.": self.dkim_value}
        self.assertTrue(dkim.verify(raw, dnsfunc=lambda name, timeout=5: zone.get(name, b"")),
                        "dkimpy rejects the alert's signature")

        # The bell: the manager's header lists the alert.
        mona = Browser(srv)
        mona.get(self.mgr_link)
        page = mona.get("/dashboard")[2]
        self.assertIn(f'href="/notifications/{seq[(a, "unassigned-2")]}"', page)
        self.assertIn(f"#{a} Printer jams is unassigned for more than 2 hours", page)

        # The desk's alert filter lists the tickets a monitor matches now.
        listed = mona.get("/desk?alert=acme/unassigned-2")[2]
        self.assertIn(f'href="/desk/tickets/{a}"', listed)
        self.assertNotIn(f'href="/desk/tickets/{b}"', listed)
        # Monitors are settings: a Tech asking the list for one is refused.
        theo = Browser(srv)
        theo.get(self.tech_link)
        self.assertEqual(theo.get("/desk?alert=acme/unassigned-2")[0], 403)

        # A restart alerts nothing again.
        srv.stop()
        srv.start()
        self.settle()
        self.assertEqual(self.fired(), expected)

        # The manager acts on the alert by mail: its reply address proves her, and the
        # command assigns A. Unassigned again later, and two hours on: a new episode.
        reply_to = alert["Reply-To"].addresses[0].addr_spec
        self.assertTrue(reply_to.startswith("acme+"), reply_to)
        with smtplib.SMTP("127.0.0.1", srv.smtp_port) as s:
            s.send_message(mail("Mona Manager <mgr@ops.test>", reply_to,
                                f"Re: [#{a}] Printer jams", "#assign alex@ops.test\n",
                                message_id="<act-on-alert@ops.test>",
                                in_reply_to=alert["Message-ID"]))
        self.assertEqual(srv.decision_for("<act-on-alert@ops.test>")["ticket"], a)
        self.assertEqual(srv.ticket(a)["assignee"], "alex@ops.test")
        # Rita writes back on A: its stale and inactive episodes end.
        with smtplib.SMTP("127.0.0.1", srv.smtp_port) as s:
            s.send_message(mail("rita@customer.test", "acme@acme.test",
                                f"Re: [#{a}] Printer jams", "Still jammed.",
                                message_id="<rita-again@customer.test>"))
        srv.decision_for("<rita-again@customer.test>")
        srv.send("PATCH", f"/api/v1/tickets/{a}", {"assignee": None})
        # C's day draws near: due within 24 hours, not yet past.
        until_due = (due_end - self.clock.now()).total_seconds()
        self.clock.move(int(until_due) - 12 * HOUR)
        more = [(a, "unassigned-2"), (a, "stale-3"), (a, "inactive-5"), (c, "due_in-24")]
        wait_for(lambda: self.fired() == sorted(expected + more) or None, timeout=15)
        self.settle()
        self.assertEqual(self.fired(), sorted(expected + more))
        # Past it: past_due once; a new due date (also past) is a new episode.
        self.clock.move(13 * HOUR)
        more.append((c, "past_due"))
        wait_for(lambda: self.fired() == sorted(expected + more) or None, timeout=15)
        srv.send("PATCH", f"/api/v1/tickets/{c}",
                 {"due": (due_day - datetime.timedelta(days=1)).isoformat()})
        more.append((c, "past_due"))
        wait_for(lambda: self.fired() == sorted(expected + more) or None, timeout=15)
        self.settle()
        self.assertEqual(self.fired(), sorted(expected + more))
        # Resolved, nothing more fires for it however long it stays so.
        srv.send("PATCH", f"/api/v1/tickets/{c}", {"status": "resolved"})
        before = self.fired()
        self.clock.move(100 * HOUR)
        self.settle()
        self.assertEqual([x for x in self.fired() if x[0] == c],
                         [x for x in before if x[0] == c])

    def test_a_monitor_without_mail_rings_the_bell_only(self):
        srv = self.srv
        srv.send("PUT", "/api/v1/orgs/acme/monitors",
                 {"monitors": [{"kind": "unassigned", "hours": 1, "email": False}]})
        n = self.open_ticket("rita@customer.test", "Quiet one")
        self.clock.move(2 * HOUR)
        wait_for(lambda: self.fired() == [(n, "unassigned-1")] or None, timeout=15)
        seq = self.alerts()[0][2]
        mona = Browser(srv)
        mona.get(self.mgr_link)
        wait_for(lambda: f'/notifications/{seq}"' in mona.get("/dashboard")[2] or None)
        self.settle()
        self.assertEqual(self.alert_mail(seq), [])

    def test_resolved_tickets_close_after_the_days_without_a_reply(self):
        srv = self.srv
        path = "/api/v1/orgs/acme/monitors"
        srv.send("PUT", path, {"monitors": [], "auto_close_days": 3})
        self.assertEqual(srv.api(path), {"monitors": [], "auto_close_days": 3})
        # Left out, it stays; a bad value changes nothing.
        srv.send("PUT", path, {"monitors": ALL_SEVEN[:1]})
        srv.send("PUT", path, {"monitors": [], "auto_close_days": 0}, expect=400)
        self.assertEqual(srv.api(path), {"monitors": ALL_SEVEN[:1], "auto_close_days": 3})
        n = self.open_ticket("rita@customer.test", "Old printer")
        kept = self.open_ticket("sam@customer.test", "Answered in time")
        for t in (n, kept):
            srv.send("PATCH", f"/api/v1/tickets/{t}", {"status": "resolved"})
        self.clock.move(2 * 24 * HOUR)
        # Sam answers within the days: his ticket opens again and is not closed.
        with smtplib.SMTP("127.0.0.1", srv.smtp_port) as s:
            s.send_message(mail("sam@customer.test", "acme@acme.test",
                                f"Re: [#{kept}] Answered in time", "Not yet fixed.",
                                message_id="<sam-again@customer.test>"))
        srv.decision_for("<sam-again@customer.test>")
        self.settle()
        self.assertEqual(srv.ticket(n)["status"], "resolved")
        self.clock.move(2 * 24 * HOUR)
        wait_for(lambda: srv.ticket(n)["status"] == "closed" or None, timeout=15)
        closing = [e for e in srv.ticket(n)["events"] if e["change"] == {
            "field": "status", "value": "closed"}]
        self.assertEqual(len(closing), 1)
        self.assertEqual(closing[0]["author"], "auto-close")
        notice = wait_for(lambda: [m for m in outbox_mails(srv, "rita@customer.test")
                                   if "now closed" in m.get_body(("plain",)).get_content()])[0]
        self.assertIn(f"[#{n}]", str(notice["Subject"]))
        self.settle()
        self.assertEqual(srv.ticket(kept)["status"], "open")
        self.assertEqual(len([e for e in srv.ticket(n)["events"] if e["change"] == {
            "field": "status", "value": "closed"}]), 1, "closed once")
        # Rita answers the notice: the ticket opens again.
        with smtplib.SMTP("127.0.0.1", srv.smtp_port) as s:
            s.send_message(mail("rita@customer.test", notice["Reply-To"].addresses[0].addr_spec,
                                f"Re: [#{n}] Old printer", "It broke again.",
                                message_id="<rita-reopens@customer.test>",
                                in_reply_to=notice["Message-ID"]))
        self.assertEqual(srv.decision_for("<rita-reopens@customer.test>")["ticket"], n)
        self.assertEqual(srv.ticket(n)["status"], "open")
        srv.send("PUT", path, {"monitors": [], "auto_close_days": None})
        self.assertIsNone(srv.api(path)["auto_close_days"])

    def test_the_api_checks_monitors_and_roles(self):
        srv = self.srv
        path = "/api/v1/orgs/acme/monitors"
        self.assertEqual(srv.api(path), {"monitors": [], "auto_close_days": None})
        srv.send("PUT", path, {"monitors": ALL_SEVEN[:3]})
        for bad in ([{"kind": "late", "hours": 2}],
                    [{"kind": "unassigned"}],
                    [{"kind": "unassigned", "hours": 0}],
                    [{"kind": "unassigned", "hours": -1}],
                    [{"kind": "unassigned", "hours": 99999}],
                    [{"kind": "past_due", "hours": 2}],
                    [{"kind": "open", "hours": 2}, {"kind": "open", "hours": 2}],
                    [{"kind": "open", "hours": "two"}],
                    [{"kind": "open", "hours": 2, "colour": "red"}],
                    [{"kind": "open", "hours": h} for h in range(1, 52)]):
            srv.send("PUT", path, {"monitors": bad}, expect=400)
        srv.send("PUT", path, b"{not json", expect=400)
        self.assertEqual(srv.api(path)["monitors"], ALL_SEVEN[:3])
        # Managers look, Techs do not; only owners and admins change them.
        self.assertEqual(srv.api(path, token=self.mgr)["monitors"], ALL_SEVEN[:3])
        srv.send("PUT", path, {"monitors": []}, token=self.mgr, expect=403)
        srv.api(path, token=self.tech, expect=403)
        srv.send("PUT", path, {"monitors": []}, token=self.tech, expect=403)
        srv.api("/api/v1/orgs/nope/monitors", expect=404)
        self.assertEqual(srv.api(path)["monitors"], ALL_SEVEN[:3])

    def test_monitors_set_in_chromium_are_the_api_monitors(self):
        srv = self.srv
        srv.send("PUT", "/api/v1/orgs/acme/monitors", {"monitors": ALL_SEVEN[:2]})
        chrome = chromium()
        self.addCleanup(chrome.quit)
        chrome.get(srv.url(self.admin_link))
        chrome.get(srv.url("/settings/orgs/acme"))
        chrome.find_element(By.ID, "monitors-link").click()
        WebDriverWait(chrome, 10).until(lambda d: "Monitors & Alerts" in page_text(d))
        rows = chrome.find_elements(By.CSS_SELECTOR, "tr.monitor-row")
        self.assertEqual(len(rows), 5)
        self.assertEqual(Select(rows[1].find_element(By.TAG_NAME, "select"))
                         .first_selected_option.get_attribute("value"), "due_in")
        self.assertEqual(rows[1].find_element(By.NAME, "hours_1").get_attribute("value"), "24")
        # Drop past_due, change due_in to 8 hours without mail, add stale 3 and waiting 6.
        Select(rows[0].find_element(By.TAG_NAME, "select")).select_by_value("")
        hours = rows[1].find_element(By.NAME, "hours_1")
        hours.clear()
        hours.send_keys("8")
        rows[1].find_element(By.NAME, "email_1").click()
        Select(rows[2].find_element(By.TAG_NAME, "select")).select_by_value("stale")
        rows[2].find_element(By.NAME, "hours_2").send_keys("3")
        Select(rows[3].find_element(By.TAG_NAME, "select")).select_by_value("waiting")
        rows[3].find_element(By.NAME, "hours_3").send_keys("6")
        chrome.find_element(By.CSS_SELECTOR, "#monitors button[type=submit]").click()
        WebDriverWait(chrome, 10).until(lambda d: "Saved." in page_text(d))
        self.assertEqual(srv.api("/api/v1/orgs/acme/monitors")["monitors"], [
            {"kind": "due_in", "hours": 8, "email": False},
            {"kind": "stale", "hours": 3, "email": True},
            {"kind": "waiting", "hours": 6, "email": True},
        ])
        # A row without hours is refused on the page and changes nothing.
        rows = chrome.find_elements(By.CSS_SELECTOR, "tr.monitor-row")
        Select(rows[3].find_element(By.TAG_NAME, "select")).select_by_value("open")
        chrome.find_element(By.CSS_SELECTOR, "#monitors button[type=submit]").click()
        WebDriverWait(chrome, 10).until(lambda d: "needs hours" in page_text(d))
        self.assertEqual(len(srv.api("/api/v1/orgs/acme/monitors")["monitors"]), 3)
        # A manager sees the page but cannot change it.
        mona = Browser(srv)
        mona.get(self.mgr_link)
        page = mona.get("/settings/orgs/acme/monitors")[2]
        self.assertIn("only owners and admins change them", page)
        status = mona.post("/settings/orgs/acme/monitors",
                           {"csrf": mona.csrf(page), "kind_0": "open", "hours_0": "1"})[0]
        self.assertEqual(status, 403)
        self.assertEqual(len(srv.api("/api/v1/orgs/acme/monitors")["monitors"]), 3)


if __name__ == "__main__":
    unittest.main()
