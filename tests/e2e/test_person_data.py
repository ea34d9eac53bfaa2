"""A person's data over the real server: the ZIP of everything held about one address,
from the API, from Settings › People and from `postdesk person export`, read back with
Python's zipfile. Their original messages and attachments come back byte for byte; what
others wrote privately, and others' files, do not; only owners and admins get it; each
export is in the audit log."""

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
import zipfile

from harness import Browser, Server, mail, staff_link, wait_for

CORPUS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "corpora",
                      "mikel-mail", "attachment_emails", "attachment_pdf_non_ascii.eml")
RITA = "rita@customer.test"
BOB = "bob@customer.test"


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
        # Rita again, with a file whose name tries to leave its folder.
        second = mail(RITA, "acme@acme.test", "Re: printer", "And the log.",
                      message_id=f"<{time.time_ns()}.second@customer.test>", In_Reply_To=first)
        cls.rita_log = os.urandom(3000)
        with_file(second, "../../etc/passwd", cls.rita_log)
        cls.sent["second"] = second.as_bytes(policy=email.policy.SMTP)
        cls.send(RITA, ["acme@acme.test"], cls.sent["second"])
        srv.decision_for(second["Message-ID"])
        # Bob, copied, answers into the same ticket with a file of his own.
        bob = mail(BOB, "acme@acme.test", "Re: printer", "Bob here: same jam on floor 2.",
                   message_id=f"<{time.time_ns()}.bob@customer.test>", In_Reply_To=first)
        cls.bob_file = os.urandom(2000)
        with_file(bob, "bob.bin", cls.bob_file)
        cls.sent["bob"] = bob.as_bytes(policy=email.policy.SMTP)
        cls.send(BOB, ["acme@acme.test"], cls.sent["bob"])
        srv.decision_for(bob["Message-ID"])
        srv.send("POST", f"/api/v1/tickets/{cls.ticket}/replies",
                 {"text": "We are sending a technician."}, expect=201)
        srv.send("POST", f"/api/v1/tickets/{cls.ticket}/notes",
                 {"text": "Internal: Rita's floor has the old model."}, expect=201)
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
        ticket = manifest["tickets"][0]
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
                            ("messages", "attachments"), name)
        # What she can see of others is there as text; their files and the staff's
        # internal note are not.
        texts = [e["text"] for e in ticket["events"]]
        self.assertTrue(any("same jam on floor 2" in t for t in texts))
        self.assertTrue(any("sending a technician" in t for t in texts))
        self.assertFalse(any("old model" in t for t in texts))
        self.assertNotIn(self.bob_file, files.values())
        self.assertEqual(manifest["files"], len(z.namelist()) - 1)
        self.assertIsNone(manifest["staff"])
        self.assertTrue(manifest["contact"]["automatic_mail"])

    def test_another_person_gets_their_own(self):
        z = self.export(BOB.upper())
        manifest = json.loads(z.read("manifest.json"))
        self.assertEqual(manifest["email"], BOB)
        ticket = manifest["tickets"][0]
        self.assertEqual(ticket["number"], self.ticket)
        self.assertNotIn("requester", ticket["roles"])
        theirs = [e for e in ticket["events"] if e["by_them"]]
        self.assertEqual(len(theirs), 1)
        self.assertTrue(z.read(theirs[0]["original"]).endswith(self.sent["bob"]))
        self.assertEqual([z.read(a["file"]) for a in theirs[0]["attachments"]],
                         [self.bob_file])
        self.assertFalse(any(n.endswith(".eml") and n != theirs[0]["original"]
                             for n in z.namelist()))
        # Staff: their record, and what they wrote anywhere, internal notes included.
        staff = json.loads(self.export("tester@ops.test").read("manifest.json"))
        self.assertEqual(staff["staff"]["role"], "admin")
        texts = [e["text"] for t in staff["tickets"] for e in t["events"]]
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
        self.assertIn('id="person-export"', admin.get("/settings/people")[2])
        with admin.opener.open(srv.url(f"/settings/people/export?email={RITA}"),
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


if __name__ == "__main__":
    unittest.main()
