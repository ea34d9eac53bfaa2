"""One-click unsubscribe (RFC 8058) over the real server: automatic mail carries a signed
`List-Unsubscribe` link and `List-Unsubscribe-Post`, both under the DKIM signature (dkimpy
checks); opening the link changes nothing, the one-click POST (no cookie, as a mail
provider sends it) turns the person's automatic mail off; a person's answer still
arrives; a forged link is refused."""

import base64
import re
import smtplib
import unittest
import urllib.error
import urllib.request

import dkim

from harness import Server, mail, outbox_mails, outbox_raw, wait_for


class Unsubscribe(unittest.TestCase):
    def setUp(self):
        srv = Server().bootstrap(staff=[("mgr@ops.test", "Mona", "manager")])
        self.addCleanup(srv.close)
        # Links need an https address (RFC 8058); this test reaches the same server over
        # plain http, the TLS being a reverse proxy's in production.
        srv.env["POSTDESK_PUBLIC_URL"] = f"https://127.0.0.1:{srv.http_port}"
        record = srv.cli("dkim", "generate", "--org", "acme", "--selector", "pd",
                         "--algorithm", "ed25519").stdout.strip()
        self.zone = {b"pd._domainkey.acme.test.":
                     "".join(re.findall(r'"([^"]*)"', record)).encode()}
        self.srv = srv.start()

    def open_ticket(self, frm, subject, mid):
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port) as s:
            s.send_message(mail(frm, "acme@acme.test", subject, "It is broken.",
                                message_id=mid))
        return self.srv.decision_for(mid)["ticket"]

    def mails(self, to, text):
        return [m for m in outbox_mails(self.srv, to)
                if text in m.get_body(("plain",)).get_content()]

    def call(self, method, url, body=None):
        """A request as a mail provider makes it: no cookie, no form token."""
        req = urllib.request.Request(url, data=body, method=method, headers={
            "Content-Type": "application/x-www-form-urlencoded"} if body else {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def link_of(self, message):
        self.assertEqual(message["List-Unsubscribe-Post"], "List-Unsubscribe=One-Click")
        url = re.fullmatch(r"<(https://[^>]+)>", message["List-Unsubscribe"]).group(1)
        url = "http://" + url[len("https://"):]
        self.assertTrue(url.startswith(self.srv.url("/unsubscribe/")), url)
        raw = outbox_raw(self.srv, message)
        self.assertTrue(dkim.verify(raw, dnsfunc=lambda n, timeout=5: self.zone.get(n, b"")))
        signed = message["DKIM-Signature"].lower().split("h=")[1].split(";")[0]
        for h in ("list-unsubscribe", "list-unsubscribe-post"):
            self.assertIn(h, signed.split(":"), f"{h} is not signed")
        # A link prepended in transit breaks the signature (the headers are oversigned).
        forged = b"List-Unsubscribe: <https://evil.test/x>\r\n" + raw
        self.assertFalse(dkim.verify(forged, dnsfunc=lambda n, timeout=5: self.zone.get(n, b"")))
        return url

    def test_no_link_without_an_https_address(self):
        srv = self.srv
        srv.stop()
        for url in ("", f"http://127.0.0.1:{srv.http_port}"):
            srv.env["POSTDESK_PUBLIC_URL"] = url
            srv.start()
            mid = f"<plain{len(url)}@customer.test>"
            self.open_ticket(f"p{len(url)}@customer.test", "Plain", mid)
            ack = wait_for(lambda: self.mails(f"p{len(url)}@customer.test", "received"))[0]
            self.assertIsNone(ack["List-Unsubscribe"], url)
            self.assertIsNone(ack["List-Unsubscribe-Post"], url)
            srv.stop()
        srv.env["POSTDESK_PUBLIC_URL"] = "https://desk.acme.test/a>, <mailto:x@evil.test"
        r = srv.cli("config", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("plain URL", r.stderr)

    def test_one_click_turns_off_automatic_mail_and_answers_still_arrive(self):
        srv = self.srv
        n = self.open_ticket("rita@customer.test", "Printer", "<u1@customer.test>")
        ack = wait_for(lambda: self.mails("rita@customer.test", "received"))[0]
        url = self.link_of(ack)
        # Opened in a browser (or fetched by a scanner): a question, no change.
        status, page = self.call("GET", url)
        self.assertEqual(status, 200)
        self.assertIn("rita@customer.test", page)
        srv.send("PATCH", f"/api/v1/tickets/{n}", {"status": "resolved"})
        wait_for(lambda: self.mails("rita@customer.test", "reopen"))
        # A forged or tampered link is refused and changes nothing.
        token = url.rsplit("/", 1)[1]
        address, mac = token.split("-")
        forged = base64.b32encode(b"boss@customer.test").decode().rstrip("=").lower()
        for bad in (f"{forged}-{mac}", f"{address}-{mac[:-2]}aa", "nonsense"):
            self.assertEqual(self.call("POST", srv.url(f"/unsubscribe/{bad}"),
                                       b"List-Unsubscribe=One-Click")[0], 404)
        # The one-click POST.
        status, page = self.call("POST", url, b"List-Unsubscribe=One-Click")
        self.assertEqual(status, 200, page)
        self.assertIn("gets no more automatic mail", page)
        # Rita writes again (reopens), staff resolve again: no notice now; a staff
        # answer still arrives.
        with smtplib.SMTP("127.0.0.1", srv.smtp_port) as s:
            s.send_message(mail("rita@customer.test", "acme@acme.test", f"Re: [#{n}] Printer",
                                "Still broken.", message_id="<u2@customer.test>"))
        srv.decision_for("<u2@customer.test>")
        srv.send("POST", f"/api/v1/tickets/{n}/replies", {"text": "Try the other tray."},
                 expect=201)
        wait_for(lambda: self.mails("rita@customer.test", "Try the other tray."))
        srv.send("PATCH", f"/api/v1/tickets/{n}", {"status": "resolved"})
        # A marker: a fresh requester's notice is planned after Rita's would have been.
        m = self.open_ticket("sam@customer.test", "Marker", "<u3@customer.test>")
        srv.send("PATCH", f"/api/v1/tickets/{m}", {"status": "resolved"})
        wait_for(lambda: self.mails("sam@customer.test", "reopen"))
        self.assertEqual(len(self.mails("rita@customer.test", "reopen")), 1)
        # Staff alerts carry the link too; a manager who clicks it gets no more alerts.
        alert = wait_for(lambda: self.mails("mgr@ops.test", "New ticket from"))[0]
        status, _ = self.call("POST", self.link_of(alert), b"List-Unsubscribe=One-Click")
        self.assertEqual(status, 200)
        before = len(self.mails("mgr@ops.test", "New ticket from"))
        self.open_ticket("tom@customer.test", "After", "<u4@customer.test>")
        wait_for(lambda: self.mails("tester@ops.test", "tom@customer.test"))
        self.assertEqual(len(self.mails("mgr@ops.test", "New ticket from")), before)


if __name__ == "__main__":
    unittest.main()
