#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Every busctl example of docs/dbus-api.md (and of the README's "Scripting
with busctl") runs as written against a real p2pchatd.

The rule, as docs/dbus-api.md states it at its top:

- in a ```-fenced block, a line that starts with `busctl` is an example
  command (a line ending in a backslash goes on with the next one);
- a line `NAME=VALUE` there (e.g. `M='...'`) is run too, in order, and
  NAME is set for the commands after it;
- the other non-empty lines after a command, up to the next command or
  the end of the block, are its output: the command must exit 0 and print
  as many lines, each starting with the same first word (the type
  signature: `s`, `a(ssba{sv})`, ...); `Call failed: TEXT` instead means
  the command must fail with a message starting with TEXT (up to a `…`);
- a `busctl ... monitor` command must still be running after a second
  (it is then stopped);
- each command runs with bash, on the session bus of alice's p2pchatd,
  logged in (logged out before a `Login`) at a coordinator where bob and
  carol are logged in; `127.0.0.1:7474`, the examples' coordinator, is
  replaced by the test coordinator's address, which is also alice's
  configured `coordinator`.

Prints TAP: one test point per command.
"""

import os
import re
import shlex
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import p2ptest  # noqa: E402
from p2ptest import Coordinator, User, spawn, stop  # noqa: E402

DOCS = [os.path.join("docs", "dbus-api.md"), "README.md"]
EXAMPLE_COORDINATOR = "127.0.0.1:7474"
ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def assignment(line):
    """The NAME of a line that is only `NAME=VALUE` (VALUE one shell word or
    a `$(...)`), else None: `CC=clang meson setup ...` is not one."""
    m = ASSIGNMENT.match(line)
    if not m:
        return None
    value = m.group(2).split(" #")[0].strip()
    if value.startswith("$(") and value.endswith(")"):
        return m.group(1)
    try:
        return m.group(1) if len(shlex.split(value, comments=True)) <= 1 else None
    except ValueError:
        return None


class Example:
    def __init__(self, path, line, kind, text, var=None):
        self.path, self.line, self.kind, self.text, self.var = path, line, kind, text, var
        self.output = []  # expected output lines

    @property
    def label(self):
        return "%s:%d: %s" % (self.path, self.line, " ".join(self.text.split()))


def extract(path, text):
    """The commands and assignments of @text's fenced blocks, in order."""
    examples = []
    in_block = False
    current = None  # the command whose output lines follow
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        raw = lines[i]
        number = i + 1
        i += 1
        stripped = raw.strip()
        if stripped.startswith("```"):
            in_block = not in_block
            current = None
            continue
        if not in_block:
            continue
        var = assignment(stripped)
        if stripped.startswith("busctl") or var:
            full = stripped
            while full.endswith("\\") and i < len(lines):
                full = full[:-1] + " " + lines[i].strip()
                i += 1
            if var:
                examples.append(Example(path, number, "assign", full, var))
                current = None
            else:
                current = Example(path, number, "command", full)
                examples.append(current)
            continue
        if current is not None and stripped and not stripped.startswith("#"):
            current.output.append(stripped)
    return examples


def method_of(command):
    """The member a `busctl call` names (the word after the interface), or
    None."""
    words = command.split()
    return words[words.index("$M") + 1] if "$M" in words[:-1] else None


def shell(user, variables, script, timeout=60):
    env = dict(user.env, **variables)
    return subprocess.run(["bash", "-o", "pipefail", "-c", script], env=env,
                          capture_output=True, text=True, timeout=timeout * p2ptest.SLOW)


def check_output(ex, r):
    """(ok, diagnostics) for a finished command."""
    diag = "exit status %d\nstdout: %s\nstderr: %s" % (r.returncode, r.stdout, r.stderr)
    if ex.output and ex.output[0].startswith("Call failed:"):
        want = ex.output[0].split("…")[0]
        got = r.stderr.strip().splitlines()
        return r.returncode != 0 and bool(got) and got[0].startswith(want), diag
    if r.returncode != 0:
        return False, diag
    got = [line for line in r.stdout.splitlines() if line.strip()]
    if ex.output:
        want_sigs = [line.split()[0] for line in ex.output]
        got_sigs = [line.split()[0] for line in got]
        if want_sigs != got_sigs:
            return False, "expected signatures %s, got %s\n%s" % (want_sigs, got_sigs, diag)
    return True, diag


def ensure_state(alice, coord, command):
    """alice logged out before a Login, logged in before anything else."""
    state = alice.prop("State")
    if method_of(command) == "Login":
        if state != "offline":
            alice.call("Logout")
    elif state == "offline":
        alice.login("alice", coord.address)


def run_monitor(alice, variables, ex):
    env = dict(alice.env, **variables)
    p = spawn(["bash", "-c", "exec " + ex.text], env=env, stdout=subprocess.PIPE,
              stderr=subprocess.PIPE, text=True)
    time.sleep(1.0 * p2ptest.SLOW)
    running = p.poll() is None
    stop(p)
    return running, "exited early:\n%s" % (p.stderr.read() if p.stderr else "")


def body(tap):
    examples = []
    for rel in DOCS:
        with open(os.path.join(p2ptest.SOURCE_ROOT, rel), encoding="utf-8") as f:
            examples += extract(rel, f.read())
    commands = [e for e in examples if e.kind == "command"]
    tap.ok(len([e for e in commands if e.path.endswith("dbus-api.md")]) >= 10,
           "docs/dbus-api.md has busctl examples (%d found)" % len(commands))

    coord = Coordinator()
    alice = User("alice")
    peers = [User(name) for name in ("bob", "carol")]
    for p in peers:
        p.login(p.name, coord.address)
    alice.call("SetConfig", "ss", ("coordinator", coord.address))
    alice.login("alice", coord.address)
    # A history with bob both ways, for GetHistory, SearchHistory, MarkRead.
    alice.send("bob", "hello, bob")
    peers[0].send("alice", "hi alice")
    p2ptest.wait_for(lambda: alice.signals("MessageReceived"), 10)

    variables = {}
    for ex in examples:
        text = ex.text.replace(EXAMPLE_COORDINATOR, coord.address)
        ensure_state(alice, coord, text)
        if ex.kind == "assign":
            r = shell(alice, variables, '%s\nprintf %%s "$%s"' % (text, ex.var))
            if tap.ok(r.returncode == 0, ex.label, r.stderr):
                variables[ex.var] = r.stdout
            continue
        if re.search(r"\bmonitor\b", text):
            ex.text = text
            ok, diag = run_monitor(alice, variables, ex)
        else:
            ok, diag = check_output(ex, shell(alice, variables, text))
        tap.ok(ok, ex.label, diag)


if __name__ == "__main__":
    p2ptest.run(body)
