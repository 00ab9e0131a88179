#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""p2pchat against the real p2pchatd: options, exit codes, error lines, every
verb's --json and text output, "send -", "send --wait" (delivered, sent, no
outcome in time for an offline peer, expired, too-large), "listen --json",
"chat" with pipes and "chat" on a real terminal under tmux.

alice (the user under test) has a roster made of real programs on the real
coordinator: bob (a p2pchatd), echo (a p2pchatd whose every received message
this script sends back), off (a p2pchatd that logged in and out again) and
ref (the seed's reference client, emulated).
"""

import json
import os
import re
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
from p2ptest import (MANAGER, P2PCHAT, PATH, SERVICE, Coordinator, Gio, SilentPort,  # noqa: E402
                     Tmux, User, missing, run, wait_for)
from refclient import RefClient  # noqa: E402

HEX32 = re.compile(r"^[0-9a-f]{32}$")
PLANNED = 50
# A text within WIRE_TEXT_MAX (16384 bytes) that cannot fit a datagram: JSON
# writes each control character as \u00XX, six bytes, so the native message
# would be about 98 KB, over WIRE_DATAGRAM_MAX (65507).
TOO_LARGE = "\x01" * 16384


def one_error_line(r, needle):
    """rc 1, nothing on stdout, exactly one stderr line containing needle."""
    lines = r.stderr.splitlines()
    return (r.returncode == 1 and r.stdout == "" and len(lines) == 1 and needle in lines[0],
            f"rc={r.returncode} stdout={r.stdout!r} stderr={r.stderr!r}")


def event(name, **fields):
    """A predicate on listen --json lines."""
    def pred(line):
        e = json.loads(line)
        return e.get("event") == name and all(e.get(k) == v for k, v in fields.items())
    return pred


class World:
    """alice's peers on @coord: bob, echo, off and ref (see above)."""

    def __init__(self, coord):
        self.coord = coord
        self.bob = User("bob")
        self.echo = User("echo")
        self.off = User("off")
        self.bob.login("bob", coord.address)
        self.echo.login("echo", coord.address)
        self.echo.conn.signal_subscribe(SERVICE, MANAGER, "MessageReceived", PATH, None,
                                        Gio.DBusSignalFlags.NONE, self._on_echo_message)
        self.ref = RefClient("ref", coord.address)
        if not self.ref.join():
            raise RuntimeError("the reference client could not log in")

    def _on_echo_message(self, conn, sender, path, iface, member, params):
        # Runs whenever this script waits (wait_for, LineReader).
        _, peer, text, _, _ = params.unpack()
        self.echo.call_async("SendMessage", "ss", (peer, text))

    def make_off(self, alice):
        """off comes online and leaves, so that alice knows an offline peer."""
        self.off.login("off", self.coord.address)
        if not wait_for(lambda: "off" in alice.online_peers(), 10):
            raise RuntimeError("alice did not see off")
        self.off.call("Logout")
        if not wait_for(lambda: "off" not in alice.online_peers(), 10):
            raise RuntimeError("alice did not see off leave")


def usage_tests(tap, u):
    r = u.cli("--help")
    tap.ok(r.returncode == 0 and all(v in r.stdout for v in
                                     ("status", "login NAME", "logout", "peers",
                                      "send PEER TEXT", "listen", "chat PEER",
                                      "Exit status")),
           "--help lists every verb and the exit status", r)
    r = u.cli("--version")
    tap.ok(r.returncode == 0 and r.stdout.startswith("p2pchat "), "--version", r)
    for name, args, needle in (
            ("unknown verb", ("frobnicate",), "Unknown command 'frobnicate'"),
            ("too few arguments", ("send", "bob"), "Too few arguments for 'send'"),
            ("too many arguments", ("login", "a", "b"), "Too many arguments for 'login'"),
            ("unknown option", ("--frob", "status"), "Unknown option '--frob'"),
            ("bad --json mode", ("--json=yaml", "status"), "Invalid --json= mode 'yaml'"),
            ("bad --timeout", ("--timeout=-3", "send", "a", "b"), "Invalid --timeout="),
            ("--wait outside send", ("--wait", "peers"), "--wait only applies to 'send'")):
        ok, diag = one_error_line(u.cli(*args), needle)
        tap.ok(ok, f"usage error: {name}", diag)
    ok, diag = one_error_line(u.cli("status"), "Failed to get status: p2pchatd is not running")
    tap.ok(ok, "daemon not running: clear error", diag)
    r = u.cli("status", env={"DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent/bus"})
    ok, diag = one_error_line(r, "Failed to connect to the session bus")
    tap.ok(ok, "no session bus: clear error", diag)


def login_tests(tap, u, world):
    coordinator = world.coord.address
    st = u.cli_json("status")
    tap.ok(st.get("state") == "offline" and st.get("peersOnline") == 0 and
           "username" in st and "localEndpoint" in st, "status --json offline", st)
    r, j = u.cli("peers"), u.cli("--json", "peers")
    tap.ok(r.returncode == 0 and r.stdout.splitlines()[-1:] == ["0 peers listed."] and
           j.returncode == 0 and json.loads(j.stdout or "null") == [],
           "peers while offline: nobody, exit 0", (r, j))
    ok, diag = one_error_line(u.cli("chat", "bob", input=""), "not logged in")
    tap.ok(ok, "chat while offline: not logged in", diag)
    ok, diag = one_error_line(u.cli("login", "a,b", "--coordinator", coordinator),
                              "Failed to log in as 'a,b' at ")
    tap.ok(ok, "login with an invalid name", diag)
    # Bound and silent: the daemon gives up after its login timeout (10 s).
    silent = SilentPort()
    ok, diag = one_error_line(u.cli("login", "alice", "--coordinator", silent.address),
                              f"Failed to log in as 'alice' at '{silent.address}': ")
    silent.close()
    tap.ok(ok, "login with an unreachable coordinator names it", diag)
    st = u.cli_json("login", "alice", "--coordinator", coordinator)
    tap.ok(st.get("state") == "online" and st.get("username") == "alice" and
           st.get("coordinator") == coordinator and st.get("peersOnline") == 3,
           "login --json prints the new status: bob, echo and ref online", st)
    ok, diag = one_error_line(u.cli("login", "alice", "--coordinator", coordinator),
                              "Already logged in")
    tap.ok(ok, "login twice: AlreadyLoggedIn", diag)
    world.make_off(u)
    r = u.cli("status")
    tap.ok(r.returncode == 0 and
           re.search(r"^\s*State: online$", r.stdout, re.M) and
           re.search(r"^\s*Username: alice$", r.stdout, re.M) and
           re.search(r"^\s*Peers online: 3$", r.stdout, re.M) and "\033" not in r.stdout,
           "status text block", r)


def peers_tests(tap, u, world):
    bob_ep = world.bob.prop("LocalEndpoint")
    peers = u.cli_json("peers")
    tap.ok([p["name"] for p in peers] == ["bob", "echo", "off", "ref"] and
           peers[2]["online"] is False and peers[3]["native"] is False and
           peers[0]["endpoint"] == bob_ep and peers[3]["endpoint"] == world.ref.endpoint,
           "peers --json: sorted array with camelCase fields", peers)
    r = u.cli("peers")
    lines = r.stdout.splitlines()
    tap.ok(r.returncode == 0 and
           lines[0].split() == ["NAME", "ENDPOINT", "ONLINE", "NATIVE", "UNREAD"] and
           lines[1].split() == ["bob", bob_ep, "yes", "yes", "0"] and
           lines[0].index("ENDPOINT") == lines[1].index(bob_ep) and
           lines[-1] == "4 peers listed.",
           "peers table: aligned header, rows, footer", r.stdout)
    r = u.cli("--no-legend", "peers")
    tap.ok(r.returncode == 0 and len(r.stdout.splitlines()) == 4 and
           r.stdout.startswith("bob "), "peers --no-legend", r.stdout)


def send_tests(tap, u, listen):
    # The daemon queues for any valid name (UnknownPeer is not used).
    r = u.cli("--json", "send", "nobody", "hi")
    mid = json.loads(r.stdout or "{}").get("id", "")
    h = u.cli_json("history", "nobody")
    tap.ok(r.returncode == 0 and HEX32.match(mid) and
           [(m["id"], m["state"]) for m in h] == [(mid, "queued")],
           "send to a peer never seen: queued, exit 0", (r, h))
    ok, diag = one_error_line(u.cli("send", "bob", "bad \udcff byte"), "not valid UTF-8")
    tap.ok(ok, "send invalid UTF-8: clear error", diag)
    r = u.cli("send", "echo", "hello", "world")
    tap.ok(r.returncode == 0 and HEX32.match(r.stdout.strip()),
           "send prints the message id", r)
    ev, seen = listen.read_until(event("messageReceived", peer="echo"))
    tap.ok(ev and json.loads(ev)["text"] == "hello world",
           "listen --json: TEXT arguments joined with spaces", seen)
    r = u.cli("--json", "send", "echo", "-", input="line one\nline two\n")
    ev, seen = listen.read_until(event("messageReceived", peer="echo"))
    tap.ok(r.returncode == 0 and HEX32.match(json.loads(r.stdout)["id"]) and
           ev and json.loads(ev)["text"] == "line one\nline two",
           "send - reads stdin, drops one trailing newline", (r, seen))
    r = u.cli("--json", "send", "--wait", "bob", "hi")
    o = json.loads(r.stdout or "{}")
    tap.ok(r.returncode == 0 and o.get("status") == "delivered" and
           HEX32.match(o.get("id", "")), "send --wait: delivered, exit 0", r)
    r = u.cli("--json", "send", "--wait", "ref", "hi")
    tap.ok(r.returncode == 0 and json.loads(r.stdout or "{}").get("status") == "sent",
           "send --wait to a reference peer: sent, exit 0", r)

    # An offline peer: the message is queued, and --wait has no outcome to
    # report before its --timeout (issue 14: JSON still says what happened).
    r = u.cli("--json", "--timeout=2", "send", "--wait", "off", "are you there")
    lines = r.stderr.splitlines()
    h = u.cli_json("history", "off")
    tap.ok(r.returncode == 1 and json.loads(r.stdout or "{}").get("status") == "timeout" and
           len(lines) == 1 and
           re.fullmatch(r"Failed to confirm delivery of message [0-9a-f]{32} to 'off': "
                        r"no outcome within 2 s\.", lines[0]) and
           [(m["text"], m["state"]) for m in h] == [("are you there", "queued")],
           "send --wait to an offline peer: queued, no outcome within --timeout, exit 1",
           (r, h))

    # outbox-expiry at its minimum: what waits longer fails "expired".
    r = u.cli("config", "set", "outbox-expiry", "1s")
    w = u.cli("--json", "send", "--wait", "off", "expires")
    o = json.loads(w.stdout or "{}")
    tap.ok(r.returncode == 0 and w.returncode == 1 and o.get("status") == "failed" and
           o.get("reason") == "expired" and
           re.fullmatch(r"Failed to deliver message [0-9a-f]{32} to 'off': expired\n",
                        w.stderr),
           "send --wait: expired in the outbox, failed with the reason, exit 1", (r, w))
    h = u.cli_json("history", "off")
    tap.ok([m["state"] for m in h] == ["failed", "failed"],
           "the expired messages are failed in the history", h)
    u.cli("config", "set", "outbox-expiry", "7d")

    r = u.cli("--json", "send", "--wait", "bob", "-", input=TOO_LARGE)
    o = json.loads(r.stdout or "{}")
    tap.ok(r.returncode == 1 and o.get("status") == "failed" and
           o.get("reason") == "too-large" and
           "Failed to deliver message" in r.stderr and "'bob': too-large" in r.stderr,
           "send --wait: a text that cannot fit a datagram fails too-large, exit 1", r)

    _, seen = listen.read_until(event("messageFailed", reason="too-large"))
    events = [json.loads(l) for l in seen]
    tap.ok({"messageDelivered", "messageSent", "messageFailed"} <= {e["event"] for e in events},
           "listen --json: delivered, sent and failed events", seen)


def chat_pipe_tests(tap, u, world):
    p, out = u.popen_subscribed("chat", "echo")
    p.stdin.write("hi there\n")
    p.stdin.flush()
    line, seen = out.read_until(lambda l: l.endswith("echo: hi there"))
    tap.ok(line is not None, "chat with pipes: a line is sent, the reply printed", seen)
    world.bob.send("alice", "not for this chat")
    u.wait_signal("MessageReceived", lambda a: a[2] == "not for this chat", 10)
    world.echo.send("alice", "esc\x1b[2Jape\nnext")
    line, seen = out.read_until(lambda l: "echo: esc" in l)
    tap.ok(line is not None and line.endswith("echo: esc\\x1b[2Jape\\nnext") and
           not any("not for this chat" in l for l in seen),
           "chat prints only its peer, escaping control characters", seen)
    world.echo.call("Logout")
    line, seen = out.read_until(lambda l: "echo is offline" in l)
    world.echo.login("echo", world.coord.address)
    tap.ok(line is not None, "chat shows the peer leaving", seen)
    p.stdin.close()
    rc = p.wait(10)
    tap.ok(rc == 0, "chat ends with exit 0 at end of input", p.stderr.read())
    wait_for(lambda: "echo" in u.online_peers(), 10)

    r = u.cli("--json", "chat", "echo", input="first\nsecond\n")
    events = [json.loads(l) for l in r.stdout.splitlines()]
    tap.ok(r.returncode == 0 and [e["text"] for e in events
                                  if e["event"] == "messageQueued"] == ["first", "second"],
           "chat --json: one messageQueued event per input line", r)
    r = u.cli("chat", "nobody", input="x\n")
    tap.ok(r.returncode == 0 and r.stdout == "* message queued: nobody is offline, it goes "
           "out when nobody is back\n", "chat with a peer never seen: the line is queued, exit 0",
           r)


def chat_tty_tests(tap, u, world, listen):
    names = ("chat on a terminal: banner, incoming line above a half-typed line",
             "chat on a terminal: the completed line is sent intact",
             "chat on a terminal: Up recalls the line from history",
             "chat on a terminal: Ctrl-D on an empty line leaves with exit 0")
    if missing("tmux"):
        for name in names:
            tap.skip_missing(name, "tmux")
        return
    env = " ".join(f"{k}={u.env[k]}" for k in ("DBUS_SESSION_BUS_ADDRESS", "HOME"))
    with Tmux(f"env LANG=C.UTF-8 TERM=screen {env} {P2PCHAT} chat echo; "
              "echo EXIT=$?; sleep 30", 60, 15) as term:
        term.wait_screen(lambda s: any(l.startswith("alice>") for l in s), 10)
        term.type("half typed 日本")
        term.wait_screen(lambda s: s[-1:] == ["alice> half typed 日本"], 5)
        world.echo.send("alice", "incoming while typing")
        lines = term.wait_screen(
            lambda s: any(l.endswith("echo: incoming while typing") for l in s),
            10) or term.screen()
        # The conversation so far comes first, then the banner.
        banner = [i for i, l in enumerate(lines) if l.startswith("Chatting with echo (online).")]
        tap.ok(banner and banner[0] < len(lines) - 2 and
               lines[-2].endswith("echo: incoming while typing") and
               lines[-1] == "alice> half typed 日本", names[0], "\n".join(lines))
        term.type(" end")
        term.keys("Enter")
        ev, seen = listen.read_until(
            lambda l: json.loads(l).get("text", "").startswith("half typed"))
        tap.ok(ev is not None and json.loads(ev)["text"] == "half typed 日本 end", names[1],
               seen + term.screen())
        term.keys("Up")
        lines = term.wait_screen(lambda s: s[-1:] == ["alice> half typed 日本 end"], 5)
        tap.ok(lines is not None, names[2], "\n".join(term.screen()))
        term.keys("C-a", "C-k")
        term.keys("C-d")
        lines = term.wait_screen(lambda s: "EXIT=0" in s, 5)
        tap.ok(lines is not None and not any("^D" in l for l in lines), names[3],
               "\n".join(term.screen()))


def colour_tests(tap, u):
    cases = (("colour on a terminal", ""),
             ("NO_COLOR turns colour off on a terminal", "NO_COLOR=1"))
    if missing("tmux"):
        for name, _ in cases:
            tap.skip_missing(name, "tmux")
        return
    env = " ".join(f"{k}={u.env[k]}" for k in ("DBUS_SESSION_BUS_ADDRESS", "HOME"))
    for name, extra in cases:
        with Tmux(f"env TERM=screen {extra} {env} {P2PCHAT} peers; echo DONE; sleep 30",
                  80, 10) as term:
            term.wait_screen(lambda s: "DONE" in s, 10)
            raw = term.raw()
            header = next((l for l in raw.splitlines() if "NAME" in l), "")
            tap.ok(("\x1b[1m" in header) == (extra == ""), name, repr(raw))


def listen_robustness_tests(tap, u, world, listen):
    u.emit_forged("MessageReceived", "(sssta{sv})", ("f" * 32, "bob", "forged", 1, {}))
    world.bob.send("alice", "genuine")
    line, seen = listen.read_until(lambda l: json.loads(l).get("text") in ("forged", "genuine"))
    tap.ok(line is not None and json.loads(line)["text"] == "genuine",
           "listen ignores signals that do not come from p2pchatd", seen)

    u.kill(signal.SIGTERM)
    u.start()
    u.cli("login", "alice", "--coordinator", world.coord.address)
    world.bob.send("alice", "after restart")
    line, seen = listen.read_until(lambda l: json.loads(l).get("text") == "after restart", 20)
    tap.ok(line is not None, "listen keeps working across a daemon restart", seen)


def body(tap):
    u = User("alice", start=False)
    usage_tests(tap, u)
    u.start()
    world = World(Coordinator())
    login_tests(tap, u, world)
    listen_p, listen = u.popen_subscribed("--json", "listen")
    peers_tests(tap, u, world)
    send_tests(tap, u, listen)
    chat_pipe_tests(tap, u, world)
    chat_tty_tests(tap, u, world, listen)
    colour_tests(tap, u)
    listen_robustness_tests(tap, u, world, listen)
    st = u.cli_json("logout")
    tap.ok(st.get("state") == "offline", "logout --json prints offline", st)
    listen_p.send_signal(signal.SIGINT)
    tap.ok(listen_p.wait(10) == 0, "listen exits 0 on SIGINT")
    world.ref.close()


if __name__ == "__main__":
    run(body, PLANNED)
