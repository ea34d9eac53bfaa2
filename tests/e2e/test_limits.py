"""Limits and transport: STARTTLS with a configured certificate, command and data
timeouts, and per-client-IP connection and message rates."""

import os
import smtplib
import socket
import ssl
import subprocess
import time
import unittest

from harness import Server, mail
from test_protocol import Raw




class StartTls(unittest.TestCase):
    def test_starttls_then_mail(self):
        srv = Server()
        self.addCleanup(srv.close)
        cert, key = os.path.join(srv.dir, "cert.pem"), os.path.join(srv.dir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=acme.test", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        srv.env.update(POSTDESK_TLS_CERT=cert, POSTDESK_TLS_KEY=key)
        srv.bootstrap().start()
        ctx = ssl.create_default_context(cafile=cert)
        ctx.check_hostname = False
        m = mail("rita@customer.test", "acme@acme.test", "over TLS")
        with smtplib.SMTP("127.0.0.1", srv.smtp_port) as s:
            s.ehlo()
            self.assertTrue(s.has_extn("starttls"))
            s.starttls(context=ctx)
            s.ehlo()
            self.assertFalse(s.has_extn("starttls"), "not offered twice")
            self.assertIsInstance(s.sock, ssl.SSLSocket)
            s.send_message(m)
        self.assertEqual(srv.decision_for(m["Message-ID"])["outcome"], "accepted")

    def test_half_configured_tls_is_refused_at_start(self):
        srv = Server(env={"POSTDESK_TLS_CERT": "/nonexistent.pem"})
        self.addCleanup(srv.close)
        r = srv.cli("config", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("tls_cert and tls_key must be set together", r.stderr)


class Timeouts(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(env={"POSTDESK_COMMAND_TIMEOUT_SECS": "1",
                              "POSTDESK_DATA_TIMEOUT_SECS": "1"}).bootstrap().start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()

    def test_idle_client_is_closed_with_421(self):
        c = Raw(self.srv.smtp_port)
        c.cmd("EHLO slow.test")
        t0 = time.time()
        self.assertTrue(c.reply().startswith("421 4.4.2"))
        self.assertLess(time.time() - t0, 10)
        c.close()

    def test_stalled_data_is_not_accepted(self):
        c = Raw(self.srv.smtp_port)
        c.cmd("EHLO slow.test")
        c.cmd("MAIL FROM:<a@x.test>")
        c.cmd("RCPT TO:<acme@acme.test>")
        c.cmd("DATA")
        c.send(b"Subject: half\r\nMessage-ID: <stalled@x.test>\r\n\r\nhalf a message")
        self.assertTrue(c.reply().startswith("421 4.4.2"))
        c.close()
        time.sleep(1.5)
        self.assertFalse([d for d in self.srv.decisions() if d.get("message_id") == "<stalled@x.test>"])


class Rates(unittest.TestCase):
    def test_message_rate_per_sender(self):
        srv = Server(env={"POSTDESK_MESSAGES_PER_SENDER_PER_MINUTE": "2"}).bootstrap().start()
        self.addCleanup(srv.close)
        with smtplib.SMTP("127.0.0.1", srv.smtp_port) as s:
            s.send_message(mail("rita@customer.test", "acme@acme.test", "one"), from_addr="flood@customer.test")
            s.send_message(mail("rita@customer.test", "acme@acme.test", "two"), from_addr="FLOOD@customer.test")
            with self.assertRaises(smtplib.SMTPSenderRefused) as e:
                s.send_message(mail("rita@customer.test", "acme@acme.test", "three"), from_addr="flood@customer.test")
            self.assertEqual(e.exception.smtp_code, 451)
            s.send_message(mail("rita@customer.test", "acme@acme.test", "other sender"), from_addr="calm@customer.test")
            s.sendmail("", ["acme@acme.test"], mail("rita@customer.test", "acme@acme.test", "bounce").as_string())

    def test_connection_and_message_rates_per_ip(self):
        srv = Server(env={"POSTDESK_CONNECTIONS_PER_MINUTE": "4",
                          "POSTDESK_MESSAGES_PER_MINUTE": "2"}).bootstrap().start()
        self.addCleanup(srv.close)
        with smtplib.SMTP("127.0.0.1", srv.smtp_port) as s:
            s.send_message(mail("rita@customer.test", "acme@acme.test", "one"))
            s.send_message(mail("rita@customer.test", "acme@acme.test", "two"))
            with self.assertRaises(smtplib.SMTPSenderRefused) as e:
                s.send_message(mail("rita@customer.test", "acme@acme.test", "three"))
            self.assertEqual(e.exception.smtp_code, 451)
            self.assertIn(b"4.7.1", e.exception.smtp_error)
        for _ in range(3):
            Raw(srv.smtp_port).close()
        refused = Raw(srv.smtp_port)
        self.assertTrue(refused.greeting.startswith("421 4.7.0"), refused.greeting)
        refused.close()



class Shutdown(unittest.TestCase):
    def test_sigterm_tells_idle_clients_and_exits_promptly(self):
        srv = Server().bootstrap().start()
        self.addCleanup(srv.close)
        idle = Raw(srv.smtp_port)
        idle.cmd("EHLO idle.test")
        t0 = time.time()
        srv.proc.terminate()
        self.assertTrue(idle.reply().startswith("421 4.3.2"))
        srv.proc.wait(timeout=15)
        self.assertLess(time.time() - t0, 8)
        self.assertEqual(srv.proc.returncode, 0)
        idle.close()

    def test_a_web_request_that_never_ends_does_not_hold_the_stop(self):
        # Half a request (no blank line after the headers), sent by nobody signed in: the
        # stop waits for it at most its grace period (15 s), not forever.
        srv = Server().bootstrap().start()
        self.addCleanup(srv.close)
        half = socket.create_connection(("127.0.0.1", srv.http_port), timeout=60)
        self.addCleanup(half.close)
        half.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.3)
        t0 = time.time()
        srv.proc.terminate()
        srv.proc.wait(timeout=40)
        self.assertLess(time.time() - t0, 25)
        self.assertEqual(srv.proc.returncode, 0)


if __name__ == "__main__":
    unittest.main()
