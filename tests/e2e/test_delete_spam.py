"""Issue 12's delete and spam: a manager deletes a ticket as spam over the API (a Tech may
not, not even one assigned to him); the ticket, its originals and the files only it used
are gone for everyone (a file another ticket shows stays); the sender's mail is then
refused at RCPT (envelope) and at the end of DATA (From header), over smtplib, until an
admin unblocks them in settings; and the desk page's Delete button does the same for a
signed-in admin, with the form's CSRF token required."""

import os
import smtplib
import unittest

import requests

from harness import Browser, Server, mail, staff_link


class DeleteAndSpam(unittest.TestCase):
    def setUp(self):
        self.srv = Server().bootstrap(staff=[("alex@acme.test", "Alex", "tech"),
                                             ("mia@acme.test", "Mia", "manager")])
        self.addCleanup(self.srv.close)
        self.alex = self.srv.cli("token", "create", "alex@acme.test").stdout.strip()
        self.mia = self.srv.cli("token", "create", "mia@acme.test").stdout.strip()
        self.link = staff_link(self.srv, "tester@ops.test")
        self.alex_link = staff_link(self.srv, "alex@acme.test")
        self.srv.start()

    def send(self, m, envelope_from=None):
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port, timeout=30) as s:
            s.send_message(m, from_addr=envelope_from)
        return self.srv.decision_for(m["Message-ID"])

    def files(self, kind):
        return self.srv.stored(kind)

    def test_spam_deleted_by_a_manager_is_gone_and_its_sender_refused(self):
        srv = self.srv
        shared = os.urandom(3_000)
        own = os.urandom(200_000)  # over 64 KiB: kept as a file, so its removal shows
        spam = mail("Spammer <spam@junk.test>", "acme@acme.test", "Cheap watches", "Buy now.")
        spam.add_attachment(shared, maintype="image", subtype="png", filename="a.png")
        spam.add_attachment(own, maintype="application", subtype="zip", filename="b.zip")
        n = self.send(spam)["ticket"]
        other = mail("carol@customer.test", "acme@acme.test", "Screenshot", "See the image.")
        other.add_attachment(shared, maintype="image", subtype="png", filename="a.png")
        kept = self.send(other)["ticket"]
        t = srv.ticket(n)
        seq = t["events"][0]["seq"]
        srv.api(f"/api/v1/tickets/{n}/events/{seq}/raw")
        blobs_before, raws_before = self.files("blobs"), self.files("raw")
        self.assertTrue(blobs_before and raws_before, "the large file and original are files")

        # A Tech may not delete, not even a ticket assigned to him; nothing changes.
        srv.send("PATCH", f"/api/v1/tickets/{n}", {"assignee": "alex@acme.test"})
        srv.send("DELETE", f"/api/v1/tickets/{n}", b"", token=self.alex, expect=403)
        srv.send("DELETE", f"/api/v1/tickets/{n}?spam=true", b"", token=self.alex, expect=403)
        srv.api(f"/api/v1/tickets/{n}")
        srv.send("DELETE", f"/api/v1/tickets/{n}?spam=maybe", b"", token=self.mia, expect=400)
        srv.api(f"/api/v1/tickets/{n}")

        done = srv.send("DELETE", f"/api/v1/tickets/{n}?spam=true", b"", token=self.mia)
        self.assertEqual((done["deleted"], done["org"], done["blocked"]),
                         (n, "acme", "spam@junk.test"))
        # Gone for everyone, its original too; twice is a 404.
        for token in (None, self.mia, self.alex):
            srv.api(f"/api/v1/tickets/{n}", token=token, expect=404)
            srv.api(f"/api/v1/tickets/{n}/events/{seq}/raw", token=token, expect=404)
        self.assertNotIn(n, [x["number"] for x in srv.tickets("?status=open")])
        srv.send("DELETE", f"/api/v1/tickets/{n}", b"", token=self.mia, expect=404)
        # Its own large file and its original are removed from the data folder (or the
        # database); the file the other ticket shows stays, and still downloads.
        self.assertEqual(len(blobs_before - self.files("blobs")), 1)
        self.assertEqual(len(raws_before - self.files("raw")), 1)
        web = Browser(srv)
        web.get(self.link)
        sha = [a for a in srv.ticket(kept)["events"][0]["attachments"]][0]["sha256"]
        got = requests.get(srv.url(f"/desk/tickets/{kept}/attachments/{sha}"),
                           cookies=web.jar, timeout=10)
        self.assertEqual((got.status_code, got.content), (200, shared))

        # The sender is refused before DATA by envelope, and at its end by the From header.
        again = mail("spam@junk.test", "acme@acme.test", "Cheap watches again", "Buy.")
        with self.assertRaises(smtplib.SMTPRecipientsRefused) as refused:
            with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30) as s:
                s.send_message(again)
        code, text = refused.exception.recipients["acme@acme.test"]
        self.assertEqual(code, 550)
        self.assertIn(b"blocked", text)
        disguised = mail("Spam@Junk.test", "acme@acme.test", "Hello", "Buy.")
        with self.assertRaises(smtplib.SMTPDataError) as refused:
            with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30) as s:
                s.send_message(disguised, from_addr="bounce@elsewhere.test")
        self.assertEqual(refused.exception.smtp_code, 550)
        # Another organization's mail from them is not this organization's business.
        blocked = srv.api("/api/v1/orgs/acme/blocked")
        self.assertEqual([(b["sender"], b["by"], b["ticket"]) for b in blocked],
                         [("spam@junk.test", "mia@acme.test", n)])
        srv.api("/api/v1/orgs/acme/blocked", token=self.alex, expect=403)
        srv.api("/api/v1/orgs/nowhere/blocked", expect=404)

        # Unblocking is for admins; then their mail opens tickets again.
        srv.send("DELETE", "/api/v1/orgs/acme/blocked/spam@junk.test", b"", token=self.mia,
                 expect=403)
        srv.send("DELETE", "/api/v1/orgs/acme/blocked/spam@junk.test", b"", expect=204)
        srv.send("DELETE", "/api/v1/orgs/acme/blocked/spam@junk.test", b"", expect=404)
        self.assertEqual(srv.api("/api/v1/orgs/acme/blocked"), [])
        back = self.send(mail("spam@junk.test", "acme@acme.test", "Sorry", "A real question."))
        self.assertNotEqual(back["ticket"], n)

    def test_a_staff_requester_cannot_be_blocked(self):
        srv = self.srv
        t = srv.send("POST", "/api/v1/tickets", {
            "org": "acme", "requester": "alex@acme.test", "summary": "Laptop",
            "text": "Mine is broken.", "notify": False}, expect=201)
        srv.send("DELETE", f"/api/v1/tickets/{t['number']}?spam=true", b"", expect=400)
        srv.api(f"/api/v1/tickets/{t['number']}")
        srv.send("DELETE", f"/api/v1/tickets/{t['number']}", b"", expect=200)
        # Nor any spelling of it: a block of alex+x@ would be a block of alex@.
        t = srv.send("POST", "/api/v1/tickets", {
            "org": "acme", "requester": "Alex+Laptop@acme.test", "summary": "Laptop",
            "text": "Mine is broken.", "notify": False}, expect=201)
        srv.send("DELETE", f"/api/v1/tickets/{t['number']}?spam=true", b"", expect=400)
        self.assertEqual(srv.api("/api/v1/orgs/acme/blocked"), [])

    def test_the_desk_page_deletes_with_its_form_token(self):
        srv = self.srv
        n = self.send(mail("junk@spam.test", "acme@acme.test", "Win a prize", "Click."))["ticket"]
        web = Browser(srv)
        web.get(self.link)
        status, _, page = web.get(f"/desk/tickets/{n}")
        self.assertIn(f"Delete ticket #{n}", page)
        csrf = web.csrf(page)
        status, _, _ = web.post(f"/desk/tickets/{n}/delete", {"csrf": "forged", "spam": "yes"})
        self.assertEqual(status, 403)
        srv.api(f"/api/v1/tickets/{n}")
        status, headers, _ = web.post(f"/desk/tickets/{n}/delete", {"csrf": csrf, "spam": "yes"})
        self.assertEqual((status, headers["Location"]), (303, "/desk"))
        status, _, _ = web.get(f"/desk/tickets/{n}")
        self.assertEqual(status, 404)
        # Settings list the sender, and unblock them with one button.
        status, _, page = web.get("/settings/orgs/acme")
        self.assertIn("junk@spam.test", page)
        status, headers, _ = web.post("/settings/orgs/acme/unblock",
                                      {"csrf": csrf, "sender": "junk@spam.test"})
        self.assertEqual(status, 303)
        self.assertEqual(srv.api("/api/v1/orgs/acme/blocked"), [])
        # A Tech's page of a ticket assigned to him has no Delete button, and the form
        # is refused all the same.
        kept = self.send(mail("carol@customer.test", "acme@acme.test", "Help", "Please."))
        srv.send("PATCH", f"/api/v1/tickets/{kept['ticket']}", {"assignee": "alex@acme.test"})
        tech = Browser(srv)
        tech.get(self.alex_link)
        status, _, page = tech.get(f"/desk/tickets/{kept['ticket']}")
        self.assertEqual(status, 200)
        self.assertNotIn("Delete ticket", page)
        status, _, _ = tech.post(f"/desk/tickets/{kept['ticket']}/delete",
                                 {"csrf": tech.csrf(page)})
        self.assertEqual(status, 403)
        srv.api(f"/api/v1/tickets/{kept['ticket']}")

if __name__ == "__main__":
    unittest.main()
