#!/usr/bin/env python3
"""Writes the import benchmark's mbox: the same messages postdesk-fill threads (TICKETS
questions and EVENTS-1 replies each, In-Reply-To the message before), one ticket's
messages after another, LF line endings as mbox files have them.

usage: import_mbox.py OUT [TICKETS] [EVENTS]   (defaults 20000, 5: 100,000 messages)"""

import sys


def message(t, e, text):
    frm = f"user{t % 5000}@customer{t % 97}.test"
    kind = ["Question", "Incident", "Bug"][t % 3]
    head = (f"From: User {t} <{frm}>\nTo: bench@localhost\n"
            "Date: Thu, 26 Nov 2026 04:00:00 +0000\n"
            f"Message-ID: <fill-{t}-{e}@customer.test>\nMIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=utf-8\n")
    if e == 0:
        head += f"Subject: {kind}: Printer problem {t}\n"
        body = f"{text}\n"
    else:
        parent = f"fill-{t}-{e - 1}@customer.test"
        head += (f"Subject: Re: {kind}: Printer problem {t}\nIn-Reply-To: <{parent}>\n"
                 f"References: <{parent}>\n")
        body = (f"Still broken, attempt {e}.\n\nOn Thu, 26 Nov 2026 at 04:00, Bench "
                f"<bench@localhost> wrote:\n> {text}\n")
    return f"{head}\n{body}"


def main():
    out = sys.argv[1]
    tickets = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    events = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    text = "The printer in room 4 prints blank pages since this morning. " * 8
    with open(out, "w") as f:
        for t in range(tickets):
            for e in range(events):
                f.write(f"From user{t % 5000}@customer{t % 97}.test Thu Nov 26 04:00:00 2026\n")
                f.write(message(t, e, text))
                f.write("\n")


if __name__ == "__main__":
    main()
