#!/usr/bin/env python3
"""L5 PTRACE_ATTACH_DETECTED: PTRACE_ATTACH onto a child process (ctypes), then detach."""
import ctypes
import os
import signal
import time

PTRACE_ATTACH = 16
PTRACE_DETACH = 17


def run():
    pid = os.fork()
    if pid == 0:
        time.sleep(5)
        os._exit(0)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    try:
        if libc.ptrace(PTRACE_ATTACH, pid, None, None) != 0:
            print(f"ptrace_attach: PTRACE_ATTACH failed: {os.strerror(ctypes.get_errno())}")
        else:
            os.waitpid(pid, 0)
            libc.ptrace(PTRACE_DETACH, pid, None, None)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


if __name__ == "__main__":
    run()
