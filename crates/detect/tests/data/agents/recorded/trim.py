#!/usr/bin/env python3
"""Trim the real-agent recordings of /work/coord/recordings (helper `agents`: Claude Code
2.1.332, Codex 0.171.0, pi 0.73.1 driven by an LLM API stub in a loopback-only network
namespace, `proctor run --baseline 20s`) into replay fixtures:

    python3 trim.py /work/coord/recordings

Kept: sensor_start (HOME and cwd), every observation record except read-only opens of paths
that no credential pattern could match (library and project reads: most of the bytes, and no
detector judges them), without the hash-chain fields. Dropped: alerts, certificates,
checkpoints (replay recomputes what matters).
"""
import json
import os
import sys

SENSITIVE_HINTS = [".aws", ".ssh", "history", ".env", "credentials", ".netrc", ".npmrc", "shadow",
                   "sudoers", ".kube", ".docker", ".gnupg", ".git-credentials", ".pypirc",
                   "gcloud", ".azure", "keyrings", "ssl/private"]
KEEP_OTHER = {"sensor_start"}
OBSERVATIONS = {"exec", "fork", "exit", "file_open", "connect", "send", "dns", "ptrace", "sched",
                "lost", "tls", "tls_sni", "tls_blind", "llm_request", "llm_response"}


def keep(r):
    t = r.get("type")
    if t in KEEP_OTHER:
        return True
    if t not in OBSERVATIONS:
        return False
    if t == "file_open" and r.get("access") == "read" and not r.get("create") \
            and not r.get("truncate"):
        return any(h in r.get("path", "") for h in SENSITIVE_HINTS)
    return True


def main(src):
    here = os.path.dirname(os.path.abspath(__file__))
    for name in sorted(os.listdir(src)):
        log = os.path.join(src, name, "audit.jsonl")
        if not os.path.exists(log):
            continue
        out = []
        for line in open(log):
            r = json.loads(line)
            if keep(r):
                for k in ("seq", "hash_prev", "hash_self"):
                    r.pop(k, None)
                out.append(json.dumps(r, separators=(",", ":")))
        with open(os.path.join(here, name + ".jsonl"), "w") as f:
            f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
