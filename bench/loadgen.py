#!/usr/bin/env python3
"""SMTP load client for the ingest benchmark: C worker processes (smtplib), each sending
its share of N messages of about SIZE bytes, half of them (by --replies) replies to an
earlier message of the same worker, so the pipeline threads them into existing tickets.
Records the latency of each DATA phase (body sent -> 250) and prints one RESULT line:
msgs/s, p50 and p99 in milliseconds, and how many were refused."""

import argparse
import multiprocessing as mp
import random
import smtplib
import time
import uuid


def worker(args, index, count, out):
    rng = random.Random(index)
    lat, refused, sent_ids = [], 0, []
    pad = ("x" * 75 + "\r\n") * max(1, args.size // 77)
    conn = None
    for n in range(count):
        mid = f"<{uuid.uuid4().hex}@load.test>"
        headers = [f"From: user{index}-{n % 50}@load.test", f"To: {args.rcpt}",
                   f"Message-ID: {mid}"]
        if sent_ids and rng.random() < args.replies:
            parent = rng.choice(sent_ids)
            headers += [f"Subject: Re: load {index}", f"In-Reply-To: {parent}", f"References: {parent}"]
        else:
            headers.append(f"Subject: load {index}-{n}")
        msg = ("\r\n".join(headers) + "\r\n\r\n" + pad).encode()
        try:
            if conn is None:
                conn = smtplib.SMTP(args.host, args.port, timeout=60)
                conn.ehlo("load.test")
            conn.mail(f"user{index}@load.test")
            conn.rcpt(args.rcpt)
            t0 = time.perf_counter()
            code, _ = conn.data(msg)
            lat.append(time.perf_counter() - t0)
            if code == 250:
                sent_ids.append(mid)
            else:
                refused += 1
            if not args.reuse:
                conn.quit()
                conn = None
        except smtplib.SMTPException:
            refused += 1
            conn = None
    if conn is not None:
        conn.quit()
    out.put((lat, refused))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=2525)
    ap.add_argument("--rcpt", default="support@localhost")
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--replies", type=float, default=0.5)
    ap.add_argument("--reuse", action="store_true", help="many messages per connection")
    args = ap.parse_args()
    out = mp.Queue()
    share = [args.messages // args.concurrency + (1 if i < args.messages % args.concurrency else 0)
             for i in range(args.concurrency)]
    procs = [mp.Process(target=worker, args=(args, i, share[i], out)) for i in range(args.concurrency)]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    lat, refused = [], 0
    for _ in procs:
        l, r = out.get()
        lat += l
        refused += r
    for p in procs:
        p.join()
    wall = time.perf_counter() - t0
    lat.sort()
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else float("nan")
    print(f"RESULT loadgen msgs={args.messages} c={args.concurrency} reuse={int(args.reuse)} "
          f"rate={(args.messages - refused) / wall:.0f} p50_ms={pick(0.50):.2f} p99_ms={pick(0.99):.2f} "
          f"refused={refused}")


if __name__ == "__main__":
    main()
