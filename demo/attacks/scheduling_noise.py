#!/usr/bin/env python3
"""L1 DRIFT_DETECTED: busy and yielding threads for 8 s change the scheduling fingerprint
(long on-CPU slices, many short waits) of an agent that normally sleeps."""
import os
import threading
import time

SECONDS = 8.0


def busy(end):
    x = 0
    while time.monotonic() < end:
        x += 1


def yielder(end):
    while time.monotonic() < end:
        os.sched_yield()


def run():
    end = time.monotonic() + SECONDS
    threads = [threading.Thread(target=f, args=(end,)) for f in (busy, busy, yielder, yielder)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    run()
