#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""p2pchatd's long-term identity: made at the first start as
$XDG_DATA_HOME/p2pchat/identity.key (0600, its directory 0700), shown as
the Manager's Fingerprint, by `p2pchat fingerprint` and `p2pchat status`,
kept across restarts; a key file that cannot be parsed stops the daemon
with a message naming the file, and is left as it was.  TrustCoordinator
with nothing pending fails with NoPendingKey, and with a malformed
fingerprint with InvalidArgs.
"""

import os
import re
import stat
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
import p2ptest  # noqa: E402
from p2ptest import ERROR, P2PCHATD, User, spawn, stop, wait_for  # noqa: E402

FINGERPRINT = re.compile(r"^[0-9]{5}( [0-9]{5}){11}$")


def data_dir(user):
    return os.path.join(user.home, "data", "p2pchat")


def read(path):
    with open(path, "rb") as f:
        return f.read()


def body(tap):
    alice = User("alice")
    key = os.path.join(data_dir(alice), "identity.key")
    mode = os.stat(key).st_mode if os.path.exists(key) else 0
    tap.ok(stat.S_ISREG(mode) and stat.S_IMODE(mode) == 0o600,
           "identity.key is made at the first start, mode 0600", oct(mode))
    mode = os.stat(data_dir(alice)).st_mode
    tap.ok(stat.S_IMODE(mode) == 0o700, "its directory is 0700", oct(mode))

    fp = alice.prop("Fingerprint")
    tap.ok(FINGERPRINT.match(fp), "Fingerprint is 12 groups of 5 digits", fp)
    log = alice.read_log()
    tap.ok("Created a new identity" in log and "Identity fingerprint: " + fp in log,
           "the log says it was created, and its fingerprint", log)

    r = alice.cli("fingerprint")
    tap.ok(r.returncode == 0 and r.stdout == fp + "\n",
           "p2pchat fingerprint prints the property", r)
    tap.ok(alice.cli_json("fingerprint") == {"fingerprint": fp},
           "p2pchat --json fingerprint")
    r = alice.cli("status")
    tap.ok(r.returncode == 0 and re.search(r"^ *Fingerprint: %s$" % fp, r.stdout, re.M),
           "p2pchat status shows it", r.stdout)
    tap.ok(alice.cli_json("status").get("fingerprint") == fp,
           "p2pchat --json status has it")

    # A restart loads the same identity, and writes nothing.
    before = read(key)
    alice.kill()
    alice.start()
    tap.ok(alice.prop("Fingerprint") == fp and read(key) == before,
           "a restart keeps the identity and its file")
    tap.ok(alice.read_log().count("Created a new identity") == 1,
           "a restart creates nothing")

    # Nothing is pending: TrustCoordinator says so; nothing is pinned.
    tap.ok(alice.error_of("TrustCoordinator", "ss", ("127.0.0.1:9", fp)) ==
           ERROR + "NoPendingKey", "TrustCoordinator without a pending key: NoPendingKey")
    tap.ok(alice.error_of("TrustCoordinator", "ss", ("127.0.0.1:9", "12345")) ==
           "org.freedesktop.DBus.Error.InvalidArgs" and
           alice.error_of("TrustCoordinator", "ss", ("a:b:c", fp)) ==
           "org.freedesktop.DBus.Error.InvalidArgs",
           "TrustCoordinator: a bad fingerprint or coordinator is InvalidArgs")
    r = alice.cli("trust-coordinator", "127.0.0.1:9", *fp.split())
    tap.ok(r.returncode == 1 and r.stdout == "" and len(r.stderr.splitlines()) == 1 and
           "127.0.0.1:9" in r.stderr,
           "p2pchat trust-coordinator: the daemon's reason, one line", r)
    tap.ok(not os.path.exists(os.path.join(data_dir(alice), "known-coordinators")),
           "no coordinator is pinned before a login")

    # A damaged key file stops the daemon, which says where and what to do.
    bob = User("bob", start=False)
    os.makedirs(data_dir(bob), mode=0o700)
    key = os.path.join(data_dir(bob), "identity.key")
    damaged = b"p2pchat-identity-v1\n" + b"0" * 40 + b"\n"
    with open(key, "wb") as f:
        f.write(damaged)
    os.chmod(key, 0o600)
    with open(bob.log_path, "ab") as log:
        bob.daemon = spawn([P2PCHATD, "--bind", bob.bind], env=bob.env,
                           stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    exited = wait_for(lambda: bob.daemon.poll() is not None, 10 * p2ptest.SLOW)
    status = bob.daemon.poll()
    if not exited:
        stop(bob.daemon)
    log = bob.read_log()
    tap.ok(exited and status not in (None, 0) and not bob.has_owner(),
           "a damaged identity.key: p2pchatd exits with failure", "status %s" % status)
    tap.ok(key in log and "move" in log, "the message names the file and what to do", log)
    tap.ok(read(key) == damaged and sorted(os.listdir(data_dir(bob))) == ["identity.key"],
           "the file is left as it was, and nothing else is made",
           os.listdir(data_dir(bob)))


if __name__ == "__main__":
    p2ptest.run(body, 17)
