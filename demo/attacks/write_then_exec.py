#!/usr/bin/env python3
"""L3 CAUSAL_CYCLE_DETECTED: write a script, make it executable, execute it."""
import os
import shutil
import subprocess
import tempfile


def run():
    d = tempfile.mkdtemp(prefix="proctor-demo-stage-")
    try:
        path = os.path.join(d, "stage2.sh")
        with open(path, "w") as f:
            f.write("#!/bin/sh\necho stage two\n")
        os.chmod(path, 0o755)
        subprocess.run([path], stdout=subprocess.DEVNULL, check=False, timeout=10)
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    run()
