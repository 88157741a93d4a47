#!/usr/bin/env python3
"""Benchmark workloads for proctor-bench. Each does a fixed amount of work, times only that work,
and writes one JSON object to --result:

    {"workload": NAME, "ops": N, "seconds": T, "monitor_cpu_ns": C}

`monitor_cpu_ns` is the CPU time (user+sys, all threads, from /proc/PID/task/*/schedstat, in ns; see cpu_since)
that the monitor processes named by --monitor-pid spent during the timed work; "parent" means our
parent process (proctor run and bpftrace -c start us directly). Loopback only; every loop is
bounded in count. Stdlib only (Python 3.11).
"""
import argparse
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request


def thread_cpu_ns(pids):
    """On-CPU time (ns) of every live thread of these processes, by thread id."""
    out = {}
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    out[(pid, tid)] = int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    return out


def group_cpu_ns(pids):
    """User+system time (ns, clock-tick resolution) of these processes, exited threads included."""
    total = 0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) * 1_000_000_000 // tick
        except (OSError, ValueError, IndexError):
            pass
    return total


def cpu_mark(pids):
    return (thread_cpu_ns(pids), group_cpu_ns(pids))


def cpu_since(pids, mark):
    """CPU the processes spent since `mark`: per thread, the growth of each thread alive now (a
    thread that ended meanwhile would otherwise take its whole past off the sum, as the monitor's
    start-up threads do); at least the growth of the group's tick-resolution total, which also
    counts threads that ran and ended in between."""
    threads0, group0 = mark
    per_thread = sum(ns - threads0.get(k, 0) for k, ns in thread_cpu_ns(pids).items())
    return max(per_thread, group_cpu_ns(pids) - group0)


# --- the agent-like workload -----------------------------------------------------------------

TEST_FILE = '''import unittest

from calc import add


class CalcTest(unittest.TestCase):
    def test_add(self):
        self.assertEqual(add(2, 3), 5)


if __name__ == "__main__":
    unittest.main()
'''


def agent(n, args):
    """A tool-calling agent loop: each step edits a file, commits it with git, calls a local HTTP
    API twice (GET a "model" reply, POST the tool result), and every 5th step runs the tests."""
    work = tempfile.mkdtemp(prefix="proctor-bench-agent-")
    env = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@localhost",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@localhost",
               GIT_CONFIG_NOSYSTEM="1", HOME=work)
    base = f"http://127.0.0.1:{args.http_port}"

    def git(*a):
        subprocess.run(["git", *a], cwd=work, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    try:
        git("init", "-q")
        with open(os.path.join(work, "test_calc.py"), "w") as f:
            f.write(TEST_FILE)
        for i in range(n):
            with urllib.request.urlopen(f"{base}/v1/next?step={i}", timeout=10) as r:
                json.loads(r.read())
            with open(os.path.join(work, "calc.py"), "w") as f:
                f.write(f"# step {i}\ndef add(a, b):\n    return a + b\n")
            with open(os.path.join(work, "notes.md"), "a") as f:
                f.write(f"- step {i}: edited calc.py\n")
            git("add", "-A")
            git("commit", "-q", "-m", f"step {i}")
            if i % 5 == 4:
                subprocess.run([sys.executable, "-m", "unittest", "-q"], cwd=work, env=env,
                               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            body = json.dumps({"step": i, "result": "ok"}).encode()
            req = urllib.request.Request(f"{base}/v1/tool_result", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                json.loads(r.read())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return n


# --- storms ----------------------------------------------------------------------------------

def exec_storm(n, args):
    """fork + exec /bin/true, one at a time."""
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            try:
                os.execv("/bin/true", ["/bin/true"])
            finally:
                os._exit(127)
        os.waitpid(pid, 0)
    return n


def open_storm(n, args, files=1000):
    """openat + close over a directory of files, round robin."""
    d = tempfile.mkdtemp(prefix="proctor-bench-open-")
    try:
        paths = []
        for i in range(files):
            p = os.path.join(d, f"f{i:04d}.txt")
            with open(p, "w") as f:
                f.write("x")
            paths.append(p)
        t0 = time.perf_counter()
        mon0 = cpu_mark(args.mon)
        if args.rate <= 0:
            for i in range(n):
                os.close(os.open(paths[i % files], os.O_RDONLY))
            return n, t0, mon0
        # Paced: batches of 1000 opens on a fixed schedule of `rate` opens per second.
        batch = 1000
        for start in range(0, n, batch):
            for i in range(start, min(start + batch, n)):
                os.close(os.open(paths[i % files], os.O_RDONLY))
            due = t0 + (start + batch) / args.rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        return n, t0, mon0
    finally:
        shutil.rmtree(d, ignore_errors=True)


def listen_overflows():
    """The host's count of connections its listeners' accept queues had no room for: each one
    costs its client a SYN retransmit (1 s), which is the listener's backlog, not a monitor."""
    try:
        with open("/proc/net/netstat") as f:
            lines = f.read().splitlines()
        for names, values in zip(lines[::2], lines[1::2]):
            if names.startswith("TcpExt:"):
                return int(dict(zip(names.split()[1:], values.split()[1:]))["ListenOverflows"])
    except (OSError, KeyError, ValueError):
        pass
    return None


def connect_storm(n, args):
    """TCP connect to a loopback listener of our own, accepted and closed by a child process:
    an acceptor thread of this process shared its interpreter lock with the connect loop and fell
    behind now and then, and a full accept queue stalled the loop for a SYN retransmit (1 s),
    with a monitor or without one."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("127.0.0.1", 0))
    ls.listen(socket.SOMAXCONN)
    addr = ls.getsockname()
    child = os.fork()
    if child == 0:
        try:
            while True:
                ls.accept()[0].close()
        finally:
            os._exit(0)
    ls.close()
    before = listen_overflows()
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.connect(addr)
            s.close()
    finally:
        os.kill(child, 9)
        os.waitpid(child, 0)
    after = listen_overflows()
    if before is not None and after is not None and after > before:
        print(f"workloads.py connect: {after - before} accept queue overflow(s) on the host "
              "during the run (each a 1 s SYN retransmit)", file=sys.stderr)
    return n


def sched_storm(n, args, threads=4):
    """Threads yielding the CPU: n sched_yield calls in total."""
    per = n // threads

    def spin():
        for _ in range(per):
            os.sched_yield()

    ts = [threading.Thread(target=spin) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return per * threads


def dns_query(i):
    name = f"host{i}.bench.test"
    q = struct.pack(">HHHHHH", i & 0xFFFF, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00" + struct.pack(">HH", 1, 1)


def dns_storm(n, args):
    """UDP DNS queries (sendto with an address, like a stub resolver) to the local responder."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    addr = ("127.0.0.1", args.dns_port)
    answered = 0
    for i in range(n):
        s.sendto(dns_query(i), addr)
        try:
            s.recvfrom(512)
            answered += 1
        except socket.timeout:
            pass
    s.close()
    if answered < n:
        print(f"workloads: dns: {n - answered} of {n} queries unanswered", file=sys.stderr)
    return n


def https(n, args):
    """n API calls over one keep-alive TLS connection (CPython's ssl: SSL_write_ex/SSL_read_ex),
    each a ~1 KB JSON POST with a bearer token, as an LLM client makes them."""
    import http.client
    import ssl
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", args.https_port, context=ctx, timeout=10)
    body = json.dumps({"model": "bench", "messages": [{"role": "user", "content": "x" * 900}]})
    headers = {"Content-Type": "application/json",
               "Authorization": "Bearer sk-bench-0123456789abcdefghijklmnop"}
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn.request("GET", "/warm-up")
    conn.getresponse().read()
    t0 = time.perf_counter()
    mon0 = cpu_mark(args.mon)
    for i in range(n):
        conn.request("POST", f"/v1/tool_result?step={i}", body=body, headers=headers)
        conn.getresponse().read()
    conn.close()
    return n, t0, mon0


def alerts(n, args):
    """Alert latency: after the monitor's baseline window (--wait seconds), read n distinct files
    that the default policy calls sensitive (DIR/i/.aws/credentials, made by the harness before
    the monitor started), one every --gap seconds, so each raises its own certificate. With
    --exec-before each read follows an exec of /bin/true (one also runs in the baseline), so the
    read comes while proctor polls on its short timer after an urgent record instead of waking
    it."""
    if args.exec_before:
        subprocess.run(["/bin/true"], check=True)
    time.sleep(args.wait)
    for i in range(n):
        if args.exec_before:
            subprocess.run(["/bin/true"], check=True)
        with open(os.path.join(args.dir, str(i), ".aws", "credentials"), "rb") as f:
            f.read()
        time.sleep(args.gap)
    return n


def idle(n, args):
    """An idle agent: it sleeps for n seconds and does nothing else, so whatever the monitor
    spends meanwhile is its cost for an agent that waits (on a model, on a human)."""
    time.sleep(n)
    return n


WORKLOADS = {
    "alerts": alerts,
    "idle": idle,
    "https": https,
    "agent": agent,
    "exec": exec_storm,
    "open": open_storm,
    "connect": connect_storm,
    "sched": sched_storm,
    "dns": dns_storm,
}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("workload", choices=sorted(WORKLOADS))
    p.add_argument("--count", type=int, required=True, help="units of work (steps, execs, ...)")
    p.add_argument("--result", required=True, help="where to write the JSON result")
    p.add_argument("--monitor-pid", default="", help="comma-separated pids, or 'parent'")
    p.add_argument("--http-port", type=int, default=0)
    p.add_argument("--dns-port", type=int, default=0)
    p.add_argument("--https-port", type=int, default=0)
    p.add_argument("--rate", type=float, default=0, help="open: pace to this many per second")
    p.add_argument("--dir", default="", help="alerts: where the sensitive files are")
    p.add_argument("--wait", type=float, default=0, help="alerts: seconds before the first")
    p.add_argument("--gap", type=float, default=0.02, help="alerts: seconds between two")
    p.add_argument("--exec-before", action="store_true", help="alerts: exec /bin/true before each read")
    p.add_argument("--settle", type=float, default=0,
                   help="untimed seconds to wait before the work (the monitor's start-up)")
    args = p.parse_args()
    if args.monitor_pid == "parent":
        args.mon = [os.getppid()]
    else:
        args.mon = [int(x) for x in args.monitor_pid.split(",") if x]
    # The monitor's start-up work (its niced walk for sensitive files, the first scan of
    # /proc) can still run when it starts us: --settle waits it out, so the timed work measures
    # the steady state; proctor's start and stop are measured on their own.
    time.sleep(args.settle)
    t0 = time.perf_counter()
    mon0 = cpu_mark(args.mon)
    out = WORKLOADS[args.workload](args.count, args)
    if isinstance(out, tuple):  # the workload timed itself after its setup
        ops, t0, mon0 = out
    else:
        ops = out
    seconds = time.perf_counter() - t0
    mon = cpu_since(args.mon, mon0)
    with open(args.result, "w") as f:
        json.dump({"workload": args.workload, "ops": ops, "seconds": seconds,
                   "monitor_cpu_ns": mon}, f)


if __name__ == "__main__":
    main()
