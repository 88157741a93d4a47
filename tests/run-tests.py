#!/usr/bin/env python3
"""The test runner of `make test`: every test binary of the workspace, built once, run several at
a time.

`cargo test` runs its test binaries one after the other. Most of ours spend their time waiting
(a baseline window, an agent that sleeps, a model stub, a VM) rather than computing, so on two
cores the suite is far shorter when several binaries run at once. This script:

1. builds every test target once, with the cargo arguments it is given (`make test` passes the
   same `--workspace --features proctor/kernel-tests` as clippy, so nothing is rebuilt between the
   two), from cargo's own report of what it built (`--message-format=json`);
2. runs the test binaries, the doc tests and any `--with NAME=COMMAND` job (the VM tier) as a
   pool of `--jobs` processes, each binary in its package directory with the environment
   `cargo test` gives it, the longest first (by the times of the last run, kept in
   target/test-times.json; on a fresh clone by the list LONG below);
3. prints one line per binary as it ends (tests passed, wall and CPU time), the whole output of
   any that failed, and a table of every binary's wall and CPU time (user+sys of the binary and
   the children it reaped: proctor, the agents, python). The exit status is 0 only when every
   binary passed.

CPU time is the number to reason from on a shared machine: wall time depends on the load.
Each binary's output is kept in target/test-logs/.
"""

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

# The binaries that take longest (wall) on a fresh clone, longest first: they start first so the
# pool never ends waiting on one long binary started last. Later runs use measured times.
LONG = [
    "proctor/real_agents",
    "proctor/detect_e2e",
    "proctor/tls",
    "proctor/sensor",
    "proctor/evasion_records",
    "proctor/daemon",
    "proctor/daemon_claude",
    "proctor/enforce",
    "proctor/self_protection",
]

# Binaries judged on how the agent is scheduled (L1 drift must be detected, a benign minute must
# stay quiet): other binaries running beside them would change that, so they run after the pool,
# alone.
# The real agents too: most of their sessions learn a baseline for a fixed 30 s window that the
# CLI's own start-up must fit in, which it did not beside other binaries on a loaded machine.
# TEST_ALONE (comma-separated names) adds more.
# evasion_records (the Landlock refusal resolved through /proc) and the timestamp authority test
# each failed once beside other binaries in a fresh-clone run and passed alone: they go there
# until their waits are made load-proof.
ALONE = [
    "proctor/detect_e2e",
    "proctor/real_agents",
    "proctor/evasion_records",
    "proctor-evidence/timestamps",
] + [
    n for n in os.environ.get("TEST_ALONE", "").split(",") if n
]

RESULT = re.compile(
    r"^test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored", re.MULTILINE
)


def parse_args():
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        usage="%(prog)s [--jobs N] [--with NAME=COMMAND]... [-- CARGO_TEST_ARGS...]",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=int(os.environ.get("TEST_JOBS", "3")),
        help="binaries run at once (default $TEST_JOBS or 3)",
    )
    p.add_argument(
        "--with",
        dest="extra",
        action="append",
        default=[],
        metavar="NAME=COMMAND",
        help="one more job run in the pool after the build (e.g. the VM tier)",
    )
    p.add_argument(
        "--timeout",
        type=int,
        default=int(os.environ.get("TEST_TIMEOUT", "1800")),
        help="seconds before a binary is killed and failed (default 1800)",
    )
    p.add_argument("cargo_args", nargs="*", help="arguments for `cargo test`")
    return p.parse_args()


class Job:
    def __init__(self, name, argv, cwd, env, log):
        self.name, self.argv, self.cwd, self.env, self.log = name, argv, cwd, env, log
        self.proc = None
        self.start = self.wall = self.cpu = None
        self.status = None
        self.timed_out = False

    def launch(self):
        self.logf = open(self.log, "wb")
        self.start = time.monotonic()
        # A process group of its own: a timeout or ^C ends the whole tree it started.
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self.logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self):
        """SIGKILL what the job started: its session, whose process groups include those of
        `timeout` (qemu's wrapper), which takes a group of its own."""
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    # pid (comm) state ppid pgrp session ...; comm may hold spaces.
                    sid = int(f.read().rsplit(")", 1)[1].split()[3])
                if sid == self.proc.pid:
                    os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError, IndexError):
                pass

    def finished(self, status, rusage):
        self.wall = time.monotonic() - self.start
        self.cpu = rusage.ru_utime + rusage.ru_stime
        self.status = os.waitstatus_to_exitcode(status)
        self.logf.close()
        # Whatever the binary left running in its group (a daemon a failed test did not stop).
        self.kill()

    def output(self):
        with open(self.log, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def counts(self):
        """(passed, failed, ignored) over every `test result` line of the log."""
        totals = [0, 0, 0]
        for m in RESULT.finditer(self.output()):
            for i in range(3):
                totals[i] += int(m.group(i + 1))
        return totals


def build(cargo, cargo_args):
    """Build every test target; return cargo's compiler-artifact messages for them."""
    cmd = [cargo, "test", "--no-run", "--message-format=json-render-diagnostics"] + cargo_args
    print("+ " + shlex.join(cmd), flush=True)
    t = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    arts = []
    for line in proc.stdout:
        try:
            m = json.loads(line)
        except ValueError:
            continue
        if (
            m.get("reason") == "compiler-artifact"
            and m.get("executable")
            and m["profile"]["test"]
        ):
            arts.append(m)
    if proc.wait() != 0:
        sys.exit("tests/run-tests.py: building the tests failed")
    print(f"built {len(arts)} test binaries in {time.monotonic() - t:.0f} s", flush=True)
    return arts


def package_of(art):
    # package_id: "path+file:///dir/crates/proctor#0.1.0" or "proctor 0.1.0 (path+file:///...)"
    pid = art["package_id"]
    if "#" in pid:
        tail = pid.rsplit("#", 1)[1]
        name = tail.split("@")[0] if "@" in tail else os.path.basename(pid.split("#")[0])
        version = tail.split("@")[-1]
    else:
        name, version = pid.split(" ")[:2]
    return name, version


def test_jobs(arts, cargo, logs):
    jobs = []
    for art in arts:
        pkg, version = package_of(art)
        kind = art["target"]["kind"][0]
        target = art["target"]["name"]
        label = f"{pkg}/{target}" if kind == "test" else f"{pkg}/{kind}:{target}"
        manifest_dir = os.path.dirname(art["manifest_path"])
        env = dict(os.environ)
        # What `cargo test` sets for a test binary at run time.
        env.update(
            CARGO=cargo,
            CARGO_MANIFEST_DIR=manifest_dir,
            CARGO_MANIFEST_PATH=art["manifest_path"],
            CARGO_PKG_NAME=pkg,
            CARGO_PKG_VERSION=version,
            CARGO_CRATE_NAME=target.replace("-", "_"),
        )
        log = os.path.join(logs, label.replace("/", "-").replace(":", "-") + ".log")
        jobs.append(Job(label, [art["executable"]], manifest_dir, env, log))
    return jobs


def main():
    args = parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.chdir(root)
    cargo = os.environ.get("CARGO", "cargo")
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target"))
    logs = os.path.join(target, "test-logs")
    os.makedirs(logs, exist_ok=True)
    times_path = os.path.join(target, "test-times.json")

    jobs = test_jobs(build(cargo, args.cargo_args), cargo, logs)
    # The doc tests: rustdoc builds and runs them itself (cargo test --doc, same arguments).
    doc_args = [a for a in args.cargo_args if a != "--all-targets"]
    jobs.append(
        Job(
            "doc-tests",
            [cargo, "test", "--doc"] + doc_args,
            root,
            dict(os.environ),
            os.path.join(logs, "doc-tests.log"),
        )
    )
    for spec in args.extra:
        name, _, command = spec.partition("=")
        if not command:
            sys.exit(f"tests/run-tests.py: --with {spec!r}: expected NAME=COMMAND")
        jobs.append(
            Job(name, ["/bin/sh", "-c", command], root, dict(os.environ),
                os.path.join(logs, name + ".log"))
        )

    try:
        with open(times_path) as f:
            last = json.load(f)
    except (OSError, ValueError):
        last = {}

    extra_names = [spec.partition("=")[0] for spec in args.extra]

    def expected(job):
        # --with jobs (the VM tier) are the longest by far: first.
        if job.name in extra_names:
            return 100_000
        if job.name in last:
            return last[job.name]
        if job.name in LONG:
            return 10_000 - LONG.index(job.name)
        return 0

    done = []
    running = {}

    def stop_all(*_):
        for j in running.values():
            j.kill()
        sys.exit("tests/run-tests.py: interrupted")

    signal.signal(signal.SIGINT, stop_all)
    signal.signal(signal.SIGTERM, stop_all)

    def run_pool(pending, width):
        pending = sorted(pending, key=expected, reverse=True)
        while pending or running:
            # --with jobs (the VM tier) run beside the `width` test binaries, not in a slot.
            for j in [p for p in pending if p.name in extra_names]:
                pending.remove(j)
                j.launch()
                running[j.proc.pid] = j
            while pending and sum(r.name not in extra_names for r in running.values()) < width:
                j = pending.pop(0)
                j.launch()
                running[j.proc.pid] = j
            pid, status, rusage = os.wait4(-1, os.WNOHANG)
            if pid == 0:
                for other in running.values():
                    if time.monotonic() - other.start > args.timeout and not other.timed_out:
                        print(f"FAIL {other.name}: killed after {args.timeout} s", flush=True)
                        other.timed_out = True
                        other.kill()
                time.sleep(0.2)
                continue
            j = running.pop(pid, None)
            if j is None:
                continue
            j.finished(status, rusage)
            passed, failed, ignored = j.counts()
            ok = j.status == 0
            print(
                f"{'ok  ' if ok else 'FAIL'} {j.name:40} {passed:3} passed {failed:2} failed "
                f"{ignored:2} ignored  wall {j.wall:6.1f} s  cpu {j.cpu:6.1f} s",
                flush=True,
            )
            if not ok:
                print(f"---- output of {j.name} (exit {j.status}) ----\n{j.output()}", flush=True)
            done.append(j)

    t0 = time.monotonic()
    pool = [j for j in jobs if j.name not in ALONE]
    alone = [j for j in jobs if j.name in ALONE]
    print(f"running {len(pool)} jobs, {args.jobs} at a time (logs in {logs})", flush=True)
    run_pool(pool, args.jobs)
    if alone:
        print(f"then, alone: {', '.join(j.name for j in alone)}", flush=True)
        run_pool(alone, 1)

    total = time.monotonic() - t0
    last.update({j.name: round(j.wall, 1) for j in done})
    with open(times_path, "w") as f:
        json.dump(last, f, indent=1, sort_keys=True)
    failed = [j for j in done if j.status != 0]
    cpu = sum(j.cpu for j in done)
    print("\nwall s   cpu s  binary (longest first)")
    for j in sorted(done, key=lambda j: j.wall, reverse=True):
        print(f"{j.wall:6.1f} {j.cpu:7.1f}  {j.name}{'' if j.status == 0 else '  FAILED'}")
    print(
        f"{len(done)} jobs in {total:.0f} s wall, {cpu:.0f} s CPU (user+sys); "
        f"{len(failed)} failed{': ' + ', '.join(j.name for j in failed) if failed else ''}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
