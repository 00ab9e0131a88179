#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The scripting story: two users driven only with `busctl --user` (call,
get-property, monitor; systemd 252's busctl has no `wait`).  Python only
starts the processes and reads busctl's output.
"""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
import p2ptest  # noqa: E402
from p2ptest import Coordinator, Tap, User, spawn, stop, wait_for  # noqa: E402

OBJ = ["org.p2pchat.chat1", "/org/p2pchat/chat1", "org.p2pchat.chat1.Manager"]


def busctl(user, *args, check=True):
    r = subprocess.run(["busctl", "--user"] + list(args), env=user.env, capture_output=True,
                       text=True, timeout=60 * p2ptest.SLOW)
    if check and r.returncode != 0:
        raise RuntimeError("busctl %s: %s" % (" ".join(args), r.stderr))
    return r


def call(user, *args):
    return busctl(user, "call", *OBJ, *args).stdout.strip()


def get(user, prop):
    return busctl(user, "get-property", *OBJ, prop).stdout.strip()


t = Tap(8)
users = []
monitor = None
coord = None
try:
    coord = Coordinator()
    alice, bob = User("alice"), User("bob")
    users += [alice, bob]

    out_path = os.path.join(bob.home, "monitor.json")
    out = open(out_path, "w")
    monitor = spawn(["busctl", "--user", "monitor", "--json=short",
                     "--match", "type='signal',interface='org.p2pchat.chat1.Manager'"],
                    env=bob.env, stdout=out, stderr=subprocess.DEVNULL)

    def signals(member):
        with open(out_path) as f:
            msgs = [json.loads(line) for line in f if line.startswith("{")]
        return [m["payload"]["data"] for m in msgs if m.get("member") == member]

    t.ok(get(alice, "State") == 's "offline"', "get-property State: offline")
    t.ok(call(alice, "Login", "ss", "alice", coord.address) == "" and
         call(bob, "Login", "ss", "bob", coord.address) == "", "call Login for both")
    t.ok(get(alice, "State") == 's "online"' and get(bob, "Username") == 's "bob"',
         "get-property after login")
    t.ok(wait_for(lambda: [d for d in signals("PeerJoined") if d[0] == "alice"], 5),
         "monitor sees PeerJoined alice on bob's bus")
    peers = json.loads(busctl(alice, "--json=short", "call", *OBJ, "ListPeers").stdout)
    t.ok(peers["data"][0][0][:3] == ["bob", get(bob, "LocalEndpoint")[3:-1], True],
         "call ListPeers --json=short", peers)
    reply = call(alice, "SendMessage", "ss", "bob", "hello from busctl")
    mid = reply.split('"')[1] if reply.startswith('s "') else None
    t.ok(mid and len(mid) == 32, "call SendMessage returns an id", reply)
    t.ok(wait_for(lambda: [d for d in signals("MessageReceived")
                           if d[0] == mid and d[2] == "hello from busctl"], 5),
         "monitor sees MessageReceived on bob's bus")
    r = busctl(alice, "call", *OBJ, "SendMessage", "ss", "no,body", "x", check=False)
    t.ok(r.returncode != 0 and "Invalid peer name 'no,body'" in r.stderr,
         "a named error reaches busctl", r.stderr)
except Exception:  # noqa: BLE001
    import traceback
    t.diag(traceback.format_exc())
finally:
    if monitor:
        stop(monitor)
    for u in users:
        u.close()
    if coord:
        coord.close()
t.finish()
