"""A person's data over the real server. Export: the ZIP of everything held about one
address, from the API, from Settings › People and from `postdesk person export`, read
back with Python's zipfile; their original messages and attachments come back byte for
byte, what others wrote privately and others' files do not. Erasure: afterwards no API,
page or search yields their address or words, nor (after `postdesk compact`) any file of
the data folder; others' messages in the same tickets are intact; their block and opt-out
still hold. Only owners and admins do either; each is in the audit log."""

import base64
import email.policy
import hashlib
import io
import json
import os
import re
import smtplib
import time
import unittest
import urllib.parse
import urllib.request
import uuid
import zipfile

from harness import Browser, Server, mail, staff_link, wait_for

CORPUS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "corpora",
                      "mikel-mail", "attachment_emails", "attachment_pdf_non_ascii.eml")
RITA = "rita@customer.test"
BOB = "bob@customer.test"
MARGARITA = "margarita@customer.test"
DAVE = "dave@customer.test"
ERIN = "erin@customer.test"


def corpus_mail(message_id):
    """A real client's message with a PDF attachment (mikel-mail's corpus), as Rita sends
    it: its mbox separator dropped, her addresses in place of the anonymised ones."""
    with open(CORPUS, "rb") as f:
        raw = f.read()
    raw = raw.split(b"\n", 1)[1].replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    raw = re.sub(rb"(?m)^From: .*$", b"From: Rita <" + RITA.encode() + b">", raw)
    raw = re.sub(rb"(?m)^Reply-To: .*$", b"Reply-To: " + RITA.encode(), raw)
    raw = re.sub(rb"(?m)^To: .*$", b"To: acme@acme.test\r\nCc: " + BOB.encode(), raw)
    raw = re.sub(rb"(?m)^Message-ID: .*$", b"Message-ID: " + message_id.encode(), raw)
    return raw


def with_file(m, name, data):
    m.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return m


class PersonData(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        srv = Server().bootstrap(staff=[("boss@ops.test", "Bo Owner", "owner"),
                                        ("mia@ops.test", "Mia Manager", "manager")])
        cls.srv = srv
        cls.owner = srv.cli("token", "create", "boss@ops.test").stdout.strip()
        cls.manager = srv.cli("token", "create", "mia@ops.test").stdout.strip()
        cls.admin_link = staff_link(srv, "tester@ops.test")
        srv.start()
        cls.sent = {}
        first = f"<{time.time_ns()}.first@customer.test>"
        cls.sent["first"] = corpus_mail(first)
        cls.send(RITA, ["acme@acme.test", BOB], cls.sent["first"])
        cls.ticket = srv.decision_for(first)["ticket"]
        # Rita again, with a file whose name tries to leave its folder; Bob, copied,
        # answers into the same ticket with a file of his own.
        cls.rita_log, cls.bob_file = os.urandom(3000), os.urandom(2000)
        cls.answer("second", RITA, "And the log.", "../../etc/passwd", cls.rita_log, first)
        cls.answer("bob", BOB, "Bob here: same jam on floor 2.", "bob.bin", cls.bob_file, first)
        srv.send("POST", f"/api/v1/tickets/{cls.ticket}/replies",
                 {"text": "We are sending a technician."}, expect=201)
        srv.send("POST", f"/api/v1/tickets/{cls.ticket}/notes",
                 {"text": "Internal: Rita's floor has the old model."}, expect=201)
        # The answer's mail to her is queued by the notifier, after the answer.
        wait_for(lambda: [m for m in srv.api("/api/v1/outbox")["outbox"]
                          if m["recipient"] == RITA and m["kind"] == "staff_answer"])
        # Another ticket Rita has nothing to do with.
        other = f"<{time.time_ns()}.other@elsewhere.test>"
        cls.send("carl@elsewhere.test", ["acme@acme.test"],
                 mail("carl@elsewhere.test", "acme@acme.test", "VPN", "VPN down.",
                      message_id=other).as_bytes(policy=email.policy.SMTP))
        cls.other = srv.decision_for(other)["ticket"]

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()

    @classmethod
    def answer(cls, key, sender, text, name, data, first):
        """`sender` answers message `first` with one file; the bytes sent are kept as
        `sent[key]`."""
        m = mail(sender, "acme@acme.test", "Re: printer", text,
                 message_id=f"<{time.time_ns()}.{key}@customer.test>", In_Reply_To=first)
        with_file(m, name, data)
        cls.sent[key] = m.as_bytes(policy=email.policy.SMTP)
        cls.send(sender, ["acme@acme.test"], cls.sent[key])
        cls.srv.decision_for(m["Message-ID"])

    @classmethod
    def send(cls, sender, rcpts, raw):
        with smtplib.SMTP("127.0.0.1", cls.srv.smtp_port) as s:
            s.sendmail(sender, rcpts, raw)

    def download(self, path, token):
        req = urllib.request.Request(self.srv.url(path))
        req.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, timeout=30) as r:
            self.assertEqual(r.headers["Content-Type"], "application/zip")
            return zipfile.ZipFile(io.BytesIO(r.read()))

    def export(self, who, token=None):
        return self.download(f"/api/v1/people/{urllib.parse.quote(who)}/export",
                             token or self.owner)

    def stored_original(self, seq):
        return self.srv.api(f"/api/v1/tickets/{self.ticket}/events/{seq}/raw")

    def test_their_messages_and_files_come_back_byte_for_byte(self):
        z = self.export(RITA)
        self.assertIsNone(z.testzip())
        manifest = json.loads(z.read("manifest.json"))
        self.assertEqual((manifest["format"], manifest["email"]),
                         ("postdesk-person-export/1", RITA))
        self.assertEqual([t["number"] for t in manifest["tickets"]], [self.ticket])
        ticket = json.loads(z.read(manifest["tickets"][0]["file"]))
        self.assertIn("requester", ticket["roles"])
        theirs = [e for e in ticket["events"] if e["by_them"]]
        self.assertEqual(len(theirs), 2)
        # Each original is the stored message, which is what her client sent.
        for e, sent in zip(theirs, (self.sent["first"], self.sent["second"])):
            stored = z.read(e["original"])
            self.assertEqual(stored, self.stored_original(e["seq"]))
            self.assertTrue(stored.endswith(sent), e["original"])
        files = {a["file"]: z.read(a["file"]) for e in theirs for a in e["attachments"]}
        pdf = [d for d in files.values() if d.startswith(b"%PDF")]
        self.assertEqual(len(pdf), 1)
        self.assertIn(self.rita_log, files.values())
        for name in z.namelist():
            self.assertFalse(name.startswith("/") or ".." in name.split("/"), name)
            self.assertTrue(name == "manifest.json" or name.split("/")[0] in
                            ("messages", "attachments", "tickets", "sent"), name)
        # What she can see of others is there as text; their files and the staff's
        # internal note are not.
        texts = [e["text"] for e in ticket["events"]]
        self.assertTrue(any("same jam on floor 2" in t for t in texts))
        self.assertTrue(any("sending a technician" in t for t in texts))
        self.assertFalse(any("old model" in t for t in texts))
        self.assertNotIn(self.bob_file, files.values())
        self.assertEqual(manifest["files"],
                         len(z.namelist()) - 1 - len(manifest["tickets"]))
        # The staff's answer as it was mailed to her, and what became of her mail.
        self.assertTrue(any(b"sending a technician" in z.read(m["file"])
                            for m in manifest["mail_sent_to_them"]))
        self.assertEqual(len(manifest["their_mail_received"]), 2)
        self.assertIsNone(manifest["staff"])
        self.assertTrue(manifest["contact"]["automatic_mail"])

    def test_another_person_gets_their_own(self):
        z = self.export(BOB.upper())
        manifest = json.loads(z.read("manifest.json"))
        self.assertEqual(manifest["email"], BOB)
        ticket = json.loads(z.read(manifest["tickets"][0]["file"]))
        self.assertEqual(ticket["number"], self.ticket)
        self.assertNotIn("requester", ticket["roles"])
        theirs = [e for e in ticket["events"] if e["by_them"]]
        self.assertEqual(len(theirs), 1)
        self.assertTrue(z.read(theirs[0]["original"]).endswith(self.sent["bob"]))
        self.assertEqual([z.read(a["file"]) for a in theirs[0]["attachments"]],
                         [self.bob_file])
        self.assertFalse(any(n.startswith("messages/") and n != theirs[0]["original"]
                             for n in z.namelist()))
        # Staff: their record, and what they wrote anywhere, internal notes included.
        zs = self.export("tester@ops.test")
        staff = json.loads(zs.read("manifest.json"))
        self.assertEqual(staff["staff"]["role"], "admin")
        texts = [e["text"] for t in staff["tickets"]
                 for e in json.loads(zs.read(t["file"]))["events"]]
        self.assertTrue(any("old model" in t for t in texts))
        # Someone the desk never heard of: an empty export, not an error.
        empty = json.loads(self.export("nobody@nowhere.test").read("manifest.json"))
        self.assertEqual((empty["tickets"], empty["files"]), ([], 0))

    def test_only_owners_and_admins_and_each_export_is_audited(self):
        srv = self.srv
        path = f"/api/v1/people/{RITA}/export"
        srv.api(path, token=self.manager, expect=403)
        srv.api(path, token="", expect=401)
        srv.api("/api/v1/people/not-an-address/export", expect=400)
        self.export(RITA, token=srv.token)
        # From Settings › People in a browser session.
        admin = Browser(srv)
        admin.get(self.admin_link)
        page = admin.get("/settings/people")[2]
        self.assertIn('id="person-export"', page)
        self.assertEqual(admin.get(f"/settings/people/export?email={RITA}")[0], 405)
        self.assertEqual(admin.post("/settings/people/export", {"email": RITA})[0], 403)
        form = urllib.parse.urlencode({"csrf": admin.csrf(page), "email": RITA}).encode()
        with admin.opener.open(srv.url("/settings/people/export"), data=form,
                               timeout=30) as r:
            self.assertEqual(r.headers["Content-Type"], "application/zip")
            z = zipfile.ZipFile(io.BytesIO(r.read()))
        self.assertEqual(json.loads(z.read("manifest.json"))["email"], RITA)
        audit = [(e["actor"], e["detail"])
                 for e in srv.api("/api/v1/audit", token=self.owner)["audit"]
                 if e["action"] == "exported"]
        self.assertIn(("tester@ops.test", f"person data of {RITA}"), audit)
        self.assertFalse(any(who == "mia@ops.test" for who, _ in audit))

    def test_the_command_line_writes_the_same_file(self):
        srv = self.srv
        api = self.export(RITA)
        srv.stop()
        try:
            out = os.path.join(srv.dir, "rita.zip")
            srv.cli("person", "export", RITA, "--out", out)
            with zipfile.ZipFile(out) as z:
                self.assertEqual(sorted(z.namelist()), sorted(api.namelist()))
                for name in api.namelist():
                    if name != "manifest.json":
                        self.assertEqual(z.read(name), api.read(name))
            # An existing file is never overwritten.
            again = srv.cli("person", "export", RITA, "--out", out, check=False)
            self.assertNotEqual(again.returncode, 0)
            self.assertIn("cannot create", again.stderr)
        finally:
            srv.start()


def data_files_holding(folder, needles, whole=False):
    """The files under `folder` whose bytes hold any of `needles` (any case); `whole`: as
    a whole address (not inside margarita@...). Mail kept in JSON records as numbers is
    decoded too."""
    found = []
    lowered = [n.lower() for n in needles]
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                data = f.read().lower()
            # Byte arrays in JSON records ("raw":[77,105,...]) hold mail as numbers.
            for arr in re.findall(rb"\[(?:\d{1,3},){16,}\d{1,3}\]", data):
                data += b"\n" + bytes(int(x) for x in arr[1:-1].split(b",")).lower()
            for n in lowered:
                pattern = (rb"(?<![a-z0-9._%+-])" + re.escape(n) + rb"(?![a-z0-9-])"
                           if whole else re.escape(n))
                if re.search(pattern, data):
                    found.append((os.path.relpath(path, folder), n))
    return found


class Erasure(unittest.TestCase):
    """Rita is erased; Bob, in the same ticket, is not."""

    def setUp(self):
        srv = Server().bootstrap(orgs=(("acme", "Acme", []), ("beta", "Beta", [])),
                                 staff=[("mia@ops.test", "Mia Manager", "manager"),
                                        ("boss@ops.test", "Bo Owner", "owner")])
        self.addCleanup(srv.close)
        self.manager = srv.cli("token", "create", "mia@ops.test").stdout.strip()
        self.owner = srv.cli("token", "create", "boss@ops.test").stdout.strip()
        self.admin_link = staff_link(srv, "tester@ops.test")
        # Rita does not want automatic mail: the opt-out must outlive her erasure.
        srv.cli("contact", "alerts", RITA, "off")
        self.srv = srv.start()
        # Words only Rita wrote, and files only she sent.
        self.her_words = [f"zebra-{uuid.uuid4().hex[:10]}", f"quartz-{uuid.uuid4().hex[:10]}",
                          f"maple-{uuid.uuid4().hex[:10]}"]
        self.her_files = [os.urandom(5000), os.urandom(100_000)]
        self.bob_words = f"walnut-{uuid.uuid4().hex[:10]}"
        self.bob_file = os.urandom(4000)
        first = mail(RITA, "acme@acme.test", f"Printer {self.her_words[0]}",
                     f"It jams. {self.her_words[0]}", Cc=BOB)
        with_file(first, "jam-photo.bin", self.her_files[0])
        self.ticket = self.deliver(RITA, ["acme@acme.test", BOB], first)["ticket"]
        second = mail(RITA, "acme@acme.test", "Re: printer", f"Log. {self.her_words[1]}",
                      In_Reply_To=first["Message-ID"])
        with_file(second, "big.log", self.her_files[1])
        self.deliver(RITA, ["acme@acme.test"], second)
        bob = mail(BOB, "acme@acme.test", "Re: printer", f"Bob: {self.bob_words}",
                   In_Reply_To=first["Message-ID"])
        with_file(bob, "bob.bin", self.bob_file)
        self.bob_mid = bob["Message-ID"]
        self.bob_raw = bob.as_bytes(policy=email.policy.SMTP)
        self.deliver(BOB, ["acme@acme.test"], bob)
        self.her_mids = [first["Message-ID"], second["Message-ID"]]
        srv.send("POST", f"/api/v1/tickets/{self.ticket}/replies",
                 {"text": "A technician comes today."}, expect=201)
        srv.send("POST", f"/api/v1/tickets/{self.ticket}/notes",
                 {"text": f"Called {RITA.upper()} back."}, expect=201)
        # Margarita (an address that ends like hers) and Dave (who names her) keep theirs;
        # Erin's ticket gets Rita's mail, held there (she is not on it).
        self.margarita = self.deliver(MARGARITA, ["acme@acme.test"], mail(
            MARGARITA, "acme@acme.test", "Toner order", "Two cartons."))["ticket"]
        self.dave = self.deliver(DAVE, ["acme@acme.test"], mail(
            DAVE, "acme@acme.test", f"Please call “{RITA}” today", "She knows."))["ticket"]
        # Ken sends a list naming her, as a file of bytes.
        ken = with_file(mail("ken@customer.test", "acme@acme.test", "Contacts", "Attached."),
                        "people.csv", f"name,address\nRita,{RITA}\n".encode())
        self.ken_mid = ken["Message-ID"]
        self.deliver("ken@customer.test", ["acme@acme.test"], ken)
        # Frank names her in a base64 body (as mail clients send non-ASCII text).
        frank = mail("frank@customer.test", "acme@acme.test", "Café", "x")
        frank.set_content(f"Ask Rita ({RITA}) about the café.", cte="base64")
        self.frank = self.deliver("frank@customer.test", ["acme@acme.test"], frank)
        self.frank_mid = frank["Message-ID"]
        erin = mail(ERIN, "acme@acme.test", "Scanner", "The scanner is slow.")
        self.erin = self.deliver(ERIN, ["acme@acme.test"], erin)["ticket"]
        held = mail(RITA, "acme@acme.test", "Re: Scanner", f"Me too. {self.her_words[2]}",
                    In_Reply_To=erin["Message-ID"])
        self.deliver(RITA, ["acme@acme.test"], held)
        # A staff answer with a file: its mail keeps a copy without the file too.
        srv.send("POST", f"/api/v1/tickets/{self.ticket}/replies", {
            "text": "The driver is attached.", "attachments": [{
                "name": "driver.txt", "content_type": "text/plain",
                "data_base64": base64.b64encode(b"driver bytes").decode()}]}, expect=201)
        # Her spam, deleted as spam by acme: acme blocks her.
        spam = self.deliver(RITA, ["acme@acme.test"],
                            mail(RITA, "acme@acme.test", "Cheap watches", "Buy now."))
        srv.send("DELETE", f"/api/v1/tickets/{spam['ticket']}?spam=true", b"")
        wait_for(lambda: [m for m in srv.api("/api/v1/outbox")["outbox"]
                          if m["recipient"] == RITA and m["status"] != "pending"])

    def deliver(self, sender, rcpts, message):
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port) as s:
            s.sendmail(sender, rcpts, message.as_bytes(policy=email.policy.SMTP))
        return self.srv.decision_for(message["Message-ID"])

    def rcpt(self, sender, to):
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port) as s:
            s.ehlo()
            s.mail(sender)
            return s.rcpt(to)[0]

    def test_erased_everywhere_and_others_intact(self):
        srv = self.srv
        data = srv.dir
        needles = [w.encode() for w in self.her_words]
        time.sleep(1)  # sled writes its log within 500 ms
        srv.dump_database()
        self.assertTrue(data_files_holding(data, needles), "the test reads the data folder")
        # Only owners and admins; staff are removed from staff first.
        srv.send("POST", f"/api/v1/people/{RITA}/erase", b"", token=self.manager, expect=403)
        srv.send("POST", "/api/v1/people/nobody/erase", b"", expect=400)
        srv.send("POST", "/api/v1/people/mia@ops.test/erase", b"", expect=409)
        # An organization's own address is not a person's (its every mail names it).
        srv.send("POST", "/api/v1/people/acme+x@acme.test/erase", b"", expect=409)
        # From Settings › People: the address typed twice.
        admin = Browser(srv)
        admin.get(self.admin_link)
        page = admin.get("/settings/people")[2]
        status, _, page = admin.post("/settings/people/erase", {
            "csrf": admin.csrf(page), "email": RITA, "confirm": BOB})
        self.assertEqual(status, 400)
        self.assertEqual(srv.ticket(self.ticket)["requester"], RITA)
        status, _, page = admin.post("/settings/people/erase", {
            "csrf": admin.csrf(page), "email": RITA, "confirm": RITA.upper()})
        self.assertEqual(status, 200)
        pseudonym = re.search(r"They are now (erased-[0-9a-f]+@erased\.invalid)", page).group(1)
        counts = re.search(r"(\d+) tickets, (\d+) entries, (\d+) original messages, "
                           r"(\d+) of others' originals naming them, (\d+) files",
                           page).groups()
        # Her ticket and Dave's (naming her); her three entries (one held in Erin's
        # ticket); her spam's original went with its ticket, three left; Dave's original
        # names her (in curly quotes), and so do Frank's and Ken's once decoded; her two
        # files and Ken's list.
        self.assertEqual(counts, ("2", "3", "3", "3", "3"))
        srv.api(f"/api/v1/messages/{urllib.parse.quote(self.ken_mid)}/raw", expect=404)
        srv.api(f"/api/v1/messages/{urllib.parse.quote(self.frank_mid)}/raw", expect=404)
        frank_text = srv.ticket(self.frank["ticket"])["events"][0]["text"]
        self.assertIn("Ask Rita (erased-", frank_text)
        self.assertNotIn("still hold the address", page)

        # The ticket: her entries "[erased]" under the pseudonym, Bob's and staff's intact.
        t = srv.ticket(self.ticket)
        self.assertEqual((t["requester"], t["summary"]), (pseudonym, "[erased]"))
        hers = [e for e in t["events"] if e["author"] == pseudonym]
        self.assertEqual([e["text"] for e in hers], ["[erased]", "[erased]"])
        bobs = [e for e in t["events"] if e["author"] == BOB]
        self.assertEqual(bobs[0]["text"], f"Bob: {self.bob_words}")
        self.assertIn(f"Called {pseudonym} back.", [e["text"] for e in t["events"]])
        for e in hers:
            srv.api(f"/api/v1/tickets/{self.ticket}/events/{e['seq']}/raw", expect=404)
        for mid in self.her_mids:
            srv.api(f"/api/v1/messages/{urllib.parse.quote(mid)}/raw", expect=404)
        bob_raw = srv.api(f"/api/v1/messages/{urllib.parse.quote(self.bob_mid)}/raw")
        self.assertTrue(bob_raw.endswith(self.bob_raw))
        sha = hashlib.sha256(self.bob_file).hexdigest()
        with admin.opener.open(srv.url(f"/desk/tickets/{self.ticket}/attachments/{sha}")) as r:
            self.assertEqual(r.read(), self.bob_file)
        # The staff's file on her ticket stays (it is the staff's, not hers).
        driver = hashlib.sha256(b"driver bytes").hexdigest()
        with admin.opener.open(srv.url(f"/desk/tickets/{self.ticket}/attachments/{driver}")) as r:
            self.assertEqual(r.read(), b"driver bytes")
        for f in self.her_files:
            her_sha = hashlib.sha256(f).hexdigest()
            url = f"/desk/tickets/{self.ticket}/attachments/{her_sha}"
            self.assertEqual(admin.get(url)[0], 404)

        # Her mail held in Erin's ticket is erased; Erin's words stay. Dave's ticket names
        # the pseudonym; Margarita's is untouched.
        erin = srv.ticket(self.erin)
        self.assertEqual([e["text"] for e in erin["events"] if e["author"] == pseudonym],
                         ["[erased]"])
        self.assertEqual(erin["events"][0]["text"], "The scanner is slow.")
        self.assertEqual(srv.ticket(self.dave)["summary"], f"Please call “{pseudonym}” today")
        marg = srv.ticket(self.margarita)
        self.assertEqual((marg["requester"], marg["summary"]), (MARGARITA, "Toner order"))
        self.assertIn(MARGARITA, json.dumps(srv.api("/api/v1/inbound")))
        # No API, page or search yields her address or words.
        texts = [json.dumps(srv.api(p)) for p in (
            f"/api/v1/tickets/{self.ticket}", "/api/v1/tickets", "/api/v1/inbound",
            "/api/v1/outbox", "/api/v1/orgs/acme/blocked")]
        audit = srv.api("/api/v1/audit", token=self.owner)["audit"]
        texts.append(json.dumps(audit))
        self.assertIn(("erasure", "tester@ops.test"),
                      [(a["action"], a["actor"]) for a in audit])
        # (A search page shows what was searched for in its box: not what it found.)
        pages = [re.sub(r'name="q" value="[^"]*"', "", admin.get(p)[2]) for p in (
            f"/desk/tickets/{self.ticket}", "/desk", "/dashboard", "/settings/orgs/acme",
            f"/desk?q={urllib.parse.quote(RITA)}", f"/desk?q={self.her_words[0]}")]
        for text in texts + pages:
            for needle in [RITA] + self.her_words:
                text = text.lower().replace(MARGARITA, "")
                self.assertNotIn(needle.lower(), text)
        self.assertIn("No tickets match.", pages[-1])
        export = json.loads(self.export_of(RITA).read("manifest.json"))
        self.assertEqual(export["tickets"], [])

        # After compaction, no file of the data folder holds them; Bob's words are there.
        srv.stop()
        out = srv.cli("compact").stdout
        self.assertIn("compacted", out)
        srv.dump_database()
        self.assertEqual(data_files_holding(data, needles), [])
        self.assertEqual(data_files_holding(data, [RITA.encode()], whole=True), [])
        self.assertTrue(data_files_holding(data, [self.bob_words.encode(), self.bob_file[:64]]))
        srv.start()
        self.assertEqual(srv.ticket(self.ticket)["events"][0]["author"], pseudonym)
        # Her block and her opt-out still hold: kept as hashes of her address.
        self.assertEqual(self.rcpt(RITA, "acme@acme.test"), 550)
        blocked = srv.api("/api/v1/orgs/acme/blocked")
        self.assertEqual([b["sender"] for b in blocked], [pseudonym])
        again = self.deliver(RITA, ["beta@acme.test"],
                             mail(RITA, "beta@acme.test", "New question", "Hello again."))
        time.sleep(1.5)
        to_her = [m for m in srv.api("/api/v1/outbox")["outbox"]
                  if m["recipient"] == RITA and m["ticket"] == again["ticket"]]
        self.assertEqual(to_her, [])

    def export_of(self, who):
        req = urllib.request.Request(self.srv.url(f"/api/v1/people/{who}/export"))
        req.add_header("Authorization", f"Bearer {self.srv.token}")
        with urllib.request.urlopen(req, timeout=30) as r:
            return zipfile.ZipFile(io.BytesIO(r.read()))


if __name__ == "__main__":
    unittest.main()
