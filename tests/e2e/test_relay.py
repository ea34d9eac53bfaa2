"""Relay transport against a real SMTP server nobody here wrote (Python's aiosmtpd): mail
arrives DKIM-signed from the organization's address; temporary failures (451, relay down)
are retried with backoff until delivered; a permanent refusal (550) is marked failed with
the server's answer, visible in GET /api/v1/outbox.

The relay's `tls` setting against a raw-socket relay that offers AUTH but no STARTTLS
(issue 11, attack 8): credentials never cross it in clear, the mail waits with a clear
error; `opportunistic` without credentials delivers; bad settings are refused."""

import base64
import os
import smtplib
import socket
import socketserver
import subprocess
import threading
import time
import unittest

from aiosmtpd.controller import Controller

from harness import BIN, Server, free_port, mail, wait_for


class Relay:
    """Accepts everything except recipients starting with "reject"; "flaky" recipients get
    451 twice before their mail is taken."""

    def __init__(self):
        self.received = []
        self.tries = {}

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("reject"):
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        rcpt = envelope.rcpt_tos[0]
        if rcpt.startswith("flaky"):
            self.tries[rcpt] = self.tries.get(rcpt, 0) + 1
            if self.tries[rcpt] <= 2:
                return "451 4.3.0 Try again later"
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 2.0.0 Queued"




class RelayTransport(unittest.TestCase):
    def test_delivery_retries_and_refusals(self):
        relay_port = free_port()
        handler = Relay()
        # aiosmtpd offers no STARTTLS; it listens on loopback, where clear text may go.
        srv = Server(env={"POSTDESK_RELAY_URL": f"smtp://127.0.0.1:{relay_port}",
                          "POSTDESK_RELAY_TLS": "none",
                          "POSTDESK_RELAY_RETRY_BASE_SECS": "1"}).bootstrap()
        self.addCleanup(srv.close)
        srv.cli("dkim", "generate", "--org", "acme", "--selector", "s1")
        srv.start()
        # The relay is down at first: the mail waits and is retried.
        with smtplib.SMTP("127.0.0.1", srv.smtp_port) as s:
            s.send_message(mail("early@customer.test", "acme@acme.test", "help for early@customer.test", "please"))
        wait_for(lambda: [o for o in srv.api("/api/v1/outbox")["outbox"]
                          if o["attempts"] >= 1 and o["recipient"] == "early@customer.test"], timeout=15)
        early = [o for o in srv.api("/api/v1/outbox")["outbox"] if o["recipient"] == "early@customer.test"][0]
        self.assertEqual(early["status"]["state"], "pending")
        self.assertTrue(early["last_error"])
        running = []  # aiosmtpd cannot be stopped twice: stop what still runs at the end
        self.addCleanup(lambda: [c.stop() for c in running])
        controller = Controller(handler, hostname="127.0.0.1", port=relay_port)
        controller.start()
        running.append(controller)
        with smtplib.SMTP("127.0.0.1", srv.smtp_port) as s:
            for frm in ("ok@customer.test", "flaky@customer.test", "reject@customer.test"):
                s.send_message(mail(frm, "acme@acme.test", f"help for {frm}", "please"))

        def states():
            return {o["recipient"]: o for o in srv.api("/api/v1/outbox")["outbox"]
                    if o["recipient"].endswith("@customer.test")}

        done = wait_for(lambda: (lambda st: st if len(st) == 4 and all(
            o["status"]["state"] != "pending" for o in st.values()) else None)(states()), timeout=60)
        self.assertEqual(done["ok@customer.test"]["status"]["state"], "sent")
        self.assertEqual(done["early@customer.test"]["status"]["state"], "sent")
        flaky = done["flaky@customer.test"]
        self.assertEqual((flaky["status"]["state"], flaky["attempts"]), ("sent", 3))
        self.assertIn("451", flaky["last_error"])
        rejected = done["reject@customer.test"]
        self.assertEqual(rejected["status"]["state"], "failed")
        self.assertIn("550", rejected["status"]["reason"])
        self.assertIn("User unknown", rejected["status"]["reason"])
        got = {tuple(r[1]): r for r in handler.received if r[1][0].endswith("@customer.test")}
        self.assertEqual(set(got), {("ok@customer.test",), ("flaky@customer.test",), ("early@customer.test",)})
        mail_from, _, content = got[("ok@customer.test",)]
        self.assertEqual(mail_from, "acme@acme.test")
        self.assertTrue(content.startswith(b"DKIM-Signature:"), content[:80])
        self.assertIn(b"Auto-Submitted: auto-replied", content)
        # Relay down again, a mail waiting, and Postdesk SIGKILLed: after the restart the
        # waiting mail is delivered once, and nothing delivered before is sent again.
        controller.stop()
        running.remove(controller)
        with smtplib.SMTP("127.0.0.1", srv.smtp_port) as s:
            s.send_message(mail("late@customer.test", "acme@acme.test", "help for late@customer.test", "please"))
        wait_for(lambda: [o for o in srv.api("/api/v1/outbox")["outbox"]
                          if o["recipient"] == "late@customer.test" and o["attempts"] >= 1], timeout=15)
        srv.kill()
        srv.start()
        controller = Controller(handler, hostname="127.0.0.1", port=relay_port)
        controller.start()
        running.append(controller)
        wait_for(lambda: states().get("late@customer.test", {}).get("status", {}).get("state") == "sent", timeout=30)
        time.sleep(2)
        customers = [r[1][0] for r in handler.received if r[1][0].endswith("@customer.test")]
        self.assertEqual(sorted(customers), ["early@customer.test", "flaky@customer.test",
                                             "late@customer.test", "ok@customer.test"],
                         "each delivered exactly once")


USER = "desk-relay-user"
PASSWORD = "S3cret-relay-pw"


class NoStartTlsRelay(socketserver.ThreadingTCPServer):
    """A relay written with raw sockets: its EHLO answer offers AUTH PLAIN LOGIN and no
    STARTTLS, it accepts whatever it is told, and it records every command line and every
    byte it receives."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        self.lock = threading.Lock()
        self.commands = []   # command lines (DATA content excluded)
        self.raw = b""       # every byte received
        self.delivered = []  # (mail from, rcpt to, content)
        super().__init__(("127.0.0.1", 0), NoStartTlsHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self):
        return self.server_address[1]

    def verbs(self):
        with self.lock:
            return [c.split(b" ")[0].upper() for c in self.commands]

    def close(self):
        self.shutdown()
        self.server_close()


class NoStartTlsHandler(socketserver.StreamRequestHandler):
    def handle(self):
        relay = self.server
        self.wfile.write(b"220 relay.test ESMTP raw\r\n")
        mail_from, rcpts = None, []
        while True:
            line = self.rfile.readline(10000)
            if not line:
                return
            with relay.lock:
                relay.commands.append(line.rstrip(b"\r\n"))
                relay.raw += line
            verb = line.split(b" ")[0].strip().upper()
            if verb in (b"EHLO", b"HELO"):
                self.wfile.write(b"250-relay.test\r\n250-AUTH PLAIN LOGIN\r\n250-8BITMIME\r\n250 SIZE 52428800\r\n")
            elif verb == b"AUTH":
                # A relay that takes any login, so the old code's leak completes.
                if line.split()[1:2] == [b"LOGIN"]:
                    for prompt in (b"334 VXNlcm5hbWU6\r\n", b"334 UGFzc3dvcmQ6\r\n"):
                        self.wfile.write(prompt)
                        answer = self.rfile.readline(10000)
                        with relay.lock:
                            relay.raw += answer
                self.wfile.write(b"235 2.7.0 Authentication successful\r\n")
            elif verb == b"MAIL":
                mail_from = line[line.index(b"<") + 1:line.index(b">")].decode()
                self.wfile.write(b"250 2.1.0 OK\r\n")
            elif verb == b"RCPT":
                rcpts.append(line[line.index(b"<") + 1:line.index(b">")].decode())
                self.wfile.write(b"250 2.1.5 OK\r\n")
            elif verb == b"DATA":
                self.wfile.write(b"354 go ahead\r\n")
                content = b""
                while True:
                    part = self.rfile.readline(100000)
                    if not part or part == b".\r\n":
                        break
                    content += part
                with relay.lock:
                    relay.raw += content
                    relay.delivered.append((mail_from, rcpts, content))
                mail_from, rcpts = None, []
                self.wfile.write(b"250 2.0.0 queued\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 2.0.0 bye\r\n")
                return
            else:
                self.wfile.write(b"250 2.0.0 OK\r\n")


def customer_outbox(srv, address):
    return [o for o in srv.api("/api/v1/outbox")["outbox"] if o["recipient"] == address]


class RelayTls(unittest.TestCase):
    def relay(self):
        relay = NoStartTlsRelay()
        self.addCleanup(relay.close)
        return relay

    def test_credentials_never_cross_a_relay_without_starttls(self):
        relay = self.relay()
        srv = Server(env={"POSTDESK_RELAY_URL": f"smtp://127.0.0.1:{relay.port}",
                          "POSTDESK_RELAY_USERNAME": USER, "POSTDESK_RELAY_PASSWORD": PASSWORD,
                          "POSTDESK_RELAY_RETRY_BASE_SECS": "1"}).bootstrap()
        self.addCleanup(srv.close)
        srv.start()  # tls unset: "required" is the default
        with smtplib.SMTP("127.0.0.1", srv.smtp_port) as s:
            s.send_message(mail("victim@customer.test", "acme@acme.test", "help", "please"))
        # Retried with the usual backoff, never sent: the mail waits with a clear error.
        item = wait_for(lambda: [o for o in customer_outbox(srv, "victim@customer.test")
                                 if o["attempts"] >= 2 or o["status"]["state"] != "pending"],
                        timeout=20)[0]
        self.assert_no_credentials_seen(relay)
        self.assertEqual(item["status"]["state"], "pending")
        self.assertIn(f"relay 127.0.0.1:{relay.port} offers no STARTTLS", item["last_error"])
        self.assertIn('tls = "required"', item["last_error"])
        self.assertIn("offers no STARTTLS", srv.read_log())
        # Opportunistic TLS with credentials: still nothing in clear.
        srv.stop()
        srv.env["POSTDESK_RELAY_TLS"] = "opportunistic"
        srv.start()
        before = item["attempts"]
        item = wait_for(lambda: [o for o in customer_outbox(srv, "victim@customer.test")
                                 if o["attempts"] >= before + 1], timeout=20)[0]
        self.assert_no_credentials_seen(relay)
        self.assertEqual(item["status"]["state"], "pending")
        self.assertIn("credentials are never sent without TLS", item["last_error"])
        self.assertIn("credentials are never sent without TLS", srv.read_log())

    def assert_no_credentials_seen(self, relay):
        verbs = relay.verbs()
        self.assertIn(b"EHLO", verbs, "the relay was asked")
        self.assertNotIn(b"AUTH", verbs)
        self.assertEqual(set(verbs), {b"EHLO"}, "nothing but EHLO was said in clear")
        self.assertEqual(relay.delivered, [])
        for secret in (USER.encode(), PASSWORD.encode(),
                       base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()),
                       base64.b64encode(USER.encode()), base64.b64encode(PASSWORD.encode())):
            self.assertNotIn(secret, relay.raw)

    def test_opportunistic_without_credentials_delivers_in_clear(self):
        relay = self.relay()
        srv = Server(env={"POSTDESK_RELAY_URL": f"smtp://127.0.0.1:{relay.port}",
                          "POSTDESK_RELAY_TLS": "opportunistic"}).bootstrap()
        self.addCleanup(srv.close)
        srv.start()
        with smtplib.SMTP("127.0.0.1", srv.smtp_port) as s:
            s.send_message(mail("plain@customer.test", "acme@acme.test", "help", "please"))
        wait_for(lambda: [o for o in customer_outbox(srv, "plain@customer.test")
                          if o["status"]["state"] == "sent"], timeout=20)
        delivered = [d for d in relay.delivered if d[1] == ["plain@customer.test"]]
        self.assertEqual(len(delivered), 1)
        self.assertEqual(delivered[0][0], "acme@acme.test")
        self.assertNotIn(b"AUTH", relay.verbs())

    def test_bad_tls_settings_are_refused(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("POSTDESK_")}

        def config(**settings):
            e = dict(env, **{f"POSTDESK_RELAY_{k.upper()}": v for k, v in settings.items()})
            return subprocess.run([BIN, "config"], env=e, capture_output=True, text=True, timeout=30)

        r = config(url="smtp://relay.example.com:587")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('tls = "required"', r.stdout)
        r = config(url="smtp://127.0.0.1:25", tls="none")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('tls = "none"', r.stdout)
        refused = [
            (dict(url="smtp://relay.example.com:587", tls="sometimes"),
             '"required", "opportunistic" or "none"'),
            (dict(tls="sometimes"), '"required", "opportunistic" or "none"'),
            (dict(url="smtp://relay.example.com:587", tls="none"), "only allowed to a loopback relay"),
            (dict(url="smtp://10.1.2.3:25", tls="none"), "only allowed to a loopback relay"),
            (dict(url="smtp://127.0.0.1:25", tls="none", username=USER, password=PASSWORD),
             "credentials are never sent without TLS"),
            (dict(url="smtps://127.0.0.1:465", tls="none"), "smtps:// is always implicit TLS"),
        ]
        for settings, message in refused:
            r = config(**settings)
            self.assertNotEqual(r.returncode, 0, settings)
            self.assertIn(message, r.stderr, settings)
            self.assertNotIn("panicked", r.stderr)


if __name__ == "__main__":
    unittest.main()
