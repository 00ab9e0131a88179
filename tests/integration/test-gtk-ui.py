#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Runs `gtk4-builder-tool validate` on every .ui file of p2pchat-gtk.

    test-gtk-ui.py --preload LIBADWAITA.so FILE.ui...

The tool only knows the types of libraries it is linked with, so libadwaita
is preloaded for the Adw* objects inside the templates.  It also creates a
stand-in for a template's class from the parent named in the file, which
must be a registered GTK type: a template whose parent is an Adw window is
validated with the parent mapped to the GTK class it derives from (the
content goes in <child>, which both accept); everything inside is validated
as written.  Windows need a display: a private Xvfb.  TAP, one line a file.
"""

import argparse
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from gtktest import start_xvfb  # noqa: E402
from p2ptest import Tap, stop  # noqa: E402

ADW_TEMPLATE_PARENTS = {
    "AdwApplicationWindow": "GtkApplicationWindow",
    "AdwWindow": "GtkWindow",
    "AdwPreferencesWindow": "GtkWindow",
}


def for_validation(path, workdir):
    """Returns the file to validate: @path, or a copy with an Adw template
    parent mapped to its GTK base class."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for adw, gtk in ADW_TEMPLATE_PARENTS.items():
        attr = 'parent="%s"' % adw
        if attr in text:
            copy = os.path.join(workdir, os.path.basename(path))
            with open(copy, "w", encoding="utf-8") as f:
                f.write(text.replace(attr, 'parent="%s"' % gtk, 1))
            return copy
    return path


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--preload", required=True)
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()

    tap = Tap(len(args.files))
    xvfb, display = start_xvfb("640x480x24")
    env = dict(os.environ, DISPLAY=display, GDK_BACKEND="x11", GSK_RENDERER="cairo",
               LD_PRELOAD=args.preload, GTK_A11Y="none")
    try:
        with tempfile.TemporaryDirectory(prefix="p2ptest-ui-") as workdir:
            for path in args.files:
                r = subprocess.run(["gtk4-builder-tool", "validate",
                                    for_validation(path, workdir)],
                                   env=env, capture_output=True, text=True, timeout=60)
                tap.ok(r.returncode == 0 and not r.stderr.strip(),
                       "gtk4-builder-tool validate %s" % os.path.basename(path),
                       "exit %d\n%s%s" % (r.returncode, r.stdout, r.stderr))
    finally:
        stop(xvfb)
    tap.finish()


if __name__ == "__main__":
    main()
