"""A small DNS server on a loopback UDP port for the tests (dnspython builds and reads
the messages): TXT records from a table, no answer at all for names under a "silent" zone
(as a hostile sender's own name server may do), NXDOMAIN for everything else."""

import socket
import threading

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


class DnsServer:
    def __init__(self, txt, silent=()):
        """`txt`: {name: [strings]}; `silent`: zones whose names get no answer."""
        self.txt = {k.rstrip(".").lower(): v for k, v in txt.items()}
        self.silent = tuple(z.rstrip(".").lower() for z in silent)
        self.asked = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while self.running:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            try:
                query = dns.message.from_wire(data)
            except Exception:
                continue
            name = query.question[0].name.to_text().rstrip(".").lower()
            self.asked.append(name)
            if any(name == z or name.endswith("." + z) for z in self.silent):
                continue
            answer = dns.message.make_response(query)
            rdtype = query.question[0].rdtype
            if rdtype == dns.rdatatype.TXT and name in self.txt:
                answer.answer.append(dns.rrset.from_text(
                    name + ".", 300, "IN", "TXT",
                    *['"' + '" "'.join(s[i:i + 250] for i in range(0, len(s), 250)) + '"'
                      for s in self.txt[name]]))
            else:
                answer.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(answer.to_wire(), peer)

    def close(self):
        self.running = False
        self.sock.close()
