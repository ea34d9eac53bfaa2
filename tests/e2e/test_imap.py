"""IMAP import against a real Dovecot: mailbox messages become tickets exactly once, then
are marked or moved; IDLE and polling; crashes of either side; UIDVALIDITY changes;
messages that cannot be imported; the same message by SMTP and IMAP."""

import collections
import smtplib
import time
import unittest

from dovecot import INBOX_PREFIX_NAMESPACE, Dovecot
from harness import Browser, Server, mail, staff_link, wait_for


def source_config(dovecot, after="move", poll_secs=1, folder="INBOX", tls="none", ca_file="",
                  move_to="Postdesk/Imported", failed_folder="Postdesk/Failed"):
    host, port = ("127.0.0.1", dovecot.port) if tls == "none" else (
        "localhost", dovecot.imaps_port if tls == "tls" else dovecot.port)
    return f"""
[[imap]]
org = "acme"
host = "{host}"
port = {port}
tls = "{tls}"
ca_file = "{ca_file}"
user = "{dovecot.user}"
password = "{dovecot.password}"
folder = "{folder}"
after = "{after}"
move_to = "{move_to}"
failed_folder = "{failed_folder}"
poll_secs = {poll_secs}
"""


def ticket_entries(srv):
    """How many ticket events each Message-ID has, over all tickets."""
    seen = collections.Counter()
    for t in srv.tickets("?limit=100000"):
        for e in srv.ticket(t["number"])["events"]:
            seen[e["message_id"]] += 1
    return seen


def numbered(n, prefix="imap"):
    return [mail(f"customer{i % 7}@example.com", "acme@acme.test", f"{prefix} question {i}",
                 f"Message number {i}.", message_id=f"<{prefix}-{i}@client.test>")
            for i in range(n)]


class ImapImport(unittest.TestCase):
    def start(self, after="move", capability=None, poll_secs=1, folder="INBOX", env=None,
              folders={}, **namespace):
        dovecot = Dovecot(capability=capability, **namespace).start()
        self.addCleanup(dovecot.close)
        if folder != "INBOX":
            dovecot.run_on(lambda c: c.create(folder))
        srv = Server(config=source_config(dovecot, after, poll_secs, folder, **folders),
                     env=env).bootstrap()
        self.addCleanup(srv.close)
        return dovecot, srv

    def test_implicit_tls_and_starttls_with_a_private_ca(self):
        dovecot = Dovecot(tls=True).start()
        self.addCleanup(dovecot.close)
        for tls in ("tls", "starttls"):
            srv = Server(config=source_config(dovecot, tls=tls, ca_file=dovecot.ca)).bootstrap()
            self.addCleanup(srv.close)
            mid = f"<over-{tls}@client.test>"
            dovecot.append("INBOX", mail("tls@example.com", "acme@acme.test", f"Over {tls}",
                                         message_id=mid))
            srv.start()
            self.assertEqual(srv.decision_for(mid)["outcome"], "accepted")
            srv.stop()
        # Without the private CA the certificate is not trusted: no login, a clear error.
        srv = Server(config=source_config(dovecot, tls="tls")).bootstrap()
        self.addCleanup(srv.close)
        srv.start()
        s = wait_for(lambda: (lambda s: s if s["last_error"] else None)(self.source(srv)))
        self.assertFalse(s["connected"])
        self.assertIn("certificate", s["last_error"].lower())
        self.assertEqual(srv.tickets(), [])

    def source(self, srv):
        return srv.api("/api/v1/sources")["sources"][0]

    def test_mail_becomes_tickets_replies_thread_and_idle_is_prompt(self):
        dovecot, srv = self.start(after="move")
        staff_link_path = staff_link(srv, "tester@ops.test")
        first = mail("ann@example.com", "acme@acme.test", "Printer is on fire",
                     "It smokes.", message_id="<fire@client.test>")
        dovecot.append("INBOX", first)
        dovecot.append("INBOX", mail("bob@example.com", "acme@acme.test", "Bug: login fails"),
                       flags="(\\Seen)")  # read by someone already: still imported (by UID)
        srv.start()
        d = srv.decision_for("<fire@client.test>")
        self.assertEqual(d["outcome"], "accepted")
        ticket = d["ticket"]
        wait_for(lambda: len(srv.tickets()) == 2)
        # Moved only after the commit: the folder is empty, the target has both.
        wait_for(lambda: dovecot.uids("INBOX") == [] and len(dovecot.uids("Postdesk/Imported")) == 2)
        s = wait_for(lambda: (lambda s: s if s["connected"] and s["idle"] else None)(self.source(srv)))
        self.assertEqual(s["imported"], 2)
        self.assertGreaterEqual(s["last_uid"], 2)
        self.assertIsNone(s["last_error"])
        # Admins see the source's state in the web UI's email settings.
        b = Browser(srv)
        self.assertEqual(b.get(staff_link_path)[0], 303)
        _, _, page = b.get("/settings/email")
        row = page.split('id="sources"')[1].split("</table>")[0]
        self.assertIn(s["source"], row)
        self.assertIn("connected, IDLE", row)
        # The password is never shown: not in the API, the web UI, the log, or `postdesk config`.
        self.assertNotIn(dovecot.password, page)
        self.assertNotIn(dovecot.password, str(srv.api("/api/v1/sources")))
        self.assertNotIn(dovecot.password, srv.read_log())
        shown = srv.cli("config").stdout
        self.assertIn("Postdesk/Imported", shown)
        self.assertNotIn(dovecot.password, shown)

        # A reply appended later threads into the ticket.
        reply = mail("ann@example.com", "acme@acme.test", "Re: Printer is on fire",
                     "Still smoking.\n\n> It smokes.", message_id="<fire-2@client.test>",
                     in_reply_to="<fire@client.test>")
        dovecot.append("INBOX", reply)
        d = srv.decision_for("<fire-2@client.test>")
        self.assertEqual((d["outcome"], d["ticket"]), ("accepted", ticket))
        events = srv.ticket(ticket)["events"]
        self.assertEqual([e["message_id"] for e in events],
                         ["<fire@client.test>", "<fire-2@client.test>"])

        # With IDLE, a new message is a ticket within 2 seconds, every time.
        delays = []
        for i in range(5):
            mid = f"<idle-{i}@client.test>"
            dovecot.append("INBOX", mail("cy@example.com", "acme@acme.test", f"Idle {i}",
                                         message_id=mid))
            t0 = time.time()
            wait_for(lambda: any(d.get("message_id") == mid for d in srv.decisions()), timeout=5)
            delays.append(time.time() - t0)
        print(f"\nIDLE: append to decision {sorted(delays)} s", flush=True)
        self.assertLess(max(delays), 2.0)
        counts = ticket_entries(srv)
        self.assertTrue(all(v == 1 for v in counts.values()), counts)

    def test_polling_and_copy_expunge_when_the_server_has_neither_idle_nor_move(self):
        dovecot, srv = self.start(after="move", capability="IMAP4rev1 LITERAL+ UIDPLUS")
        srv.cli("staff", "add", "alex@acme.test", "--name", "Alex", "--role", "tech")
        tech = srv.cli("token", "create", "alex@acme.test").stdout.strip()
        srv.start()
        s = wait_for(lambda: (lambda s: s if s["connected"] else None)(self.source(srv)))
        self.assertFalse(s["idle"])
        # Source status is for owners, admins and managers.
        srv.api("/api/v1/sources", token=tech, expect=403)
        srv.api("/api/v1/sources", token="", expect=401)
        dovecot.append_many("INBOX", numbered(5, "poll"))
        wait_for(lambda: len(srv.tickets()) == 5, timeout=15)
        wait_for(lambda: dovecot.uids("INBOX") == [] and len(dovecot.uids("Postdesk/Imported")) == 5)

    def test_seen_mode_marks_read_and_a_restart_reads_nothing_twice(self):
        dovecot, srv = self.start(after="seen")
        dovecot.append_many("INBOX", numbered(3, "seen"))
        srv.start()
        wait_for(lambda: len(srv.tickets()) == 3)
        wait_for(lambda: dovecot.uids("INBOX", "UNSEEN") == [])
        self.assertEqual(len(dovecot.uids("INBOX")), 3)
        # Restarting reads nothing twice: the cursor, not the flags, says what was read.
        srv.stop()
        dovecot.run_on(lambda c: (c.select("INBOX"), c.uid("STORE", "1:*", "-FLAGS", "(\\Seen)")))
        srv.start()
        dovecot.append("INBOX", mail("dee@example.com", "acme@acme.test", "After restart",
                                     message_id="<after@client.test>"))
        srv.decision_for("<after@client.test>")
        self.assertEqual(len(srv.tickets()), 4)
        self.assertEqual(len(srv.decisions()), 4)

    def test_sigkill_during_import_of_500_then_every_message_once_and_moved(self):
        dovecot, srv = self.start(after="move")
        dovecot.append_many("INBOX", numbered(500, "kill"))
        kills = 0
        for _ in range(2):
            srv.start()
            # Kill once part of the mailbox is in: mid-import.
            before = len(dovecot.uids("Postdesk/Imported"))
            wait_for(lambda: len(dovecot.uids("Postdesk/Imported")) > before + 60, timeout=60,
                     interval=0.02)
            srv.kill()
            kills += 1
            self.assertLess(len(dovecot.uids("Postdesk/Imported")), 500, "killed too late")
        srv.start()
        wait_for(lambda: dovecot.uids("INBOX") == [], timeout=120, interval=0.5)
        self.assertEqual(len(dovecot.uids("Postdesk/Imported")), 500)
        wanted = {f"<kill-{i}@client.test>" for i in range(500)}
        wait_for(lambda: wanted <= {d.get("message_id") for d in srv.decisions(100000)},
                 timeout=120, interval=0.5)
        counts = ticket_entries(srv)
        missing = [m for m in wanted if counts[m] == 0]
        doubled = [m for m in wanted if counts[m] > 1]
        self.assertEqual((missing, doubled), ([], []))
        self.assertEqual(self.source(srv)["imported"], 500)
        print(f"\nIMAP: 500 messages over {kills} SIGKILLs, each in a ticket once, all moved",
              flush=True)

    def test_dovecot_killed_and_restarted_during_import_of_2000_loses_and_doubles_nothing(self):
        TOTAL = 2000
        dovecot, srv = self.start(after="seen")
        dovecot.append_many("INBOX", numbered(TOTAL, "restart"))
        srv.start()
        wait_for(lambda: dovecot.uids("INBOX", "SEEN"), timeout=60, interval=0.01)
        dovecot.kill()
        self.assertLess(self.source(srv)["imported"], TOTAL, "killed too late")
        time.sleep(0.5)
        dovecot.start()
        wait_for(lambda: dovecot.uids("INBOX", "UNSEEN") == [], timeout=120, interval=0.5)
        wanted = {f"<restart-{i}@client.test>" for i in range(TOTAL)}
        wait_for(lambda: wanted <= {d.get("message_id") for d in srv.decisions(100000)},
                 timeout=120, interval=0.5)
        counts = ticket_entries(srv)
        self.assertEqual(sorted(m for m in wanted if counts[m] != 1), [])
        s = self.source(srv)
        self.assertTrue(s["connected"])
        self.assertIsNotNone(s["last_error"])  # the outage is visible in the status
        self.assertEqual(s["imported"], TOTAL)

    def test_uidvalidity_change_rereads_without_duplicates(self):
        dovecot, srv = self.start(after="keep", folder="Support")
        old = numbered(5, "uv")
        dovecot.append_many("Support", old)
        srv.start()
        wait_for(lambda: len(srv.tickets()) == 5)
        before = dovecot.uidvalidity("Support")
        # The mailbox is rebuilt (as in a server migration): same mail, new UIDVALIDITY,
        # plus two new messages.
        srv.stop()
        dovecot.run_on(lambda c: (c.delete("Support"), c.create("Support")))
        dovecot.append_many("Support", old + numbered(2, "uv-new"))
        self.assertNotEqual(dovecot.uidvalidity("Support"), before)
        srv.start()
        wait_for(lambda: len(srv.tickets()) == 7, timeout=15)
        wait_for(lambda: self.source(srv)["uidvalidity"] == dovecot.uidvalidity("Support"))
        time.sleep(1.5)  # a poll or two more must not add anything
        counts = ticket_entries(srv)
        self.assertEqual(len(counts), 7)
        self.assertTrue(all(v == 1 for v in counts.values()), counts)
        # Once more while Postdesk is connected to the folder.
        before = dovecot.uidvalidity("Support")
        dovecot.run_on(lambda c: (c.delete("Support"), c.create("Support")))
        dovecot.append_many("Support", old + numbered(2, "uv-new") + numbered(1, "uv-live"))
        self.assertNotEqual(dovecot.uidvalidity("Support"), before)
        wait_for(lambda: len(srv.tickets()) == 8, timeout=15)
        wait_for(lambda: self.source(srv)["uidvalidity"] == dovecot.uidvalidity("Support"))
        time.sleep(1.5)
        counts = ticket_entries(srv)
        self.assertEqual(len(counts), 8)
        self.assertTrue(all(v == 1 for v in counts.values()), counts)

    def test_corrupt_and_oversize_messages_are_recorded_and_the_rest_imported(self):
        dovecot, srv = self.start(after="move", env={"POSTDESK_MAX_MESSAGE_SIZE": "100000"})
        good1, good2 = numbered(2, "good")
        big = mail("big@example.com", "acme@acme.test", "Huge log", "x" * 150_000 + "\n",
                   message_id="<big@client.test>")
        # Raw bytes: Python's email package would fold or encode the long line.
        long_line = (b"From: wide@example.com\r\nTo: acme@acme.test\r\nSubject: Wide\r\n"
                     b"Message-ID: <wide@client.test>\r\n\r\n" + b"y" * 20_000 + b"\r\n")
        garbage = b"\x00\x01\x02 this is not a mail message\r\n\x00\xff\xfe\r\n"
        dovecot.append_many("INBOX", [good1, big, garbage, long_line, good2])
        srv.start()
        wait_for(lambda: len(srv.tickets()) == 2)
        wait_for(lambda: dovecot.uids("INBOX") == [] and len(dovecot.uids("Postdesk/Failed")) == 3)
        self.assertEqual(len(dovecot.uids("Postdesk/Imported")), 2)
        refused = wait_for(lambda: (lambda r: r if len(r) == 3 else None)(
            [d for d in srv.decisions() if d["outcome"] == "refused"]))
        reasons = " | ".join(d["reason"] for d in refused)
        self.assertIn("exceeds the limit of 100000 bytes", reasons)
        self.assertIn("no readable header section", reasons)
        self.assertIn("longer than", reasons)
        self.assertIn("moved to Postdesk/Failed", reasons)
        s = self.source(srv)
        self.assertEqual((s["imported"], s["refused"]), (2, 3))
        big_decision = [d for d in refused if "exceeds" in d["reason"]][0]
        self.assertEqual(big_decision.get("subject"), "Huge log")

    def test_dovecot_as_installed_moves_into_folders_named_its_way(self):
        """Issue 11, attack 10: Dovecot with no namespace block (maildir's "." separator)
        took no mail at all with after = "move"; the source retried CREATE of
        "Postdesk/Imported" for ever. Announcing NAMESPACE (as installed) and not."""
        for capability in (None, "IMAP4rev1 LITERAL+ UIDPLUS IDLE MOVE"):
            with self.subTest(capability=capability or "as installed"):
                dovecot, srv = self.start(after="move", capability=capability, namespace=None)
                good = numbered(3, "dot")
                garbage = b"\x00\x01 not a mail message\r\n"
                dovecot.append_many("INBOX", good + [garbage])
                srv.start()
                wait_for(lambda: dovecot.uids("INBOX") == [])
                # Once each, and moved into the folders under the server's own names.
                self.assertEqual(dovecot.message_ids("Postdesk.Imported"),
                                 sorted(m["Message-ID"] for m in good))
                self.assertEqual(len(dovecot.uids("Postdesk.Failed")), 1)
                self.assertEqual(sorted(f for f in dovecot.folders() if "Postdesk" in f),
                                 ["Postdesk", "Postdesk.Failed", "Postdesk.Imported"])
                wait_for(lambda: len(srv.decisions()) == 4 and len(srv.tickets()) == 3)
                counts = ticket_entries(srv)
                self.assertEqual(sorted(counts.values()), [1, 1, 1])
                refused = [d for d in srv.decisions() if d["outcome"] == "refused"]
                self.assertIn("moved to Postdesk.Failed", refused[0]["reason"])
                s = self.source(srv)
                self.assertEqual((s["imported"], s["refused"], s["last_error"]), (3, 1, None))

    def test_a_personal_namespace_prefix_and_names_with_spaces_and_accents(self):
        """Courier and Cyrus keep folders under "INBOX." (NAMESPACE says so): the configured
        names go under it, beyond ASCII in modified UTF-7. A name with a space is found
        again on the next connection, not created a second time (which fails)."""
        dovecot, srv = self.start(after="move", namespace=INBOX_PREFIX_NAMESPACE,
                                  folders={"move_to": "Help Desk/Traité",
                                           "failed_folder": "Help Desk/Failed"})
        done = "INBOX.Help Desk.Trait&AOk-"  # "é" is U+00E9: &AOk- (RFC 3501 5.1.3)
        first = mail("fay@example.com", "acme@acme.test", "Prefixed",
                     message_id="<prefix-1@client.test>")
        dovecot.append("INBOX", first)
        srv.start()
        wait_for(lambda: dovecot.uids("INBOX") == [])
        self.assertEqual(dovecot.message_ids(done),
                         ["<prefix-1@client.test>"])
        self.assertIn("INBOX.Help Desk.Failed", dovecot.folders())
        # Reconnecting finds the folders it made and goes on importing.
        srv.stop()
        dovecot.append("INBOX", mail("fay@example.com", "acme@acme.test", "Prefixed again",
                                     message_id="<prefix-2@client.test>"))
        srv.start()
        wait_for(lambda: dovecot.uids("INBOX") == [])
        self.assertEqual(dovecot.message_ids(done),
                         ["<prefix-1@client.test>", "<prefix-2@client.test>"])
        wait_for(lambda: len(srv.tickets()) == 2)
        self.assertIsNone(self.source(srv)["last_error"])

    def test_same_message_by_smtp_and_imap_is_one_ticket_entry(self):
        dovecot, srv = self.start(after="move")
        srv.start()
        m = mail("eve@example.com", "acme@acme.test", "Both ways", message_id="<both@client.test>")
        with smtplib.SMTP("127.0.0.1", srv.smtp_port) as s:
            s.send_message(m)
        srv.decision_for("<both@client.test>")
        dovecot.append("INBOX", m)
        wait_for(lambda: dovecot.uids("INBOX") == [] and dovecot.uids("Postdesk/Imported"))
        wait_for(lambda: len(srv.decisions()) == 2)
        counts = ticket_entries(srv)
        self.assertEqual(counts["<both@client.test>"], 1)
        self.assertEqual(len(srv.tickets()), 1)

    def test_bad_source_settings_are_refused_clearly(self):
        srv = Server(config='[[imap]]\norg = "acme"\nhost = "imap.example.com"\n'
                            'tls = "none"\nuser = "u"\npassword = "p"\n')
        self.addCleanup(srv.close)
        # Every command loads the configuration, so none runs with a bad source.
        r = srv.cli("org", "list", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("only allowed to a loopback host", r.stderr)
        self.assertNotIn('"p"', r.stderr)
        srv2 = Server(config='[[imap]]\norg = "nope"\nhost = "127.0.0.1"\nport = 1\n'
                             'tls = "none"\nuser = "u"\npassword = "p"\n').bootstrap()
        self.addCleanup(srv2.close)
        with self.assertRaises(AssertionError) as e:
            srv2.start()
        self.assertIn('organization "nope" does not exist', str(e.exception))


if __name__ == "__main__":
    unittest.main()
