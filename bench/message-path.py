#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""bench/message-path: the cost of a chat message through p2pchatd.

Two daemons (alice, bob), each on its own private bus, on the real
coordinator on loopback.  Prints, unpinned and pinned to one CPU
(taskset -c 0, inherited by every process of the run):
  - p50/p99 SendMessage -> bob's MessageReceived, -> alice's
    MessageDelivered and -> its reply, and messages/s with many in flight;
  - `p2pchat send` as a whole process;
  - the floors: a bare D-Bus method call round trip (Peer.Ping on p2pchatd),
    a bare UDP round trip, one D-Bus signal between two connections, `busctl --user call`, a minimal sd-bus client
    process (one Ping), the same minimal client making the one SendMessage
    call `p2pchat send` makes; and the ratios to them;
the storage floor: fdatasync() after appending 4 KiB to a file in the
daemon's data directory, as the group commit's barrier does to the WAL.  No
barrier is on the path to MessageReceived (the datagram and the signal go
before it); one is on the path to the reply (it comes after the sender's
barrier) and one on the path to MessageDelivered (the receiver acks after
its barrier): the "durable" ratios add one fdatasync() to the floor;
then p2pchatd's RSS with 10,000 peers online (a reference-server emulator
that lists 10,000 fake peers).
Figures only: nothing here passes or fails on speed.
"""

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "helpers"))
import p2ptest  # noqa: E402
from p2ptest import BUILD_ROOT, Coordinator, User, wait_for  # noqa: E402
from refclient import RefServer  # noqa: E402

DRIVER = os.path.join(BUILD_ROOT, "bench", "message-path")
CLI = os.path.join(BUILD_ROOT, "frontends", "cli", "p2pchat")
N = int(os.environ.get("MESSAGE_PATH_N", "2000"))
PROCS = int(os.environ.get("MESSAGE_PATH_PROCS", "100"))


def driver(*args):
    out = subprocess.run([DRIVER] + [str(a) for a in args], capture_output=True, text=True,
                         timeout=300)
    if out.returncode != 0:
        raise RuntimeError("%s: %s" % (args[0], out.stderr))
    return {line.split()[0]: float(line.split()[1]) for line in out.stdout.splitlines()}


def time_process(argv, env, n):
    """p50 wall time of running @argv to completion, in microseconds."""
    times = []
    for _ in range(n):
        t0 = time.monotonic()
        r = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        times.append((time.monotonic() - t0) * 1e6)
        if r.returncode != 0:
            raise RuntimeError("%s: %s" % (argv[0], r.stderr.decode()))
    times.sort()
    return times[len(times) // 2]


def fsync_p50(directory, n):
    """p50 of fdatasync() after appending 4 KiB to a file in @directory, in microseconds."""
    path = os.path.join(directory, "fsync-probe")
    times = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for i in range(n):
            os.pwrite(fd, b"x" * 4096, i * 4096)
            t0 = time.monotonic()
            os.fdatasync(fd)
            times.append((time.monotonic() - t0) * 1e6)
    finally:
        os.close(fd)
        os.unlink(path)
    times.sort()
    return times[len(times) // 2]


def one_run(label):
    coord = Coordinator()
    users = []
    try:
        alice, bob = User("alice", watch=False), User("bob", watch=False)
        users += [alice, bob]
        alice.login("alice", coord.address)
        bob.login("bob", coord.address)
        wait_for(lambda: alice.online_peers() == ["bob"], 5)
        a, b = alice.bus.address, bob.bus.address
        # The history.db of each daemon is in its own temporary XDG_DATA_HOME.
        data = os.path.join(bob.env["XDG_DATA_HOME"], "p2pchat")
        if not os.path.exists(os.path.join(data, "history.db")):
            raise RuntimeError("no history.db in %s" % data)

        f = {}
        f.update(driver("latency", a, b, "bob", N))
        f.update(driver("throughput", a, "bob", N))
        f.update(driver("ping", a, N))
        f.update(driver("ping-pipelined", a, N))
        f.update(driver("signal", a, N))
        f.update(driver("udp", N))
        f["fdatasync_p50"] = fsync_p50(data, min(N, 500))
        f["minimal_client_process"] = time_process([DRIVER, "minimal", a], alice.env, PROCS)
        f["minimal_send_client_process"] = time_process(
            [DRIVER, "minimal-send", a, "bob", "benchmark"], alice.env, PROCS)
        f["busctl_call_process"] = time_process(
            ["busctl", "--user", "call", "org.p2pchat.chat1", "/org/p2pchat/chat1",
             "org.freedesktop.DBus.Peer", "Ping"], alice.env, PROCS)
        if os.path.exists(CLI):
            f["p2pchat_send_process"] = time_process([CLI, "send", "bob", "benchmark"],
                                                     alice.env, PROCS)

        print("## %s (history.db in %s)" % (label, data))
        for k, v in f.items():
            unit = "/s" if "per_second" in k else "us"
            print("%-36s %12.1f %s" % (k, v, unit))
        floor = f["dbus_call_p50"] + f["udp_round_trip_p50"] + f["dbus_signal_p50"]
        print("%-36s %12.2f (goal <= 2: floor = D-Bus call + UDP round trip + signal"
              " = %.1f us)"
              % ("ratio received_p50/floor", f["send_to_received_p50"] / floor, floor))
        sync = f["fdatasync_p50"]
        print("%-36s %12.2f (goal <= 2)"
              % ("ratio delivered_p50/floor", f["send_to_delivered_p50"] / floor))
        print("%-36s %12.2f (floor + one fdatasync() = %.1f us: the receiver's barrier)"
              % ("ratio delivered_p50/durable floor", f["send_to_delivered_p50"] /
                 (floor + sync), floor + sync))
        print("%-36s %12.2f (D-Bus call + one fdatasync() = %.1f us: the sender's barrier)"
              % ("ratio reply_p50/durable call", f["send_reply_p50"] /
                 (f["dbus_call_p50"] + sync), f["dbus_call_p50"] + sync))
        print("%-36s %12.2f (goal >= 0.5)"
              % ("ratio msg/s / pipelined calls/s",
                 f["messages_per_second"] / f["dbus_calls_pipelined_per_second"]))
        if "p2pchat_send_process" in f:
            print("%-36s %12.2f (goal <= 1.2)"
                  % ("ratio p2pchat send / minimal client",
                     f["p2pchat_send_process"] / f["minimal_client_process"]))
            print("%-36s %12.2f (minimal client + one fdatasync() = %.1f us)"
                  % ("ratio p2pchat send / durable client",
                     f["p2pchat_send_process"] / (f["minimal_client_process"] + sync),
                     f["minimal_client_process"] + sync))
            print("%-36s %12.2f (goal <= 1.2: the same SendMessage from the smallest"
                  " sd-bus client)"
                  % ("ratio p2pchat send / minimal send",
                     f["p2pchat_send_process"] / f["minimal_send_client_process"]))
        print("%-36s %12.2f" % ("ratio busctl call / minimal client",
                                f["busctl_call_process"] / f["minimal_client_process"]))
        sys.stdout.flush()
    finally:
        for u in users:
            u.close()
        coord.close()


def rss_run(peers=10000):
    extra = ["peer%05d,10.%d.%d.%d:7000,native1" % (i, i >> 16 & 255, i >> 8 & 255, i & 255)
             for i in range(peers)]
    server = RefServer(extra=extra)
    alice = User("alice", watch=False)
    try:
        rss0 = rss_kib(alice.daemon.pid)
        alice.login("alice", server.address, timeout=120)
        ok = wait_for(lambda: len(alice.call("ListPeers")[0]) == peers, 60)
        p2ptest.pump(3)
        print("## RSS")
        print("%-36s %12d KiB" % ("p2pchatd_rss_idle", rss0))
        print("%-36s %12d KiB (%d peers online: %s; goal <= 8192 KiB)"
              % ("p2pchatd_rss_10000_peers", rss_kib(alice.daemon.pid), peers,
                 "yes" if ok else "NO"))
    finally:
        alice.close()
        server.close()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--one-run":
        one_run(sys.argv[2])
        sys.exit(0)
    print("# message-path: N=%d messages/calls per figure, %d process runs" % (N, PROCS))
    subprocess.run([sys.executable, __file__, "--one-run", "unpinned"], check=True)
    subprocess.run(["taskset", "-c", "0", sys.executable, __file__, "--one-run",
                    "pinned to CPU 0"], check=True)
    rss_run()
