"""The staff desk in the web UI over plain HTTP with a cookie-keeping client (as a browser
without JavaScript): sign-in by link and by password, the ticket list with filters and
search, answering and changing status with the session's CSRF token, refusals, sign-out."""

import re
import smtplib
import time
import unittest

from harness import Browser, Server, mail, outbox_mails, staff_link, wait_for


class WebDesk(unittest.TestCase):
    def setUp(self):
        srv = Server().bootstrap(
            orgs=(("acme", "Acme", []), ("beta", "Beta", [])),
            staff=[("alex@acme.test", "Alex Tech", "tech")])
        self.addCleanup(srv.close)
        self.tester_link = staff_link(srv, "tester@ops.test")
        self.alex_link = staff_link(srv, "alex@acme.test")
        srv.start()
        for n, (to, subject) in enumerate([("acme@acme.test", "Printer jam"),
                                           ("acme@acme.test", "Bug: login <b>broken</b>"),
                                           ("beta@acme.test", "Invoice question")]):
            with smtplib.SMTP("127.0.0.1", srv.smtp_port) as s:
                s.send_message(mail(f"user{n}@customer.test", to, subject,
                                    message_id=f"<w{n}@customer.test>"))
            srv.decision_for(f"<w{n}@customer.test>")
        self.srv = srv

    def signed_in(self, link):
        b = Browser(self.srv)
        status, headers, _ = b.get(link)
        self.assertEqual((status, headers["Location"]), (303, "/desk"))
        cookie = headers["Set-Cookie"]
        self.assertIn("HttpOnly", cookie)
        self.assertIn("SameSite=Lax", cookie)
        return b

    def test_sign_in_filter_answer_and_change_status(self):
        b = self.signed_in(self.tester_link)
        status, _, page = b.get("/desk")
        self.assertEqual(status, 200)
        self.assertEqual(len(re.findall(r'class="ticket-row"', page)), 3)
        # Markup in a subject is shown as text, never as markup.
        self.assertIn("login &#60;b&#62;broken&#60;/b&#62;", page)
        self.assertNotIn("<b>", page)
        _, _, page = b.get("/desk?org=beta")
        self.assertEqual(re.findall(r'>(Invoice question)<', page), ["Invoice question"])
        _, _, page = b.get("/desk?type=bug")
        self.assertEqual(len(re.findall(r'class="ticket-row"', page)), 1)
        _, _, page = b.get("/desk?q=printer")
        self.assertEqual(len(re.findall(r'class="ticket-row"', page)), 1)
        n = self.srv.decision_for("<w0@customer.test>")["ticket"]

        status, _, page = b.get(f"/desk/tickets/{n}")
        self.assertEqual(status, 200)
        self.assertIn("Printer jam", page)
        csrf = b.csrf(page)
        status, headers, _ = b.post(f"/desk/tickets/{n}", {
            "csrf": csrf, "text": "Open the tray and pull gently.", "visibility": "public",
            "status": "waiting"})
        self.assertEqual((status, headers["Location"]), (303, f"/desk/tickets/{n}"))
        t = self.srv.ticket(n)
        self.assertEqual(t["status"], "waiting")
        self.assertEqual([(e["kind"], e["author"]) for e in t["events"][-2:]],
                         [("reply", "tester@ops.test"), ("update", "tester@ops.test")])
        _, _, page = b.get(f"/desk/tickets/{n}")
        self.assertIn("Open the tray and pull gently.", page)
        self.assertIn('id="status">waiting<', page)

    def test_forms_without_the_csrf_token_change_nothing(self):
        b = self.signed_in(self.tester_link)
        n = self.srv.decision_for("<w0@customer.test>")["ticket"]
        before = self.srv.ticket(n)
        for form in ({"text": "forged", "status": "closed"},
                     {"csrf": "wrong", "text": "forged", "status": "closed"}):
            status, _, _ = b.post(f"/desk/tickets/{n}", form)
            self.assertEqual(status, 403)
        status, _, _ = b.post("/signout", {"csrf": "wrong"})
        self.assertEqual(status, 403)
        self.assertEqual(self.srv.ticket(n), before)
        # Another browser's valid token is not this one's.
        other = self.signed_in(self.tester_link)
        _, _, page = other.get(f"/desk/tickets/{n}")
        status, _, _ = b.post(f"/desk/tickets/{n}", {"csrf": other.csrf(page), "text": "x"})
        self.assertEqual(status, 403)
        # Bad fields with a good token: a clear error, nothing written.
        _, _, page = b.get(f"/desk/tickets/{n}")
        status, _, page = b.post(f"/desk/tickets/{n}", {"csrf": b.csrf(page), "status": "done"})
        self.assertEqual(status, 400)
        self.assertIn("unknown status", page)
        self.assertEqual(self.srv.ticket(n), before)

    def test_a_tech_sees_only_their_tickets(self):
        mine = self.srv.decision_for("<w1@customer.test>")["ticket"]
        other = self.srv.decision_for("<w0@customer.test>")["ticket"]
        self.srv.send("PATCH", f"/api/v1/tickets/{mine}", {"assignee": "alex@acme.test"})
        b = self.signed_in(self.alex_link)
        _, _, page = b.get("/desk")
        self.assertEqual(re.findall(r'href="/desk/tickets/(\d+)"', page), [str(mine)])
        _, _, page = b.get("/desk?q=printer")
        self.assertEqual(re.findall(r'class="ticket-row"', page), [])
        status, _, _ = b.get(f"/desk/tickets/{other}")
        self.assertEqual(status, 404)
        status, _, _ = b.get(f"/desk/tickets/{mine}")
        self.assertEqual(status, 200)

    def test_dashboard_counts_what_each_may_see(self):
        mine = self.srv.decision_for("<w1@customer.test>")["ticket"]
        self.srv.send("PATCH", f"/api/v1/tickets/{mine}", {"assignee": "alex@acme.test",
                                                           "status": "waiting"})
        admin = self.signed_in(self.tester_link)
        _, _, page = admin.get("/dashboard")
        counts = lambda page: [int(n) for n in re.findall(r'<td><a href="[^"]+">(\d+)</a></td>', page)]
        # question: 2 open; bug: 1 waiting; all columns add up to 3.
        self.assertEqual(sum(counts(page)) // 2, 3)
        self.assertIn('href="/desk?type=bug&#38;status=waiting">1<', page)
        self.assertIn("opened 3", page)
        alex = self.signed_in(self.alex_link)
        _, _, page = alex.get("/dashboard")
        self.assertEqual(sum(counts(page)) // 2, 1)
        self.assertIn(f'href="/desk/tickets/{mine}"', page.split('id="assigned"')[1].split("</ul>")[0])
        online = page.split('id="online"')[1].split("</ul>")[0]
        self.assertIn("alex@acme.test", online)
        self.assertIn("tester@ops.test", online)

    def test_fields_time_follow_original_and_attachments(self):
        srv = self.srv
        m = mail("user9@customer.test", "acme@acme.test", "Logs attached",
                 message_id="<att@customer.test>")
        m.add_attachment(b"line 1\nline 2\n", maintype="text", subtype="plain",
                         filename="server.log")
        with smtplib.SMTP("127.0.0.1", srv.smtp_port) as s:
            s.send_message(m)
        n = srv.decision_for("<att@customer.test>")["ticket"]
        srv.send("PATCH", f"/api/v1/tickets/{n}", {"priority": "low"})
        b = self.signed_in(self.tester_link)
        _, _, page = b.get(f"/desk/tickets/{n}")
        form = {"csrf": b.csrf(page), "status": "waiting", "type": "incident", "priority": "urgent",
                "assignee": "alex@acme.test", "due": "2026-12-31", "category": "",
                "contact": "real@customer.test", "cc": "boss@customer.test\nBoss@customer.test"}
        status, _, _ = b.post(f"/desk/tickets/{n}/fields", form)
        self.assertEqual(status, 303)
        t = srv.ticket(n)
        self.assertEqual((t["status"], t["type"], t["priority"], t["assignee"], t["due"],
                          t["requester"], t["cc"]),
                         ("waiting", "incident", "urgent", "alex@acme.test", "2026-12-31",
                          "real@customer.test", ["boss@customer.test"]))
        events = len(t["events"])
        for bad in ({"due": "2026-13-01"}, {"assignee": "nobody@else.test"}, {"type": "chore"},
                    {"contact": "not an address"}, {"cc": "x@y.test, broken"},
                    {"category": "Printers"}):
            with self.subTest(bad=bad):
                self.assertEqual(b.post(f"/desk/tickets/{n}/fields", dict(form, **bad))[0], 400)
        self.assertEqual(b.post(f"/desk/tickets/{n}/fields", dict(form, csrf="x"))[0], 403)
        self.assertEqual(len(srv.ticket(n)["events"]), events)
        # Time at the workers' rates: set through the CLI while the server is stopped.
        for minutes in ("90", "30"):
            _, _, page = b.get(f"/desk/tickets/{n}")
            self.assertEqual(b.post(f"/desk/tickets/{n}/time",
                                    {"csrf": b.csrf(page), "minutes": minutes})[0], 303)
        self.assertEqual(b.post(f"/desk/tickets/{n}/time", {"csrf": b.csrf(page), "minutes": "0"})[0], 400)
        _, _, page = b.get(f"/desk/tickets/{n}")
        self.assertIn('id="time-spent">2:00 h<', page)
        # Follow: the follower hears of the customer's next reply.
        b.post(f"/desk/tickets/{n}/follow", {"csrf": b.csrf(page), "follow": "yes"})
        self.assertEqual(srv.ticket(n)["followers"], ["tester@ops.test"])
        _, _, page = b.get(f"/desk/tickets/{n}")
        self.assertIn(">Unfollow<", page)
        with smtplib.SMTP("127.0.0.1", srv.smtp_port) as s:
            s.send_message(mail("real@customer.test", "acme@acme.test", "Re: Logs attached",
                                "One more thing.", message_id="<att-2@customer.test>",
                                in_reply_to="<att@customer.test>"))
        wait_for(lambda: [m for m in outbox_mails(srv, "tester@ops.test")
                          if "One more thing." in m.get_body(("plain",)).get_content()])
        # The original message and the attachment, for those who may see the ticket.
        seq = re.search(rf'href="/desk/tickets/{n}/original/(\d+)"', page).group(1)
        status, headers, raw = b.get(f"/desk/tickets/{n}/original/{seq}")
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/plain"))
        self.assertIn("Message-ID: <att@customer.test>", raw)
        href = re.search(rf'href="(/desk/tickets/{n}/attachments/[0-9a-f]+)"', page).group(1)
        status, headers, body = b.get(href)
        self.assertEqual((status, body), (200, "line 1\nline 2\n"))
        self.assertIn('attachment; filename="server.log"', headers["Content-Disposition"])
        other = srv.decision_for("<w0@customer.test>")["ticket"]
        sha = href.rsplit("/", 1)[1]
        # The hash does not open it through another ticket, nor for a Tech not involved.
        self.assertEqual(b.get(f"/desk/tickets/{other}/attachments/{sha}")[0], 404)
        srv.send("PATCH", f"/api/v1/tickets/{n}", {"assignee": None})
        alex = self.signed_in(self.alex_link)
        self.assertEqual(alex.get(href)[0], 404)
        self.assertEqual(alex.get(f"/desk/tickets/{n}/original/{seq}")[0], 404)

    def test_relation_filter_counts_and_search_in_messages(self):
        n0 = self.srv.decision_for("<w0@customer.test>")["ticket"]
        n1 = self.srv.decision_for("<w1@customer.test>")["ticket"]
        self.srv.send("PATCH", f"/api/v1/tickets/{n0}", {"assignee": "tester@ops.test",
                                                         "status": "waiting"})
        self.srv.send("POST", f"/api/v1/tickets/{n1}/notes", {"text": "Check the flux capacitor."},
                      expect=201)
        b = self.signed_in(self.tester_link)
        rows = lambda page: re.findall(r'href="/desk/tickets/(\d+)"', page)
        # The list opens on open tickets; the waiting one shows under "any".
        self.assertEqual(rows(b.get("/desk?mine=assigned")[2]), [])
        self.assertEqual(rows(b.get("/desk?status=&mine=assigned")[2]), [str(n0)])
        self.assertEqual(rows(b.get("/desk?mine=raised")[2]), [])
        _, _, page = b.get(f"/desk/tickets/{n1}")
        b.post(f"/desk/tickets/{n1}/follow", {"csrf": b.csrf(page), "follow": "yes"})
        self.assertEqual(rows(b.get("/desk?mine=following")[2]), [str(n1)])
        # Counts by status under the other filters.
        _, _, page = b.get("/desk")
        self.assertIn(">any (3)<", page)
        self.assertIn(">open (2)<", page)
        self.assertIn(">waiting (1)<", page)
        _, _, page = b.get("/desk?org=acme")
        self.assertIn(">any (2)<", page)
        # The search reads messages too, not only summaries.
        self.assertEqual(rows(b.get("/desk?q=capacitor")[2]), [str(n1)])
        alex = self.signed_in(self.alex_link)
        _, _, page = alex.get("/desk?q=capacitor")
        self.assertEqual(rows(page), [])
        self.assertIn(">any (0)<", page)

    def test_mail_alerts_off_keeps_the_bell(self):
        # The alerts of the three tickets opened in setUp are out first.
        before = len(wait_for(lambda: (lambda m: m if len(m) == 3 else None)(
            outbox_mails(self.srv, "tester@ops.test"))))
        b = self.signed_in(self.tester_link)
        _, _, page = b.get("/account")
        self.assertIn('id="alerts">mailed to you<', page)
        b.post("/account/alerts", {"csrf": b.csrf(page), "alerts": "off"})
        self.assertIn('id="alerts">not mailed to you<', b.get("/account")[2])
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port) as s:
            s.send_message(mail("late@customer.test", "acme@acme.test", "After opting out",
                                message_id="<quiet@customer.test>"))
        n = self.srv.decision_for("<quiet@customer.test>")["ticket"]
        page = wait_for(lambda: (lambda p: p if f"opened #{n}" in p else None)(b.get("/desk")[2]))
        time.sleep(0.5)
        self.assertEqual(len(outbox_mails(self.srv, "tester@ops.test")), before)

    def test_notification_bell(self):
        b = self.signed_in(self.tester_link)
        unread = lambda page: int(re.search(r'id="unread">(\d+)<', page).group(1))
        # Three new tickets, no assignee: the admin hears of each.
        page = wait_for(lambda: (lambda p: p if unread(p) == 3 else None)(b.get("/desk")[2]))
        self.assertIn("user0@customer.test opened #1 Printer jam", page)
        status, headers, _ = b.get("/notifications/1")
        self.assertEqual((status, headers["Location"]), (303, "/desk/tickets/1"))
        self.assertEqual(unread(b.get("/desk")[2]), 2)
        # Another's entry does not open, and the Tech has none for tickets not theirs.
        alex = self.signed_in(self.alex_link)
        self.assertEqual(alex.get("/notifications/1")[0], 404)
        self.assertEqual(unread(alex.get("/desk")[2]), 0)
        # Assigned, the Tech hears of it and of the customer's reply.
        n = self.srv.decision_for("<w1@customer.test>")["ticket"]
        self.srv.send("PATCH", f"/api/v1/tickets/{n}", {"assignee": "alex@acme.test"})
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port) as s:
            s.send_message(mail("user1@customer.test", "acme@acme.test", "Re: bug",
                                "Still broken.", in_reply_to="<w1@customer.test>"))
        page = wait_for(lambda: (lambda p: p if unread(p) == 2 else None)(alex.get("/dashboard")[2]))
        self.assertIn(f"tester@ops.test assigned #{n} to you", page)
        self.assertIn(f"user1@customer.test replied on #{n}", page)

    def test_links_wear_out_passwords_and_signing_out(self):
        # A link opens at most 5 times.
        for _ in range(4):
            self.signed_in(self.tester_link)
        b = self.signed_in(self.tester_link)
        status, _, page = Browser(self.srv).get(self.tester_link)
        self.assertEqual(status, 403)
        self.assertIn("used too often", page)
        status, _, page = Browser(self.srv).get("/signin/link/not-a-real-token")
        self.assertEqual(status, 403)
        # Anonymous pages go to sign-in.
        status, headers, _ = Browser(self.srv).get("/desk")
        self.assertEqual((status, headers["Location"]), (303, "/signin"))
        # Set a password, then sign in with it in another browser.
        _, _, page = b.get("/account")
        status, _, page = b.post("/account/password", {"csrf": b.csrf(page), "password": "short"})
        self.assertEqual(status, 400)
        status, _, page = b.post("/account/password",
                                 {"csrf": b.csrf(page), "password": "correct horse battery"})
        self.assertIn("Password set.", page)
        other = Browser(self.srv)
        _, _, page = other.get("/signin")
        token = other.csrf(page)
        status, _, page = other.post("/signin", {"csrf": token, "email": "tester@ops.test",
                                                 "password": "wrong one!!"})
        self.assertEqual(status, 401)
        status, _, page = other.post("/signin", {"csrf": token, "email": "nobody@ops.test",
                                                 "password": "wrong one!!"})
        self.assertEqual(status, 401)
        # A sign-in form posted from elsewhere (no token) is refused even with the password.
        status, _, _ = Browser(self.srv).post("/signin", {"email": "tester@ops.test",
                                                          "password": "correct horse battery"})
        self.assertEqual(status, 403)
        status, headers, _ = other.post("/signin", {"csrf": token, "email": "Tester@ops.test",
                                                    "password": "correct horse battery"})
        self.assertEqual((status, headers["Location"]), (303, "/desk"))
        self.assertEqual(other.get("/desk")[0], 200)
        # Sign out everywhere ends both browsers' sessions.
        _, _, page = b.get("/account")
        b.post("/signout/everywhere", {"csrf": b.csrf(page)})
        self.assertEqual(b.get("/desk")[0], 303)
        self.assertEqual(other.get("/desk")[0], 303)


if __name__ == "__main__":
    unittest.main()
