#!/usr/bin/env python3
"""SENSITIVE_FILE: read a (fake) ~/.aws/credentials, under a temporary HOME."""
import os
import shutil
import tempfile


def run():
    home = tempfile.mkdtemp(prefix="proctor-demo-home-")
    try:
        os.makedirs(os.path.join(home, ".aws"))
        path = os.path.join(home, ".aws", "credentials")
        with open(path, "w") as f:
            f.write("[default]\naws_access_key_id = AKIADEMODEMODEMODEMO\n"
                    "aws_secret_access_key = not-a-real-secret\n")
        with open(path) as f:
            f.read()
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    run()
