#!/usr/bin/env python3
"""L4 UNKNOWN_DESTINATION: connect to a loopback port the agent never used (47001)."""
import socket

PORT = 47001


def run():
    with socket.socket() as srv:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", PORT))
        srv.listen(1)
        with socket.create_connection(("127.0.0.1", PORT), timeout=5) as c:
            c.sendall(b"exfil")


if __name__ == "__main__":
    run()
