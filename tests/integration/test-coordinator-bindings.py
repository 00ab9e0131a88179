#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The coordinator's state directory and the operator commands on the name
bindings: --list-bindings and --release on an empty or missing store; the
state directory (0700) and coordinator.key (0600) created at first start;
the key's fingerprint logged and the same after a restart; bindings written
into the store listed (name, fingerprint, creation time) and released, also
while the coordinator runs; $STATE_DIRECTORY; a key file that is not one is
an error, never replaced."""

import hashlib
import os
import re
import sqlite3
import stat
import subprocess
import sys

HELPERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers")
sys.path.insert(0, HELPERS)

from p2ptest import COORDINATOR, SLOW, Coordinator, run, tempdir  # noqa: E402

FINGERPRINT = re.compile(r"Coordinator key fingerprint: ((?:\d{5} ){11}\d{5})$", re.M)


def coordinator(*args, env=None):
    """Runs an operator command: (exit status, stdout, stderr)."""
    p = subprocess.run([COORDINATOR] + list(args), capture_output=True, text=True,
                       env=env, timeout=30 * SLOW, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def fingerprint(key):
    """identity_fingerprint() as common/identity.h defines it."""
    h = hashlib.blake2b(b"p2pchat-fingerprint-v1" + key, digest_size=64).digest()[:30]
    n = int.from_bytes(h, "big")
    groups = [(n >> (20 * (11 - i))) & 0xFFFFF for i in range(12)]
    return " ".join("%05d" % (g % 100000) for g in groups)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def add_bindings(state_dir, rows):
    """Writes (name, key, created_usec) rows as the coordinator would."""
    db = sqlite3.connect(os.path.join(state_dir, "bindings.sqlite"))
    with db:
        db.executemany("INSERT INTO bindings VALUES (?, ?, ?, ?)",
                       [(n, k, c, c) for n, k, c in rows])
    db.close()


def test_empty(tap):
    missing = os.path.join(tempdir("p2ptest-bindings-"), "nowhere")
    rc, out, err = coordinator("--state-dir", missing, "--list-bindings")
    tap.ok(rc == 0 and out == "", "--list-bindings without a store: nothing, status 0",
           (rc, out, err))
    tap.ok(not os.path.exists(missing), "--list-bindings creates no state directory")
    rc, out, err = coordinator("--state-dir", missing, "--release", "ghost")
    tap.ok(rc == 1 and out == "" and "Name 'ghost' is not bound." in err,
           "--release of an unknown name: the message, status 1", (rc, out, err))
    rc, out, err = coordinator("--release", "x", "--list-bindings", "--state-dir", missing)
    tap.ok(rc == 1 and "cannot be combined" in err, "--release with --list-bindings refused",
           (rc, err))
    rc, out, err = coordinator("--help")
    tap.ok(rc == 0 and all(o in out for o in ("--state-dir", "--release", "--list-bindings")),
           "--help names the new options", out)


def test_state_dir(tap):
    state = os.path.join(tempdir("p2ptest-bindings-"), "state")
    coord = Coordinator(state_dir=state)
    log = coord.read_log()
    m = FINGERPRINT.search(log)
    tap.ok(m, "the key fingerprint is logged at start", log[-2000:])
    first = m.group(1) if m else None
    tap.ok(os.path.isdir(state) and mode(state) == 0o700, "state directory created 0700",
           oct(mode(state)) if os.path.exists(state) else "missing")
    key = os.path.join(state, "coordinator.key")
    tap.ok(os.path.isfile(key) and mode(key) == 0o600, "coordinator.key created 0600",
           oct(mode(key)) if os.path.exists(key) else "missing")
    tap.ok(os.path.isfile(os.path.join(state, "bindings.sqlite")), "bindings.sqlite created")

    rc, out, err = coordinator("--state-dir", state, "--list-bindings")
    tap.ok(rc == 0 and out == "", "--list-bindings on an empty store: nothing, status 0",
           (rc, out, err))

    ok, diag = coord.clean_exit()
    tap.ok(ok, "coordinator exits cleanly", diag)
    with open(key, "rb") as f:
        key_text = f.read()
    coord.start()
    found = FINGERPRINT.findall(coord.read_log())
    tap.ok(len(found) == 2 and found[1] == first, "same fingerprint after a restart", found)
    with open(key, "rb") as f:
        tap.ok(f.read() == key_text, "the key file is unchanged by a restart")

    # Bindings as the coordinator writes them (the native login comes
    # later): listed in name order, released while it runs.
    alice, bob = bytes(range(32)), bytes(range(100, 132))
    add_bindings(state, [("bob", bob, 1700000000 * 10**6 + 5),
                         ("alice", alice, 1700000000 * 10**6 + 999999)])
    rc, out, err = coordinator("--state-dir", state, "--list-bindings")
    want = ("alice\t%s\t2023-11-14T22:13:20Z\n" % fingerprint(alice) +
            "bob\t%s\t2023-11-14T22:13:20Z\n" % fingerprint(bob))
    tap.ok(rc == 0 and out == want, "--list-bindings: name, fingerprint, created (UTC)",
           "%r\n%r\n%s" % (out, want, err))

    rc, out, err = coordinator("--state-dir", state, "--release", "alice")
    tap.ok(rc == 0 and out == "Released 'alice'.\n", "--release while the coordinator runs",
           (rc, out, err))
    rc, out, err = coordinator("--state-dir", state, "--release", "alice")
    tap.ok(rc == 1 and "Name 'alice' is not bound." in err, "a second --release: not bound",
           (rc, out, err))
    rc, out, err = coordinator("--state-dir", state, "--list-bindings")
    tap.ok(rc == 0 and out == "bob\t%s\t2023-11-14T22:13:20Z\n" % fingerprint(bob),
           "the released name is gone from the list", out)
    tap.ok(coord.alive(), "the coordinator still runs")
    ok, diag = coord.clean_exit()
    tap.ok(ok, "coordinator exits cleanly after the operator commands", diag)

    # $STATE_DIRECTORY (systemd): its first path.
    env = dict(os.environ, STATE_DIRECTORY=state + ":/nonexistent")
    rc, out, err = coordinator("--list-bindings", env=env)
    tap.ok(rc == 0 and out.startswith("bob\t"), "$STATE_DIRECTORY's first path is the default",
           (rc, out, err))


def test_bad_key(tap):
    state = tempdir("p2ptest-bindings-")
    key = os.path.join(state, "coordinator.key")
    with open(key, "w") as f:
        f.write("not a key\n")
    p = subprocess.run([COORDINATOR, "--listen", "127.0.0.1:0", "--state-dir", state],
                       capture_output=True, text=True, timeout=30 * SLOW,
                       stdin=subprocess.DEVNULL)
    tap.ok(p.returncode == 1 and "coordinator.key" in p.stderr,
           "a key file that is not one: error, status 1", (p.returncode, p.stderr))
    with open(key) as f:
        tap.ok(f.read() == "not a key\n", "and the file is left alone")

    with open(os.path.join(state, "bindings.sqlite"), "wb") as f:
        f.write(b"\x17" * 8192)
    rc, out, err = coordinator("--state-dir", state, "--list-bindings")
    tap.ok(rc == 1 and "Failed to open the bindings" in err, "a corrupt store: error, status 1",
           (rc, out, err))


def main(tap):
    test_empty(tap)
    test_state_dir(tap)
    test_bad_key(tap)


if __name__ == "__main__":
    run(main)
