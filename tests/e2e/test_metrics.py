"""`/metrics` in Prometheus text format, read by the Prometheus project's own parser
(prometheus_client): inbound answers by reason, pipeline and outbox gauges, HTTP requests
by route pattern; only for the clients of metrics_allow, also behind a reverse proxy;
labels a stranger cannot multiply."""

import http.client
import smtplib
import unittest
import uuid

from prometheus_client.parser import text_string_to_metric_families

from harness import Server, mail, wait_for


def scrape(srv, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=10)
    conn.request("GET", "/metrics", headers=headers or {})
    r = conn.getresponse()
    return r.status, r.getheader("Content-Type"), r.read().decode()


def samples(text):
    """{(name, frozenset(labels)): value} of every sample."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(found, name, **labels):
    return found.get((name, frozenset(labels.items())))


class Metrics(unittest.TestCase):
    def test_counts_answers_and_requests_in_prometheus_text(self):
        srv = Server().bootstrap()
        self.addCleanup(srv.close)
        srv.start()
        with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30) as s:
            for i in range(2):
                s.send_message(mail("ann@customer.test", "acme@acme.test", f"Hello {i}"))
            with self.assertRaises(smtplib.SMTPRecipientsRefused):
                s.send_message(mail("ann@customer.test", "nobody@acme.test", "Lost"))
        wait_for(lambda: len(srv.tickets()) == 2)
        n = srv.tickets()[0]["number"]
        srv.api(f"/api/v1/tickets/{n}")
        # A stranger's paths and methods: counted, but as one route and one method.
        for _ in range(5):
            conn = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=10)
            conn.request("PROPFIND", f"/nope/{uuid.uuid4().hex}")
            conn.getresponse().read()

        status, content_type, text = scrape(srv)
        self.assertEqual(status, 200, text)
        self.assertTrue(content_type.startswith("text/plain; version=0.0.4"), content_type)
        found = samples(text)
        self.assertEqual(value(found, "postdesk_inbound_messages_total",
                               outcome="accepted", reason="spooled"), 2)
        self.assertEqual(value(found, "postdesk_inbound_messages_total",
                               outcome="refused", reason="no_such_mailbox"), 1)
        self.assertEqual(value(found, "postdesk_pipeline_decisions_total", outcome="accepted"), 2)
        self.assertEqual(value(found, "postdesk_pipeline_backlog_messages"), 0)
        self.assertEqual(value(found, "postdesk_pipeline_lag_seconds"), 0)
        self.assertIsNotNone(value(found, "postdesk_outbox_queue_mails"))
        self.assertEqual(value(found, "postdesk_http_requests_total",
                               route="/api/v1/tickets/{number}", method="GET", status="200"), 1)
        self.assertEqual(value(found, "postdesk_http_request_duration_seconds_count",
                               route="/api/v1/tickets/{number}", method="GET"), 1)
        self.assertEqual(value(found, "postdesk_http_requests_total",
                               route="unmatched", method="other", status="404"), 5)
        self.assertNotIn("/nope/", text)
        self.assertNotIn("PROPFIND", text)
        self.assertEqual(value(found, "postdesk_jobs_led", job="outbox"), 1)
        if srv.env.get("POSTDESK_DATABASE_URL"):
            self.assertGreaterEqual(value(found, "postdesk_database_pool_connections",
                                          state="max"), 1)

    def test_a_proxy_not_trusted_hides_who_asks(self):
        # A reverse proxy on this host, not named in trusted_proxies: every client would
        # look like loopback, so forwarded requests are refused.
        srv = Server().bootstrap()
        self.addCleanup(srv.close)
        srv.start()
        self.assertEqual(scrape(srv)[0], 200)
        for header in ("X-Forwarded-For", "X-Real-IP"):
            self.assertEqual(scrape(srv, {header: "203.0.113.9"})[0], 403, header)
        self.assertEqual(scrape(srv, {"Forwarded": "for=203.0.113.9"})[0], 403)

    def test_only_the_allowed_clients_read_it_also_behind_a_proxy(self):
        # Loopback is a trusted proxy here: what it forwards names the client.
        srv = Server(env={"POSTDESK_TRUSTED_PROXIES": "127.0.0.1",
                          "POSTDESK_METRICS_ALLOW": "10.1.0.0/16"}).bootstrap()
        self.addCleanup(srv.close)
        srv.start()
        status, _, body = scrape(srv)
        self.assertEqual(status, 403, "loopback is not in metrics_allow")
        self.assertNotIn("postdesk_", body)
        status, _, _ = scrape(srv, {"X-Forwarded-For": "203.0.113.9"})
        self.assertEqual(status, 403, "a stranger through the proxy")
        status, _, text = scrape(srv, {"X-Forwarded-For": "10.1.2.3"})
        self.assertEqual(status, 200, "the monitoring host through the proxy")
        self.assertIn("postdesk_http_requests_total", text)


if __name__ == "__main__":
    unittest.main()
