#!/usr/bin/env python3
"""A benign tool-calling agent loop for the proctor demo (Python 3.11 stdlib, loopback only).

It starts a fake model API on an ephemeral 127.0.0.1 port and, every 0.5 s, asks it for the next tool call
and runs it: read a file in its working directory, list the directory, and every 2 s run `ls`.
That is the behaviour proctor learns as the baseline.

    python3 demo/agent.py --duration 20                     # benign only
    python3 demo/agent.py --duration 20 --then shell_spawn  # then an injected tool call

With --then NAME, after --duration seconds the "model" answers with an injected tool call and the
agent runs demo/attacks/NAME.py in its own process (so the attack is the agent's behaviour),
then keeps its benign loop for --after seconds.
"""
import argparse
import http.client
import http.server
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
# The fake model API listens on an ephemeral loopback port (several agents can run at once);
# PROCTOR_DEMO_PORT pins it.
PORT = int(os.environ.get("PROCTOR_DEMO_PORT", "0"))
TOOLS = ["read_file", "list_dir", "read_file", "run_ls"]


class Model(http.server.BaseHTTPRequestHandler):
    """The fake model: cycles through the benign tool calls."""

    step = 0
    injected = None

    def do_GET(self):
        if Model.injected:
            call, Model.injected = {"tool": "attack", "name": Model.injected}, None
        else:
            call = {"tool": TOOLS[Model.step % len(TOOLS)]}
            Model.step += 1
        body = json.dumps(call).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve():
    http.server.ThreadingHTTPServer.allow_reuse_address = True
    global PORT
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Model)
    PORT = srv.server_address[1]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def next_call():
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=5)
    try:
        c.request("GET", "/next")
        return json.loads(c.getresponse().read())
    finally:
        c.close()


def run_attack(name):
    path = os.path.join(HERE, "attacks", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"attack_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    print(f"agent: running injected tool call {name}", file=sys.stderr)
    mod.run()


def tool(call):
    t = call["tool"]
    if t == "read_file":
        with open(os.path.join(HERE, "agent.py"), "rb") as f:
            f.read(4096)
    elif t == "list_dir":
        os.listdir(HERE)
    elif t == "run_ls":
        subprocess.run(["ls", "-1", HERE], stdout=subprocess.DEVNULL, check=False)
    elif t == "attack":
        run_attack(call["name"])


def loop(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        tool(next_call())
        time.sleep(0.5)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=20.0, help="benign seconds before --then")
    ap.add_argument("--then", metavar="ATTACK", help="name of a script in demo/attacks")
    ap.add_argument("--after", type=float, default=3.0, help="benign seconds after the attack")
    a = ap.parse_args()
    if a.then and not os.path.exists(os.path.join(HERE, "attacks", f"{a.then}.py")):
        ap.error(f"no such attack: {a.then}")
    srv = serve()
    try:
        loop(a.duration)
        if a.then:
            Model.injected = a.then
            tool(next_call())
            loop(a.after)
    finally:
        srv.shutdown()


if __name__ == "__main__":
    main()
