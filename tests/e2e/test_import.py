"""`postdesk import` over the real binary: an mbox (written by Python's mailbox module,
which quotes `From ` lines) and a Maildir of real-client-shaped mail (fixtures/import and
the shared corpus) go in through the same checks and pipeline as live mail, threaded by
their In-Reply-To/References whatever order the files come in, dated by their Date
header; nothing is mailed and no bell rings, monitors leave the history alone; a second
run imports nothing twice; the summary says what was refused and why."""

import datetime
import email.utils
import mailbox
import os
import random
import re
import smtplib
import time
import unittest

from harness import MovedClock, Server, mail, wait_for

HERE = os.path.dirname(__file__)
FIXTURES = os.path.join(HERE, "..", "..", "fixtures", "import")
CORPUS = os.path.join(HERE, "..", "..", "..", "shared", "corpora", "mikel-mail",
                      "attachment_emails")
THREAD = ["thunderbird-question.eml", "outlook-followup.eml", "apple-mail-reply.eml"]


def fixture(name):
    with open(os.path.join(FIXTURES, name), "rb") as f:
        return f.read()


def corpus(name, to):
    """A corpus message, its mbox separator dropped, addressed to `to`."""
    with open(os.path.join(CORPUS, name), "rb") as f:
        raw = f.read()
    if raw.startswith(b"From "):
        raw = raw.split(b"\n", 1)[1]
    return re.sub(rb"(?m)^To: .*$", b"To: " + to.encode(), raw, count=1)


def messages(to="acme@acme.test"):
    """What the tests import, replies before what they answer."""
    swap = lambda raw: raw.replace(b"acme@acme.test", to.encode())
    found = [swap(fixture(n)) for n in reversed(THREAD)]
    found += [swap(fixture("gmail-new.eml")), swap(fixture("auto-reply.eml"))]
    found += [corpus("attachment_pdf.eml", to), corpus("attachment_nonascii_filename.eml", to)]
    # A stranger the whitelist refuses, and something that is not mail at all.
    found.append(swap(mail("eve@spam.test", "acme@acme.test", "Win", "Prize!",
                           Date=email.utils.formatdate()).as_bytes()))
    found.append(b"this is not a mail message\n")
    return found


class Import(unittest.TestCase):
    def setUp(self):
        srv = Server(env={"POSTDESK_MONITOR_INTERVAL_SECS": "1"}).bootstrap(orgs=(
            ("acme", "Acme", ["--whitelist", "customer.test,xxxx.com,gmail.com,"
                                              "lindsaar.net,example.com,test.lindsaar.net"]),
            ("beta", "Beta", ["--whitelist", "customer.test,xxxx.com,gmail.com,"
                                              "lindsaar.net,example.com,test.lindsaar.net"])))
        self.addCleanup(srv.close)
        self.clock = MovedClock(srv)
        self.srv = srv

    def run_import(self, org, path):
        r = self.srv.cli("import", "--org", org, path)
        return r.stdout

    def counts(self, summary):
        m = re.search(r"(\d+) messages in .*: (\d+) imported \((\d+) tickets opened\), "
                      r"(\d+) already imported before, (\d+) duplicates of mail already here, "
                      r"(\d+) refused", summary)
        self.assertIsNotNone(m, summary)
        return tuple(int(g) for g in m.groups())

    def tickets(self, org):
        return sorted((t for t in self.srv.api(f"/api/v1/tickets?org={org}&status=")["tickets"]),
                      key=lambda t: t["number"])

    def check_imported(self, org, found):
        srv = self.srv
        tickets = self.tickets(org)
        by_summary = {t["summary"]: t for t in tickets}
        # The thread is one ticket, in Date order, dated by its first message.
        thread = srv.ticket(by_summary["Label printer prints blank labels"]["number"])
        events = [e for e in thread["events"] if e["kind"] in ("created", "reply")]
        self.assertEqual([e["author"] for e in events],
                         ["rita@customer.test", "bob@customer.test", "rita@customer.test"])
        self.assertEqual([e["at"][:19] for e in events],
                         ["2024-03-04T08:12:00", "2024-03-04T10:30:00", "2024-03-05T13:00:00"])
        self.assertEqual(thread["created_at"][:19], "2024-03-04T08:12:00")
        self.assertIn("firmware update", events[2]["text"])
        self.assertNotIn("Same on the second printer", events[2]["text"])
        # The Gmail body's quoted "From " line came back as the sender wrote it.
        vpn = srv.ticket(by_summary["VPN drops every hour"]["number"])
        self.assertIn("\nFrom the logs it looks like a re-key.", vpn["events"][0]["text"])
        # The corpus's PDF came in as an attachment.
        self.assertTrue(any(a["content_type"] == "application/pdf"
                            for t in tickets for e in srv.ticket(t["number"])["events"]
                            for a in e["attachments"]))
        return tickets

    def test_an_mbox_imports_with_threads_no_mail_and_once(self):
        srv = self.srv
        path = os.path.join(srv.dir, "old.mbox")
        box = mailbox.mbox(path)
        for raw in messages():
            box.add(mailbox.mboxMessage(raw))
        box.flush()
        box.close()
        with open(path, "rb") as f:
            self.assertIn(b"\n>From the logs", f.read(), "the mbox quotes From lines")
        first = self.run_import("acme", path)
        found, imported, opened, already, dups, refused = self.counts(first)
        self.assertEqual((found, already, dups, refused), (9, 0, 0, 2), first)
        self.assertEqual(imported, 7)
        self.assertIn("Sender domain spam.test is not allowed", first)
        self.assertIn("no readable header section", first)
        # A second run imports nothing twice.
        second = self.counts(self.run_import("acme", path))
        self.assertEqual(second, (9, 0, 0, 9, 0, 0))
        srv.start()
        tickets = self.check_imported("acme", 9)
        self.assertEqual(len(tickets), opened)
        # Nothing was mailed and no bell rang, now or once the notifier has run.
        time.sleep(2)
        self.assertEqual(srv.api("/api/v1/outbox")["outbox"], [])
        # Monitors leave imported history alone: every ticket is unassigned for a long time.
        srv.send("PUT", "/api/v1/orgs/acme/monitors",
                 {"monitors": [{"kind": "unassigned", "hours": 1}]})
        self.clock.move(3 * 3600)
        time.sleep(3)
        alerts = [e for t in tickets for e in srv.ticket(t["number"])["events"]
                  if e["kind"] == "alert"]
        self.assertEqual(alerts, [])
        self.assertEqual(srv.api("/api/v1/outbox")["outbox"], [])
        # A live reply makes the ticket live: staff hear of it, monitors watch it again.
        thread = [t for t in tickets if t["summary"] == "Label printer prints blank labels"][0]
        live = mail("rita@customer.test", "acme@acme.test", "Re: Label printer prints blank labels",
                    "It broke again.",
                    In_Reply_To="<C7D1E2F3-0A4B-4C5D-8E9F-112233445566@customer.test>")
        with smtplib.SMTP("127.0.0.1", srv.smtp_port) as s:
            s.send_message(live)
        decision = srv.decision_for(live["Message-ID"])
        self.assertEqual(decision["ticket"], thread["number"])
        wait_for(lambda: [m for m in srv.api("/api/v1/outbox")["outbox"]
                          if m["ticket"] == thread["number"]], timeout=15)
        self.clock.move(2 * 3600)
        wait_for(lambda: [e for e in srv.ticket(thread["number"])["events"]
                          if e["kind"] == "alert"], timeout=15)

    def test_a_maildir_imports_in_date_order_and_refuses_a_deactivated_organization(self):
        srv = self.srv
        path = os.path.join(srv.dir, "Maildir")
        box = mailbox.Maildir(path)
        shuffled = messages("beta@acme.test")
        random.Random(7).shuffle(shuffled)
        for raw in shuffled:
            box.add(mailbox.MaildirMessage(raw))
        summary = self.counts(self.run_import("beta", path))
        self.assertEqual(summary[0:2], (9, 7))
        self.assertEqual(self.counts(self.run_import("beta", path))[3], 9)
        # Nothing for an organization that does not exist or does not take mail.
        bad = srv.cli("import", "--org", "nosuch", path, check=False)
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("no organization", bad.stderr)
        missing = srv.cli("import", "--org", "beta", os.path.join(srv.dir, "none"), check=False)
        self.assertNotEqual(missing.returncode, 0)
        srv.start()
        self.check_imported("beta", 9)
        self.assertEqual(srv.api("/api/v1/outbox")["outbox"], [])

    def test_odd_input_is_refused_and_history_stays_history(self):
        srv = self.srv
        for path, why in (("/dev/zero", "neither an mbox file nor a Maildir folder"),
                          (srv.dir, "is not a Maildir")):
            r = srv.cli("import", "--org", "acme", path, check=False)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn(why, r.stderr)
        lone = os.path.join(srv.dir, "one.eml")
        with open(lone, "wb") as f:
            f.write(fixture("gmail-new.eml"))
        r = srv.cli("import", "--org", "acme", lone, check=False)
        self.assertIn("no messages in", r.stderr)
        # A live ticket, answered and closed.
        srv.start()
        live = mail("rita@customer.test", "acme@acme.test", "Badge reader", "It beeps.")
        with smtplib.SMTP("127.0.0.1", srv.smtp_port) as s:
            s.send_message(live)
        n = srv.decision_for(live["Message-ID"])["ticket"]
        srv.send("PATCH", f"/api/v1/tickets/{n}", {"status": "closed"})
        srv.stop()
        # An archive holding an old reply to it and mail of someone erased later.
        old = mail("bob@customer.test", "acme@acme.test", "Re: Badge reader", "Old news.",
                   In_Reply_To=live["Message-ID"], Date="Mon, 4 Mar 2024 09:00:00 +0000")
        gone = mail("gone@customer.test", "acme@acme.test", "Parking", "Gone's words.",
                    Date="Tue, 5 Mar 2024 09:00:00 +0000")
        path = os.path.join(srv.dir, "archive.mbox")
        box = mailbox.mbox(path)
        for m in (old, gone):
            box.add(mailbox.mboxMessage(m.as_bytes()))
        box.close()
        self.assertEqual(self.counts(self.run_import("acme", path))[1], 2)
        srv.start()
        ticket = srv.ticket(n)
        self.assertEqual(ticket["status"], "closed", "old mail does not reopen a ticket")
        self.assertIn("Old news.", [e["text"] for e in ticket["events"]])
        srv.send("POST", "/api/v1/people/gone@customer.test/erase", b"")
        srv.stop()
        # Read again from another archive (its bytes differ): the erased sender stays out.
        gone["X-Archived"] = "again"
        box = mailbox.mbox(path + "2")
        box.add(mailbox.mboxMessage(gone.as_bytes()))
        box.close()
        again = self.run_import("acme", path + "2")
        self.assertIn("refused 1: it names a person who was erased", again)


if __name__ == "__main__":
    unittest.main()
