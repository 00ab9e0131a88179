#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""`meson install` with a custom --prefix puts nothing outside the prefix.

A tree of its own in a temporary directory, configured with
--prefix=/opt/p2pchat-prefix-test and every part that installs files (the
GTK app, the man pages), is built and installed to a temporary DESTDIR:

- `meson introspect --installed` names no destination outside the prefix;
- `meson install --destdir` puts no file outside DESTDIR/PREFIX (the bug
  this guards against: the coordinator's system unit went to
  /lib/systemd/system, from Debian 12's systemd.pc ${rootprefix});
- the units and the activation file are in the prefix and name its bin/
  and sbin/.

The tree does not depend on the one the test runs in: suite 'package',
which only unsanitized trees define.  Prints TAP.
"""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import p2ptest  # noqa: E402
from p2ptest import tempdir  # noqa: E402

SOURCE = p2ptest.SOURCE_ROOT
PREFIX = "/opt/p2pchat-prefix-test"


def run(argv, timeout=60, **kw):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       stdin=subprocess.DEVNULL, timeout=timeout, **kw)
    return p.returncode, p.stdout


def inside(path, prefix):
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def body(tap):
    tmp = tempdir("p2ptest-prefix-")
    build = os.path.join(tmp, "build")
    dest = os.path.join(tmp, "destdir")

    # Every option that adds installed files, enabled: a missing library
    # fails the setup rather than leaving its files out of the check.
    rc, out = run(["meson", "setup", build, SOURCE, "--prefix=" + PREFIX,
                   "-Dgtk=enabled", "-Dman=enabled", "-Dtests=disabled", "-Dfuzz=false"],
                  timeout=300)
    if not tap.ok(rc == 0, "meson setup --prefix=%s" % PREFIX, out[-4000:]):
        return

    rc, out = run(["meson", "introspect", build, "--installed"])
    installed = json.loads(out) if rc == 0 else {}
    outside = sorted(d for d in installed.values() if not inside(d, PREFIX))
    tap.ok(rc == 0 and installed and not outside,
           "meson introspect --installed: %d files, all in the prefix" % len(installed),
           out[-2000:] if rc else "outside %s:\n%s" % (PREFIX, "\n".join(outside)))

    start = time.monotonic()
    rc, out = run(["meson", "compile", "-C", build], timeout=900)
    if rc == 0:
        rc, out = run(["meson", "install", "-C", build, "--destdir", dest, "--quiet",
                       "--no-rebuild"], timeout=300)
    tap.diag("build and install: %.0f s" % (time.monotonic() - start))
    if not tap.ok(rc == 0, "meson compile, meson install --destdir", out[-4000:]):
        return

    files, stray = [], []
    for top, dirs, names in os.walk(dest):
        for n in names + [d for d in dirs if os.path.islink(os.path.join(top, d))]:
            path = "/" + os.path.relpath(os.path.join(top, n), dest)
            files.append(path)
            if not inside(path, PREFIX):
                stray.append(path)
    tap.ok(files and not stray,
           "DESTDIR holds %d files, none outside %s" % (len(files), PREFIX),
           "\n".join(stray))

    def text(path):
        try:
            with open(os.path.join(dest, path.lstrip("/"))) as f:
                return f.read()
        except OSError:
            return ""
    units = [p for p in files if p.endswith("/p2pchat-coordinator.service")]
    unit = text(units[0]) if len(units) == 1 else ""
    tap.ok(units == [PREFIX + "/lib/systemd/system/p2pchat-coordinator.service"] and
           "\nExecStart=%s/sbin/p2pchat-coordinator " % PREFIX in unit,
           "the coordinator's system unit in PREFIX/lib/systemd/system, "
           "ExecStart= in PREFIX/sbin",
           "%s\n%s" % (units, [l for l in unit.splitlines() if l.startswith("ExecStart=")]))

    user_unit = text(PREFIX + "/lib/systemd/user/p2pchatd.service")
    act = text(PREFIX + "/share/dbus-1/services/org.p2pchat.chat1.service")
    tap.ok("\nExecStart=%s/bin/p2pchatd\n" % PREFIX in user_unit and
           "\nExec=%s/bin/p2pchatd\n" % PREFIX in act,
           "user unit and activation file in the prefix, naming PREFIX/bin/p2pchatd",
           user_unit + act)


def main():
    p2ptest.run(body, 6)


if __name__ == "__main__":
    main()
