"""Issue 4's browser tests in real headless Chromium: a portal user asks for a link, opens
it from the outbox, submits a ticket, finds it under "my tickets" and replies; a staff
member signs in, filters the list, answers and changes the status; a link's 6th use and a
13-hour-old link are refused; hostile mail HTML runs no script and loads nothing remote.
Screenshots of the dashboard, the ticket list and a ticket page land in
target/screenshots/."""

import os
import re
import smtplib
import unittest
from email.message import EmailMessage

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from chromium import chromium, page_text, screenshot
from harness import Server, outbox_mails, sign_in_link, staff_link, wait_for


class Browser(unittest.TestCase):
    def setUp(self):
        self.srv = Server().bootstrap(staff=[("alex@acme.test", "Alex Tech", "tech")])
        self.addCleanup(self.srv.close)
        self.clock = os.path.join(self.srv.dir, "clock-offset")
        self.srv.env["POSTDESK_CLOCK_OFFSET_FILE"] = self.clock
        self.staff_link = staff_link(self.srv, "tester@ops.test")
        self.srv.start()
        self.chrome = chromium()
        self.addCleanup(self.chrome.quit)

    def mails_to(self, address):
        return outbox_mails(self.srv, address)

    def link_in_mail(self, address, count=1):
        return sign_in_link(self.srv, address, count)

    def go(self, path):
        self.chrome.get(self.srv.url(path))

    def text(self):
        return page_text(self.chrome)

    def see(self, expected):
        """Waits for the page (after a click, the next page) to show `expected`."""
        WebDriverWait(self.chrome, 10).until(lambda d: expected in page_text(d))
        return self.text()

    def test_portal_user_and_staff_member(self):
        c = self.chrome
        # The end user asks for a sign-in link in the portal.
        self.go("/portal/acme")
        c.find_element(By.NAME, "email").send_keys("rita@customer.test")
        c.find_element(By.XPATH, "//button[text()='Email me a sign-in link']").click()
        self.see("a sign-in link is on its way")
        link = self.link_in_mail("rita@customer.test")
        self.go(link)
        self.see("New request")
        c.find_element(By.NAME, "summary").send_keys("Scanner shows E42")
        c.find_element(By.NAME, "description").send_keys("Since this morning.")
        photo = os.path.join(self.srv.dir, "display.txt")
        with open(photo, "w") as f:
            f.write("E42 on the display")
        c.find_element(By.NAME, "files").send_keys(photo)
        c.find_element(By.XPATH, "//button[text()='Send']").click()
        number = int(re.search(r"Your request is ticket #(\d+)", self.see("Your request is ticket #")).group(1))
        c.find_element(By.LINK_TEXT, "Scanner shows E42").click()
        c.find_element(By.NAME, "text").send_keys("It also beeps.")
        c.find_element(By.XPATH, "//button[text()='Send reply']").click()
        self.see("It also beeps.")

        # A staff member signs in with a link, filters the list, answers, sets the status.
        self.srv.send("PATCH", f"/api/v1/tickets/{number}", {"priority": "high"})
        self.go(self.staff_link)
        self.assertIn("Tickets", c.title)
        self.go("/dashboard")
        self.see("Tickets by type and status")
        self.assertEqual(len(c.find_elements(By.CSS_SELECTOR, "#chart polyline")), 2)
        screenshot(c, "dashboard")
        # question × open is a link to that list.
        c.find_element(By.CSS_SELECTOR, "#counts tbody tr:first-child td:first-of-type a").click()
        WebDriverWait(c, 10).until(lambda d: "type=question&status=open" in d.current_url)
        self.see("Scanner shows E42")
        self.go("/desk")
        Select(c.find_element(By.NAME, "status")).select_by_value("open")
        c.find_element(By.XPATH, "//button[text()='Filter']").click()
        WebDriverWait(c, 10).until(lambda d: "status=open" in d.current_url)
        self.see("Scanner shows E42")
        screenshot(c, "ticket-list")
        c.find_element(By.LINK_TEXT, "Scanner shows E42").click()
        self.see("It also beeps.")
        self.assertEqual(c.find_element(By.LINK_TEXT, "display.txt").get_attribute("href"),
                         self.srv.url(f"/desk/tickets/{number}/attachments/") +
                         self.srv.ticket(number)["events"][0]["attachments"][0]["sha256"])
        c.find_element(By.NAME, "text").send_keys("Please power-cycle it.")
        Select(c.find_element(By.NAME, "status")).select_by_value("waiting")
        c.find_element(By.XPATH, "//button[text()='Save']").click()
        self.see("Please power-cycle it.")
        self.assertEqual(c.find_element(By.ID, "status").text, "waiting")
        screenshot(c, "ticket-page")
        t = self.srv.ticket(number)
        self.assertEqual(t["status"], "waiting")
        # The answer went to the end user by mail, and shows in the portal.
        wait_for(lambda: [m for m in self.mails_to("rita@customer.test")
                          if "Please power-cycle it." in m.get_body(("plain",)).get_content()])

    def test_worn_out_and_expired_links_are_refused(self):
        self.go("/portal/acme")
        self.chrome.find_element(By.NAME, "email").send_keys("sam@customer.test")
        self.chrome.find_element(By.XPATH, "//button[text()='Email me a sign-in link']").click()
        self.see("on its way")
        link = self.link_in_mail("sam@customer.test")
        for _ in range(5):
            self.chrome.delete_all_cookies()
            self.go(link)
            self.see("New request")
        self.chrome.delete_all_cookies()
        self.go(link)
        self.see("used too often")
        # A fresh link, 13 hours later by the server's clock.
        self.go("/portal/acme")
        self.chrome.find_element(By.NAME, "email").send_keys("sam@customer.test")
        self.chrome.find_element(By.XPATH, "//button[text()='Email me a sign-in link']").click()
        self.see("on its way")
        fresh = self.link_in_mail("sam@customer.test", count=2)
        with open(self.clock, "w") as f:
            f.write(str(13 * 3600))
        self.go(fresh)
        self.see("expired")
        self.assertNotIn("New request", self.text())

    def test_hostile_mail_html_runs_nothing_and_loads_nothing(self):
        m = EmailMessage()
        m["From"] = "mallory@evil.test"
        m["To"] = "acme@acme.test"
        m["Subject"] = "Invoice <img src=x onerror=alert(1)>"
        m["Message-ID"] = "<hostile@evil.test>"
        # HTML only: what the page shows comes from the HTML.
        m.set_content(
            "<html><head><style>body{background:url(http://tracker.evil.test/css.png)}</style>"
            "<script>window.__pwned = 1; fetch('http://tracker.evil.test/s')</script></head>"
            "<body><p>Hello <img src='http://tracker.evil.test/pixel.gif' "
            "onerror='window.__pwned = 2'> <a href='javascript:window.__pwned=3'>click</a>"
            "<svg onload='window.__pwned=4'></svg>"
            "<iframe src='http://tracker.evil.test/frame'></iframe>"
            "<div style='background-image:url(http://tracker.evil.test/div.png)'>styled</div>"
            "</p></body></html>", subtype="html")
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port) as s:
            s.send_message(m)
        number = self.srv.decision_for("<hostile@evil.test>")["ticket"]
        self.go(self.staff_link)
        self.go(f"/desk/tickets/{number}")
        page = self.text()
        self.assertIn("Hello", page)
        self.assertIn("Invoice <img src=x onerror=alert(1)>", page)  # shown as text
        for link in self.chrome.find_elements(By.LINK_TEXT, "click"):
            link.click()
        self.assertIsNone(self.chrome.execute_script("return window.__pwned === undefined ? null : window.__pwned"))
        resources = self.chrome.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)")
        self.assertEqual([r for r in resources if "evil.test" in r], [])
        self.assertEqual(self.chrome.find_elements(By.TAG_NAME, "iframe"), [])
        self.assertEqual(self.chrome.find_elements(By.TAG_NAME, "script"), [])
        self.go("/desk")
        self.assertIn("Invoice <img src=x onerror=alert(1)>", self.text())
        self.assertIsNone(self.chrome.execute_script("return window.__pwned === undefined ? null : window.__pwned"))


if __name__ == "__main__":
    unittest.main()
