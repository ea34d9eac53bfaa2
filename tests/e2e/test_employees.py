"""Employees in the web UI: an admin invites someone (the invitation mail's link signs
them in; they set a password), changes role and rate, deletes; the owner's rules (nobody
deletes the owner or themselves, only the owner hands ownership on); staff ask for an
emailed sign-in link, and the page says the same for any address."""

import re
import time
import unittest

from harness import Browser, Server, outbox_mails, staff_link, wait_for


def link_in(mail, kind="signin"):
    text = mail.get_body(("plain",)).get_content()
    return re.search(rf"http://[^\s]+(/{kind}/link/[a-z0-9]+)", text).group(1)


class Employees(unittest.TestCase):
    def setUp(self):
        srv = Server().bootstrap(staff=[("olga@ops.test", "Olga Owner", "owner"),
                                        ("mia@ops.test", "Mia Manager", "manager")])
        self.addCleanup(srv.close)
        self.links = {w: staff_link(srv, w) for w in ("tester@ops.test", "olga@ops.test",
                                                      "mia@ops.test")}
        srv.start()
        self.srv = srv

    def signed_in(self, who):
        b = Browser(self.srv)
        self.assertEqual(b.get(self.links[who])[0], 303)
        return b

    def staff_page(self, b):
        status, _, page = b.get("/settings/staff")
        self.assertEqual(status, 200)
        return page

    def test_invite_then_the_invitee_signs_in_and_sets_a_password(self):
        admin = self.signed_in("tester@ops.test")
        page = self.staff_page(admin)
        status, _, page = admin.post("/settings/staff", {
            "csrf": admin.csrf(page), "name": "Nina New", "email": "Nina@Ops.test",
            "role": "tech", "rate": "42.50"})
        self.assertEqual(status, 200)
        self.assertIn("the invitation is on its way to nina@ops.test", page)
        self.assertIn('value="42.50"', page)
        invitation = wait_for(lambda: outbox_mails(self.srv, "nina@ops.test"))[0]
        body = invitation.get_body(("plain",)).get_content()
        self.assertIn("Tester invited you to the Postdesk staff desk as tech", body)
        nina = Browser(self.srv)
        status, headers, _ = nina.get(link_in(invitation))
        self.assertEqual((status, headers["Location"]), (303, "/desk"))
        _, _, page = nina.get("/account")
        _, _, page = nina.post("/account/password", {"csrf": nina.csrf(page),
                                                     "password": "a long password"})
        self.assertIn("Password set.", page)
        # A Tech sees no settings.
        self.assertEqual(nina.get("/settings/staff")[0], 403)
        # Bad invitations change nothing.
        for bad in ({"email": "nina@ops.test"}, {"email": "not-an-address"}, {"role": "owner"},
                    {"rate": "lots"}, {"name": ""}, {"csrf": "forged"}):
            with self.subTest(bad=bad):
                page = self.staff_page(admin)
                form = dict({"csrf": admin.csrf(page), "name": "X", "email": "x@ops.test",
                             "role": "tech", "rate": "1"}, **bad)
                self.assertIn(admin.post("/settings/staff", form)[0], (400, 403))
        self.assertNotIn("x@ops.test", self.staff_page(admin))

    def test_roles_rates_and_the_owner_rules(self):
        admin, olga, mia = (self.signed_in(w) for w in ("tester@ops.test", "olga@ops.test",
                                                          "mia@ops.test"))

        def update(b, email, role, rate="0"):
            page = self.staff_page(b)
            return b.post("/settings/staff/update", {"csrf": b.csrf(page), "email": email,
                                                     "role": role, "rate": rate})

        def delete(b, email):
            page = self.staff_page(b)
            return b.post("/settings/staff/delete", {"csrf": b.csrf(page), "email": email})

        # Managers look but do not change.
        self.assertNotIn("/settings/staff/update", self.staff_page(mia))
        self.assertEqual(update(mia, "mia@ops.test", "admin")[0], 403)
        # An admin changes a manager's role and rate.
        status, _, page = update(admin, "mia@ops.test", "tech", "30")
        self.assertEqual(status, 200)
        self.assertIn("Saved mia@ops.test.", page)
        # Nobody deletes the owner or themselves; an admin cannot take or give ownership.
        for status, _, page in (delete(admin, "olga@ops.test"), delete(admin, "tester@ops.test"),
                                update(admin, "tester@ops.test", "owner"),
                                update(admin, "olga@ops.test", "admin")):
            self.assertEqual(status, 400)
        self.assertIn("only when the owner hands ownership", page)
        # The owner hands ownership on: one owner before and after.
        status, _, page = update(olga, "tester@ops.test", "owner")
        self.assertEqual(status, 200)
        roles = dict(re.findall(r'aria-label="Role of ([^"]+)">.*?value="(\w+)" selected', page))
        self.assertEqual((roles["tester@ops.test"], roles["olga@ops.test"]), ("owner", "admin"))
        # Deleting someone ends their sessions and API access.
        self.assertEqual(delete(admin, "mia@ops.test")[0], 200)
        self.assertEqual(mia.get("/desk")[0], 303)
        self.assertNotIn("mia@ops.test", self.staff_page(admin))

    def test_email_settings_and_dkim_keys(self):
        admin, mia = self.signed_in("tester@ops.test"), self.signed_in("mia@ops.test")
        status, _, page = admin.get("/settings/email")
        self.assertEqual(status, 200)
        self.assertIn("No relay is configured", page)
        self.assertIn("No DKIM key yet", page)
        status, _, page = admin.post("/settings/email/acme/dkim", {
            "csrf": admin.csrf(page), "selector": "desk2026", "algorithm": "rsa"})
        self.assertEqual(status, 200)
        record = re.search(r'<pre class="dkim-record"[^>]*>([^<]+)</pre>', page).group(1)
        self.assertIn("desk2026._domainkey.acme.test", record)
        self.assertIn("v=DKIM1; k=rsa; p=", record.replace('" "', ""))
        # Managers see the record but cannot replace keys; bad selectors change nothing.
        _, _, page = mia.get("/settings/email")
        self.assertIn("desk2026._domainkey", page)
        self.assertNotIn("/settings/email/acme/dkim", page)
        self.assertEqual(mia.post("/settings/email/acme/dkim", {"csrf": mia.csrf(page),
                                                                "selector": "x", "algorithm": "rsa"})[0], 403)
        _, _, page = admin.get("/settings/email")
        self.assertEqual(admin.post("/settings/email/acme/dkim", {
            "csrf": admin.csrf(page), "selector": "bad selector", "algorithm": "rsa"})[0], 400)
        self.assertEqual(admin.post("/settings/email/acme/dkim", {
            "csrf": admin.csrf(page), "selector": "ok", "algorithm": "md5"})[0], 400)
        self.assertIn("desk2026._domainkey", admin.get("/settings/email")[2])

    def test_emailed_sign_in_link_for_staff(self):
        b = Browser(self.srv)
        _, _, page = b.get("/signin")
        for address in ("mia@ops.test", "stranger@elsewhere.test"):
            status, _, answer = b.post("/signin/email", {"csrf": b.csrf(page), "email": address})
            self.assertEqual(status, 200)
            self.assertIn("If this address belongs to an employee, a sign-in link is on its way", answer)
        mail = wait_for(lambda: outbox_mails(self.srv, "mia@ops.test"))[0]
        time.sleep(0.5)
        self.assertEqual(outbox_mails(self.srv, "stranger@elsewhere.test"), [])
        status, headers, _ = Browser(self.srv).get(link_in(mail))
        self.assertEqual((status, headers["Location"]), (303, "/desk"))
        self.assertEqual(Browser(self.srv).post("/signin/email", {"email": "mia@ops.test"})[0], 403)


if __name__ == "__main__":
    unittest.main()
