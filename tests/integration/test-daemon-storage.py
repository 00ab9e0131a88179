#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""p2pchatd starts without a usable history and says so (issue 15).

A history.db that is not a database (with a -wal beside it) is moved aside
as history.db.corrupt-DATE with its -wal, byte for byte, and a new one is
started: Storage "recovered", StorageError names where the old file went,
and the store works.  A history.db on a read-only file system is left alone:
the daemon still owns its bus name, Storage is "unavailable", Login,
SendMessage and GetHistory fail with StorageUnavailable, GetConfig works,
and `p2pchat --json status` shows the reason.

Read-only for real: the tests run as root in CI, and root ignores the
permission bits (CAP_DAC_OVERRIDE), so a chmod would test nothing.  Root
does not get past a read-only mount (EROFS), which is also what a user
meets when the kernel remounts a failing file system read-only
(errors=remount-ro) or a home is a read-only network mount: the daemon runs
in a private mount namespace (unshare -m) where its data directory is
bind-mounted read-only.  Without root, chmod does the job.
"""

import glob
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from p2ptest import ERROR, P2PCHATD, Tap, User, spawn, wait_for  # noqa: E402

t = Tap(12)
users = []

GARBAGE = b"this is not an SQLite database\n" * 200
GARBAGE_WAL = b"\x37\x7f\x06\x82 not a WAL either" * 50


def data_dir(user):
    return os.path.join(user.home, "data", "p2pchat")


def read(path):
    with open(path, "rb") as f:
        return f.read()


def start_read_only(user):
    """Starts p2pchatd with its data directory read-only for it."""
    d = data_dir(user)
    argv = [P2PCHATD, "--verbose", "--bind", user.bind]
    if os.geteuid() == 0:
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-ec",
                'mount --bind -o ro "$0" "$0"; exec "$@"', d] + argv
    else:
        os.chmod(os.path.join(d, "history.db"), 0o400)
        os.chmod(d, 0o500)
    with open(user.log_path, "ab") as log:
        user.daemon = spawn(argv, env=user.env, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT)
    wait_for(lambda: user.has_owner() or user.daemon.poll() is not None, 10)


try:
    # A file that is not a database, with a -wal.
    broken = User("broken", start=False)
    users.append(broken)
    os.makedirs(data_dir(broken), mode=0o700)
    path = os.path.join(data_dir(broken), "history.db")
    with open(path, "wb") as f:
        f.write(GARBAGE)
    with open(path + "-wal", "wb") as f:
        f.write(GARBAGE_WAL)
    broken.start()
    aside = sorted(glob.glob(path + ".corrupt-*"))
    main = [a for a in aside if not a.endswith(("-wal", "-shm"))]
    t.ok(broken.has_owner() and broken.prop("Storage") == "recovered",
         "a garbage history.db: the daemon starts, Storage recovered",
         broken.read_log())
    t.ok(len(main) == 1 and read(main[0]) == GARBAGE and
         read(main[0] + "-wal") == GARBAGE_WAL,
         "it is moved aside with its -wal, byte for byte", aside)
    error = broken.prop("StorageError")
    t.ok(len(main) == 1 and main[0] in error and "damaged" in error,
         "StorageError says where it went", error)
    t.ok(read(path)[:16] == b"SQLite format 3\x00" and
         broken.call("GetHistory", "sus", ("bob", 0, ""))[0] == [] and
         broken.error_of("SendMessage", "ss", ("bob", "hi")) == ERROR + "NotLoggedIn",
         "a new history works")
    broken.close()

    # A good history on a read-only file system.
    ro = User("readonly")
    users.append(ro)
    path = os.path.join(data_dir(ro), "history.db")
    ro.call("SetConfig", "ss", ("notifications", "true"))
    ro.kill()
    before = read(path)
    start_read_only(ro)
    t.ok(ro.has_owner(), "read-only: the daemon still owns its bus name", ro.read_log())
    error = ro.prop("StorageError")
    t.ok(ro.prop("Storage") == "unavailable" and path in error and
         ("Read-only file system" in error or "ermission denied" in error),
         "Storage unavailable, StorageError says why", error)
    t.ok(ro.error_of("SendMessage", "ss", ("bob", "hi")) == ERROR + "StorageUnavailable",
         "SendMessage: StorageUnavailable")
    t.ok(ro.error_of("Login", "ss", ("alice", "127.0.0.1:9")) == ERROR + "StorageUnavailable"
         and ro.prop("State") == "offline", "Login: StorageUnavailable, still offline")
    t.ok(ro.error_of("GetHistory", "sus", ("bob", 0, "")) == ERROR + "StorageUnavailable" and
         ro.call("GetConfig", "s", ("notifications",))[0] == "true",
         "GetHistory: StorageUnavailable; the config still works")
    status = ro.cli_json("status")
    t.ok(status.get("storage") == "unavailable" and status.get("storageError") == error and
         status.get("state") == "offline", "p2pchat status shows the reason", status)
    text = ro.cli("status").stdout
    t.ok("Storage error:" in text and "unavailable" in text, "and so does its table", text)
    ro.close()
    t.ok(read(path) == before and not glob.glob(path + ".corrupt-*"),
         "the read-only history is left as it was")
except Exception:  # noqa: BLE001
    import traceback
    t.diag(traceback.format_exc())
finally:
    for u in users:
        u.close()
        if os.geteuid() != 0:
            for d, _, _ in os.walk(u.home):
                os.chmod(d, 0o700)
        shutil.rmtree(u.home, ignore_errors=True)
t.finish()
