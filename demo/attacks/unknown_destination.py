#!/usr/bin/env python3
"""L4 UNKNOWN_DESTINATION: connect to a loopback port the agent never used (27001)."""
import socket

# Below the kernel's ephemeral range (32768-60999 by default): no outgoing connection of the host
# can hold it, as one held 47002 during a fresh-machine run (EADDRINUSE).
PORT = 27001


def run():
    with socket.socket() as srv:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", PORT))
        srv.listen(1)
        with socket.create_connection(("127.0.0.1", PORT), timeout=5) as c:
            c.sendall(b"exfil")


if __name__ == "__main__":
    run()
