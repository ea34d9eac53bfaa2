"""The authorization matrix: every route of the web UI and the API, for an anonymous
visitor, a portal user of another organization, a Tech not involved in the ticket, a Tech
involved (assigned), a Manager, an Admin and the Owner, against the status each must get.
Techs must never see other tickets in lists, search, pages, originals or attachments."""

import re
import smtplib
import unittest

from harness import Browser, Server, mail, outbox_mails, sign_in_link, staff_link, wait_for

WHO = ("anonymous", "portal_other_org", "tech_outside", "tech_involved", "manager", "admin", "owner")
STAFF = {"tech_outside": "tina@ops.test", "tech_involved": "theo@ops.test",
         "manager": "mia@ops.test", "admin": "tester@ops.test", "owner": "olga@ops.test"}

# Staff pages: for those who are no staff, a redirect to the sign-in page.
OUT = 303
# route -> status per principal, in WHO's order. {n}: the ticket; {seq}: its first event;
# {sha}: its attachment; {mid}: its Message-ID.
PAGES = [
    ("GET", "/dashboard",                       (OUT, OUT, 200, 200, 200, 200, 200)),
    ("GET", "/desk",                            (OUT, OUT, 200, 200, 200, 200, 200)),
    ("GET", "/desk/tickets/{n}",                (OUT, OUT, 404, 200, 200, 200, 200)),
    ("GET", "/desk/tickets/{n}/original/{seq}", (OUT, OUT, 404, 200, 200, 200, 200)),
    ("GET", "/desk/tickets/{n}/attachments/{sha}", (OUT, OUT, 404, 200, 200, 200, 200)),
    ("POST", "/desk/tickets/{n}",               (OUT, OUT, 404, 303, 303, 303, 303)),
    ("POST", "/desk/tickets/{n}/fields",        (OUT, OUT, 404, 303, 303, 303, 303)),
    ("POST", "/desk/tickets/{n}/time",          (OUT, OUT, 404, 303, 303, 303, 303)),
    ("POST", "/desk/tickets/{n}/follow",        (OUT, OUT, 404, 303, 303, 303, 303)),
    ("GET", "/settings/orgs",                   (OUT, OUT, 403, 403, 200, 200, 200)),
    ("POST", "/settings/orgs",                  (OUT, OUT, 403, 403, 403, 303, 303)),
    ("GET", "/settings/orgs/acme",              (OUT, OUT, 403, 403, 200, 200, 200)),
    ("POST", "/settings/orgs/acme",             (OUT, OUT, 403, 403, 403, 200, 200)),
    ("POST", "/settings/orgs/acme/directory-secret", (OUT, OUT, 403, 403, 403, 200, 200)),
    ("GET", "/settings/staff",                  (OUT, OUT, 403, 403, 200, 200, 200)),
    ("POST", "/settings/staff",                 (OUT, OUT, 403, 403, 403, 200, 200)),
    ("GET", "/settings/email",                  (OUT, OUT, 403, 403, 200, 200, 200)),
    ("POST", "/settings/email/acme/dkim",       (OUT, OUT, 403, 403, 403, 200, 200)),
    ("GET", "/account",                         (OUT, OUT, 200, 200, 200, 200, 200)),
    ("POST", "/account/alerts",                 (OUT, OUT, 303, 303, 303, 303, 303)),
    # The portal of acme: open to all as a sign-in page; its tickets only to their owners.
    ("GET", "/portal/acme",                     (200, 200, 200, 200, 200, 200, 200)),
    ("GET", "/portal/acme/tickets/{n}",         (OUT, OUT, OUT, OUT, OUT, OUT, OUT)),
    ("POST", "/portal/acme/mail",               (OUT, OUT, OUT, OUT, OUT, OUT, OUT)),
]
API = [
    ("GET", "/api/v1/tickets/{n}",              (401, 401, 404, 200, 200, 200, 200)),
    ("GET", "/api/v1/messages/{mid}/raw",       (401, 401, 404, 200, 200, 200, 200)),
    ("GET", "/api/v1/inbound",                  (401, 401, 403, 403, 200, 200, 200)),
    ("GET", "/api/v1/outbox",                   (401, 401, 403, 403, 200, 200, 200)),
    ("GET", "/api/v1/sources",                  (401, 401, 403, 403, 200, 200, 200)),
    ("GET", "/api/v1/tickets/{n}/reply-address?for=x@y.test", (401, 401, 403, 403, 200, 200, 200)),
    ("POST", "/api/v1/tickets/{n}/notes",       (401, 401, 404, 201, 201, 201, 201)),
    ("PATCH", "/api/v1/tickets/{n}",            (401, 401, 404, 200, 200, 200, 200)),
]


class Authorization(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        srv = Server().bootstrap(
            orgs=(("acme", "Acme", []), ("beta", "Beta", [])),
            staff=[("tina@ops.test", "Tina", "tech"), ("theo@ops.test", "Theo", "tech"),
                   ("mia@ops.test", "Mia", "manager"), ("olga@ops.test", "Olga", "owner")])
        cls.srv = srv
        links = {who: staff_link(srv, email) for who, email in STAFF.items()}
        cls.tokens = {who: srv.cli("token", "create", email).stdout.strip()
                      for who, email in STAFF.items()}
        srv.start()
        m = mail("rita@customer.test", "acme@acme.test", "Secret plans",
                 message_id="<matrix@customer.test>")
        m.add_attachment(b"confidential", maintype="application", subtype="octet-stream",
                         filename="plans.bin")
        with smtplib.SMTP("127.0.0.1", srv.smtp_port) as s:
            s.send_message(m)
        cls.n = srv.decision_for("<matrix@customer.test>")["ticket"]
        srv.send("PATCH", f"/api/v1/tickets/{cls.n}", {"assignee": "theo@ops.test"})
        cls.browsers = {"anonymous": Browser(srv)}
        for who, link in links.items():
            b = Browser(srv)
            assert b.get(link)[0] == 303
            cls.browsers[who] = b
        portal = Browser(srv)
        _, _, page = portal.get("/portal/beta")
        portal.post("/portal/beta/link", {"csrf": portal.csrf(page), "email": "rita@customer.test"})
        assert portal.get(sign_in_link(srv, "rita@customer.test"))[0] == 303
        cls.browsers["portal_other_org"] = portal
        _, _, page = cls.browsers["admin"].get(f"/desk/tickets/{cls.n}")
        cls.values = {
            "n": cls.n,
            "seq": re.search(rf'/desk/tickets/{cls.n}/original/(\d+)', page).group(1),
            "sha": re.search(rf'/desk/tickets/{cls.n}/attachments/([0-9a-f]+)', page).group(1),
            "mid": "matrix@customer.test",
        }

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()

    def form_for(self, who, path):
        """A valid form for the route, with this principal's own CSRF token if it has one."""
        b = self.browsers[who]
        token = ""
        if who in STAFF:
            _, _, page = b.get("/account")
            token = b.csrf(page)
        elif who == "portal_other_org":
            token = b.csrf(b.get("/portal/beta")[2])
        n = self.n
        if path.endswith("/fields"):
            t = self.srv.ticket(n)
            # Always a change, so the answer is the redirect after saving.
            priority = "low" if t["priority"] != "low" else "urgent"
            return {"csrf": token, "status": t["status"], "type": t["type"], "priority": priority,
                    "assignee": t["assignee"] or "", "due": "", "category": "",
                    "contact": t["requester"], "cc": ""}
        if path.endswith("/time"):
            return {"csrf": token, "minutes": "5"}
        if path == "/account/alerts":
            return {"csrf": token, "alerts": "on"}
        if path.endswith("/follow"):
            return {"csrf": token, "follow": "yes"}
        if path == f"/desk/tickets/{n}":
            return {"csrf": token, "text": f"note by {who}", "visibility": "internal"}
        if path == "/settings/orgs/acme":
            return {"csrf": token, "name": "Acme", "extra_addresses": "", "whitelist": "",
                    "categories": "", "category_field": "hidden", "portal_mode": "email_link",
                    "page_title": "", "form_title": "", "form_message": "", "success_title": "",
                    "displayed_email": ""}
        if path == "/settings/email/acme/dkim":
            return {"csrf": token, "selector": f"s-{who.replace('_', '-')}", "algorithm": "ed25519"}
        if path == "/settings/orgs":
            return {"csrf": token, "slug": f"org-{who.replace('_', '-')}", "name": who}
        if path == "/settings/staff":
            return {"csrf": token, "name": f"New {who}", "email": f"new-{who}@ops.test",
                    "role": "tech", "rate": "0"}
        return {"csrf": token}

    def test_pages(self):
        for method, route, expected in PAGES:
            path = route.format(**self.values)
            for who, want in zip(WHO, expected):
                with self.subTest(route=route, who=who):
                    b = self.browsers[who]
                    if method == "GET":
                        status, headers, _ = b.get(path)
                    else:
                        status, headers, _ = b.post(path, self.form_for(who, path))
                    self.assertEqual(status, want)
                    staff_route = route.startswith(("/desk", "/dashboard", "/settings", "/account"))
                    if who not in STAFF and staff_route:
                        self.assertEqual(headers["Location"], "/signin")

    def test_api(self):
        for method, route, expected in API:
            path = route.format(**self.values)
            for who, want in zip(WHO, expected):
                with self.subTest(route=route, who=who):
                    token = self.tokens.get(who, "")
                    if method == "GET":
                        self.srv.api(path, token=token, expect=want)
                    elif method == "POST":
                        self.srv.send("POST", path, {"text": f"api note by {who}"}, token=token, expect=want)
                    else:
                        self.srv.send("PATCH", path, {"priority": "high"}, token=token, expect=want)

    def test_a_tech_never_sees_other_tickets_anywhere(self):
        tina = self.browsers["tech_outside"]
        self.assertNotIn("Secret plans", tina.get("/desk")[2])
        self.assertNotIn("Secret plans", tina.get("/desk?q=secret")[2])
        self.assertNotIn("Secret plans", tina.get("/dashboard")[2])
        listed = self.srv.api("/api/v1/tickets", token=self.tokens["tech_outside"])["tickets"]
        self.assertEqual(listed, [])
        theo = self.browsers["tech_involved"]
        self.assertIn("Secret plans", theo.get("/desk?q=secret")[2])
        # Nor do end users of another organization, through the portal.
        portal = self.browsers["portal_other_org"]
        self.assertNotIn("Secret plans", portal.get("/portal/beta")[2])
        self.assertEqual(portal.get(f"/portal/beta/tickets/{self.n}")[0], 404)


if __name__ == "__main__":
    unittest.main()
