"""Issue 12's staff-created tickets and files through the API and the desk pages: a staff
member opens a ticket for someone (POST /api/v1/tickets, and "+ New ticket" in headless
Chromium with a file); the requester is mailed the text, threaded and with a reply token,
and answering it lands in the same ticket; "notify": false mails nobody outside; a Tech
keeps the tickets they opened after the contact changes; bad input changes nothing; an API
reply's files and a web answer's file reach the requester byte for byte; the bell counts every unread entry, the desk list
opens on open tickets, and an unknown page is a page (JSON only under /api/)."""

import base64
import email
import email.policy
import hashlib
import os
import re
import smtplib
import unittest

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from chromium import chromium, page_text
from harness import Browser, Server, mail, outbox_mails, staff_link, wait_for


def sha(data):
    return hashlib.sha256(data).hexdigest()


def files_of(msg):
    return {p.get_filename(): p.get_content() for p in msg.iter_attachments()}


def text_of(msg):
    return msg.get_body(("plain",)).get_content()


class StaffTickets(unittest.TestCase):
    def setUp(self):
        self.srv = Server().bootstrap(staff=[("alex@acme.test", "Alex", "tech"),
                                             ("theo@acme.test", "Theo", "tech")])
        self.addCleanup(self.srv.close)
        self.link = staff_link(self.srv, "tester@ops.test")
        self.alex = self.srv.cli("token", "create", "alex@acme.test").stdout.strip()
        self.theo = self.srv.cli("token", "create", "theo@acme.test").stdout.strip()
        self.srv.start()

    def mails_to(self, address, containing):
        return wait_for(lambda: [m for m in outbox_mails(self.srv, address)
                                 if containing in text_of(m)])

    def test_the_requester_gets_the_text_and_answers_into_the_ticket(self):
        srv = self.srv
        report = b"%PDF-1.4 quarterly numbers \x00\x01\x02"
        r = srv.send("POST", "/api/v1/tickets", {
            "org": "acme", "requester": "Rita@Customer.test", "summary": "Your  invoice\ncopy",
            "text": "Here is the copy you asked for on the phone.", "type": "incident",
            "priority": "high", "assignee": "alex@acme.test",
            "attachments": [{"name": "invoice.pdf", "content_type": "application/pdf",
                             "data_base64": base64.b64encode(report).decode()}],
        }, expect=201)
        n = r["number"]
        # Control characters never reach a Subject.
        odd = srv.send("POST", "/api/v1/tickets", {
            "org": "acme", "requester": "rita@customer.test", "summary": "S\u0000x\u001b[31m",
            "text": "a\rb", "notify": False}, expect=201)
        self.assertEqual((odd["summary"], odd["events"][0]["text"]), ("S x [31m", "a\nb"))
        self.assertEqual((r["requester"], r["summary"], r["type"], r["priority"], r["assignee"],
                          r["created_by"]),
                         ("rita@customer.test", "Your invoice copy", "incident", "high",
                          "alex@acme.test", "tester@ops.test"))
        self.assertEqual(r["events"][0]["attachments"][0]["sha256"], sha(report))
        m = self.mails_to("rita@customer.test", "Here is the copy you asked for")[0]
        self.assertIn(f"[#{n}]", str(m["Subject"]))
        self.assertIn("+", str(m["Reply-To"]))  # a per-recipient reply token
        self.assertEqual(sha(files_of(m)["invoice.pdf"]), sha(report))
        # The assignee hears of it; the creator does not (never the author).
        wait_for(lambda: [o for o in srv.api("/api/v1/outbox?limit=100")["outbox"]
                          if o["recipient"] == "alex@acme.test" and o["ticket"] == n])
        self.assertFalse([o for o in srv.api("/api/v1/outbox?limit=100")["outbox"]
                          if o["recipient"] == "tester@ops.test"])
        # Rita answers from her mail client: the reply lands in the same ticket.
        answer = mail("rita@customer.test", str(m["Reply-To"]), f"Re: {m['Subject']}",
                      body="Thanks, got it.", message_id="<thanks@customer.test>",
                      in_reply_to=str(m["Message-ID"]))
        with smtplib.SMTP("127.0.0.1", srv.smtp_port) as s:
            s.send_message(answer)
        self.assertEqual(srv.decision_for("<thanks@customer.test>")["ticket"], n)
        events = srv.ticket(n)["events"]
        self.assertEqual([(e["kind"], e["visibility"]) for e in events][-1], ("reply", "public"))

    def test_notify_false_mails_nobody_outside(self):
        srv = self.srv
        r = srv.send("POST", "/api/v1/tickets", {
            "org": "acme", "requester": "sam@customer.test", "summary": "Call notes",
            "text": "Called about the outage; no mail wanted.", "notify": False,
            "assignee": "alex@acme.test"}, expect=201)
        self.assertTrue(r["events"][0]["quiet"])
        # The assignee's alert is planned; nothing ever goes to the requester.
        wait_for(lambda: [o for o in srv.api("/api/v1/outbox?limit=100")["outbox"]
                          if o["recipient"] == "alex@acme.test"])
        self.assertFalse([o for o in srv.api("/api/v1/outbox?limit=100")["outbox"]
                          if o["recipient"] == "sam@customer.test"])

    def test_a_tech_keeps_the_tickets_they_opened(self):
        srv = self.srv
        r = srv.send("POST", "/api/v1/tickets", {
            "org": "acme", "requester": "alex@acme.test", "summary": "For a customer",
            "text": "Opened while the customer was on the phone.", "notify": False},
            token=self.alex, expect=201)
        n = r["number"]
        srv.send("PATCH", f"/api/v1/tickets/{n}", {"contact": "kim@customer.test"},
                 token=self.alex)
        self.assertEqual(srv.api(f"/api/v1/tickets/{n}", token=self.alex)["requester"],
                         "kim@customer.test")
        srv.api(f"/api/v1/tickets/{n}", token=self.theo, expect=404)

    def test_bad_input_changes_nothing(self):
        srv = self.srv
        good = {"org": "acme", "requester": "rita@customer.test", "summary": "S", "text": "T"}
        for change in [
            {"requester": "not an address"}, {"requester": "acme@acme.test"},
            {"summary": "  "}, {"summary": "x" * 301}, {"text": ""},
            {"text": "x" * 100_001}, {"org": "nope"}, {"type": "feature"},
            {"priority": "asap"}, {"assignee": "eve@evil.test"}, {"colour": "red"},
            {"attachments": [{"name": "a", "content_type": "text/plain",
                              "data_base64": "!!not base64!!"}]},
            {"attachments": [{"name": f"{i}", "content_type": "text/plain", "data_base64": ""}
                             for i in range(101)]},
        ]:
            with self.subTest(change=change):
                r = srv.send("POST", "/api/v1/tickets", {**good, **change}, expect=400)
                self.assertTrue(r["error"])
        srv.send("POST", "/api/v1/tickets", b"{nope", expect=400)
        srv.send("POST", "/api/v1/tickets", good, token="", expect=401)
        self.assertEqual(srv.tickets(), [])
        self.assertFalse(outbox_mails(srv, "rita@customer.test"))

    def test_api_reply_files_reach_the_requester(self):
        srv = self.srv
        with smtplib.SMTP("127.0.0.1", srv.smtp_port) as s:
            s.send_message(mail("rita@customer.test", "acme@acme.test", "Need the manual",
                                message_id="<manual@customer.test>"))
        n = srv.decision_for("<manual@customer.test>")["ticket"]
        manual = os.urandom(70_000)
        srv.send("POST", f"/api/v1/tickets/{n}/replies", {
            "text": "The manual is attached.",
            "attachments": [{"name": "manual.bin", "content_type": "application/octet-stream",
                             "data_base64": base64.encodebytes(manual).decode()}]},
            expect=201)
        m = self.mails_to("rita@customer.test", "The manual is attached.")[0]
        self.assertEqual(sha(files_of(m)["manual.bin"]), sha(manual))
        # Files on a note stay inside: the requester gets nothing more. (A note takes
        # files as large as a reply's: 3 MiB is over axum's default body limit.)
        big = os.urandom(3 * 1024 * 1024)
        r = srv.send("POST", f"/api/v1/tickets/{n}/notes", {
            "text": "Internal copy.", "attachments": [{
                "name": "secret.bin", "content_type": "application/octet-stream",
                "data_base64": base64.b64encode(big).decode()}]}, expect=201)
        self.assertEqual(r["events"][0]["attachments"][0]["sha256"], sha(big))
        self.assertFalse([m for m in outbox_mails(srv, "rita@customer.test")
                          if "Internal copy." in text_of(m)])

    def test_new_ticket_form_and_an_answer_with_a_file_in_chromium(self):
        srv = self.srv
        c = chromium()
        self.addCleanup(c.quit)
        see = lambda text: WebDriverWait(c, 10).until(lambda d: text in page_text(d))
        c.get(srv.url(self.link))
        c.get(srv.url("/desk"))
        c.find_element(By.ID, "new-ticket").click()
        see("New ticket")
        c.find_element(By.NAME, "requester").send_keys("kim@customer.test")
        c.find_element(By.NAME, "summary").send_keys("Replacement part")
        Select(c.find_element(By.NAME, "type")).select_by_value("bug")
        Select(c.find_element(By.NAME, "assignee")).select_by_value("alex@acme.test")
        c.find_element(By.NAME, "text").send_keys("We will send a replacement part.")
        label = os.path.join(srv.dir, "shipping-label.txt")
        with open(label, "wb") as f:
            f.write(b"SHIP TO: Kim\r\nParcel 7\r\n")
        c.find_element(By.NAME, "files").send_keys(label)
        c.find_element(By.XPATH, "//button[text()='Open the ticket']").click()
        see("Replacement part")
        n = int(re.search(r"/desk/tickets/(\d+)", c.current_url).group(1))
        t = srv.ticket(n)
        self.assertEqual((t["requester"], t["type"], t["assignee"], t["created_by"]),
                         ("kim@customer.test", "bug", "alex@acme.test", "tester@ops.test"))
        first = self.mails_to("kim@customer.test", "We will send a replacement part.")[0]
        self.assertEqual(files_of(first)["shipping-label.txt"], "SHIP TO: Kim\r\nParcel 7\r\n")

        # An answer with a file from the ticket page.
        c.find_element(By.NAME, "text").send_keys("Tracking details attached.")
        tracking = os.path.join(srv.dir, "tracking.bin")
        data = os.urandom(20_000)
        with open(tracking, "wb") as f:
            f.write(data)
        c.find_element(By.XPATH, "//form[@enctype='multipart/form-data']//input[@name='files']"
                       ).send_keys(tracking)
        c.find_element(By.XPATH, "//button[text()='Save']").click()
        see("Tracking details attached.")
        m = self.mails_to("kim@customer.test", "Tracking details attached.")[0]
        self.assertEqual(sha(files_of(m)["tracking.bin"]), sha(data))

        # A form without its token changes nothing.
        before = len(srv.ticket(n)["events"])
        status, _, _ = self.web_post("/desk/new", {"csrf": "wrong", "org": "acme",
                                                   "requester": "x@customer.test",
                                                   "summary": "forged", "text": "forged"})
        self.assertEqual(status, 403)
        self.assertEqual(len(srv.tickets()), 1)
        self.assertEqual(len(srv.ticket(n)["events"]), before)

    def test_the_bell_counts_past_five_and_the_list_opens_on_open_tickets(self):
        srv = self.srv
        numbers = [srv.send("POST", "/api/v1/tickets", {
            "org": "acme", "requester": "alex@acme.test", "summary": f"Callback {i}",
            "text": "Call the customer back.", "notify": False}, token=self.alex,
            expect=201)["number"] for i in range(7)]
        srv.send("PATCH", f"/api/v1/tickets/{numbers[0]}", {"status": "resolved"})
        b = Browser(srv)
        b.get(self.link)
        # Each ticket opened by Alex is in the owner's bell: seven unread, not five.
        page = wait_for(lambda: (lambda p: p if '<span id="unread">7</span>' in p else None)(
            b.get("/dashboard")[2]))
        self.assertIn("Callback 6", page)
        _, _, listed = b.get("/desk")
        self.assertNotIn("Callback 0<", listed)
        self.assertIn("Callback 1<", listed)
        _, _, everything = b.get("/desk?status=")
        self.assertIn("Callback 0<", everything)
        # An unknown page is a page for a browser, JSON only under /api/.
        status, headers, body = b.get("/no-such-page")
        self.assertEqual((status, headers["Content-Type"].split(";")[0]), (404, "text/html"))
        self.assertIn("There is no such page.", body)
        self.assertEqual(srv.api("/api/v1/no-such-thing", expect=404)["error"], "no such route")

    def web_post(self, path, fields):
        b = Browser(self.srv)
        b.get(self.link)
        return b.post_files(path, fields)


if __name__ == "__main__":
    unittest.main()
