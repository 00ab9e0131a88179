#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The coordinator's system unit: `systemd-analyze verify` prints nothing and
`systemd-analyze security --offline=yes` rates its exposure at most 2.0.

verify needs ExecStart's binary and the Documentation= man page to exist, so
the unit configured in the build tree is copied with ExecStart pointing at
the built binary, and MANPATH at the built man page."""

import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))

from p2ptest import BUILD_ROOT, Tap  # noqa: E402

UNIT = "p2pchat-coordinator.service"
MAX_EXPOSURE = 2.0


def main():
    tap = Tap()
    root = BUILD_ROOT
    unit = os.path.join(root, "systemd", UNIT)
    binary = os.path.join(root, "coordinator", "p2pchat-coordinator")
    manpage = os.path.join(root, "docs", "p2pchat-coordinator.8")

    with open(unit) as f:
        text = f.read()
    m = re.search(r"^ExecStart=(\S+)", text, re.M)
    tap.ok(m and m.group(1).endswith("/p2pchat-coordinator"), "ExecStart runs the coordinator",
           m and m.group(1))
    for key in ("Type=notify", "DynamicUser=yes"):
        tap.ok(re.search("^%s$" % key, text, re.M), "unit has %s" % key)

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, UNIT)
        with open(path, "w") as f:
            f.write(text.replace(m.group(1), binary, 1))
        env = dict(os.environ, SYSTEMD_LOG_LEVEL="info")
        man8 = os.path.join(tmp, "man", "man8")
        os.makedirs(man8)
        have_man = os.path.exists(manpage)
        if have_man:
            shutil.copy(manpage, man8)
            env["MANPATH"] = os.path.join(tmp, "man")

        p = subprocess.run(["systemd-analyze", "verify", path], env=env,
                           capture_output=True, text=True, timeout=60)
        out = (p.stdout + p.stderr).strip()
        if have_man:
            tap.ok(p.returncode == 0 and out == "", "systemd-analyze verify prints nothing", out)
        else:
            # Only the man page lookup may fail when scdoc is missing.
            lines = [line for line in out.splitlines() if "man p2pchat-coordinator" not in line]
            tap.ok(lines == [], "systemd-analyze verify (man page not built)", out)

        p = subprocess.run(["systemd-analyze", "security", "--offline=yes", path], env=env,
                           capture_output=True, text=True, timeout=60)
        m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", p.stdout + p.stderr)
        level = float(m.group(1)) if m else None
        tap.ok(level is not None and level <= MAX_EXPOSURE,
               "systemd-analyze security: exposure %s <= %.1f" % (level, MAX_EXPOSURE),
               p.stdout[-2000:] + p.stderr[-500:])
    tap.finish()


if __name__ == "__main__":
    main()
