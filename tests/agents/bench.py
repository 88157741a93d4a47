#!/usr/bin/env python3
"""What proctor costs real agent CLIs: the benign session of each CLI bare, under `proctor run`
and under `proctor run --capture-tls` (with `--tls-intercept` for Claude Code and Codex),
interleaved (rep by rep, agent by agent, mode by mode) so machine drift spreads over all modes.
Each run is session.py in its own loopback-only namespace with a 1 s baseline (the stub holds
the session's steps that long in every mode).

    python3 tests/agents/bench.py --proctor target/release/proctor [--reps 3] [--out DIR]

Prints a markdown table (median wall time per mode, its ratio to bare, proctor's own CPU, and
what --capture-tls recorded: tls, llm_request, llm_response and tls_blind records) and writes
DIR/agents-bench.json with every sample.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
MODES = {"bare": None, "proctor": [], "proctor --capture-tls": ["--capture-tls"]}
# Claude Code (static, stripped BoringSSL) and Codex (rustls) are read through the interception
# proxy: their capture row measures the mode that actually sees their LLM calls.
INTERCEPTED = ("claude", "codex")


def mode_args(agent, mode):
    args = MODES[mode]
    if args and "--capture-tls" in args and agent in INTERCEPTED:
        return args + ["--tls-intercept"]
    return args
COUNTED = ("tls", "llm_request", "llm_response", "tls_blind", "alert")


def one(agent, mode, proctor, work):
    out = os.path.join(work, "out")
    result = os.path.join(work, "result.json")
    cmd = ["unshare", "--net", sys.executable, os.path.join(HERE, "session.py"),
           "--agent", agent, "--session", "benign", "--baseline-s", "1", "--result", result]
    args = mode_args(agent, mode)
    if args is not None:
        cmd += ["--proctor", proctor, "--out", out]
        cmd += [f"--proctor-arg={x}" for x in args]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(result) as f:
        r = json.load(f)
    if r["exit"] != 0 or not r["finished"]:
        raise SystemExit(f"bench.py: {agent} {mode} did not finish: {r['stderr_tail'][-500:]}")
    sample = {"agent": agent, "mode": mode, "wall_s": r["wall_s"], "task_s": r["task_s"],
              "held_s": r.get("held_s"),
              "span_s": r.get("span_s") or r["task_s"], "cpu_s": r["proctor_cpu_s"],
              "task_cpu_s": r["proctor_task_cpu_s"]}
    counts = dict.fromkeys(COUNTED, 0)
    if os.path.exists(os.path.join(out, "audit.jsonl")):
        with open(os.path.join(out, "audit.jsonl")) as f:
            for line in f:
                t = json.loads(line).get("type")
                if t in counts:
                    counts[t] += 1
        sample["records"] = counts
    return sample


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--proctor", required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--agents", default="claude,codex,pi,gemini,openclaw")
    ap.add_argument("--out", default=".")
    a = ap.parse_args()
    proctor = os.path.abspath(a.proctor)
    samples = []
    for rep in range(a.reps):
        for agent in a.agents.split(","):
            for mode in MODES:
                with tempfile.TemporaryDirectory() as work:
                    s = one(agent, mode, proctor, work)
                s["rep"] = rep
                samples.append(s)
                print(json.dumps(s), file=sys.stderr, flush=True)
    with open(os.path.join(a.out, "agents-bench.json"), "w") as f:
        json.dump(samples, f, indent=1)
    print("Medians. task: first model request to final answer, less the time the stub held "
          "answers on purpose (its baseline gate: after 1 s bare, after proctor's "
          "baseline_established record under proctor) (the agent's work); wall: the "
          "whole command, monitor start and stop included; CPU % of task: proctor's CPU between "
          "those two moments, hold included (read every 0.1 s). Alerts are not a finding here: the "
          "1 s baseline learns next to nothing.\n")
    print("| agent | mode | task s | vs bare | wall s | vs bare | proctor CPU s | CPU % of "
          "wall | CPU % of task | tls / llm_request / llm_response / tls_blind | alerts |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    med = statistics.median
    for agent in a.agents.split(","):
        bare = [s for s in samples if s["agent"] == agent and s["mode"] == "bare"]
        bare_task = med(s["task_s"] for s in bare)
        bare_wall = med(s["wall_s"] for s in bare)
        for mode in MODES:
            ss = [s for s in samples if s["agent"] == agent and s["mode"] == mode]
            task, wall = med(s["task_s"] for s in ss), med(s["wall_s"] for s in ss)
            shown = " ".join(["proctor"] + mode_args(agent, mode)) if MODES[mode] else mode
            row = (f"| {agent} | {shown} | {task:.2f} | {task / bare_task:.3f} | {wall:.2f} | "
                   f"{wall / bare_wall:.3f} |")
            if MODES[mode] is None:
                print(row + " | | | | |")
                continue
            cpu = med(s["cpu_s"] or 0 for s in ss)
            task_cpu = med(100 * (s["task_cpu_s"] or 0) / s["span_s"] for s in ss)
            rec = ss[-1]["records"]
            seen = " / ".join(str(rec[k]) for k in COUNTED[:4])
            alerts = max(s["records"]["alert"] for s in ss)
            print(f"{row} {cpu:.2f} | {100 * cpu / wall:.1f} | {task_cpu:.1f} | {seen} | "
                  f"{alerts} |")


if __name__ == "__main__":
    main()
