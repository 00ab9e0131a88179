#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""p2pchat against a fake p2pchatd (tests/helpers/fake_daemon.py): options,
exit codes, error lines, every verb's --json and text output, "send -",
"send --wait", "listen --json", "chat" with pipes and "chat" on a real
terminal under tmux.  No network: the real daemon is in test-cli-daemon.py.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "helpers"))
import cli  # noqa: E402

HEX32 = re.compile(r"^[0-9a-f]{32}$")
PEERS = ("bob:127.0.0.1:5000:1:1", "echo:127.0.0.1:5003:1:1",
         "off:127.0.0.1:5002:0:1", "ref:127.0.0.1:5001:1:0")
TMUX = shutil.which("tmux")
PLANNED = 47


def one_error_line(r, needle):
    """rc 1, nothing on stdout, exactly one stderr line containing needle."""
    lines = r.stderr.splitlines()
    return (r.returncode == 1 and r.stdout == "" and len(lines) == 1 and needle in lines[0],
            f"rc={r.returncode} stdout={r.stdout!r} stderr={r.stderr!r}")


def usage_tests(tap, u):
    r = u.cli("--help")
    tap.ok("--help lists every verb and the exit status",
           r.returncode == 0 and all(v in r.stdout for v in
                                     ("status", "login NAME", "logout", "peers",
                                      "send PEER TEXT", "listen", "chat PEER",
                                      "Exit status")), r)
    r = u.cli("--version")
    tap.ok("--version", r.returncode == 0 and r.stdout.startswith("p2pchat "), r)
    for name, args, needle in (
            ("unknown verb", ("frobnicate",), "Unknown command 'frobnicate'"),
            ("too few arguments", ("send", "bob"), "Too few arguments for 'send'"),
            ("too many arguments", ("login", "a", "b"), "Too many arguments for 'login'"),
            ("unknown option", ("--frob", "status"), "Unknown option '--frob'"),
            ("bad --json mode", ("--json=yaml", "status"), "Invalid --json= mode 'yaml'"),
            ("bad --timeout", ("--timeout=-3", "send", "a", "b"), "Invalid --timeout="),
            ("--wait outside send", ("--wait", "peers"), "--wait only applies to 'send'")):
        tap.ok(f"usage error: {name}", *one_error_line(u.cli(*args), needle))
    tap.ok("daemon not running: clear error",
           *one_error_line(u.cli("status"), "Failed to get status: p2pchatd is not running"))
    r = u.cli("status", env={"DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent/bus"})
    tap.ok("no session bus: clear error",
           *one_error_line(r, "Failed to connect to the session bus"))


def login_tests(tap, u):
    st = u.cli_json("status")
    tap.ok("status --json offline", st.get("state") == "offline" and
           st.get("peersOnline") == 0 and "username" in st and "localEndpoint" in st, st)
    tap.ok("peers while offline: named error",
           *one_error_line(u.cli("peers"), "Failed to list peers: Not logged in."))
    tap.ok("chat while offline: not logged in",
           *one_error_line(u.cli("chat", "bob", input=""), "not logged in"))
    tap.ok("login with an invalid name",
           *one_error_line(u.cli("login", "a,b"), "Failed to log in as 'a,b' at "))
    tap.ok("login with an unreachable coordinator names it",
           *one_error_line(u.cli("login", "alice", "--coordinator", "127.0.0.1:1"),
                           "at '127.0.0.1:1': The coordinator does not answer."))
    st = u.cli_json("login", "alice")
    tap.ok("login --json prints the new status with the default coordinator",
           st.get("state") == "online" and st.get("username") == "alice" and
           st.get("coordinator") == "127.0.0.1:7474" and st.get("peersOnline") == 3, st)
    tap.ok("login twice: AlreadyLoggedIn",
           *one_error_line(u.cli("login", "alice"), "Already logged in."))
    r = u.cli("status")
    tap.ok("status text block", r.returncode == 0 and
           re.search(r"^\s*State: online$", r.stdout, re.M) and
           re.search(r"^\s*Username: alice$", r.stdout, re.M) and
           re.search(r"^\s*Peers online: 3$", r.stdout, re.M) and "\033" not in r.stdout, r)


def peers_tests(tap, u):
    peers = u.cli_json("peers")
    tap.ok("peers --json: sorted array with camelCase fields",
           [p["name"] for p in peers] == ["bob", "echo", "off", "ref"] and
           peers[2]["online"] is False and peers[3]["native"] is False and
           peers[0]["endpoint"] == "127.0.0.1:5000", peers)
    r = u.cli("peers")
    lines = r.stdout.splitlines()
    tap.ok("peers table: aligned header, rows, footer",
           r.returncode == 0 and lines[0].split() == ["NAME", "ENDPOINT", "ONLINE", "NATIVE"] and
           lines[1].split() == ["bob", "127.0.0.1:5000", "yes", "yes"] and
           lines[0].index("ENDPOINT") == lines[1].index("127.0.0.1") and
           lines[-1] == "4 peers listed.", r.stdout)
    r = u.cli("--no-legend", "peers")
    tap.ok("peers --no-legend", r.returncode == 0 and len(r.stdout.splitlines()) == 4 and
           r.stdout.startswith("bob "), r.stdout)


def send_tests(tap, u, listen):
    tap.ok("send to an unknown peer",
           *one_error_line(u.cli("send", "nobody", "hi"),
                           "Failed to send message to 'nobody': Unknown peer 'nobody'."))
    tap.ok("send invalid UTF-8: clear error",
           *one_error_line(u.cli("send", "bob", "bad \udcff byte"), "not valid UTF-8"))
    r = u.cli("send", "echo", "hello", "world")
    tap.ok("send prints the message id", r.returncode == 0 and
           HEX32.match(r.stdout.strip()), r)
    ev, seen = listen.read_until(lambda l: json.loads(l).get("event") == "messageReceived")
    tap.ok("listen --json: TEXT arguments joined with spaces",
           ev and json.loads(ev)["text"] == "hello world" and json.loads(ev)["peer"] == "echo",
           seen)
    r = u.cli("--json", "send", "echo", "-", input="line one\nline two\n")
    ev, seen = listen.read_until(lambda l: json.loads(l).get("event") == "messageReceived")
    tap.ok("send - reads stdin, drops one trailing newline",
           r.returncode == 0 and HEX32.match(json.loads(r.stdout)["id"]) and
           ev and json.loads(ev)["text"] == "line one\nline two", (r, seen))
    r = u.cli("--json", "send", "--wait", "bob", "hi")
    o = json.loads(r.stdout or "{}")
    tap.ok("send --wait: delivered, exit 0",
           r.returncode == 0 and o.get("status") == "delivered" and HEX32.match(o.get("id", "")), r)
    r = u.cli("--json", "send", "--wait", "ref", "hi")
    tap.ok("send --wait to a reference peer: sent, exit 0",
           r.returncode == 0 and json.loads(r.stdout or "{}").get("status") == "sent", r)
    r = u.cli("--json", "send", "--wait", "off", "hi")
    o = json.loads(r.stdout or "{}")
    tap.ok("send --wait: failed, exit 1 with a reason",
           r.returncode == 1 and o.get("status") == "failed" and
           o.get("reason") == "peer is offline" and
           "Failed to deliver message" in r.stderr and "'off'" in r.stderr, r)
    _, seen = listen.read_until(lambda l: json.loads(l).get("event") == "messageFailed")
    events = [json.loads(l) for l in seen]
    tap.ok("listen --json: delivered, sent and failed events",
           {"messageDelivered", "messageSent", "messageFailed"} <=
           {e["event"] for e in events}, seen)


def chat_pipe_tests(tap, u):
    p, out = u.popen_subscribed("chat", "echo")
    p.stdin.write("hi there\n")
    p.stdin.flush()
    line, seen = out.read_until(lambda l: l.endswith("echo: hi there"))
    tap.ok("chat with pipes: a line is sent, the reply printed", line is not None, seen)
    u.control("Inject", "(ss)", ("bob", "not for this chat"))
    u.control("Inject", "(ss)", ("echo", "esc\x1b[2Jape\nnext"))
    line, seen = out.read_until(lambda l: "echo: esc" in l)
    tap.ok("chat prints only its peer, escaping control characters",
           line is not None and line.endswith("echo: esc\\x1b[2Jape\\nnext") and
           not any("not for this chat" in l for l in seen), seen)
    u.control("SetOnline", "(sb)", ("echo", False))
    line, seen = out.read_until(lambda l: "echo is offline" in l)
    u.control("SetOnline", "(sb)", ("echo", True))
    tap.ok("chat shows the peer leaving", line is not None, seen)
    p.stdin.close()
    rc = p.wait(10)
    tap.ok("chat ends with exit 0 at end of input", rc == 0, p.stderr.read())

    r = u.cli("--json", "chat", "echo", input="first\nsecond\n")
    events = [json.loads(l) for l in r.stdout.splitlines()]
    tap.ok("chat --json: one messageQueued event per input line",
           r.returncode == 0 and [e["text"] for e in events
                                  if e["event"] == "messageQueued"] == ["first", "second"],
           r)
    r = u.cli("chat", "nobody", input="x\n")
    tap.ok("chat with an unknown peer: error line, exit 1", r.returncode == 1 and
           "Failed to send message to 'nobody': Unknown peer 'nobody'." in r.stderr, r)


def tmux(sock, *args):
    return subprocess.run(["tmux", "-L", sock, "-f", "/dev/null", *args],
                          capture_output=True, text=True, timeout=10,
                          env={**os.environ, "SHELL": "/bin/sh"})


def screen(sock):
    return [l.rstrip() for l in tmux(sock, "capture-pane", "-p").stdout.splitlines()
            if l.strip()]


def chat_tty_tests(tap, u, listen):
    if not TMUX:
        for name in ("chat on a terminal: banner, incoming line above a half-typed line",
                     "chat on a terminal: the completed line is sent intact",
                     "chat on a terminal: Up recalls the line from history",
                     "chat on a terminal: Ctrl-D on an empty line leaves with exit 0"):
            tap.ok(f"{name} # SKIP tmux not installed", True)
        return
    sock = f"p2pchat-cli-{uuid.uuid4().hex[:8]}"
    env = " ".join(f"{k}={u.env[k]}" for k in ("DBUS_SESSION_BUS_ADDRESS", "HOME"))
    try:
        r = tmux(sock, "new-session", "-d", "-x", "60", "-y", "15",
                 f"env LANG=C.UTF-8 TERM=screen {env} {cli.P2PCHAT} chat echo; "
                 "echo EXIT=$?; sleep 30")
        if r.returncode != 0:
            print(f"# tmux: {r.stderr.strip()}")
        cli.wait_for(lambda: any(l.startswith("alice>") for l in screen(sock)), 10)
        tmux(sock, "send-keys", "-l", "half typed 日本")
        cli.wait_for(lambda: screen(sock)[-1:] == ["alice> half typed 日本"], 5)
        u.control("Inject", "(ss)", ("echo", "incoming while typing"))
        def incoming_shown(s):
            return any(l.endswith("echo: incoming while typing") for l in s)

        lines = cli.wait_for(lambda: (lambda s: s if incoming_shown(s) else None)(screen(sock)),
                             10) or screen(sock)
        tap.ok("chat on a terminal: banner, incoming line above a half-typed line",
               lines[0].startswith("Chatting with echo (online).") and
               len(lines) >= 2 and lines[-2].endswith("echo: incoming while typing") and
               lines[-1] == "alice> half typed 日本", "\n".join(lines))
        tmux(sock, "send-keys", "-l", " end")
        tmux(sock, "send-keys", "Enter")
        ev, seen = listen.read_until(
            lambda l: json.loads(l).get("text", "").startswith("half typed"))
        tap.ok("chat on a terminal: the completed line is sent intact",
               ev is not None and json.loads(ev)["text"] == "half typed 日本 end",
               seen + screen(sock))
        tmux(sock, "send-keys", "Up")
        lines = cli.wait_for(lambda: (lambda s: s if s[-1:] == ["alice> half typed 日本 end"]
                                      else None)(screen(sock)), 5)
        tap.ok("chat on a terminal: Up recalls the line from history", lines is not None,
               "\n".join(screen(sock)))
        tmux(sock, "send-keys", "C-a", "C-k")
        tmux(sock, "send-keys", "C-d")
        lines = cli.wait_for(lambda: (lambda s: s if "EXIT=0" in s else None)(screen(sock)), 5)
        tap.ok("chat on a terminal: Ctrl-D on an empty line leaves with exit 0",
               lines is not None and not any("^D" in l for l in lines),
               "\n".join(screen(sock)))
    finally:
        tmux(sock, "kill-server")


def colour_tests(tap, u):
    if not TMUX:
        for name in ("colour on a terminal", "NO_COLOR turns colour off on a terminal"):
            tap.ok(f"{name} # SKIP tmux not installed", True)
        return
    env = " ".join(f"{k}={u.env[k]}" for k in ("DBUS_SESSION_BUS_ADDRESS", "HOME"))
    for name, extra in (("colour on a terminal", ""),
                        ("NO_COLOR turns colour off on a terminal", "NO_COLOR=1")):
        sock = f"p2pchat-cli-{uuid.uuid4().hex[:8]}"
        try:
            tmux(sock, "new-session", "-d", "-x", "80", "-y", "10",
                 f"env TERM=screen {extra} {env} {cli.P2PCHAT} peers; echo DONE; sleep 30")
            cli.wait_for(lambda: "DONE" in screen(sock), 10)
            raw = tmux(sock, "capture-pane", "-e", "-p").stdout
            header = next((l for l in raw.splitlines() if "NAME" in l), "")
            tap.ok(name, ("\x1b[1m" in header) == (extra == ""), repr(raw))
        finally:
            tmux(sock, "kill-server")


def listen_robustness_tests(tap, u, listen):
    u.emit_forged("MessageReceived", "(sssta{sv})",
                  ("f" * 32, "bob", "forged", 1, {}))
    u.control("Inject", "(ss)", ("bob", "genuine"))
    line, seen = listen.read_until(lambda l: json.loads(l).get("text") in ("forged", "genuine"))
    tap.ok("listen ignores signals that do not come from p2pchatd",
           line is not None and json.loads(line)["text"] == "genuine", seen)

    cli.stop(u.daemon)
    u.start_fake_daemon(*PEERS)
    u.control("Inject", "(ss)", ("bob", "after restart"))
    line, seen = listen.read_until(lambda l: json.loads(l).get("text") == "after restart")
    tap.ok("listen keeps working across a daemon restart", line is not None, seen)


def body(tap):
    u = cli.User("alice")
    usage_tests(tap, u)
    u.start_fake_daemon(*PEERS)
    login_tests(tap, u)
    listen_p, listen = u.popen_subscribed("--json", "listen")
    peers_tests(tap, u)
    send_tests(tap, u, listen)
    chat_pipe_tests(tap, u)
    chat_tty_tests(tap, u, listen)
    colour_tests(tap, u)
    listen_robustness_tests(tap, u, listen)
    u.cli("login", "alice")
    st = u.cli_json("logout")
    tap.ok("logout --json prints offline", st.get("state") == "offline", st)
    listen_p.send_signal(2)
    tap.ok("listen exits 0 on SIGINT", listen_p.wait(10) == 0)


if __name__ == "__main__":
    sys.exit(cli.main_wrapper(PLANNED, body))
