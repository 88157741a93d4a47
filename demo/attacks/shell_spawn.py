#!/usr/bin/env python3
"""L2 LLM_AGENT_HIJACK: an injected tool call makes the agent run a shell (`sh -c`)."""
import subprocess


def run():
    subprocess.run(["sh", "-c", "id; uname -a"], stdout=subprocess.DEVNULL, check=False, timeout=10)


if __name__ == "__main__":
    run()
