#!/usr/bin/env python3
"""L4 NET_EGRESS_BURST: 150 connects in about a second to a local listener (bounded)."""
import socket
import threading
import time

# Below the ephemeral range, like unknown_destination.py.
PORT = 27002
COUNT = 150


def run():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", PORT))
    srv.listen(256)
    srv.settimeout(0.2)
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                srv.accept()[0].close()
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    deadline = time.monotonic() + 5
    for _ in range(COUNT):
        if time.monotonic() > deadline:
            break
        try:
            socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
        except OSError:
            pass
    stop.set()
    t.join(1)
    srv.close()


if __name__ == "__main__":
    run()
