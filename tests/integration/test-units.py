#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The autostart files: the user unit, D-Bus activation and installation.

- `systemd-analyze --user verify` prints nothing for p2pchatd.service (with
  ExecStart= pointed at the build tree, since verify wants it to exist);
- a private dbus-daemon whose <servicedir> is build/dbus/services starts
  p2pchatd by activation for a plain `busctl --user call`;
- `meson install --destdir` puts every file where pkg-config says, and
  every man page (p2pchat-gtk(1) with the GTK app) in mandir;
- the man pages agree with the code and the installation: the daemon's
  default coordinator, no error the daemon no longer gives, every /usr
  path they name is installed, and every docs/ file they name (not
  installed) is said to be in the source tree.
Prints TAP.
"""

import filecmp
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import p2ptest  # noqa: E402
from p2ptest import Tap, spawn, stop, tempdir, wait_for  # noqa: E402

BUILD = p2ptest.BUILD_ROOT
SOURCE = p2ptest.SOURCE_ROOT
DAEMON = os.path.join(BUILD, "daemon", "p2pchatd")
SERVICE_DIR = os.path.join(BUILD, "dbus", "services")

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=%(socket)s</listen>
  <servicedir>%(servicedir)s</servicedir>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


def run(argv, env=None, timeout=60):
    p = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=timeout * p2ptest.SLOW)
    return p.returncode, p.stdout


def test_verify(tap):
    tmp = tempdir("p2ptest-units-")
    runtime = os.path.join(tmp, "runtime")
    os.mkdir(runtime, 0o700)
    with open(os.path.join(BUILD, "systemd", "p2pchatd.service")) as f:
        unit = f.read()
    tap.ok("\nExecStart=" in unit and "@bindir@" not in unit,
           "p2pchatd.service is configured")
    unit = re.sub(r"(?m)^ExecStart=.*$", "ExecStart=" + DAEMON, unit)
    path = os.path.join(tmp, "p2pchatd.service")
    with open(path, "w") as f:
        f.write(unit)
    # The man pages are not installed in a build tree: --man=no.
    env = dict(os.environ, XDG_RUNTIME_DIR=runtime, HOME=tmp)
    rc, out = run(["systemd-analyze", "--user", "--man=no", "verify", path], env=env)
    tap.ok(rc == 0 and out.strip() == "", "systemd-analyze --user verify prints nothing", out)


def test_activation(tap):
    name = "p2pchatd activated by a plain busctl --user call"
    if not os.path.exists(DAEMON):
        tap.skip_missing(name, "p2pchatd")
        tap.skip_missing("the activated daemon answers Manager.State", "p2pchatd")
        return
    tmp = tempdir("p2ptest-activation-")
    for sub in ("config", "data", "runtime"):
        os.makedirs(os.path.join(tmp, sub), mode=0o700)
    config = os.path.join(tmp, "bus.conf")
    with open(config, "w") as f:
        f.write(BUS_CONFIG % {"socket": os.path.join(tmp, "bus"), "servicedir": SERVICE_DIR})
    # The activated daemon inherits the bus's environment: temporary XDG dirs.
    env = dict(os.environ, HOME=tmp,
               XDG_CONFIG_HOME=os.path.join(tmp, "config"),
               XDG_DATA_HOME=os.path.join(tmp, "data"),
               XDG_RUNTIME_DIR=os.path.join(tmp, "runtime"))
    bus = spawn(["dbus-daemon", "--config-file=" + config, "--nofork", "--print-address=1"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    daemon_pid = None
    try:
        address = bus.stdout.readline().strip()
        env["DBUS_SESSION_BUS_ADDRESS"] = address
        rc, out = run(["busctl", "--user", "call", "org.p2pchat.chat1", "/org/p2pchat/chat1",
                       "org.freedesktop.DBus.Peer", "Ping"], env=env)
        tap.ok(rc == 0, name, out)
        rc, out = run(["busctl", "--user", "get-property", "org.p2pchat.chat1",
                       "/org/p2pchat/chat1", "org.p2pchat.chat1.Manager", "State"], env=env)
        tap.ok(rc == 0 and out.strip() == 's "offline"',
               "the activated daemon answers Manager.State", out)
        rc, out = run(["busctl", "--user", "call", "org.freedesktop.DBus",
                       "/org/freedesktop/DBus", "org.freedesktop.DBus",
                       "GetConnectionUnixProcessID", "s", "org.p2pchat.chat1"], env=env)
        if rc == 0:
            daemon_pid = int(out.split()[1])
    finally:
        if daemon_pid:
            try:
                os.kill(daemon_pid, 15)
                wait_for(lambda: not os.path.exists("/proc/%d" % daemon_pid), 10)
            except ProcessLookupError:
                pass
        stop(bus)


def pkgconfig(package, variable, define):
    rc, out = run(["pkg-config", "--define-variable=%s=%s" % define,
                   "--variable=" + variable, package])
    return out.strip() if rc == 0 and out.strip() else None


def test_install(tap):
    dest = tempdir("p2ptest-destdir-")
    # Without --no-rebuild: "meson test NAME" builds only what the named tests
    # depend on, and the man pages are not among them.
    rc, out = run(["meson", "install", "-C", BUILD, "--destdir", dest, "--quiet"],
                  timeout=300)
    tap.ok(rc == 0, "meson install --destdir succeeds", out)

    rc, out = run(["meson", "introspect", BUILD, "--buildoptions"])
    opts = {o["name"]: o["value"] for o in json.loads(out)}
    prefix = opts["prefix"]
    bindir = os.path.join(prefix, opts["bindir"])
    sbindir = os.path.join(prefix, opts["sbindir"])
    datadir = os.path.join(prefix, opts["datadir"])
    mandir = os.path.join(prefix, opts["mandir"])

    def installed(path):
        return os.path.join(dest, path.lstrip("/"))

    units = pkgconfig("systemd", "systemduserunitdir", ("prefix", prefix)) \
        or os.path.join(prefix, "lib/systemd/user")
    services = pkgconfig("dbus-1", "session_bus_services_dir", ("datadir", datadir)) \
        or os.path.join(datadir, "dbus-1/services")
    interfaces = pkgconfig("dbus-1", "interfaces_dir", ("datadir", datadir)) \
        or os.path.join(datadir, "dbus-1/interfaces")
    completions = pkgconfig("bash-completion", "completionsdir", ("datadir", datadir)) \
        or os.path.join(datadir, "bash-completion/completions")

    for prog, d in (("p2pchatd", bindir), ("p2pchat", bindir),
                    ("p2pchat-coordinator", sbindir)):
        p = installed(os.path.join(d, prog))
        tap.ok(os.access(p, os.X_OK), "%s installed in %s" % (prog, d), p)

    unit = installed(os.path.join(units, "p2pchatd.service"))
    text = open(unit).read() if os.path.exists(unit) else ""
    tap.ok("ExecStart=%s/p2pchatd\n" % bindir in text,
           "p2pchatd.service in the user unit dir, ExecStart= in bindir", unit)
    act = installed(os.path.join(services, "org.p2pchat.chat1.service"))
    text = open(act).read() if os.path.exists(act) else ""
    tap.ok("Exec=%s/p2pchatd\n" % bindir in text and "SystemdService=p2pchatd.service" in text,
           "activation file in the session services dir", act)
    xml = installed(os.path.join(interfaces, "org.p2pchat.chat1.xml"))
    tap.ok(os.path.exists(xml) and
           filecmp.cmp(xml, os.path.join(SOURCE, "dbus", "org.p2pchat.chat1.xml"), False),
           "interface XML in the D-Bus interfaces dir", xml)
    comp = installed(os.path.join(completions, "p2pchat"))
    tap.ok(os.path.exists(comp), "bash completion in completionsdir", comp)

    pages = ["p2pchat.1", "p2pchatd.8", "p2pchat-coordinator.8"]
    if os.path.exists(os.path.join(BUILD, "frontends", "gtk", "p2pchat-gtk")):
        pages.append("p2pchat-gtk.1")
    missing = [p for p in pages
               if not os.path.exists(installed(os.path.join(mandir, "man" + p[-1], p)))]
    if not p2ptest.missing("scdoc"):
        tap.ok(pages and not missing, "man pages installed in mandir: %s" % " ".join(pages),
               missing)
    else:
        tap.skip_missing("man pages installed", "scdoc")

    # Every /usr path a page names is installed (below the prefix).
    files = set()
    for root, _, names in os.walk(dest):
        files.update(os.path.join(root, n)[len(dest):] for n in names)
    bad = []
    for page in pages:
        for path in set(re.findall(r"/usr/[\w./-]*[A-Za-z0-9]", man_source(page))):
            tail = path[len("/usr"):]
            if not any(f.endswith(tail) for f in files):
                bad.append("%s: %s" % (page, path))
    tap.ok(not bad, "every /usr path the man pages name is installed", bad)


def man_source(page):
    with open(os.path.join(SOURCE, "docs", page + ".scd"), encoding="utf-8") as f:
        return f.read()


def test_man_contents(tap):
    pages = ["p2pchat.1", "p2pchatd.8", "p2pchat-coordinator.8", "p2pchat-gtk.1"]
    with open(os.path.join(SOURCE, "daemon", "config.c"), encoding="utf-8") as f:
        default = re.search(r'#define DEFAULT_COORDINATOR "([^"]+)"', f.read()).group(1)
    # p2pchat login and the daemon's config both fall back on the daemon's
    # default coordinator.
    tap.ok(all(default in man_source(p) for p in ("p2pchat.1", "p2pchatd.8")),
           "p2pchat(1) and p2pchatd(8) give the default coordinator %s" % default)
    # Messages to unknown peers are queued: UnknownPeer is never sent.
    bad = [p for p in pages if "Unknown peer" in man_source(p)]
    tap.ok(not bad, "no man page shows the retired 'Unknown peer' error", bad)
    # docs/*.md are not installed: a page naming one says where it is.
    bad = []
    for p in pages:
        for para in re.split(r"\n\s*\n", man_source(p)):
            if re.search(r"\bdocs/\S+\.md", para) and "source tree" not in para:
                bad.append("%s: %s" % (p, " ".join(para.split())[:120]))
    tap.ok(not bad, "man pages name docs/ files as in the source tree", bad)


def main():
    tap = Tap(17)
    test_verify(tap)
    test_activation(tap)
    test_install(tap)
    test_man_contents(tap)
    tap.finish()


if __name__ == "__main__":
    main()
