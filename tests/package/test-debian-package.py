#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The Debian package: built, checked by lintian, and chatting unpacked.

- `dpkg-buildpackage -us -uc -b` builds p2pchat, p2pchat-gtk and
  p2pchat-coordinator from a copy of the source tree in a temporary
  directory (dpkg-buildpackage writes ../*.deb and debian/ artifacts, which
  must not land in the tree under test); the copy holds the files git
  knows and the untracked ones it does not ignore, so uncommitted work is
  packaged too;
- the Debian version is meson's project version;
- each package holds what debian/README.source says it holds;
- lintian reports neither errors nor warnings on the .changes;
- `dpkg-deb -x` unpacks the three into a temporary root (nothing is
  installed on the system), and the demo's chat runs from there: the
  unpacked p2pchat-coordinator, two users each with a private dbus-daemon
  and a temporary HOME, the unpacked p2pchatd started directly (the
  packaged activation file names /usr/bin/p2pchatd, which is not there:
  only its text is checked), login with the unpacked p2pchat CLI and a
  message both ways.

The package does not depend on the tree the test runs in (it is built with
dpkg-buildflags): suite 'package', which only unsanitized trees define.
Prints TAP.
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import p2ptest  # noqa: E402
from p2ptest import Coordinator, User, tempdir, wait_for  # noqa: E402

SOURCE = p2ptest.SOURCE_ROOT

# What each package holds (besides /usr/share/doc/PACKAGE/).
CONTENTS = {
    "p2pchat": [
        "usr/bin/p2pchat",
        "usr/bin/p2pchatd",
        "usr/lib/systemd/user/p2pchatd.service",
        "usr/share/bash-completion/completions/p2pchat",
        "usr/share/dbus-1/interfaces/org.p2pchat.chat1.xml",
        "usr/share/dbus-1/services/org.p2pchat.chat1.service",
        "usr/share/man/man1/p2pchat.1.gz",
        "usr/share/man/man8/p2pchatd.8.gz",
    ],
    "p2pchat-gtk": [
        "usr/bin/p2pchat-gtk",
        "usr/share/applications/org.p2pchat.P2pchat.desktop",
        "usr/share/dbus-1/services/org.p2pchat.P2pchat.service",
        "usr/share/icons/hicolor/scalable/apps/org.p2pchat.P2pchat.svg",
        "usr/share/man/man1/p2pchat-gtk.1.gz",
        "usr/share/metainfo/org.p2pchat.P2pchat.metainfo.xml",
    ],
    "p2pchat-coordinator": [
        "lib/systemd/system/p2pchat-coordinator.service",
        "usr/sbin/p2pchat-coordinator",
        "usr/share/man/man8/p2pchat-coordinator.8.gz",
    ],
}


def run(argv, timeout=60, **kw):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL, **kw)
    return p.returncode, p.stdout


def source_files():
    """The tree's files as a clone with its uncommitted work would have them:
    git's tracked files and the untracked ones it does not ignore (so no
    build/ tree, no __pycache__).  Without git: everything but .git, build*
    and debian/'s build artifacts."""
    rc, out = run(["git", "-C", SOURCE, "ls-files", "-z", "--cached", "--others",
                   "--exclude-standard"])
    if rc == 0:
        return [f for f in out.split("\0") if f and os.path.lexists(os.path.join(SOURCE, f))]
    files = []
    for top, dirs, names in os.walk(SOURCE):
        rel = os.path.relpath(top, SOURCE)
        if rel == ".":
            dirs[:] = [d for d in dirs if d != ".git" and not d.startswith("build")]
        elif rel == "debian":
            dirs[:] = [d for d in dirs if d == "source"]
            names = [n for n in names if n != "files" and not n.endswith(
                (".substvars", ".debhelper.log"))]
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        files += [os.path.normpath(os.path.join(rel, n)) for n in names]
    return files


def copy_tree(dest):
    for f in source_files():
        src, dst = os.path.join(SOURCE, f), os.path.join(dest, f)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst, follow_symlinks=False)


def build(tap, work):
    """Builds the packages in @work; returns the .changes file or None."""
    src = os.path.join(work, "p2pchat")
    copy_tree(src)
    env = dict(os.environ)
    # The build is the one of debian/rules alone: no make or dpkg settings
    # of whoever runs the tests.
    for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "DEB_BUILD_OPTIONS",
              "DEB_BUILD_PROFILES"):
        env.pop(k, None)
    start = time.monotonic()
    rc, out = run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, env=env, timeout=900)
    tap.diag("dpkg-buildpackage: %.0f s" % (time.monotonic() - start))
    changes = glob.glob(os.path.join(work, "*.changes"))
    if not tap.ok(rc == 0 and len(changes) == 1,
                  "dpkg-buildpackage -us -uc -b builds from a copy of the tree",
                  out[-6000:]):
        return None
    return changes[0]


def check_version(tap, work):
    # From meson.build itself: no build tree needed.
    p = subprocess.run(["meson", "introspect", "--projectinfo",
                        os.path.join(SOURCE, "meson.build")],
                       capture_output=True, text=True, timeout=60)
    version = json.loads(p.stdout)["version"] if p.returncode == 0 else None
    debs = {os.path.basename(p).split("_")[0]: os.path.basename(p).split("_")[1]
            for p in glob.glob(os.path.join(work, "*.deb"))}
    tap.ok(version and set(debs.values()) == {version},
           "the Debian version is meson's project version (%s)" % version,
           "debian/changelog needs an entry for the new version: %s" % debs)


def check_contents(tap, work):
    debs = {}
    for name, want in CONTENTS.items():
        paths = glob.glob(os.path.join(work, "%s_*.deb" % name))
        debs[name] = paths[0] if len(paths) == 1 else None
        if debs[name] is None:
            tap.ok(False, "package %s was built" % name, paths)
            continue
        rc, out = run(["dpkg-deb", "-c", debs[name]])
        have = set()
        for line in out.splitlines():
            path = line.split()[5].lstrip("./") if len(line.split()) >= 6 else ""
            if path and not line.startswith("d") and \
                    not path.startswith("usr/share/doc/%s/" % name):
                have.add(path)
        tap.ok(rc == 0 and have == set(want), "package %s holds its files" % name,
               "missing: %s\nunexpected: %s" % (sorted(set(want) - have),
                                                sorted(have - set(want))))
    return debs


def check_lintian(tap, changes):
    # As root lintian says it should not be: that line is no finding.
    rc, out = run(["lintian", "--fail-on", "error,warning", changes], timeout=300)
    findings = [l for l in out.splitlines() if re.match(r"[EW]: ", l)]
    tap.ok(rc == 0 and not findings, "lintian: no errors, no warnings", out)
    for line in out.splitlines():
        if re.match(r"[IPX]: ", line):
            tap.diag("lintian " + line)


def unpack(tap, debs):
    root = tempdir("p2ptest-debroot-")
    outs = []
    for path in debs.values():
        rc, out = run(["dpkg-deb", "-x", path, root])
        outs.append(out)
        if rc != 0:
            break
    ok = all(os.access(os.path.join(root, p), os.X_OK) for p in
             ("usr/bin/p2pchat", "usr/bin/p2pchatd", "usr/bin/p2pchat-gtk",
              "usr/sbin/p2pchat-coordinator"))
    tap.ok(ok, "dpkg-deb -x unpacks the three packages into a temporary root",
           "\n".join(outs))
    return root if ok else None


def check_paths(tap, root):
    """The configured files name the installed paths."""
    def text(p):
        try:
            with open(os.path.join(root, p)) as f:
                return f.read()
        except OSError as e:
            return str(e)
    act = text("usr/share/dbus-1/services/org.p2pchat.chat1.service")
    unit = text("usr/lib/systemd/user/p2pchatd.service")
    coord = text("lib/systemd/system/p2pchat-coordinator.service")
    tap.ok("Exec=/usr/bin/p2pchatd\n" in act and
           "SystemdService=p2pchatd.service" in act and
           "ExecStart=/usr/bin/p2pchatd\n" in unit and
           "ExecStart=/usr/sbin/p2pchat-coordinator " in coord,
           "activation file and units name /usr/bin/p2pchatd and /usr/sbin",
           act + unit + coord)


def chat(tap, root):
    coordinator = Coordinator(binary=os.path.join(root, "usr/sbin/p2pchat-coordinator"))
    users = [User(name, p2pchatd=os.path.join(root, "usr/bin/p2pchatd"),
                  p2pchat=os.path.join(root, "usr/bin/p2pchat"))
             for name in ("alice", "bob")]
    alice, bob = users
    logins = [u.cli("login", u.name, "--coordinator", coordinator.address) for u in users]
    tap.ok(all(r.returncode == 0 for r in logins),
           "the unpacked CLI logs both in to the unpacked coordinator",
           "\n".join(r.stderr for r in logins))

    def online(u, peer):
        r = u.cli("--json", "peers")
        return r.returncode == 0 and any(p["name"] == peer and p["online"]
                                         for p in json.loads(r.stdout))
    tap.ok(wait_for(lambda: online(alice, "bob") and online(bob, "alice"), 15),
           "each sees the other online")

    sent = [alice.cli("send", "--wait", "bob", "Hi bob! 你好"),
            bob.cli("send", "--wait", "alice", "-", input="Hello alice, bob here.\n")]
    tap.ok(all(r.returncode == 0 for r in sent), "p2pchat send --wait, both ways",
           "\n".join(r.stderr for r in sent))

    def received(u, peer, text):
        r = u.cli("--json", "history", peer)
        if r.returncode != 0:
            return False
        return any(m.get("text") == text and m.get("direction") == "in"
                   for m in json.loads(r.stdout))
    tap.ok(wait_for(lambda: received(bob, "alice", "Hi bob! 你好") and
                    received(alice, "bob", "Hello alice, bob here."), 15),
           "each has the other's message in its history",
           "alice: %s\nbob: %s" % (alice.cli("--json", "history", "bob").stdout,
                                  bob.cli("--json", "history", "alice").stdout))


def main():
    # The command, and the package of scripts/debian-packages.txt with it:
    # CI (CI=true) fails a skip for a package it should have installed.
    for tool, package in (("dpkg-buildpackage", "dpkg-dev"), ("dh", "debhelper"),
                          ("lintian", "lintian")):
        if p2ptest.missing(tool):
            print("1..0 # SKIP missing %s: no %s" % (package, tool))
            return
    def body(tap):
        work = tempdir("p2ptest-deb-")
        changes = build(tap, work)
        if changes is None:
            return
        check_version(tap, work)
        debs = check_contents(tap, work)
        check_lintian(tap, changes)
        if None in debs.values():
            return
        root = unpack(tap, debs)
        if root is None:
            return
        check_paths(tap, root)
        chat(tap, root)

    p2ptest.run(body, 12)


if __name__ == "__main__":
    main()
