#!/usr/bin/env python3
"""Print what proctor recorded in an audit log: counts per record type, then a few examples of
each, one line each. Terminal-safe: every string is printed through repr-style escaping."""
import json
import sys
from collections import Counter, defaultdict

EXAMPLES = 3


def text(v):
    if isinstance(v, dict) and "b64" in v:
        return "<b64:" + v["b64"] + ">"
    return json.dumps(v, ensure_ascii=True)


def line(r):
    t = r["type"]
    head = f"{t:<11} pid={r.get('pid')} comm={text(r.get('comm'))}"
    if t == "exec":
        return f"{head} filename={text(r['filename'])} argv={' '.join(text(a) for a in r['argv'])}"
    if t == "file_open":
        return f"{head} path={text(r['path'])} access={r['access']}" + (f" error={r['error']}" if "error" in r else "")
    if t in ("connect", "send"):
        dest = r.get("path") or f"{r.get('addr')}:{r.get('port')}"
        return f"{head} {r['family']} {text(dest)} {r['protocol']}"
    if t == "dns":
        return f"{head} {r['qtype_name']} {text(r['qname'])} -> {r['server'].get('addr')}"
    if t == "ptrace":
        return f"{head} {r['request']} target={r['target_pid']}"
    if t == "exit":
        return f"{head} " + (f"exit_code={r['exit_code']}" if "exit_code" in r else f"signal={r.get('signal')}")
    if t == "fork":
        return f"{head} child={r['child_pid']}"
    if t == "sched":
        return f"{head} switches={r['switches']} voluntary={r['voluntary']} involuntary={r['involuntary']}"
    if t == "lost":
        return f"{head} what={r['what']} count={r['count']}"
    if t == "alert":
        return f"{head} {r.get('channel')} {r.get('kind')} {text(r.get('summary'))}"
    return head


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "proctor-out/audit.jsonl"
    counts, examples = Counter(), defaultdict(list)
    with open(path, "rb") as f:
        for raw in f:
            r = json.loads(raw)
            counts[r["type"]] += 1
            if len(examples[r["type"]]) < EXAMPLES:
                examples[r["type"]].append(r)
    print(f"\n{path}: {sum(counts.values())} records")
    for t, n in sorted(counts.items()):
        print(f"  {t:<14} {n}")
    print()
    for t in sorted(examples):
        for r in examples[t]:
            print("  " + line(r))


if __name__ == "__main__":
    main()
