# SPDX-License-Identifier: MIT
"""Helpers for the GTK app's tests: a private X server.

Xvfb picks a free display itself (-displayfd), so parallel tests never race
for one; the process is registered with p2ptest and killed by pid at exit.
"""

import os
import subprocess
import time

from p2ptest import spawn


def start_xvfb(size="1280x800x24"):
    """Starts Xvfb on a display of its own choice; returns (proc, ':N')."""
    r, w = os.pipe()
    proc = spawn(["Xvfb", "-displayfd", str(w), "-screen", "0", size,
                  "-nolisten", "tcp", "-noreset"], pass_fds=(w,),
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    data = b""
    end = time.monotonic() + 30
    try:
        while not data.endswith(b"\n") and time.monotonic() < end:
            chunk = os.read(r, 16)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(r)
    if not data.strip():
        raise RuntimeError("Xvfb did not report a display")
    return proc, ":" + data.decode().strip()
