"""Several Postdesk nodes on one PostgreSQL (a private cluster of this suite's own, so a
test may restart it): clients send to both nodes while one is SIGKILLed and restarted;
every acknowledged message lands in a ticket once, every outbound mail reaches the relay
(aiosmtpd, counting) once; the IMAP source and the outbox move to the surviving node; a
database restart costs clients a 4xx, never a 250 for a message that was not stored."""

import asyncio
import collections
import email
import email.policy
import os
import shutil
import smtplib
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request

from aiosmtpd.controller import Controller
from prometheus_client.parser import text_string_to_metric_families

from dovecot import Dovecot
from harness import Browser, Server, free_port, mail, wait_for
from test_imap import ticket_entries

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts",
                      "private-postgres")


class PrivatePostgres:
    """A PostgreSQL cluster of this suite's own (scripts/private-postgres); `ssl`: TLS on,
    its certificate signed by the private CA in `self.cert`."""

    def __init__(self, ssl=False):
        self.dir = tempfile.mkdtemp(prefix="postdesk-pg-")
        self.env = dict(os.environ, SSL="1" if ssl else "0")
        self.url = self.run("start").strip()
        self.cert = os.path.join(self.dir, "ca.crt")

    def run(self, command):
        return subprocess.run([SCRIPT, command, self.dir], check=True, capture_output=True,
                              text=True, timeout=120, env=self.env).stdout

    def restart(self):
        self.run("restart")

    def close(self):
        try:
            self.run("stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class CountingRelay:
    """An aiosmtpd relay that keeps every mail it takes, `delay` seconds each."""

    def __init__(self, delay=0.0):
        self.delay = delay
        self.port = free_port()
        self.received = []
        self.lock = threading.Lock()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(self.delay)
        with self.lock:
            self.received.append(envelope.content)
        return "250 2.0.0 Queued"

    def message_ids(self):
        with self.lock:
            raws = list(self.received)
        return [email.message_from_bytes(r, policy=email.policy.default)["Message-ID"]
                for r in raws]

    def stop(self):
        self.controller.stop()


class Site:
    """Nodes on one database, sending through one relay; the first node set it up."""

    def __init__(self, test, nodes=2, config=None, relay_delay=0.0):
        self.pg = PrivatePostgres()
        test.addCleanup(self.pg.close)
        self.relay = CountingRelay(relay_delay)
        test.addCleanup(self.relay.stop)
        env = {"POSTDESK_DATABASE_URL": self.pg.url,
               "POSTDESK_LOG": "info",
               "POSTDESK_RELAY_URL": f"smtp://127.0.0.1:{self.relay.port}",
               "POSTDESK_RELAY_TLS": "none",
               "POSTDESK_RELAY_RETRY_BASE_SECS": "1"}
        self.nodes = []
        for _ in range(nodes):
            node = Server(env=env, config=config)
            test.addCleanup(node.close)
            self.nodes.append(node)
        first = self.nodes[0]
        first.bootstrap(staff=[("alex@acme.test", "Alex Doe", "tech")])
        first.cli("dkim", "generate", "--org", "acme", "--selector", "s1")
        for node in self.nodes[1:]:
            node.token = first.token

    def start(self):
        for node in self.nodes:
            node.start()
        return self

    def outbox(self):
        alive = next(n for n in self.nodes if n.proc and n.proc.poll() is None)
        return alive.api("/api/v1/outbox?limit=100000")["outbox"]

    def settled_outbox(self):
        """The outbox once nothing in it waits to be sent, every item sent (or the test
        fails naming those that are not)."""
        def settled():
            items = self.outbox()
            return items if items and all(i["status"]["state"] != "pending" for i in items) else None
        items = wait_for(settled, timeout=120, interval=0.5)
        unsent = [i for i in items if i["status"]["state"] != "sent"]
        assert not unsent, unsent[:5]
        return items


def scrape(srv):
    """A node's /metrics: {(name, labels): value}."""
    with urllib.request.urlopen(srv.url("/metrics"), timeout=10) as r:
        text = r.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def whole_log(srv):
    with open(os.path.join(srv.dir, "server.log"), "rb") as f:
        return f.read().decode("utf-8", "replace")


def deliver(nodes, first, message, log):
    """Sends `message` until a node answers 250, starting with node `first` and trying
    the others after a refusal or a lost connection; logs each answer."""
    i = first
    deadline = time.time() + 120
    while time.time() < deadline:
        node = nodes[i % len(nodes)]
        try:
            with smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=30) as s:
                s.send_message(message)
            log.append((message["Message-ID"], 250))
            return
        except smtplib.SMTPResponseException as e:
            log.append((message["Message-ID"], e.smtp_code))
        except (OSError, smtplib.SMTPException):
            log.append((message["Message-ID"], None))
        i += 1
        time.sleep(0.05)
    raise AssertionError(f"{message['Message-ID']} was never taken")


class SeveralNodes(unittest.TestCase):
    def test_twenty_clients_on_two_nodes_one_killed_and_restarted(self):
        site = Site(self).start()
        a, b = site.nodes
        clients, least = 20, 6
        log, sent, failures = [], [], []
        killed = threading.Event()

        def client(c):
            try:
                first = mail(f"client{c}@customer.test", "acme@acme.test", f"Question {c}",
                             f"Client {c} asks.", message_id=f"<c{c}-0@client.test>")
                sent.append(first["Message-ID"])
                deliver(site.nodes, c, first, log)
                a.decision_for(first["Message-ID"], timeout=60)
                # Replies to one ticket, to both nodes in turn, until the kills are over.
                r = 1
                while r <= least or not killed.is_set():
                    reply = mail(f"client{c}@customer.test", "acme@acme.test",
                                 f"Re: Question {c}", f"Client {c}, reply {r}.",
                                 message_id=f"<c{c}-{r}@client.test>",
                                 in_reply_to=first["Message-ID"],
                                 references=first["Message-ID"])
                    sent.append(reply["Message-ID"])
                    deliver(site.nodes, c + r, reply, log)
                    r += 1
                    time.sleep(0.05)
            except Exception as e:  # reported in the test's thread
                failures.append(f"client {c}: {e!r}")

        threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
        for t in threads:
            t.start()
        kills = 0
        for _ in range(3):
            time.sleep(1.0)
            b.kill()
            kills += 1
            time.sleep(0.3)
            b.start()
        killed.set()
        for t in threads:
            t.join(timeout=300)
        self.assertEqual(failures, [])
        wanted = set(sent)
        taken = {mid for mid, code in log if code == 250}
        self.assertEqual(taken, wanted)
        wait_for(lambda: wanted <= {d.get("message_id") for d in a.decisions(100000)},
                 timeout=120, interval=0.5)
        counts = ticket_entries(b)
        self.assertEqual(sorted(m for m in wanted if counts[m] != 1), [])
        # One ticket per client, numbered without a gap, both nodes showing the same.
        tickets = a.tickets("?limit=1000")
        self.assertEqual(len(tickets), clients)
        self.assertEqual(sorted(t["number"] for t in tickets), list(range(1, clients + 1)))
        self.assertEqual(sorted(t["number"] for t in b.tickets("?limit=1000")),
                         list(range(1, clients + 1)))
        # Every outbound mail reached the relay once: nothing doubled, nothing missing.
        items = site.settled_outbox()
        acknowledgements = [i for i in items if i["kind"] == "acknowledgement"]
        self.assertEqual(len(acknowledgements), clients)
        received = wait_for(lambda: (lambda ids: ids if len(ids) >= len(items) else None)(
            site.relay.message_ids()), timeout=60)
        doubled = [m for m, n in collections.Counter(received).items() if n > 1]
        self.assertEqual(doubled, [])
        self.assertEqual(sorted(received), sorted(i["message_id"] for i in items))
        # Each node's /metrics: one of them sends the outbox; their counts add up.
        scraped = [scrape(node) for node in site.nodes]
        self.assertEqual(sorted(m[("postdesk_jobs_led", frozenset({("job", "outbox")}))]
                                for m in scraped), [0, 1])
        self.assertEqual(sum(m.get(("postdesk_outbound_mails_total",
                                    frozenset({("outcome", "sent")})), 0) for m in scraped),
                         len(items))
        refused = collections.Counter(code for _, code in log if code != 250)
        print(f"\nnodes: {len(wanted)} messages from {clients} clients over 2 nodes, node B "
              f"killed {kills} times; each in a ticket once; {len(items)} outbound mails "
              f"each relayed once; retries: {dict(refused)}", flush=True)

    def test_the_leader_dies_and_the_other_node_takes_the_mailbox_and_the_outbox(self):
        dovecot = Dovecot().start()
        self.addCleanup(dovecot.close)
        config = f"""
[[imap]]
org = "acme"
host = "127.0.0.1"
port = {dovecot.port}
tls = "none"
user = "{dovecot.user}"
password = "{dovecot.password}"
folder = "INBOX"
after = "move"
move_to = "Postdesk/Imported"
failed_folder = "Postdesk/Failed"
poll_secs = 1
"""
        site = Site(self, config=config)
        a, b = site.nodes
        total = 400
        dovecot.append_many("INBOX", [
            mail(f"customer{i % 7}@example.com", "acme@acme.test", f"Mailbox question {i}",
                 f"Message number {i}.", message_id=f"<box-{i}@client.test>")
            for i in range(total)])
        a.start()
        # A reads the mailbox (the only node); B joins and waits to take over.
        wait_for(lambda: len(dovecot.uids("Postdesk/Imported")) > 40, timeout=60,
                 interval=0.02)
        b.start()
        a.kill()
        self.assertLess(len(dovecot.uids("Postdesk/Imported")), total, "killed too late")
        wait_for(lambda: dovecot.uids("INBOX") == [], timeout=120, interval=0.5)
        self.assertEqual(len(dovecot.uids("Postdesk/Imported")), total)
        wanted = {f"<box-{i}@client.test>" for i in range(total)}
        wait_for(lambda: wanted <= {d.get("message_id") for d in b.decisions(100000)},
                 timeout=120, interval=0.5)
        counts = ticket_entries(b)
        self.assertEqual(sorted(m for m in wanted if counts[m] != 1), [])
        source = b.api("/api/v1/sources")["sources"][0]
        self.assertEqual(source["imported"], total)
        self.assertTrue(source["connected"])
        self.assertIn("this node reads the mailbox", whole_log(b))
        # B sends the outbox now: every acknowledgement reaches the relay, none twice.
        items = site.settled_outbox()
        self.assertIn("this node sends the outbox", whole_log(b))
        received = wait_for(lambda: (lambda ids: ids if len(ids) >= len(items) else None)(
            site.relay.message_ids()), timeout=60)
        self.assertEqual(set(received), {i["message_id"] for i in items})
        print(f"\nnodes: the mailbox reader killed after part of {total} messages; the other "
              f"node read the rest, each imported once; {len(received)} relayed "
              f"({len(received) - len(set(received))} twice: sent by the dead node just "
              f"before it died)", flush=True)

    def test_a_database_restart_costs_clients_a_retry_and_no_message(self):
        site = Site(self).start()
        a, b = site.nodes
        log, stop = [], threading.Event()
        answers = collections.Counter()
        permanent = []

        def client(c):
            n = 0
            while not stop.is_set():
                m = mail(f"steady{c}@customer.test", "acme@acme.test", f"Steady {c}-{n}",
                         "Are you there?", message_id=f"<steady-{c}-{n}@client.test>")
                node = site.nodes[n % 2]
                try:
                    with smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=30) as s:
                        s.send_message(m)
                    log.append(m["Message-ID"])
                    answers[250] += 1
                except smtplib.SMTPResponseException as e:
                    answers[e.smtp_code] += 1
                    if e.smtp_code >= 500:
                        permanent.append((e.smtp_code, e.smtp_error))
                except smtplib.SMTPRecipientsRefused as e:
                    for code, text in e.recipients.values():
                        answers[code] += 1
                        if code >= 500:
                            permanent.append((code, text))
                except (OSError, smtplib.SMTPException) as e:
                    answers[type(e).__name__] += 1
                n += 1

        threads = [threading.Thread(target=client, args=(c,)) for c in range(6)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        site.pg.restart()
        restarted = len(log)
        time.sleep(3)
        # Both nodes take mail again without a restart of their own.
        wait_for(lambda: len(log) > restarted + 20, timeout=60)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        self.assertEqual(permanent, [], "a database outage is a temporary failure")
        for node in site.nodes:
            self.assertIsNone(node.proc.poll(), "a node died with the database")
        # Every 250 is a message in a ticket, once.
        wait_for(lambda: set(log) <= {d.get("message_id") for d in a.decisions(100000)},
                 timeout=120, interval=0.5)
        counts = ticket_entries(a)
        self.assertEqual(sorted(m for m in log if counts[m] != 1), [])
        for node in site.nodes:
            late = mail("late@customer.test", "acme@acme.test", "After the restart", "Hello.")
            with smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=30) as s:
                s.send_message(late)
            self.assertEqual(b.decision_for(late["Message-ID"], timeout=30)["outcome"],
                             "accepted")
        print(f"\nnodes: PostgreSQL restarted under 6 clients: answers {dict(answers)}; "
              f"all {len(log)} acknowledged messages stored once", flush=True)

    def test_a_node_that_loses_the_outbox_mid_pass_sends_nothing_twice(self):
        # A slow relay: the leader is in the middle of a long pass when its lock's
        # session ends (a network cut, an administrator's pg_terminate_backend).
        site = Site(self, relay_delay=0.3).start()
        a, b = site.nodes
        for i in range(16):
            with smtplib.SMTP("127.0.0.1", a.smtp_port, timeout=30) as s:
                s.send_message(mail(f"sender{i}@customer.test", "acme@acme.test",
                                    f"Question {i}", "Hello."))
        wait_for(lambda: len(site.relay.message_ids()) >= 2, timeout=60)
        ended = subprocess.run(
            ["psql", "-qAt", site.pg.url, "-c",
             "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory'"],
            check=True, capture_output=True, text=True, timeout=30).stdout.strip()
        self.assertGreaterEqual(int(ended), 1)
        # Every sender's acknowledgement planned (the pipeline may still be at the last
        # messages when the lock goes) and nothing waiting.
        def all_planned():
            items = site.outbox()
            acks = [i for i in items if i["kind"] == "acknowledgement"]
            return items if len(acks) == 16 and all(
                i["status"]["state"] != "pending" for i in items) else None
        items = wait_for(all_planned, timeout=120, interval=0.5)
        self.assertEqual([i for i in items if i["status"]["state"] != "sent"], [])
        received = wait_for(lambda: (lambda ids: ids if len(ids) >= len(items) else None)(
            site.relay.message_ids()), timeout=60)
        time.sleep(1)  # a second sender would have sent its copy by now
        received = site.relay.message_ids()
        doubled = [m for m, n in collections.Counter(received).items() if n > 1]
        self.assertEqual(doubled, [])
        self.assertEqual(sorted(received), sorted(i["message_id"] for i in items))

    def test_sign_in_quotas_are_spent_by_every_node_together(self):
        site = Site(self).start()
        # Eight link requests for one mailbox, to both nodes in turn: five an hour in all
        # (each node alone would allow five).
        for i in range(8):
            b = Browser(site.nodes[i % 2])
            _, _, page = b.get("/portal/acme")
            status, _, _ = b.post("/portal/acme/link",
                                  {"csrf": b.csrf(page), "email": "flood@customer.test"})
            self.assertEqual(status, 200)
        wait_for(lambda: len([i for i in site.outbox()
                              if i["recipient"] == "flood@customer.test"]) >= 5)
        time.sleep(2)  # what a sixth would need to be planned
        links = [i for i in site.outbox() if i["recipient"] == "flood@customer.test"]
        self.assertEqual(len(links), 5)

    def test_tls_to_the_database_checks_its_certificate(self):
        pg = PrivatePostgres(ssl=True)
        self.addCleanup(pg.close)
        url = pg.url + "?sslmode=require"
        # Without the server's CA the connection is refused, and nothing is written.
        untrusting = Server(env={"POSTDESK_DATABASE_URL": url, "PGSSLROOTCERT": ""})
        self.addCleanup(untrusting.close)
        refused = untrusting.cli("migrate", check=False)
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn("certificate", refused.stderr.lower())
        # With it, a node runs over TLS.
        srv = Server(env={"POSTDESK_DATABASE_URL": url, "PGSSLROOTCERT": pg.cert}).bootstrap()
        self.addCleanup(srv.close)
        srv.start()
        m = mail("ann@customer.test", "acme@acme.test", "Over TLS", "Hello.")
        with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30) as s:
            s.send_message(m)
        self.assertEqual(srv.decision_for(m["Message-ID"])["outcome"], "accepted")
        encrypted = subprocess.run(
            ["psql", "-qAt", pg.url, "-c",
             "SELECT count(*), bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a "
             "USING (pid) WHERE a.application_name = 'postdesk'"],
            check=True, capture_output=True, text=True, timeout=30).stdout.strip()
        count, all_tls = encrypted.split("|")
        self.assertGreater(int(count), 0)
        self.assertEqual(all_tls, "t")

    def test_a_sled_store_moves_into_postgres_and_reads_the_same(self):
        pg = PrivatePostgres()
        self.addCleanup(pg.close)
        srv = Server(env={"POSTDESK_DATABASE_URL": ""}).bootstrap()
        self.addCleanup(srv.close)
        srv.start()
        big = os.urandom(300_000)  # over 64 KiB: a file of the data folder on sled
        m = mail("ann@customer.test", "acme@acme.test", "Printer", "It jams.")
        m.add_attachment(big, maintype="application", subtype="octet-stream",
                         filename="log.bin")
        with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30) as s:
            s.send_message(m)
            s.send_message(mail("bob@customer.test", "acme@acme.test", "Second", "Hi."))
        wait_for(lambda: len(srv.tickets()) == 2)
        before = {t["number"]: srv.ticket(t["number"]) for t in srv.tickets()}
        srv.stop()

        moved = srv.cli("migrate-store", "--to", pg.url)
        self.assertIn("counted and hashed on both sides", moved.stdout)
        self.assertIn(f'database_url = "{pg.url}"', moved.stdout)
        again = srv.cli("migrate-store", "--to", pg.url, check=False)
        self.assertNotEqual(again.returncode, 0)
        self.assertIn("already", again.stderr)

        srv.env["POSTDESK_DATABASE_URL"] = pg.url
        srv.start()
        after = {t["number"]: srv.ticket(t["number"]) for t in srv.tickets()}
        self.assertEqual(after, before)
        ticket = next(t for t in after.values() if t["events"][0]["attachments"])
        sha = ticket["events"][0]["attachments"][0]["sha256"]
        raw = srv.api(f"/api/v1/tickets/{ticket['number']}/events/"
                      f"{ticket['events'][0]['seq']}/raw")
        self.assertIn(b"log.bin", raw)
        self.assertIn(sha.encode().hex(), srv.stored("blobs"))
        # New mail lands in the moved store.
        with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30) as s:
            s.send_message(mail("carol@customer.test", "acme@acme.test", "Third", "Hello."))
        wait_for(lambda: len(srv.tickets()) == 3)


if __name__ == "__main__":
    unittest.main()
