"""Resource bounds: 1,000 concurrent idle connections, a sender trickling one byte at a
time, and a 200 MiB DATA. The server keeps serving others and its memory stays under a
stated bound (RSS_BOUND_MB)."""

import resource
import smtplib
import socket
import threading
import time
import unittest

from harness import Server, mail

RSS_BOUND_MB = 150


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def send_one(srv, subject):
    m = mail("ok@customer.test", "acme@acme.test", subject, "still served")
    t0 = time.time()
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30) as s:
        s.send_message(m)
    return time.time() - t0, m["Message-ID"]


class Resources(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = min(hard, 4096)
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # the server inherits it
        cls.srv = Server().bootstrap().start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()

    def test_thousand_idle_connections(self):
        socks = []
        try:
            for _ in range(1000):
                s = socket.create_connection(("127.0.0.1", self.srv.smtp_port), timeout=30)
                socks.append(s)
            for s in socks:
                self.assertTrue(s.recv(512).startswith(b"220 "))
            took, mid = send_one(self.srv, "beside 1000 idle connections")
            self.assertLess(took, 10)
            self.assertEqual(self.srv.decision_for(mid)["outcome"], "accepted")
            rss = rss_mb(self.srv.proc.pid)
            print(f"\nresources: 1000 idle connections, RSS {rss:.0f} MB", flush=True)
            self.assertLess(rss, RSS_BOUND_MB)
        finally:
            for s in socks:
                s.close()

    def test_slow_sender_does_not_block_others(self):
        stop = threading.Event()

        def trickle():
            with socket.create_connection(("127.0.0.1", self.srv.smtp_port), timeout=60) as s:
                s.recv(512)
                for b in b"EHLO slow.test\r\nMAIL FROM:<slow@x.test>\r\n":
                    if stop.is_set():
                        return
                    s.sendall(bytes([b]))
                    time.sleep(0.1)

        t = threading.Thread(target=trickle)
        t.start()
        try:
            time.sleep(0.5)
            took, mid = send_one(self.srv, "beside a slow sender")
            self.assertLess(took, 5)
            self.assertEqual(self.srv.decision_for(mid)["outcome"], "accepted")
        finally:
            stop.set()
            t.join()

    def test_200_mib_data(self):
        peak = [0.0]
        done = threading.Event()

        def watch():
            while not done.is_set():
                peak[0] = max(peak[0], rss_mb(self.srv.proc.pid))
                time.sleep(0.05)

        w = threading.Thread(target=watch)
        w.start()
        try:
            with socket.create_connection(("127.0.0.1", self.srv.smtp_port), timeout=60) as s:
                f = s.makefile("rb")
                f.readline()
                s.sendall(b"EHLO big.test\r\n")
                while f.readline()[3:4] == b"-":
                    pass
                s.sendall(b"MAIL FROM:<big@x.test>\r\nRCPT TO:<acme@acme.test>\r\nDATA\r\n")
                self.assertTrue(f.readline().startswith(b"250"))
                self.assertTrue(f.readline().startswith(b"250"))
                self.assertTrue(f.readline().startswith(b"354"))
                s.sendall(b"Subject: huge\r\n\r\n")
                line = b"z" * 1022 + b"\r\n"
                chunk = line * 1024  # 1 MiB
                for _ in range(200):
                    s.sendall(chunk)
                s.sendall(b".\r\n")
                reply = f.readline()
                self.assertTrue(reply.startswith(b"552 5.3.4"), reply)
                s.sendall(b"NOOP\r\n")
                self.assertTrue(f.readline().startswith(b"250"))
            took, _ = send_one(self.srv, "after 200 MiB")
            self.assertLess(took, 10)
        finally:
            done.set()
            w.join()
        print(f"\nresources: 200 MiB DATA refused with 552, peak RSS {peak[0]:.0f} MB", flush=True)
        self.assertLess(peak[0], RSS_BOUND_MB)


if __name__ == "__main__":
    unittest.main()
