#!/usr/bin/env python3
"""Loopback peers for the benchmark workloads: a small HTTP API, the same API over TLS
(HTTP/1.1 keep-alive, a throwaway self-signed certificate made with the openssl command), and a
UDP DNS responder.

Started by proctor-bench (never tracked by any monitor). Binds 127.0.0.1 on ephemeral ports,
prints one JSON line {"http": PORT, "https": PORT, "dns": PORT} on stdout, and serves until
stdin closes or SIGTERM arrives. Stdlib only (and the openssl command).
"""
import http.server
import os
import shutil
import ssl
import subprocess
import tempfile
import json
import signal
import socket
import struct
import sys
import threading


class Api(http.server.BaseHTTPRequestHandler):
    # HTTP/1.0 replies: one request per connection, like a simple tool-call client.
    def _reply(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._reply({"path": self.path, "ok": True})

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        payload = self.rfile.read(n) if n else b""
        self._reply({"path": self.path, "received": len(payload)})

    def log_message(self, *args):
        pass


class TlsApi(Api):
    # HTTP/1.1: one keep-alive connection carries many calls, as an LLM client's does. The
    # handler writes its reply in pieces: without TCP_NODELAY, Nagle and the client's delayed
    # ACK add 40 ms to every call.
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True


def tls_server():
    """The API over TLS on an ephemeral port; the certificate lives in a temp dir removed at
    exit."""
    d = tempfile.mkdtemp(prefix="proctor-bench-tls-")
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=localhost",
                    "-days", "1", "-keyout", key, "-out", cert],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    shutil.rmtree(d)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TlsApi)
    httpd.daemon_threads = True
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    return httpd


def dns_answer(query):
    """A minimal reply: same id and question, one A record 127.0.0.1 (or FORMERR if garbled)."""
    if len(query) < 12:
        return None
    qid = query[:2]
    end = 12
    while end < len(query) and query[end] != 0:
        end += query[end] + 1
    question = query[12 : end + 5]
    if end + 5 > len(query):
        return qid + b"\x81\x01" + b"\x00" * 8
    header = qid + b"\x81\x80" + struct.pack(">HHHH", 1, 1, 0, 0)
    answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([127, 0, 0, 1])
    return header + question + answer


def serve_dns(sock):
    while True:
        try:
            data, peer = sock.recvfrom(512)
        except OSError:
            return
        reply = dns_answer(data)
        if reply:
            sock.sendto(reply, peer)


def main():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Api)
    httpd.daemon_threads = True
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.bind(("127.0.0.1", 0))
    httpsd = tls_server()
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    threading.Thread(target=httpsd.serve_forever, daemon=True).start()
    threading.Thread(target=serve_dns, args=(dns,), daemon=True).start()
    print(json.dumps({"http": httpd.server_address[1], "https": httpsd.server_address[1],
                      "dns": dns.getsockname()[1]}), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Serve until our parent closes stdin (it died or is done with us).
    sys.stdin.read()


if __name__ == "__main__":
    main()
