"""The end-user portal over HTTP with a cookie-keeping client: a sign-in link requested,
read from the outbox and opened; a request submitted and listed under "my tickets"; replies
both ways; links that expire (the server's clock moved) or wear out; the same answer for
any address; one organization's session is no key to another's portal or other tickets."""

import os
import re
import unittest

from harness import Browser, Server, outbox_mails, sign_in_link, wait_for


class Portal(unittest.TestCase):
    def setUp(self):
        self.srv = Server(config=None).bootstrap(orgs=(
            ("acme", "Acme", []), ("beta", "Beta", ["--whitelist", "beta-customer.test"])))
        self.addCleanup(self.srv.close)
        self.clock = os.path.join(self.srv.dir, "clock-offset")
        self.srv.env["POSTDESK_CLOCK_OFFSET_FILE"] = self.clock
        self.srv.start()

    def mails_to(self, address):
        return outbox_mails(self.srv, address)

    def link_in_mail(self, address, count=1):
        return sign_in_link(self.srv, address, count)

    def request_link(self, browser, org, address):
        _, _, page = browser.get(f"/portal/{org}")
        status, _, page = browser.post(f"/portal/{org}/link",
                                       {"csrf": browser.csrf(page), "email": address})
        self.assertEqual(status, 200)
        self.assertIn("If this address can use the portal, a sign-in link is on its way", page)
        return page

    def test_link_ticket_list_and_replies(self):
        b = Browser(self.srv)
        status, _, page = b.get("/portal/acme")
        self.assertIn("Email me a sign-in link", page)
        self.request_link(b, "acme", "Rita@Customer.test")
        link = self.link_in_mail("rita@customer.test")
        status, headers, _ = b.get(link)
        self.assertEqual((status, headers["Location"]), (303, "/portal/acme"))
        _, _, page = b.get("/portal/acme")
        self.assertIn("New request", page)
        status, _, page = b.post_files("/portal/acme/tickets", {
            "csrf": b.csrf(page), "summary": "Printer <script>alert(1)</script> jams",
            "description": "It jams on every page.\nSince Monday."},
            [("files", "jam.txt", b"paper everywhere", "text/plain"),
             ("files", "../../etc/passwd", b"not a path", "application/octet-stream")])
        self.assertEqual(status, 200)
        number = int(re.search(r"Your request is ticket #(\d+)", page).group(1))
        self.assertIn(f'href="/portal/acme/tickets/{number}"', page)
        self.assertNotIn("<script>", page)
        t = self.srv.ticket(number)
        self.assertEqual((t["org"], t["requester"], t["status"]), ("acme", "rita@customer.test", "open"))
        self.assertEqual(t["events"][0]["text"], "It jams on every page.\nSince Monday.")
        # The files are attachments of the first message; names cannot be paths.
        self.assertEqual([(a["name"], a["size"]) for a in t["events"][0]["attachments"]],
                         [("jam.txt", 16), (".._.._etc_passwd", 10)])
        # A portal request is acknowledged by mail like one sent by mail.
        wait_for(lambda: [m for m in self.mails_to("rita@customer.test")
                          if f"[#{number}]" in str(m["Subject"])])

        # Staff answer (public) and note (internal); the user sees only the answer.
        self.srv.send("POST", f"/api/v1/tickets/{number}/replies", {"text": "Try the rear tray."},
                      expect=201)
        self.srv.send("POST", f"/api/v1/tickets/{number}/notes", {"text": "SECRET NOTE"},
                      expect=201)
        self.srv.send("PATCH", f"/api/v1/tickets/{number}", {"status": "waiting"})
        _, _, page = b.get(f"/portal/acme/tickets/{number}")
        self.assertIn("Try the rear tray.", page)
        self.assertNotIn("SECRET NOTE", page)
        self.assertIn('id="status">waiting<', page)
        # A reply with nothing to say changes nothing; one with a file carries it.
        status, _, _ = b.post_files(f"/portal/acme/tickets/{number}",
                                    {"csrf": b.csrf(page), "text": "  "})
        self.assertEqual(status, 400)
        photo = os.urandom(3000)
        status, headers, _ = b.post_files(
            f"/portal/acme/tickets/{number}", {"csrf": b.csrf(page), "text": "The rear tray worked."},
            [("files", "tray.jpg", photo, "image/jpeg")])
        self.assertEqual(status, 303)
        t = self.srv.ticket(number)
        self.assertEqual(t["status"], "open", "a reply from the user reopens the ticket")
        self.assertEqual((t["events"][-1]["author"], t["events"][-1]["by_staff"]),
                         ("rita@customer.test", False))
        self.assertEqual([(a["name"], a["size"]) for a in t["events"][-1]["attachments"]],
                         [("tray.jpg", 3000)])

    def test_my_tickets_searched_and_paged(self):
        srv = self.srv
        numbers = {}
        for i in range(25):
            summary = f"Invoice question {i}" if i % 2 else f"Printer jam {i}"
            t = srv.send("POST", "/api/v1/tickets", {
                "org": "acme", "requester": "rita@customer.test", "summary": summary,
                "text": "Details.", "notify": False}, expect=201)
            numbers[summary] = t["number"]
        srv.send("POST", "/api/v1/tickets", {
            "org": "beta", "requester": "rita@customer.test", "summary": "Invoice elsewhere",
            "text": "Other portal.", "notify": False}, expect=201)
        b = Browser(srv)
        self.request_link(b, "acme", "rita@customer.test")
        b.get(self.link_in_mail("rita@customer.test"))
        rows = lambda page: re.findall(r'class="ticket-row"><td>(\d+)</td>', page)
        _, _, page = b.get("/portal/acme")
        self.assertEqual(len(rows(page)), 20)
        self.assertIn('rel="next" href="/portal/acme?q=&amp;page=2"', page)
        _, _, page2 = b.get("/portal/acme?page=2")
        self.assertEqual(len(rows(page2)), 5)
        self.assertIn('rel="prev"', page2)
        self.assertEqual(len(set(rows(page)) | set(rows(page2))), 25, "every ticket once")
        _, _, odd = b.get("/portal/acme?q=INVOICE+question")
        self.assertEqual(len(rows(odd)), 12)
        self.assertNotIn("Invoice elsewhere", odd)
        _, _, one = b.get(f"/portal/acme?q=%23{numbers['Printer jam 4']}")
        self.assertEqual(rows(one), [str(numbers["Printer jam 4"])])
        _, _, none = b.get("/portal/acme?q=coffee")
        self.assertIn("No ticket matches.", none)
        for odd_page in ("abc", "0", "99", "-1"):
            status, _, page = b.get(f"/portal/acme?page={odd_page}")
            self.assertEqual(status, 200, odd_page)
        # The form's type picker sets the type.
        status, _, page = b.post_files("/portal/acme/tickets", {
            "csrf": b.csrf(page), "type": "incident", "summary": "Server down",
            "description": "Since noon."})
        number = int(re.search(r"Your request is ticket #(\d+)", page).group(1))
        self.assertEqual(srv.ticket(number)["type"], "incident")

    def test_opting_out_of_automatic_mail(self):
        b = Browser(self.srv)
        self.request_link(b, "acme", "quiet@customer.test")
        b.get(self.link_in_mail("quiet@customer.test"))
        _, _, page = b.get("/portal/acme")
        self.assertIn('id="automatic-mail">sent to you<', page)
        self.assertEqual(b.post("/portal/acme/mail", {"csrf": "forged", "on": "no"})[0], 403)
        b.post("/portal/acme/mail", {"csrf": b.csrf(page), "on": "no"})
        _, _, page = b.get("/portal/acme")
        self.assertIn('id="automatic-mail">not sent to you<', page)
        _, _, page = b.post_files("/portal/acme/tickets", {"csrf": b.csrf(page),
                                                            "summary": "Quiet please",
                                                            "description": "No confirmations."})
        number = int(re.search(r"ticket #(\d+)", page).group(1))
        self.srv.send("POST", f"/api/v1/tickets/{number}/replies", {"text": "Answer anyway."},
                      expect=201)
        # The staff answer arrives; no acknowledgement was sent before it.
        mails = wait_for(lambda: [m for m in self.mails_to("quiet@customer.test")
                                  if f"[#{number}]" in str(m["Subject"])])
        self.assertEqual(len(mails), 1)
        self.assertIn("Answer anyway.", mails[0].get_body(("plain",)).get_content())

    def test_links_expire_and_wear_out(self):
        self.request_link(Browser(self.srv), "acme", "sam@customer.test")
        link = self.link_in_mail("sam@customer.test")
        for _ in range(5):
            self.assertEqual(Browser(self.srv).get(link)[0], 303)
        status, _, page = Browser(self.srv).get(link)
        self.assertEqual(status, 403)
        self.assertIn("used too often", page)
        self.request_link(Browser(self.srv), "acme", "sam@customer.test")
        fresh = self.link_in_mail("sam@customer.test", count=2)
        with open(self.clock, "w") as f:
            f.write(str(13 * 3600))
        status, _, page = Browser(self.srv).get(fresh)
        self.assertEqual(status, 403)
        self.assertIn("expired", page)

    def test_same_answer_whitelist_and_rate_limit(self):
        b = Browser(self.srv)
        # Beta only serves its whitelisted domain: same page, no mail.
        self.request_link(b, "beta", "eve@elsewhere.test")
        self.request_link(b, "beta", "ok@beta-customer.test")
        self.link_in_mail("ok@beta-customer.test")
        self.assertEqual(self.mails_to("eve@elsewhere.test"), [])
        # At most 5 links an hour per address; the page does not tell.
        for _ in range(7):
            self.request_link(b, "acme", "flood@customer.test")
        wait_for(lambda: len(self.mails_to("flood@customer.test")) >= 5)
        self.assertEqual(len(self.mails_to("flood@customer.test")), 5)
        _, _, page = b.get("/portal/acme")
        status, _, _ = b.post("/portal/acme/link", {"csrf": b.csrf(page), "email": "not an address"})
        self.assertEqual(status, 400)
        # Without the form's token (another site posting), nothing is sent.
        status, _, _ = Browser(self.srv).post("/portal/acme/link", {"email": "csrf@customer.test"})
        self.assertEqual(status, 403)
        status, _, _ = b.post("/portal/acme/link", {"csrf": "guess", "email": "csrf@customer.test"})
        self.assertEqual(status, 403)
        self.assertEqual(self.mails_to("csrf@customer.test"), [])
        self.assertEqual(b.get("/portal/nosuch")[0], 404)

    def test_sessions_stay_in_their_portal_and_their_tickets(self):
        rita, sam = Browser(self.srv), Browser(self.srv)
        for b, who in ((rita, "rita@customer.test"), (sam, "sam@customer.test")):
            self.request_link(b, "acme", who)
            b.get(self.link_in_mail(who))
        _, _, page = rita.get("/portal/acme")
        _, _, page = rita.post_files("/portal/acme/tickets", {
            "csrf": rita.csrf(page), "summary": "Rita's", "description": "private"})
        number = int(re.search(r"ticket #(\d+)", page).group(1))
        # Another user of the same portal, and the same user in another portal.
        self.assertEqual(sam.get(f"/portal/acme/tickets/{number}")[0], 404)
        _, _, page = sam.get("/portal/acme")
        self.assertNotIn("Rita's", page)
        _, _, page = rita.get("/portal/beta")
        self.assertIn("Email me a sign-in link", page)
        self.assertEqual(rita.get(f"/portal/beta/tickets/{number}")[0], 303)
        # A portal session is no staff session.
        status, headers, _ = rita.get("/desk")
        self.assertEqual((status, headers["Location"]), (303, "/signin"))
        # Forms without the session's token do nothing.
        events = len(self.srv.ticket(number)["events"])
        self.assertEqual(rita.post_files(f"/portal/acme/tickets/{number}", {"text": "forged"})[0],
                         403)
        self.assertEqual(rita.post(f"/portal/acme/tickets/{number}",
                                   {"csrf": "x", "text": "forged"})[0], 400)
        # Someone else's ticket takes no reply from them, token or not.
        _, _, page = sam.get("/portal/acme")
        self.assertEqual(sam.post_files(f"/portal/acme/tickets/{number}",
                                        {"csrf": sam.csrf(page), "text": "mine now"})[0], 404)
        self.assertEqual(rita.post_files("/portal/acme/tickets",
                                         {"summary": "forged", "description": "x"})[0], 403)
        # A plain form post (not multipart) changes nothing either.
        self.assertEqual(rita.post("/portal/acme/tickets",
                                   {"csrf": "x", "summary": "forged", "description": "x"})[0], 400)
        self.assertEqual(len(self.srv.ticket(number)["events"]), events)
        self.assertEqual(len(self.srv.tickets()), 1)


if __name__ == "__main__":
    unittest.main()
