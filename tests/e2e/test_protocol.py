"""Protocol abuse with raw bytes: each gets the right reply code, and the server keeps
serving this session (where the protocol allows) and everyone else."""

import smtplib
import socket
import unittest
import uuid

from harness import Server


class Raw:
    """A bare SMTP conversation: send bytes, read one complete (multi-line) reply."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.buf = b""
        self.greeting = self.reply()

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed; had {self.buf!r}")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode()

    def reply(self):
        lines = [self.line()]
        while len(lines[-1]) > 3 and lines[-1][3] == "-":
            lines.append(self.line())
        return lines[-1]

    def cmd(self, text):
        self.send(text.encode() + b"\r\n")
        return self.reply()

    def close(self):
        self.sock.close()


class Protocol(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(env={"POSTDESK_MAX_MESSAGE_SIZE": "200000",
                              "POSTDESK_MAX_LINE_LENGTH": "2000"}).bootstrap().start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()

    def session(self):
        c = Raw(self.srv.smtp_port)
        self.assertTrue(c.greeting.startswith("220 "), c.greeting)
        self.assertTrue(c.cmd("EHLO abuse.test").startswith("250 "))
        return c

    def assert_still_serving(self):
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port, timeout=20) as s:
            self.assertEqual(s.noop()[0], 250)

    def test_overlong_command_line(self):
        c = self.session()
        self.assertTrue(c.cmd("MAIL FROM:<" + "a" * 6000 + "@x.test>").startswith("500 5.5.2"))
        self.assertTrue(c.cmd("NOOP").startswith("250"))
        c.close()
        self.assert_still_serving()

    def test_garbage_commands(self):
        c = self.session()
        for junk in ["HELLO WORLD", "\x00\x01\x02", "GET / HTTP/1.1", "MAIL", "RCPT TO:<>", "EHLO"]:
            r = c.cmd(junk)
            self.assertRegex(r, r"^5\d\d 5\.\d\.\d", junk)
        self.assertTrue(c.cmd("NOOP").startswith("250"))
        self.assertTrue(c.cmd("VRFY acme@acme.test").startswith("252"))
        self.assertTrue(c.cmd("QUIT").startswith("221"))
        c.close()
        self.assert_still_serving()

    def test_commands_out_of_order(self):
        c = Raw(self.srv.smtp_port)
        self.assertTrue(c.cmd("MAIL FROM:<a@x.test>").startswith("503 5.5.1"))
        c.cmd("EHLO x")
        self.assertTrue(c.cmd("RCPT TO:<acme@acme.test>").startswith("503 5.5.1"))
        self.assertTrue(c.cmd("DATA").startswith("503 5.5.1"))
        self.assertTrue(c.cmd("MAIL FROM:<a@x.test>").startswith("250"))
        self.assertTrue(c.cmd("DATA").startswith("554 5.5.1"), "DATA before any RCPT")
        self.assertTrue(c.cmd("MAIL FROM:<b@x.test>").startswith("503 5.5.1"))
        self.assertTrue(c.cmd("RSET").startswith("250"))
        self.assertTrue(c.cmd("MAIL FROM:<b@x.test>").startswith("250"))
        c.close()

    def test_bare_lf_cannot_smuggle_a_second_message(self):
        c = self.session()
        c.cmd("MAIL FROM:<a@x.test>")
        c.cmd("RCPT TO:<acme@acme.test>")
        self.assertTrue(c.cmd("DATA").startswith("354"))
        mid = f"<{uuid.uuid4().hex}@x.test>"
        evil = f"<{uuid.uuid4().hex}@evil.test>"
        # Bare LFs are accepted (as Postfix does), but "\n.\n" does not end DATA: the
        # would-be second message stays inside the first.
        c.send(f"Subject: bare\r\nMessage-ID: {mid}\r\n\r\nline one\nline two\n.\n"
               f"MAIL FROM:<evil@x.test>\nRCPT TO:<acme@acme.test>\nDATA\n"
               f"Message-ID: {evil}\nSubject: smuggled\n\nhi\n.\n"
               "end\r\n.\r\n".encode())
        self.assertTrue(c.reply().startswith("250 2.0.0"))
        self.assertTrue(c.cmd("NOOP").startswith("250"))
        c.close()
        d = self.srv.decision_for(mid)
        self.assertIn("MAIL FROM:<evil@x.test>", self.srv.ticket(d["ticket"])["events"][0]["text"])
        self.assertFalse([x for x in self.srv.decisions() if x.get("message_id") == evil])

    def test_overlong_data_line(self):
        c = self.session()
        c.cmd("MAIL FROM:<a@x.test>")
        c.cmd("RCPT TO:<acme@acme.test>")
        c.cmd("DATA")
        c.send(b"Subject: long\r\n\r\n" + b"x" * 3000 + b"\r\n.\r\n")
        self.assertTrue(c.reply().startswith("554 5.6.0"))
        self.assertTrue(c.cmd("NOOP").startswith("250"))
        c.close()

    def test_oversize_data(self):
        c = self.session()
        self.assertTrue(c.cmd("MAIL FROM:<a@x.test> SIZE=999999999").startswith("552 5.3.4"))
        c.cmd("MAIL FROM:<a@x.test>")
        c.cmd("RCPT TO:<acme@acme.test>")
        c.cmd("DATA")
        body = b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 400  # about 400 kB > 200 kB
        c.send(body + b".\r\n")
        self.assertTrue(c.reply().startswith("552 5.3.4"))
        self.assertTrue(c.cmd("NOOP").startswith("250"))
        c.close()
        self.assert_still_serving()

    def test_101st_recipient(self):
        c = self.session()
        c.cmd("MAIL FROM:<a@x.test>")
        for i in range(100):
            self.assertTrue(c.cmd(f"RCPT TO:<acme+{i}@acme.test>").startswith("250"))
        self.assertTrue(c.cmd("RCPT TO:<acme+100@acme.test>").startswith("452 4.5.3"))
        self.assertTrue(c.cmd("DATA").startswith("354"))
        c.send(b"Subject: many\r\nMessage-ID: <many-rcpts@x.test>\r\n\r\nhi\r\n.\r\n")
        self.assertTrue(c.reply().startswith("250"))
        c.close()
        d = self.srv.decision_for("<many-rcpts@x.test>")
        self.assertEqual(d["outcome"], "accepted")

    def test_pipelined_commands(self):
        c = self.session()
        mid = f"<{uuid.uuid4().hex}@x.test>"
        c.send(b"MAIL FROM:<p@x.test>\r\nRCPT TO:<nobody@acme.test>\r\nRCPT TO:<acme@acme.test>\r\nDATA\r\n")
        self.assertTrue(c.reply().startswith("250"))
        self.assertTrue(c.reply().startswith("550 5.1.1"))
        self.assertTrue(c.reply().startswith("250"))
        self.assertTrue(c.reply().startswith("354"))
        c.send(f"Subject: piped\r\nMessage-ID: {mid}\r\n\r\n..dot-stuffed\r\n.\r\nNOOP\r\nQUIT\r\n".encode())
        self.assertTrue(c.reply().startswith("250 2.0.0"))
        self.assertTrue(c.reply().startswith("250"))
        self.assertTrue(c.reply().startswith("221"))
        c.close()
        d = self.srv.decision_for(mid)
        self.assertEqual(self.srv.ticket(d["ticket"])["events"][0]["text"], ".dot-stuffed")

    def test_starttls_not_offered_without_certificate(self):
        c = self.session()
        self.assertTrue(c.cmd("STARTTLS").startswith("454 4.7.0"))
        self.assertTrue(c.cmd("NOOP").startswith("250"))
        c.close()


if __name__ == "__main__":
    unittest.main()
