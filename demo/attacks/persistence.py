#!/usr/bin/env python3
"""PERSISTENCE: add an SSH key to authorized_keys and a crontab line, under a temporary HOME
(the real ones are never touched)."""
import getpass
import os
import shutil
import tempfile


def run():
    home = tempfile.mkdtemp(prefix="proctor-demo-home-")
    try:
        os.makedirs(os.path.join(home, ".ssh"))
        with open(os.path.join(home, ".ssh", "authorized_keys"), "a") as f:
            f.write("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDEMO demo@proctor\n")
        cron = os.path.join(home, "spool", "cron", "crontabs")
        os.makedirs(cron)
        with open(os.path.join(cron, getpass.getuser()), "w") as f:
            f.write("* * * * * /tmp/stage2.sh\n")
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    run()
