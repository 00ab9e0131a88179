#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""completion/p2pchat: sources it in bash with the built p2pchat on PATH and
checks what _p2pchat offers for verbs, options, --json values and peer names
(from the real p2pchatd of a user "me" on a private bus, whose roster holds
alice and bob online and albert offline).  Prints TAP.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import p2ptest  # noqa: E402
from p2ptest import Coordinator, User, run, wait_for  # noqa: E402
from refclient import RefClient  # noqa: E402

COMPLETION = os.path.join(p2ptest.SOURCE_ROOT, "completion", "p2pchat")
CLI_DIR = os.path.join(p2ptest.BUILD_ROOT, "frontends", "cli")

# Completes the words given as arguments (the last is the one being typed)
# and prints COMPREPLY, one entry a line.
SCRIPT = r'''
source "$COMPLETION" || exit 1
COMP_WORDS=("$@")
COMP_CWORD=$(($# - 1))
_p2pchat p2pchat "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
printf '%s\n' "${COMPREPLY[@]}"
'''


def split_words(line):
    """Splits @line as readline does for completion: '=' is a word of its own."""
    words = []
    for w in line.split(" "):
        for i, part in enumerate(w.split("=")):
            if i > 0:
                words.append("=")
            if part:
                words.append(part)
    if line.endswith(" "):
        words.append("")
    return words


def complete(env, line):
    p = subprocess.run(["bash", "--norc", "--noprofile", "-c", SCRIPT, "bash"] +
                       split_words(line), env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=30 * p2ptest.SLOW)
    return sorted(x for x in p.stdout.split("\n") if x)


CASES = [
    ("p2pchat ", None, "all verbs from --help"),
    ("p2pchat s", ["search", "send", "status"], "verbs by prefix"),
    ("p2pchat c", ["cancel", "chat", "config"], "verbs by prefix, c"),
    ("p2pchat lo", ["login", "logout"], "verbs by prefix, lo"),
    ("p2pchat --no-legend pe", ["peers"], "verb after an option"),
    ("p2pchat --no-l", ["--no-legend"], "long option"),
    ("p2pchat --js", ["--json="], "option with a value"),
    ("p2pchat --json=", ["off", "pretty", "short"], "--json values"),
    ("p2pchat --json=p", ["pretty"], "--json value by prefix"),
    ("p2pchat --coordinator 1.2.3.4:7474 st", ["status"], "verb after an option's value"),
    ("p2pchat send ", ["albert", "alice", "bob"], "send: peer names from p2pchatd"),
    ("p2pchat --json=short chat al", ["albert", "alice"], "chat: peer names by prefix"),
    ("p2pchat send alice ", [], "send: nothing after the peer"),
    ("p2pchat status ", [], "status takes no arguments"),
    ("p2pchat history b", ["bob"], "history: peer names"),
    ("p2pchat -n 5 hi", ["history"], "verb after -n's value"),
    ("p2pchat config ", ["get", "list", "set"], "config: get, list or set"),
    ("p2pchat read a", ["albert", "alice"], "read: peer names"),
    ("p2pchat help se", ["search", "send"], "help: verbs"),
    ("p2pchat cancel ", [], "cancel: no completion of ids"),
    ("p2pchat config get o", ["outbox-expiry"], "config: keys"),
    ("p2pchat config set ", ["autologin", "bind", "coordinator", "notifications",
                             "outbox-expiry", "username"], "config: every key"),
    ("p2pchat config set notifications ", ["false", "true"], "config: boolean values"),
    ("p2pchat config set username ", [], "config: no values for a name"),
    ("p2pchat f", ["fingerprint"], "verbs by prefix, f"),
    ("p2pchat tr", ["trust-coordinator"], "verbs by prefix, tr"),
    ("p2pchat fingerprint ", [], "fingerprint takes no arguments yet"),
]


def body(tap):
    coord = Coordinator()
    me = User("me")
    env = dict(me.env, COMPLETION=COMPLETION,
               PATH=CLI_DIR + os.pathsep + os.environ.get("PATH", ""))
    login = subprocess.run(["p2pchat", "login", "me", "--coordinator", coord.address], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=30 * p2ptest.SLOW)
    # Reference clients are enough to fill the roster: only names count.
    peers = [RefClient(n, coord.address) for n in ("alice", "albert", "bob")]
    joined = all(p.join() for p in peers)
    peers[1].logout()
    roster = wait_for(lambda: me.peers().keys() == {"alice", "albert", "bob"} and
                      me.online_peers() == ["alice", "bob"], 10)
    tap.ok(login.returncode == 0 and joined and roster,
           "p2pchatd is up, logged in, alice and bob online, albert offline",
           (login.stdout, me.peers()))
    help_text = subprocess.run(["p2pchat", "--help"], env=env, stdout=subprocess.PIPE,
                               text=True).stdout
    for line, expected, name in CASES:
        got = complete(env, line)
        if expected is None:
            section = help_text.split("Commands:")[1].split("\n\n")[0]
            expected = sorted({w.split()[0] for w in section.splitlines()
                               if w.startswith("  ") and w[2:3].isalpha()})
            name += " (%s)" % " ".join(expected)
            expected = expected if len(expected) >= 7 else ["<fewer than 7 verbs>"]
        tap.ok(got == expected, "%s: '%s'" % (name, line),
               "expected %r\ngot      %r" % (expected, got))
    for p in peers:
        p.close()


if __name__ == "__main__":
    run(body, len(CASES) + 1)
