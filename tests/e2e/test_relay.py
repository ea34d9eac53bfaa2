"""Relay transport against a real SMTP server nobody here wrote (Python's aiosmtpd): mail
arrives DKIM-signed from the organization's address; temporary failures (451, relay down)
are retried with backoff until delivered; a permanent refusal (550) is marked failed with
the server's answer, visible in GET /api/v1/outbox."""

import smtplib
import time
import unittest

from aiosmtpd.controller import Controller

from harness import Server, free_port, mail, wait_for


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
        srv = Server(env={"POSTDESK_RELAY_URL": f"smtp://127.0.0.1:{relay_port}",
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


if __name__ == "__main__":
    unittest.main()
