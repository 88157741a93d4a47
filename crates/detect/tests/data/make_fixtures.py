#!/usr/bin/env python3
"""Synthesise the replay fixtures in this folder (audit.jsonl lines in the serde form of
proctor_model::Record). Deterministic: run it again and the files are byte-identical.

    python3 crates/detect/tests/data/make_fixtures.py

- benign.jsonl    a python agent's loop for 40 s: model API on 127.0.0.1:18080, reads in its cwd,
                  `git status` every 2 s, DNS for api.example.com, sleepy sched summaries.
- attacks.jsonl   the same loop; after 12 s one attack per channel/category, 4 s apart.
- malformed.jsonl benign records with broken lines at known line numbers (3, 6, 9, 12).
Real recorded logs may be added beside these; the replay tests read them all the same way.
"""
import json
import os

S = 1_000_000_000
T0 = 1_700_000_000 * S
AGENT = 4100
HOME = "/home/agent"
CWD = "/work/proj"
HERE = os.path.dirname(os.path.abspath(__file__))


def rec(ts, pid, ppid, comm, ty, **fields):
    r = {"type": ty}
    r.update(fields)
    r.update(ts_ns=T0 + ts, agent_id="demo-agent", pid=pid, ppid=ppid, comm=comm,
             exec_id=f"{pid}-{1000 + pid}-1")
    return r


def exec_(ts, pid, ppid, filename, argv, dev=64769, ino=1):
    return rec(ts, pid, ppid, os.path.basename(filename)[:15], "exec", filename=filename,
               argv=argv, argv_truncated=False, dev=dev, ino=ino)


def fork(ts, pid, child):
    return rec(ts, pid, 1, "python3", "fork", child_pid=child)


def exit_(ts, pid, ppid):
    return rec(ts, pid, ppid, "git", "exit", exit_code=0)


def open_(ts, pid, path, access="read", create=False, ino=100, error=None):
    r = rec(ts, pid, 1, "python3", "file_open", path=path, flags=0 if access == "read" else 577,
            access=access, create=create, truncate=create, dev=0 if error else 64769,
            ino=0 if error else ino)
    if error:
        r["error"] = error
    return r


def connect(ts, pid, addr, port, proto="tcp"):
    fam = "inet6" if ":" in addr else "inet"
    return rec(ts, pid, 1, "python3", "connect", family=fam, addr=addr, port=port, protocol=proto)


def send(ts, pid, addr, port, nbytes):
    return rec(ts, pid, 1, "python3", "send", family="inet", addr=addr, port=port,
               protocol="udp", bytes=nbytes, syscall="sendto")


def dns(ts, pid, qname, server="127.0.0.53"):
    return rec(ts, pid, 1, "python3", "dns", qname=qname, qtype=1, qtype_name="A",
               server={"family": "inet", "addr": server, "port": 53}, protocol="udp", txid=4242)


def ptrace(ts, pid, request, target):
    return rec(ts, pid, 1, "python3", "ptrace", request=request, request_code=16,
               tracer_pid=pid, target_pid=target, tracer_tracked=True, target_tracked=True)


def hist(pairs):
    h = [0] * 32
    for b, c in pairs:
        h[b] += c
    return h


def sched(ts, run, off):
    rh, oh = hist(run), hist(off)
    n = sum(rh)
    return rec(ts, AGENT, 1, "python3", "sched", interval_ns=S, switches=n, voluntary=n,
               involuntary=0, run_ns=0, off_ns=0, run_hist=rh, off_hist=oh)


def sleepy(ts, w):
    return sched(ts, [(14, 40 + w), (15, 60), (16, 20 + w)], [(24, 50), (25, 50 + w), (26, 20)])


def busy(ts):
    return sched(ts, [(22, 200), (23, 300), (24, 100)], [(10, 300), (11, 200), (12, 100)])


def start():
    return [
        {"type": "sensor_start", "mode": "audit", "command": "run", "argv": ["python3", "agent.py"],
         "home": HOME, "cwd": CWD, "ts_ns": T0, "agent_id": "demo-agent", "pid": 4000,
         "ppid": 1, "comm": "proctor", "exec_id": ""},
        exec_(1000, AGENT, 4000, "/usr/bin/python3.11", ["python3", "agent.py"], ino=11),
    ]


class Pids:
    def __init__(self):
        self.n = 5000

    def next(self):
        self.n += 1
        return self.n


def benign(t_from, t_to, pids):
    out = []
    t, i = t_from, 0
    while t < t_to:
        out.append(connect(t, AGENT, "127.0.0.1", 18080))
        out.append(open_(t + 1000, AGENT, CWD + "/src/main.py", ino=200))
        if i % 2 == 0:
            out.append(sleepy(t + 2000, i % 5))
            out.append(dns(t + 3000, AGENT, "api.example.com"))
        if i % 4 == 0:
            p = pids.next()
            out += [fork(t + 4000, AGENT, p),
                    exec_(t + 5000, p, AGENT, "/usr/bin/git", ["git", "status"], ino=20),
                    exit_(t + 6000, p, AGENT)]
        t += S // 2
        i += 1
    return out


def attacks(pids):
    out = []
    t = 12 * S + 250_000_000
    # shell spawn via an injected tool call
    p = pids.next()
    out += [fork(t, AGENT, p), exec_(t + 10, p, AGENT, "/usr/bin/dash", ["sh", "-c", "id; uname -a"], ino=30)]
    t += 4 * S
    # credential read under a temporary HOME
    out.append(open_(t, AGENT, "/tmp/proctor-demo-home/.aws/credentials", ino=300))
    t += 4 * S
    # unknown loopback destination
    out.append(connect(t, AGENT, "127.0.0.1", 4444))
    t += 4 * S
    # egress burst: 120 connects in 0.6 s to the model port
    out += [connect(t + k * 5_000_000, AGENT, "127.0.0.1", 18080) for k in range(120)]
    t += 4 * S
    # DNS tunnel to a local fake resolver
    for k in range(5):
        label = "mzxw6ytboi4dsnzqgi3tkmbsgq2dkmrvhe4tsnzr"[k:] + "q7x2k9p4v8"
        out.append(send(t + k * 1000, AGENT, "127.0.0.1", 53, 80))
        out.append(dns(t + k * 1000 + 1, AGENT, f"{label}.{k}.exfil.test", server="127.0.0.1"))
    t += 4 * S
    # ptrace attach on a child
    p = pids.next()
    out += [fork(t, AGENT, p), ptrace(t + 10, AGENT, "attach", p)]
    t += 4 * S
    # write-then-exec
    out.append(open_(t, AGENT, "/tmp/proctor-demo-stage/run.sh", access="write", create=True, ino=400))
    p = pids.next()
    out += [fork(t + 10, AGENT, p),
            exec_(t + 20, p, AGENT, "/usr/bin/dash", ["/bin/sh", "/tmp/proctor-demo-stage/run.sh"], ino=30)]
    t += 4 * S
    # persistence under the temporary HOME
    out.append(open_(t, AGENT, "/tmp/proctor-demo-home/.ssh/authorized_keys", access="write", create=True, ino=500))
    t += 4 * S
    return out, t


def scheduling_noise(t_from, n):
    return [busy(t_from + k * S + 2500) for k in range(n)]


def write(name, records, extra=None):
    lines = [json.dumps(r, separators=(",", ":")) for r in records]
    for idx, bad in sorted((extra or {}).items()):
        lines.insert(idx - 1, bad)
    with open(os.path.join(HERE, name), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    pids = Pids()
    write("benign.jsonl", start() + benign(S // 2, 40 * S, pids))

    pids = Pids()
    base = start() + benign(S // 2, 12 * S, pids)
    atk, t_end = attacks(pids)
    # the benign loop keeps running (without its sched summaries during the busy phase)
    tail = benign(12 * S, t_end + 20 * S, pids)
    noise_from = t_end + 2 * S
    tail = [r for r in tail if not (r["type"] == "sched" and r["ts_ns"] >= T0 + noise_from)]
    tail += scheduling_noise(noise_from, 6)
    records = base + sorted(atk + tail, key=lambda r: r["ts_ns"])
    write("attacks.jsonl", records)

    pids = Pids()
    write("malformed.jsonl", start() + benign(S // 2, 15 * S, pids), extra={
        3: "this is not json",
        6: '{"type":"exec","ts_ns":1}',
        9: '{"type":"file_open","path":{"b64":"YWJj"},"flags":0,"access":"read","create":false,'
           '"truncate":false,"dev":0,"ino":0,"ts_ns":1,"agent_id":"a","pid":1,"ppid":0,"comm":"x","exec_id":"e"}',
        12: '[1,2,3]',
    })


if __name__ == "__main__":
    main()
