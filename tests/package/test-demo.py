#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""scripts/demo as a new user meets it, run without a terminal.

It builds a tree of its own (P2P_DEMO_BUILDDIR, in a temporary directory,
with TMPDIR there too, so neither build/ nor /tmp is touched) and must:
keep the build's output in the log file it names instead of the screen;
show alice and bob chatting (a message delivered each way, what each
received); and end, without a terminal, with what to try next rather than
a bare "demo finished".  Prints TAP.
"""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import p2ptest  # noqa: E402
from p2ptest import tempdir  # noqa: E402

DEMO = os.path.join(p2ptest.SOURCE_ROOT, "scripts", "demo")


def body(tap):
    tmp = tempdir("p2ptest-demo-")
    env = dict(os.environ, TMPDIR=tmp, P2P_DEMO_BUILDDIR=os.path.join(tmp, "build"),
               NO_COLOR="1")
    p = subprocess.run([DEMO], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, env=env, timeout=900)
    out = p.stdout
    tap.ok(p.returncode == 0, "scripts/demo </dev/null exits 0", out[-3000:])

    log = os.path.join(tmp, "p2pchat-demo-build.log")
    noise = [line for line in out.splitlines()
             if re.search(r"Compiling C object|Linking target|^\[\d+/\d+\]|^The Meson build", line)]
    tap.ok(not noise and os.path.exists(log) and os.path.getsize(log) > 0,
           "the build's output is in the log it names, not on the screen",
           "\n".join(noise[:10]))
    tap.ok("build log: %s" % log in out, "the log's path is printed", out[:1500])
    tap.ok("Delivered to bob." in out and "Delivered to alice." in out,
           "alice and bob chat: a message delivered each way", out[-3000:])
    tail = out.strip().splitlines()[-15:]
    tap.ok(any("what to try next" in line for line in out.splitlines()) and
           "demo finished" not in out and any("p2pchat" in line for line in tail),
           "it ends with what to try next", "\n".join(tail))


def main():
    p2ptest.run(body, 5)


if __name__ == "__main__":
    main()
