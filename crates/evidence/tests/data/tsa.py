#!/usr/bin/env python3
"""A local RFC 3161 timestamp authority for tests: `openssl ts -reply` behind a tiny HTTP
server on 127.0.0.1 (Python standard library only, no network).

    tsa.py WORKDIR            # creates WORKDIR/ca.crt (the root to verify against) and
                              # WORKDIR/tsa.crt, then prints the port and serves POST /
"""
import http.server
import os
import subprocess
import sys
import tempfile

work = sys.argv[1]
os.makedirs(work, exist_ok=True)


def sh(*args):
    subprocess.run(args, check=True, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


if not os.path.exists(os.path.join(work, "tsa.crt")):
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
       "-out", "ca.crt", "-subj", "/CN=proctor test TSA root", "-days", "3650")
    sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "tsa.key",
       "-out", "tsa.csr", "-subj", "/CN=proctor test TSA")
    with open(os.path.join(work, "ext.cnf"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=critical,timeStamping\n")
    sh("openssl", "x509", "-req", "-in", "tsa.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
       "-CAcreateserial", "-out", "tsa.crt", "-days", "365", "-extfile", "ext.cnf")
    with open(os.path.join(work, "serial"), "w") as f:
        f.write("01\n")
    with open(os.path.join(work, "ts.cnf"), "w") as f:
        f.write(f"""[ tsa ]
default_tsa = tsa1
[ tsa1 ]
serial = {work}/serial
crypto_device = builtin
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
""")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with tempfile.TemporaryDirectory() as d:
            q, r = os.path.join(d, "q.tsq"), os.path.join(d, "r.tsr")
            with open(q, "wb") as f:
                f.write(body)
            p = subprocess.run(["openssl", "ts", "-reply", "-config", "ts.cnf", "-queryfile", q,
                                "-inkey", "tsa.key", "-signer", "tsa.crt", "-chain", "ca.crt",
                                "-out", r], cwd=work, capture_output=True)
            if p.returncode != 0:
                self.send_response(500)
                self.end_headers()
                return
            with open(r, "rb") as f:
                reply = f.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/timestamp-reply")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
