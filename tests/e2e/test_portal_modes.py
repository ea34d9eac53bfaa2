"""Organization settings in the web UI, the list of portals at /portal, the type picker
and the address shown by default, and the portal's other sign-in modes: guest
requests (no sign-in, no confirmation mail, "Portal Guest" as creator, the contact set
later by staff) and directory tokens (HS256 JWTs made with PyJWT, at most 10 minutes valid,
each `jti` used once) with their error cases; who may see and change settings."""

import html
import re
import smtplib
import time
import unittest
import uuid

import jwt

from harness import Browser, Server, mail, outbox_mails, staff_link, wait_for


def settings_form(page):
    """The organization settings form's current values, as a browser would post them."""
    fields = {}
    for name in ("name", "page_title", "form_title", "success_title", "displayed_email"):
        fields[name] = re.search(rf'name="{name}" value="([^"]*)"', page).group(1)
    for name in ("extra_addresses", "whitelist", "categories", "form_message", "privacy_notice"):
        fields[name] = re.search(rf'name="{name}">([^<]*)</textarea>', page).group(1)
    for name in ("category_field", "portal_mode"):
        select = re.search(rf'name="{name}">(.*?)</select>', page, re.S).group(1)
        fields[name] = re.search(r'value="([^"]+)" selected', select).group(1)
    fields["csrf"] = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    return fields


class PortalModes(unittest.TestCase):
    def setUp(self):
        srv = Server().bootstrap(orgs=(("acme", "Acme", []), ("beta", "Beta", [])), staff=[
            ("mia@ops.test", "Mia Manager", "manager"), ("alex@ops.test", "Alex Tech", "tech")])
        self.addCleanup(srv.close)
        self.links = {who: staff_link(srv, who)
                      for who in ("tester@ops.test", "mia@ops.test", "alex@ops.test")}
        srv.start()
        self.srv = srv
        self.admin = self.signed_in("tester@ops.test")

    def signed_in(self, who):
        b = Browser(self.srv)
        self.assertEqual(b.get(self.links[who])[0], 303)
        return b

    def configure(self, **changes):
        _, _, page = self.admin.get("/settings/orgs/acme")
        form = settings_form(page)
        form.update(changes)
        return self.admin.post("/settings/orgs/acme", form)

    def test_guest_mode(self):
        status, _, page = self.configure(portal_mode="guest", categories="Printers\nNetwork",
                                         category_field="required",
                                         success_title="Got it, thanks!",
                                         page_title="Acme Help Center")
        self.assertEqual(status, 200)
        self.assertIn("Saved.", page)
        b = Browser(self.srv)
        _, _, page = b.get("/portal/acme")
        self.assertIn("Acme Help Center", page)
        self.assertIn('name="email"', page)
        self.assertNotIn("Email me a sign-in link", page)
        self.assertNotIn('type="file"', page, "guests send no attachments")
        form = {"csrf": b.csrf(page), "email": "walkin@customer.test", "summary": "Paper jam",
                "description": "Tray 2 again.", "category": "Printers"}
        # Without the form token, without a category, with a made-up category: refused.
        self.assertEqual(Browser(self.srv).post("/portal/acme/guest", form)[0], 403)
        self.assertEqual(b.post("/portal/acme/guest", dict(form, category=""))[0], 400)
        self.assertEqual(b.post("/portal/acme/guest", dict(form, category="Coffee"))[0], 400)
        self.assertEqual(b.post("/portal/acme/guest", dict(form, type="urgent"))[0], 400)
        self.assertEqual(self.srv.tickets(), [])
        # The user picks the type; the organization's address is shown by default.
        self.assertIn('<option value="bug">Bug</option>', page)
        self.assertIn('href="mailto:acme@acme.test"', page)
        status, _, page = b.post("/portal/acme/guest", dict(form, type="bug"))
        self.assertEqual(status, 200)
        self.assertIn("Got it, thanks!", page)
        number = int(re.search(r"ticket #(\d+)", page).group(1))
        t = self.srv.ticket(number)
        self.assertEqual((t["requester"], t["events"][0]["author"]), ("Portal Guest", "Portal Guest"))
        self.assertEqual(t["type"], "bug")
        self.assertTrue(t["events"][0]["text"].startswith("walkin@customer.test wrote:"))
        # Staff are alerted; the unverified address gets nothing.
        wait_for(lambda: outbox_mails(self.srv, "tester@ops.test"))
        time.sleep(0.5)
        self.assertEqual(outbox_mails(self.srv, "walkin@customer.test"), [])
        # Staff set the real contact, who then hears the answer.
        self.srv.send("PATCH", f"/api/v1/tickets/{number}", {"contact": "walkin@customer.test"})
        self.srv.send("POST", f"/api/v1/tickets/{number}/replies", {"text": "Fixed."}, expect=201)
        wait_for(lambda: outbox_mails(self.srv, "walkin@customer.test"))
        # The other ways in are closed in guest mode.
        self.assertEqual(b.post("/portal/acme/link", {"csrf": b.csrf(page), "email": "x@y.test"})[0], 404)
        self.assertEqual(b.get("/portal/acme/sso?token=x")[0], 404)

    def test_the_privacy_notice_shows_with_every_form(self):
        notice = "We keep your mail for two years.\nAsk privacy@acme.test. <script>x()</script>"
        status, _, page = self.configure(privacy_notice=notice)
        self.assertEqual(status, 200)
        self.assertIn("Saved.", page)
        _, _, again = self.admin.get("/settings/orgs/acme")
        self.assertEqual(html.unescape(settings_form(again)["privacy_notice"]), notice)
        for mode in ("email_link", "guest"):
            self.configure(portal_mode=mode)
            _, _, portal = Browser(self.srv).get("/portal/acme")
            self.assertIn('id="privacy-notice"', portal, mode)
            self.assertIn("We keep your mail for two years.", portal, mode)
            self.assertNotIn("<script>x()", portal, mode)
        self.assertEqual(self.configure(privacy_notice="x" * 4001)[0], 400)
        # A browser counts a line break as one character; the form sends CRLF.
        self.assertEqual(self.configure(privacy_notice="y" * 99 + "\r\n" * 30)[0], 200)
        self.configure(privacy_notice="")
        self.assertNotIn('id="privacy-notice"', Browser(self.srv).get("/portal/acme")[2])

    def test_the_portal_list(self):
        status, _, page = Browser(self.srv).get("/portal")
        self.assertEqual(status, 200)
        self.assertIn('<a href="/portal/acme">Acme support</a>', page)
        self.assertIn('<a href="/portal/beta">Beta support</a>', page)

    def test_directory_token_mode(self):
        self.configure(portal_mode="directory_token")
        _, _, page = self.admin.get("/settings/orgs/acme")
        _, _, page = self.admin.post("/settings/orgs/acme/directory-secret",
                                     {"csrf": self.admin.csrf(page)})
        secret = re.search(r'id="directory-secret">([^<]+)<', page).group(1)
        _, _, again = self.admin.get("/settings/orgs/acme")
        self.assertNotIn(secret, again, "the secret is shown only once")

        def token(key=secret, **claims):
            body = {"iss": "acme", "email": "Dana@Customer.test", "exp": int(time.time()) + 300,
                    "jti": uuid.uuid4().hex}
            body.update(claims)
            return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm="HS256")

        b = Browser(self.srv)
        first = token()
        status, headers, _ = b.get(f"/portal/acme/sso?token={first}")
        self.assertEqual((status, headers["Location"]), (303, "/portal/acme"))
        # A token works once: seen in a log, a history or a Referer, it opens nothing.
        status, _, page = Browser(self.srv).get(f"/portal/acme/sso?token={first}")
        self.assertEqual(status, 403)
        self.assertIn("already been used", page)
        _, _, page = b.get("/portal/acme")
        self.assertIn("dana@customer.test", page)
        _, _, page = b.post_files("/portal/acme/tickets", {"csrf": b.csrf(page),
                                                            "summary": "VPN down",
                                                            "description": "Since 9."})
        self.assertIn("VPN down", page)
        for bad, why in [(token(key="not-the-secret"), "signature does not match"),
                         (token(iss="beta"), "issued for another portal"),
                         (token(exp=int(time.time()) - 5), "expired"),
                         (token(exp=None), "expired"),
                         (token(exp=int(time.time()) + 3600), "valid for too long"),
                         (token(iat=int(time.time()) - 3600), "valid for too long"),
                         (token(jti=None), "no jti claim"),
                         (token(email=None), "names no email"),
                         # Not one address: mail to it would reach two.
                         (token(email="dana@customer.test,eve@evil.test"), "names no email"),
                         ("garbage", "not a JWT")]:
            with self.subTest(why=why):
                status, _, page = Browser(self.srv).get(f"/portal/acme/sso?token={bad}")
                self.assertEqual(status, 403)
                self.assertIn(why, page)
        # A new secret replaces the old one at once.
        old = token()
        _, _, page = self.admin.get("/settings/orgs/acme")
        self.admin.post("/settings/orgs/acme/directory-secret", {"csrf": self.admin.csrf(page)})
        self.assertEqual(Browser(self.srv).get(f"/portal/acme/sso?token={old}")[0], 403)
        # Other ways in are closed; another portal is not opened by this one's session.
        self.assertEqual(b.get("/portal/beta")[0], 200)
        self.assertIn("Email me a sign-in link", b.get("/portal/beta")[2])

    def test_add_an_organization(self):
        _, _, page = self.admin.get("/settings/orgs")
        token = self.admin.csrf(page)
        for slug, why in (("ab", "4 to 40 characters"), ("a" * 41, "4 to 40 characters"),
                          ("Acme2", "lowercase"), ("acme", "organization acme is taken")):
            with self.subTest(slug=slug):
                status, _, page = self.admin.post("/settings/orgs", {"csrf": token, "slug": slug,
                                                                     "name": "X"})
                self.assertEqual(status, 400)
                self.assertIn(why, page)
        status, headers, _ = self.admin.post("/settings/orgs", {"csrf": token, "slug": "gamma-help",
                                                                "name": "Gamma"})
        self.assertEqual((status, headers["Location"]), (303, "/settings/orgs/gamma-help"))
        # It takes mail at once, and its portal is open.
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port) as s:
            s.send_message(mail("c@customer.test", "gamma-help@acme.test", "Hello Gamma",
                                message_id="<gamma@customer.test>"))
        d = self.srv.decision_for("<gamma@customer.test>")
        self.assertEqual(self.srv.ticket(d["ticket"])["org"], "gamma-help")
        self.assertIn("Gamma support", Browser(self.srv).get("/portal/gamma-help")[2])
        mia = self.signed_in("mia@ops.test")
        _, _, page = mia.get("/settings/orgs")
        self.assertNotIn("Add an organization", page)
        self.assertEqual(mia.post("/settings/orgs", {"csrf": mia.csrf(page), "slug": "delta-help",
                                                     "name": "D"})[0], 403)

    def test_who_may_see_and_change_settings(self):
        mia, alex = self.signed_in("mia@ops.test"), self.signed_in("alex@ops.test")
        status, _, page = mia.get("/settings/orgs/acme")
        self.assertEqual(status, 200)
        self.assertIn("only owners and admins change them", page)
        form = settings_form(page)
        self.assertEqual(mia.post("/settings/orgs/acme", dict(form, name="Hacked"))[0], 403)
        self.assertEqual(alex.get("/settings/orgs")[0], 403)
        self.assertEqual(alex.get("/settings/orgs/acme")[0], 403)
        self.assertNotIn("/settings/orgs", alex.get("/desk")[2])
        # Bad values and a missing token change nothing.
        for changes in ({"whitelist": "not a domain"}, {"extra_addresses": "beta@acme.test"},
                        {"portal_mode": "open-door"}, {"category_field": "required"},
                        {"name": ""}, {"csrf": "forged"}):
            with self.subTest(changes=changes):
                status, _, _ = self.configure(**changes)
                self.assertIn(status, (400, 403))
        _, _, page = self.admin.get("/settings/orgs/acme")
        self.assertEqual(settings_form(page)["name"], "Acme")
        # A good change takes effect on mail at once: the new address, the whitelist.
        status, _, _ = self.configure(extra_addresses="help@acme.test", whitelist="customer.test")
        self.assertEqual(status, 200)
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port) as s:
            s.send_message(mail("ok@customer.test", "help@acme.test", "Via the new address",
                                message_id="<new-address@customer.test>"))
            with self.assertRaises(smtplib.SMTPDataError) as refused:
                s.send_message(mail("no@elsewhere.test", "help@acme.test", "Not whitelisted"))
            self.assertEqual(refused.exception.smtp_code, 550)
        d = self.srv.decision_for("<new-address@customer.test>")
        self.assertEqual(self.srv.ticket(d["ticket"])["org"], "acme")


if __name__ == "__main__":
    unittest.main()


class OnePortal(unittest.TestCase):
    def test_the_only_portal_opens_at_once(self):
        srv = Server().bootstrap()
        self.addCleanup(srv.close)
        srv.start()
        status, headers, _ = Browser(srv).get("/portal")
        self.assertEqual((status, headers["Location"]), (303, "/portal/acme"))
