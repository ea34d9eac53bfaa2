"""Durability: clients send at concurrency 20 while the server is SIGKILLed and restarted
several times; afterwards every message that received 250 is in a ticket exactly once, and
the outbox has lost nothing: every acknowledgement owed went out once, as one file."""

import collections
import email
import email.policy
import glob
import os
import random
import smtplib
import threading
import time
import unittest
import uuid
from email.message import EmailMessage

from harness import Server, wait_for

SENDERS = 20
# Automatic mail to one address per hour (the notifier's default): the acknowledgements owed.
HOURLY_CAP = 10
# The test suite runs 3 cycles; the bench command (bench/crash.sh) runs 10 cycles and
# 10,000 messages through the same code.
CYCLES = int(os.environ.get("DURABILITY_CYCLES", "3"))
MESSAGES = int(os.environ.get("DURABILITY_MESSAGES", "0"))


class Durability(unittest.TestCase):
    def test_sigkill_while_clients_send(self):
        srv = Server().bootstrap()
        self.addCleanup(srv.close)
        acked = []          # Message-IDs that got 250, in order
        lock = threading.Lock()
        rng = random.Random(7)

        def sender(stop, n):
            while not stop.is_set():
                try:
                    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=10) as s:
                        for _ in range(5):
                            if stop.is_set():
                                return
                            m = EmailMessage()
                            m["From"] = f"user{n}@load.test"
                            m["To"] = "acme@acme.test"
                            mid = f"<{uuid.uuid4().hex}@load.test>"
                            m["Message-ID"] = mid
                            with lock:
                                parent = rng.choice(acked) if acked and rng.random() < 0.5 else None
                            if parent:
                                m["Subject"] = "Re: load"
                                m["In-Reply-To"] = parent
                            else:
                                m["Subject"] = f"load {n}"
                            m.set_content("x" * 2000)
                            s.send_message(m)
                            with lock:
                                acked.append(mid)
                except (OSError, smtplib.SMTPException):
                    time.sleep(0.05)

        for cycle in range(CYCLES):
            srv.start()
            stop = threading.Event()
            threads = [threading.Thread(target=sender, args=(stop, i)) for i in range(SENDERS)]
            for t in threads:
                t.start()
            # Kill at a random moment; with a message target, only once this cycle's share
            # of it has been acknowledged.
            time.sleep(rng.uniform(1.0, 2.0))
            target = MESSAGES * (cycle + 1) // CYCLES
            while len(acked) < target:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.5))
            srv.kill()
            stop.set()
            for t in threads:
                t.join()
        srv.start()
        self.assertGreater(len(acked), 100, "the load did not run")

        wanted = set(acked)
        decided = set()
        deadline = time.time() + 120
        while time.time() < deadline:
            decided = {d.get("message_id") for d in srv.decisions(limit=1000000)}
            if wanted <= decided:
                break
            time.sleep(0.5)
        seen = collections.Counter()
        for t in srv.tickets("?limit=100000"):
            for e in srv.ticket(t["number"])["events"]:
                seen[e["message_id"]] += 1
        missing = [m for m in acked if seen[m] == 0]
        doubled = [m for m in acked if seen[m] > 1]
        self.assertEqual(missing, [], f"{len(missing)} acknowledged messages lost")
        self.assertEqual(doubled, [], f"{len(doubled)} acknowledged messages stored twice")

        # The outbox: every mail planned is sent (to the outbox folder here) and none twice.
        def outbox():
            return srv.api("/api/v1/outbox?limit=1000000")["outbox"]
        wait_for(lambda: all(o["status"]["state"] == "sent" for o in outbox()), 120)
        items = outbox()
        acks = [o for o in items if o["kind"] == "acknowledgement"]
        per_ticket = collections.Counter(o["ticket"] for o in acks)
        self.assertEqual([t for t, n in per_ticket.items() if n > 1], [],
                         "a ticket was acknowledged twice")
        opened = collections.Counter(t["requester"] for t in srv.tickets("?limit=100000"))
        sent_to = collections.Counter(o["recipient"] for o in acks)
        for sender, tickets in opened.items():
            self.assertEqual(sent_to[sender], min(tickets, HOURLY_CAP),
                             f"{sender} opened {tickets} tickets")
        files = collections.Counter()
        for path in glob.glob(os.path.join(srv.data, "outbox", "*.eml")):
            with open(path, "rb") as f:
                files[email.message_from_binary_file(f, policy=email.policy.default)["Message-ID"]] += 1
        self.assertEqual(sorted(files), sorted(o["message_id"] for o in items),
                         "the outbox folder does not hold exactly the mail sent")
        self.assertEqual([m for m, n in files.items() if n > 1], [], "a mail was written twice")
        print(f"\ndurability: {len(acked)} acknowledged messages over {CYCLES} SIGKILLs, "
              f"all in tickets exactly once; {len(items)} outbound mails "
              f"({dict(collections.Counter(o['kind'] for o in items))}), each sent once",
              flush=True)


if __name__ == "__main__":
    unittest.main()
