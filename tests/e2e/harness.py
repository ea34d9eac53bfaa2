"""Starts a real `postdesk serve` on ephemeral ports in a private data folder, and talks
to it the way users do: SMTP/LMTP with standard clients, the JSON API over HTTP."""

import base64
import datetime
import email
import email.policy
import glob
import http.client
import http.cookiejar
import json
import re
import os
import uuid
from email.message import EmailMessage
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import requests

BIN = os.environ.get("POSTDESK_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "target", "debug", "postdesk")


def postgres_url():
    """The private PostgreSQL server of this run when the suites run on that backend
    (scripts/test starts it), else None: the store is sled in the data folder."""
    if os.environ.get("POSTDESK_TEST_BACKEND") != "postgres":
        return None
    return os.environ["POSTDESK_TEST_DATABASE_URL"]


def new_database():
    """A database URL of a fresh schema of its own in this run's PostgreSQL, for one
    server (or the nodes of one site)."""
    base = postgres_url()
    schema = "e2e_" + uuid.uuid4().hex[:16]
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", base, "-c", f"CREATE SCHEMA {schema}"],
                   check=True, capture_output=True, timeout=60)
    joiner = "&" if "?" in base else "?"
    return f"{base}{joiner}options=-c%20search_path%3D{schema}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One Postdesk instance. `setup` runs admin commands before the first start."""

    def __init__(self, domain="acme.test", lmtp=False, env=None, config=None):
        self.dir = tempfile.mkdtemp(prefix="postdesk-e2e-")
        self.data = os.path.join(self.dir, "data")
        self.domain = domain
        self.smtp_port = free_port()
        self.lmtp_port = free_port() if lmtp else None
        self.http_port = free_port()
        # DKIM/DMARC answers come from a records file, empty unless a test writes one:
        # tests ask no DNS server anything.
        records = os.path.join(self.dir, "no-records.txt")
        open(records, "w").close()
        self.env = dict(os.environ, POSTDESK_LOG="warn", POSTDESK_DOMAIN=domain,
                        POSTDESK_DNS_RECORDS=records)
        if postgres_url():
            self.env["POSTDESK_DATABASE_URL"] = new_database()
        self.env.update(env or {})
        self.proc = None
        self.log = open(os.path.join(self.dir, "server.log"), "ab")
        self.token = None
        # Settings only a file can give (e.g. [[imap]] tables), as TOML text.
        self.config = None
        if config:
            self.config = os.path.join(self.dir, "postdesk.toml")
            with open(self.config, "w") as f:
                f.write(config)

    # --- admin commands (server stopped) ---
    def cli(self, *args, check=True):
        r = subprocess.run([BIN, *self.global_args(), *args], env=self.env,
                           capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError(f"postdesk {' '.join(args)} failed: {r.stderr}")
        return r

    def bootstrap(self, orgs=(("acme", "Acme", []),), staff=()):
        """Organizations (slug, name, extra CLI args), staff (email, name, role), and an
        admin API token for the tests."""
        for slug, name, extra in orgs:
            self.cli("org", "add", slug, "--name", name, *extra)
        self.cli("staff", "add", "tester@ops.test", "--name", "Tester", "--role", "admin")
        for email, name, role in staff:
            self.cli("staff", "add", email, "--name", name, "--role", role)
        self.token = self.cli("token", "create", "tester@ops.test").stdout.strip()
        return self

    def global_args(self):
        return ["--data", self.data] + (["--config", self.config] if self.config else [])

    # --- lifecycle ---
    def start(self):
        # free_port() cannot hold a port: another suite running in parallel may bind it
        # first. Then this server cannot listen and exits, and a healthz answer may even
        # come from the other server; so "up" means our process lives and our SMTP port
        # greets, and a lost port race is retried with fresh ports.
        for attempt in range(5):
            if self.launch():
                return self
            if attempt == 4 or "cannot listen" not in self.read_log():
                raise AssertionError(f"server exited early: {self.read_log()}")
            self.smtp_port, self.http_port = free_port(), free_port()
            if self.lmtp_port:
                self.lmtp_port = free_port()
        raise AssertionError("server did not come up")

    def launch(self):
        """Starts the process; True once it serves, False if it exited early."""
        args = [BIN, *self.global_args(), "serve", "--smtp", f"127.0.0.1:{self.smtp_port}",
                "--http", f"127.0.0.1:{self.http_port}", "--domain", self.domain]
        if self.lmtp_port:
            args += ["--lmtp", f"127.0.0.1:{self.lmtp_port}"]
        self.proc = subprocess.Popen(args, env=self.env, stdout=self.log, stderr=self.log)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(self.url("/healthz"), timeout=1):
                    pass
                with socket.create_connection(("127.0.0.1", self.smtp_port), timeout=2) as s:
                    if s.recv(3) == b"220" and self.proc.poll() is None:
                        return True
            # A port another suite's server holds may answer in another protocol (its SMTP
            # greeting on our HTTP port): not ours, so not up; our process then exits
            # with "cannot listen" and start() retries on fresh ports.
            except (OSError, http.client.HTTPException):
                time.sleep(0.05)
        raise AssertionError("server did not come up")

    def kill(self):
        """SIGKILL: no clean shutdown, as in a crash or power loss."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def close(self):
        self.stop()
        self.log.close()
        # POSTDESK_E2E_KEEP=1 keeps the folder (server.log, data) to look at after a run.
        if not os.environ.get("POSTDESK_E2E_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def dump_database(self):
        """On PostgreSQL: every key and value of this server's store, raw, into
        `database.dump` in its folder, so that what greps the folder reads the database too
        (on sled the database is in the folder already)."""
        url = self.env.get("POSTDESK_DATABASE_URL")
        if not url:
            return
        path = os.path.join(self.dir, "database.dump")
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c",
                        f"\\copy (SELECT k, v FROM postdesk_kv) TO '{path}' WITH (FORMAT binary)"],
                       check=True, capture_output=True, timeout=120)

    def stored(self, kind):
        """Names of the stored originals (`raw`) or file contents (`blobs`) kept outside
        the database's small records: sled's files (over 64 KiB), or PostgreSQL's rows."""
        url = self.env.get("POSTDESK_DATABASE_URL")
        if not url:
            folder = os.path.join(self.data, "files", kind)
            return set(os.listdir(folder)) if os.path.isdir(folder) else set()
        r = subprocess.run(["psql", "-qAt", "-v", "ON_ERROR_STOP=1", url, "-c",
                            "SELECT encode(k, 'hex') FROM postdesk_kv JOIN postdesk_trees t "
                            f"ON t.id = tree WHERE t.name = '{kind}'"],
                           check=True, capture_output=True, text=True, timeout=60)
        return set(r.stdout.split())

    def read_log(self):
        self.log.flush()
        with open(os.path.join(self.dir, "server.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")[-4000:]

    # --- HTTP API ---
    def url(self, path):
        return f"http://127.0.0.1:{self.http_port}{path}"

    def api(self, path, token=None, expect=200):
        req = urllib.request.Request(self.url(path))
        tok = token if token is not None else self.token
        if tok:
            req.add_header("Authorization", f"Bearer {tok}")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status, body, ctype = r.status, r.read(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            status, body, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
        if status != expect:
            raise AssertionError(f"GET {path}: {status} {body[:300]!r} (wanted {expect})")
        return json.loads(body) if "json" in ctype else body

    def send(self, method, path, body, token=None, expect=200):
        """A JSON write (POST/PATCH); `body` is an object, or bytes sent as they are."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(self.url(path), data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        tok = token if token is not None else self.token
        if tok:
            req.add_header("Authorization", f"Bearer {tok}")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        if status != expect:
            raise AssertionError(f"{method} {path}: {status} {raw[:300]!r} (wanted {expect})")
        return json.loads(raw) if raw else None

    def tickets(self, query=""):
        return self.api(f"/api/v1/tickets{query}")["tickets"]

    def ticket(self, n):
        return self.api(f"/api/v1/tickets/{n}")

    def decisions(self, limit=1000):
        return self.api(f"/api/v1/inbound?limit={limit}")["inbound"]

    def decision_for(self, message_id, timeout=10):
        """Waits until the pipeline has decided a message, and returns the decision."""
        want = message_id if message_id.startswith("<") else f"<{message_id}>"
        found = wait_for(lambda: [d for d in self.decisions() if d.get("message_id") == want],
                         timeout)
        return found[0]


class MovedClock:
    """The server's clock, moved by the tests: the offset file the server reads at every
    call (`clock_offset_file`), set before the server starts."""

    def __init__(self, srv):
        self.path = os.path.join(srv.dir, "clock-offset")
        srv.env["POSTDESK_CLOCK_OFFSET_FILE"] = self.path
        self.offset = 0

    def move(self, seconds):
        self.offset += seconds
        with open(self.path, "w") as f:
            f.write(str(self.offset))

    def now(self):
        """The time the server reads now."""
        return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
            seconds=self.offset)


def wait_for(fn, timeout=10, interval=0.05):
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {fn}")
        time.sleep(interval)


def rsa_key(path):
    """A new 2048-bit RSA key written to `path` (openssl): its PEM, and the base64 DER of
    its public half, as a DKIM TXT record's p= carries it."""
    subprocess.run(["openssl", "genrsa", "-out", path, "2048"], check=True, capture_output=True)
    der = subprocess.run(["openssl", "rsa", "-in", path, "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    with open(path, "rb") as f:
        return f.read(), base64.b64encode(der).decode()


def mail(frm, to, subject, body="Hello", **headers):
    """A message as a mail client would write it; keyword headers use _ for -."""
    m = EmailMessage()
    m["From"] = frm
    m["To"] = to
    m["Subject"] = subject
    m["Message-ID"] = headers.pop("message_id", f"<{uuid.uuid4().hex}@client.test>")
    for k, v in headers.items():
        m[k.replace("_", "-")] = v
    m.set_content(body)
    return m


class Browser:
    """A browser without JavaScript for the web UI: keeps cookies, posts forms, and does
    not follow redirects so tests see them."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    def __init__(self, srv):
        self.srv = srv
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), self.NoRedirect)

    def request(self, path, form=None):
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        try:
            with self.opener.open(self.srv.url(path), data=data, timeout=10) as r:
                return r.status, r.headers, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read().decode()

    def get(self, path):
        return self.request(path)

    def post(self, path, form):
        return self.request(path, form)

    def post_files(self, path, form, files=()):
        """A multipart form post, as a browser sends a form with file fields; `files` are
        (field, filename, bytes, content type)."""
        parts = [(field, (name, data, ctype)) for field, name, data, ctype in files]
        # An empty file field is still sent, as browsers do.
        parts = parts or [("files", ("", b"", "application/octet-stream"))]
        r = requests.post(self.srv.url(path), data=form, files=parts, cookies=self.jar,
                          allow_redirects=False, timeout=30)
        return r.status_code, r.headers, r.text

    def csrf(self, page):
        return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def outbox_mails(srv, address):
    """Mail written to the data folder's outbox (no relay configured) for `address`."""
    out = []
    for path in glob.glob(os.path.join(srv.data, "outbox", "*.eml")):
        with open(path, "rb") as f:
            m = email.message_from_binary_file(f, policy=email.policy.default)
        if address in str(m["To"]):
            out.append(m)
    return out


def outbox_raw(srv, message):
    """The bytes of an outbox mail as they were written (a DKIM signature covers them;
    re-serializing a parsed message may fold its header differently)."""
    for path in glob.glob(os.path.join(srv.data, "outbox", "*.eml")):
        with open(path, "rb") as f:
            raw = f.read()
        if message["Message-ID"].encode() in raw:
            return raw
    raise AssertionError(f"{message['Message-ID']} is not in the outbox")


def sign_in_link(srv, address, count=1):
    """The path of the newest sign-in link mailed to `address`, once `count` have come."""
    mails = wait_for(lambda: (lambda m: m if len(m) >= count else None)(
        [m for m in outbox_mails(srv, address) if "sign-in link" in str(m["Subject"])]))
    text = mails[-1].get_body(("plain",)).get_content()
    return re.search(r"http://[^\s]+(/portal/link/[a-z0-9]+)", text).group(1)


def staff_link(srv, email_address):
    """The path of a staff sign-in link made by `postdesk staff link` (server stopped)."""
    return urllib.parse.urlparse(srv.cli("staff", "link", email_address).stdout.strip()).path
