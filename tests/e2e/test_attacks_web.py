"""Attacks on the web side, over real sockets with `requests` and urllib: guessing passwords
(throttled per address and per client with 429 + Retry-After, hashing bounded in memory,
link sign-in still open to the victim), escaping rate limits with forged or proxied client
addresses (trusted_proxies, IPv6 per /64), and the smaller guards: no-store caching,
`__Host-` cookies under https, sign-out-everywhere voiding links, the whitelist on guest
requests."""

import concurrent.futures
import re
import time
import unittest

import requests

from harness import Browser, Server, outbox_mails, staff_link, wait_for
from test_portal_modes import settings_form

PASSWORD = "correct horse battery"


def signin_form(srv):
    """A sign-in form's token and the cookie it pairs with (the double-submit token)."""
    r = requests.get(srv.url("/signin"), timeout=10)
    csrf = re.search(r'name="csrf" value="([^"]+)"', r.text).group(1)
    return {"postdesk_form": r.cookies["postdesk_form"]}, csrf


def try_password(srv, form, email, password, client=None):
    """One password attempt; `client` is sent as X-Forwarded-For."""
    cookies, csrf = form
    headers = {"X-Forwarded-For": client} if client else {}
    return requests.post(srv.url("/signin"), data={"csrf": csrf, "email": email,
                                                   "password": password},
                         cookies=cookies, headers=headers, allow_redirects=False, timeout=60)


def staff_links_in_mail(srv, address, count=1):
    """The paths of the staff sign-in links mailed to `address`, once `count` have come."""
    mails = wait_for(lambda: (lambda m: m if len(m) >= count else None)(
        [m for m in outbox_mails(srv, address) if "sign-in link" in str(m["Subject"])]))
    return {re.search(r"http://[^\s]+(/signin/link/[a-z0-9]+)",
                      m.get_body(("plain",)).get_content()).group(1) for m in mails}


def set_password(srv, link):
    b = Browser(srv)
    assert b.get(link)[0] == 303
    _, _, page = b.get("/account")
    _, _, page = b.post("/account/password", {"csrf": b.csrf(page), "password": PASSWORD})
    assert "Password set." in page, page
    return b


def guest_mode(srv, admin, **settings):
    """Turns Acme's portal to guest mode; returns the guest form's cookie and token."""
    _, _, page = admin.get("/settings/orgs/acme")
    status, _, page = admin.post("/settings/orgs/acme",
                                 dict(settings_form(page), portal_mode="guest", **settings))
    assert status == 200, page
    r = requests.get(srv.url("/portal/acme"), timeout=10)
    csrf = re.search(r'name="csrf" value="([^"]+)"', r.text).group(1)
    return {"postdesk_form": r.cookies["postdesk_form"]}, csrf


def guest_request(srv, form, headers, email="walkin@customer.test"):
    cookies, csrf = form
    return requests.post(srv.url("/portal/acme/guest"), cookies=cookies, headers=headers,
                         data={"csrf": csrf, "email": email, "summary": "Printer",
                               "description": "Jammed."}, timeout=10)


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1)) / 1024


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1)) / 1024


class PasswordGuessing(unittest.TestCase):
    """Attack 6. The server trusts 127.0.0.1 as its proxy, so the tests can speak for many
    clients with X-Forwarded-For; requests without that header come from the proxy."""

    def setUp(self):
        srv = Server(env={"POSTDESK_TRUSTED_PROXIES": "127.0.0.1"}).bootstrap()
        self.addCleanup(srv.close)
        self.link = staff_link(srv, "tester@ops.test")
        srv.start()
        self.srv = srv
        set_password(srv, self.link)

    def test_forty_wrong_passwords_are_throttled_and_the_victim_still_signs_in_by_link(self):
        form = signin_form(self.srv)
        answers = [try_password(self.srv, form, "tester@ops.test", f"guess {i}")
                   for i in range(40)]
        statuses = [r.status_code for r in answers]
        self.assertEqual(set(statuses), {401, 429}, statuses)
        self.assertLessEqual(statuses.count(401), 5, statuses)
        self.assertEqual(statuses[-1], 429)
        throttled = answers[-1]
        self.assertTrue(1 <= int(throttled.headers["Retry-After"]) <= 60, throttled.headers)
        self.assertIn("Too many sign-in attempts", throttled.text)
        # The account is throttled whoever asks, even with the right password ...
        r = try_password(self.srv, form, "Tester@ops.test", PASSWORD, client="198.51.100.50")
        self.assertEqual(r.status_code, 429)
        # ... and an unknown address is throttled just the same, so nothing tells them apart.
        unknown = [try_password(self.srv, signin_form(self.srv), "nobody@ops.test", f"g{i}",
                                client="198.51.100.51").status_code for i in range(8)]
        self.assertEqual(unknown, [401] * statuses.count(401) + [429] * (8 - statuses.count(401)))
        # The victim is not locked out: an emailed link signs them in.
        b = Browser(self.srv)
        _, _, page = b.get("/signin")
        b.post("/signin/email", {"csrf": b.csrf(page), "email": "tester@ops.test"})
        mailed, = staff_links_in_mail(self.srv, "tester@ops.test")
        status, headers, _ = Browser(self.srv).get(mailed)
        self.assertEqual((status, headers["Location"]), (303, "/desk"))

    def test_one_client_cannot_try_many_addresses_and_ipv6_counts_per_64(self):
        def attempts(client, n):
            form = signin_form(self.srv)
            return [try_password(self.srv, form, f"user{i}@{client.replace(':', '-')}.test",
                                 "guess", client=client).status_code for i in range(n)]

        first = attempts("2001:db8:7:7::1", 31)
        self.assertEqual(first[:30], [401] * 30)
        self.assertEqual(first[30], 429)
        # Another address in the same /64 is the same client; the next /64 is not.
        self.assertEqual(attempts("2001:db8:7:7:ffff::2", 1), [429])
        self.assertEqual(attempts("2001:db8:7:8::1", 1), [401])
        self.assertEqual(attempts("198.51.100.60", 1), [401])

    def test_a_flood_of_password_checks_stays_within_memory(self):
        pid = self.srv.proc.pid
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")  # resets the peak resident size to the current one
        except OSError:
            pass
        before = max(rss_mib(pid), 0)
        base_peak = peak_rss_mib(pid)
        form = signin_form(self.srv)
        jobs = [("tester@ops.test", f"203.0.113.{i}") for i in range(30)]
        jobs += [(f"nobody{i}@ops.test", f"198.51.100.{i}") for i in range(30)]
        with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
            statuses = list(pool.map(
                lambda j: try_password(self.srv, form, j[0], "wrong guess", client=j[1]).status_code,
                jobs))
        self.assertTrue(set(statuses) <= {401, 429, 503}, statuses)
        grown = peak_rss_mib(pid) - min(before, base_peak)
        # argon2 takes about 19 MiB a check: a few at a time, not sixty.
        self.assertLess(grown, 150, f"peak grew {grown:.0f} MiB: {statuses}")
        # The server still answers, and the right password still works elsewhere.
        self.assertEqual(requests.get(self.srv.url("/healthz"), timeout=10).status_code, 200)


class ForwardedClients(unittest.TestCase):
    """Attack 7: rate limits keyed on the client, not on the proxy in front of it, and not
    on whatever a client claims to be."""

    def server(self, env=None):
        srv = Server(env=env).bootstrap()
        self.addCleanup(srv.close)
        link = staff_link(srv, "tester@ops.test")
        srv.start()
        admin = Browser(srv)
        self.assertEqual(admin.get(link)[0], 303)
        return srv, admin

    def test_forwarding_headers_from_an_untrusted_client_change_nothing(self):
        srv, admin = self.server()
        form = guest_mode(srv, admin)
        for i in range(20):
            r = guest_request(srv, form, {"X-Forwarded-For": f"198.51.100.{i}"})
            self.assertEqual(r.status_code, 200, r.text[:300])
        for headers in ({"X-Forwarded-For": "203.0.113.99"},
                        {"Forwarded": "for=203.0.113.98"},
                        {"X-Forwarded-For": "2001:db8::1"}):
            with self.subTest(headers=headers):
                r = guest_request(srv, form, headers)
                self.assertEqual(r.status_code, 429)
                self.assertGreaterEqual(int(r.headers["Retry-After"]), 1)
                self.assertIn("Too many requests from your network", r.text)

    def test_behind_a_trusted_proxy_each_client_has_its_own_quota(self):
        srv, admin = self.server({"POSTDESK_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8"})
        form = guest_mode(srv, admin)
        # One abuser, whatever it writes to the left of what the proxies appended.
        for i in range(20):
            r = guest_request(srv, form, {"X-Forwarded-For": f"6.6.6.{i}, 198.51.100.7, 10.1.1.1"})
            self.assertEqual(r.status_code, 200, r.text[:300])
        # Everyone else behind the same proxy is still served ...
        r = guest_request(srv, form, {"X-Forwarded-For": "203.0.113.9"})
        self.assertEqual(r.status_code, 200, r.text[:300])
        r = guest_request(srv, form, {"Forwarded": 'for="[2001:db8:5::1]:4711"'})
        self.assertEqual(r.status_code, 200, r.text[:300])
        # ... and the abuser is not.
        r = guest_request(srv, form, {"X-Forwarded-For": "7.7.7.7, 198.51.100.7"})
        self.assertEqual(r.status_code, 429)

    def test_sign_in_links_are_limited_per_forwarded_client(self):
        srv, _ = self.server({"POSTDESK_TRUSTED_PROXIES": "127.0.0.1"})
        b = requests.Session()
        page = b.get(srv.url("/portal/acme"), timeout=10).text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)

        def ask(address, client):
            r = b.post(srv.url("/portal/acme/link"), data={"csrf": csrf, "email": address},
                       headers={"X-Forwarded-For": client}, timeout=10)
            self.assertEqual(r.status_code, 200)

        for i in range(31):
            ask(f"probe{i}@customer.test", "198.51.100.8")
        ask("someone@customer.test", "203.0.113.10")

        def queued_once_the_last_is():
            # The notifier renders and queues the links the desk asked for, in order.
            q = {m["recipient"] for m in srv.api("/api/v1/outbox?limit=100")["outbox"]}
            return q if "someone@customer.test" in q else None

        queued = wait_for(queued_once_the_last_is)
        self.assertIn("probe29@customer.test", queued)
        self.assertNotIn("probe30@customer.test", queued, "the abuser's quota is 30 an hour")
        self.assertIn("someone@customer.test", queued, "another client is not limited by it")


class SmallerGuards(unittest.TestCase):
    def test_signed_in_pages_and_api_answers_are_not_stored(self):
        srv = Server().bootstrap()
        self.addCleanup(srv.close)
        link = staff_link(srv, "tester@ops.test")
        srv.start()
        b = Browser(srv)
        b.get(link)
        for path in ("/desk", "/dashboard", "/account"):
            with self.subTest(path=path):
                status, headers, _ = b.get(path)
                self.assertEqual(status, 200)
                self.assertEqual(headers["Cache-Control"], "no-store")
        r = requests.get(srv.url("/api/v1/tickets"), timeout=10,
                         headers={"Authorization": f"Bearer {srv.token}"})
        self.assertEqual((r.status_code, r.headers.get("Cache-Control")), (200, "no-store"))

    def test_cookies_are_host_only_under_https(self):
        srv = Server(env={"POSTDESK_PUBLIC_URL": "https://desk.example.test"}).bootstrap()
        self.addCleanup(srv.close)
        link = staff_link(srv, "tester@ops.test")
        srv.start()
        r = requests.get(srv.url("/signin"), timeout=10)
        form_cookie = r.headers["Set-Cookie"]
        r = requests.get(srv.url(link), allow_redirects=False, timeout=10)
        self.assertEqual(r.status_code, 303)
        session_cookie = r.headers["Set-Cookie"]
        for cookie, name in ((form_cookie, "__Host-postdesk_form="),
                             (session_cookie, "__Host-postdesk_session=")):
            with self.subTest(name=name):
                self.assertTrue(cookie.startswith(name), cookie)
                attributes = [a.strip() for a in cookie.split(";")]
                self.assertIn("Secure", attributes)
                self.assertIn("Path=/", attributes)
                self.assertFalse([a for a in attributes if a.lower().startswith("domain")])
        session = re.match(r"__Host-postdesk_session=([a-z0-9]+)", session_cookie).group(1)
        desk = lambda cookie: requests.get(srv.url("/desk"), headers={"Cookie": cookie},
                                           allow_redirects=False, timeout=10).status_code
        self.assertEqual(desk(f"__Host-postdesk_session={session}"), 200)
        # The unprefixed name (which a subdomain or plain HTTP could plant) is not read.
        self.assertEqual(desk(f"postdesk_session={session}"), 303)

    def test_sign_out_everywhere_voids_outstanding_links(self):
        srv = Server().bootstrap()
        self.addCleanup(srv.close)
        used, waiting = staff_link(srv, "tester@ops.test"), staff_link(srv, "tester@ops.test")
        srv.start()
        b = Browser(srv)
        self.assertEqual(b.get(used)[0], 303)
        anonymous = Browser(srv)
        _, _, page = anonymous.get("/signin")
        token = anonymous.csrf(page)
        anonymous.post("/signin/email", {"csrf": token, "email": "tester@ops.test"})
        mailed, = staff_links_in_mail(srv, "tester@ops.test")
        _, _, page = b.get("/account")
        b.post("/signout/everywhere", {"csrf": b.csrf(page)})
        for link in (used, waiting, mailed):
            with self.subTest(link=link):
                status, _, page = Browser(srv).get(link)
                self.assertEqual(status, 403)
                self.assertIn("not valid", page)
        # A link asked for afterwards works.
        anonymous.post("/signin/email", {"csrf": token, "email": "tester@ops.test"})
        fresh, = staff_links_in_mail(srv, "tester@ops.test", count=2) - {mailed}
        self.assertEqual(Browser(srv).get(fresh)[0], 303)

    def test_guest_requests_honour_the_whitelist(self):
        srv = Server().bootstrap()
        self.addCleanup(srv.close)
        link = staff_link(srv, "tester@ops.test")
        srv.start()
        admin = Browser(srv)
        admin.get(link)
        form = guest_mode(srv, admin, whitelist="customer.test")
        r = guest_request(srv, form, {}, email="eve@elsewhere.test")
        self.assertEqual(r.status_code, 403)
        self.assertIn("only takes requests from the addresses its organization has allowed", r.text)
        self.assertEqual(srv.tickets(), [])
        r = guest_request(srv, form, {}, email="ok@customer.test")
        self.assertEqual(r.status_code, 200)
        self.assertEqual(len(srv.tickets()), 1)


if __name__ == "__main__":
    unittest.main()
