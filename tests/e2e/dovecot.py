"""A private Dovecot IMAP server on a loopback port for the IMAP import tests: its own
config, mail folder and test user; mail is put in and looked at with Python's imaplib."""

import imaplib
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

from harness import free_port

CONFIG = """\
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
protocols = imap
listen = 127.0.0.1
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{dir}/mail/%u
# Tell IDLE clients about new mail at once rather than at the 30 s default check.
mailbox_idle_check_interval = 1 secs
{capability}
{namespace}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={dir}/mail/%u
}}
default_internal_user = {internal}
default_login_user = {internal}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


# The inbox namespace most tests use: "/" as the hierarchy separator, as many servers have.
SLASH_NAMESPACE = {"separator": "/"}
# As Courier and Cyrus (without altnamespace) name folders: under "INBOX.", "." between.
INBOX_PREFIX_NAMESPACE = {"prefix": "INBOX.", "separator": "."}


def namespace_block(settings):
    """The inbox namespace section for `settings`; none at all for None, which is Dovecot
    as installed: its implicit namespace, maildir's "." separator, no prefix."""
    if settings is None:
        return ""
    lines = "".join(f"  {k} = {v}\n" for k, v in settings.items())
    return f"namespace inbox {{\n  inbox = yes\n{lines}}}"


class Dovecot:
    """`capability`, if given, replaces what Dovecot announces after login (e.g. without
    IDLE or MOVE, to exercise Postdesk's polling and copy-and-expunge paths). `namespace`
    gives the inbox namespace's settings, or None for none (Dovecot's default)."""

    def __init__(self, user="support", password="s3cret-imap-pw", capability=None, tls=False,
                 namespace=SLASH_NAMESPACE):
        self.dir = tempfile.mkdtemp(prefix="dovecot-e2e-")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.imaps_port = free_port() if tls else 0
        self.ca = None
        ssl = "ssl = no"
        if tls:
            self.ca, cert, key = self.make_certificates()
            ssl = f"ssl = required\nssl_cert = <{cert}\nssl_key = <{key}"
        self.user, self.password = user, password
        # Mail is owned by an unprivileged user: Dovecot refuses UID 0 for mail access.
        if os.geteuid() == 0:
            mail_user = pwd.getpwnam("nobody")
            internal = "dovecot"
        else:
            mail_user = pwd.getpwuid(os.geteuid())
            internal = mail_user.pw_name
        for d in ("run", "state", "mail"):
            os.makedirs(os.path.join(self.dir, d))
        os.chown(os.path.join(self.dir, "mail"), mail_user.pw_uid, mail_user.pw_gid)
        with open(os.path.join(self.dir, "passwd"), "w") as f:
            f.write(f"{user}:{{PLAIN}}{password}::::::\n")
        self.conf = os.path.join(self.dir, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write(CONFIG.format(
                dir=self.dir, port=self.port, imaps_port=self.imaps_port, ssl=ssl,
                uid=mail_user.pw_uid, gid=mail_user.pw_gid,
                internal=internal, namespace=namespace_block(namespace),
                capability=f"imap_capability = {capability}" if capability else ""))
        self.proc = None

    def make_certificates(self):
        """A private CA and a certificate for "localhost" signed by it: what a client must
        be told to trust (rustls accepts no self-signed CA as a server certificate)."""
        d = os.path.join(self.dir, "tls")
        os.makedirs(d)
        p = lambda name: os.path.join(d, name)
        run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=Postdesk test CA", "-keyout", p("ca.key"), "-out", p("ca.pem"))
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", p("key.pem"), "-out", p("req.csr"))
        with open(p("ext"), "w") as f:
            f.write("subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n")
        run("x509", "-req", "-in", p("req.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"),
            "-CAcreateserial", "-days", "2", "-extfile", p("ext"), "-out", p("cert.pem"))
        return p("ca.pem"), p("cert.pem"), p("key.pem")

    def start(self):
        # Its own process group, so stopping it takes every Dovecot process with it.
        self.proc = subprocess.Popen(["dovecot", "-F", "-c", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"dovecot exited: {self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(100).startswith(b"* OK"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"dovecot did not come up: {self.log()}")

    def stop(self):
        """A service restart as systemd does it: the master and every process it started
        (the IMAP sessions too; Dovecot's master alone leaves those running) are ended."""
        if self.proc:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=20)
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc = None
        # Its login and imap processes go with it; wait until the port is free again.
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                time.sleep(0.05)
            except OSError:
                return

    def kill(self):
        """A crash: every Dovecot process is SIGKILLed at once; connections drop mid-command."""
        if self.proc:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=20)
        self.stop()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self):
        try:
            with open(os.path.join(self.dir, "dovecot.log")) as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def client(self):
        if self.ca:
            # With TLS on, Dovecot takes no password before STARTTLS (ssl = required).
            c = imaplib.IMAP4("localhost", self.port)
            c.starttls(ssl.create_default_context(cafile=self.ca))
        else:
            c = imaplib.IMAP4("127.0.0.1", self.port)
        c.login(self.user, self.password)
        return c

    def append(self, folder, message, flags=None):
        """Appends a message (bytes or an email.message.Message) as a mail client would."""
        raw = message if isinstance(message, bytes) else message.as_bytes()
        c = self.client()
        try:
            typ, data = c.append(folder, flags, None, raw)
            assert typ == "OK", data
        finally:
            c.logout()

    def append_many(self, folder, messages):
        c = self.client()
        try:
            for m in messages:
                raw = m if isinstance(m, bytes) else m.as_bytes()
                typ, data = c.append(folder, None, None, raw)
                assert typ == "OK", data
        finally:
            c.logout()

    def uids(self, folder, criteria="ALL"):
        """UIDs in a folder matching a SEARCH criteria (e.g. "UNSEEN")."""
        c = self.client()
        try:
            typ, data = c.select(f'"{folder}"')
            if typ != "OK":
                return []
            typ, data = c.uid("SEARCH", None, criteria)
            return [int(x) for x in data[0].split()]
        finally:
            c.logout()

    def folders(self):
        """Every mailbox name as the server lists it (LIST "" "*")."""
        def names(c):
            typ, data = c.list('""', "*")
            assert typ == "OK", data
            # Each line: (flags) "delimiter" name, the name quoted or an atom.
            return [line.decode().split(") ", 1)[1].split(" ", 1)[1].strip('"')
                    for line in data if line]
        return self.run_on(names)

    def message_ids(self, folder):
        """The Message-IDs of the messages in a folder, sorted."""
        def ids(c):
            typ, data = c.select(f'"{folder}"', readonly=True)
            if typ != "OK" or data[0] == b"0":
                return []
            typ, data = c.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            return sorted(part[1].decode().split(":", 1)[1].strip()
                          for part in data if isinstance(part, tuple))
        return self.run_on(ids)

    def uidvalidity(self, folder):
        c = self.client()
        try:
            c.select(f'"{folder}"')
            return int(c.untagged_responses["UIDVALIDITY"][0])
        finally:
            c.logout()

    def run_on(self, fn):
        """Runs fn(imaplib client) on a fresh, logged-in connection."""
        c = self.client()
        try:
            return fn(c)
        finally:
            c.logout()
