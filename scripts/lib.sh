# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# Shared helpers for the scripts in scripts/: sourced, never run.
#
# Provides the source root ($P2P_SRCDIR), messages (coloured only on a
# terminal), timed phases, and the two build trees every script agrees on:
#   build/       gcc, -Werror, GTK, tests on;
#   build-asan/  clang, ASan+UBSan, libFuzzer targets, no GTK.
# Scripts that build the same tree share its options through
# p2p_build_main / p2p_build_asan, so they never force a reconfigure on
# each other.

P2P_SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
P2P_BUILDDIR="$P2P_SRCDIR/build"
P2P_ASAN_BUILDDIR="$P2P_SRCDIR/build-asan"

# Options of the two trees.  The suites each tree runs live in run-tests.
# Every feature option of meson_options.txt is given, 'enabled' unless the
# tree leaves it out on purpose, never 'auto': a missing library must fail
# the setup, not make its tests vanish (run-tests fails a tree with an
# 'auto' feature).  build-asan/ leaves GTK out on purpose: suite 'gtk'
# runs in build/.
P2P_MAIN_CC=gcc
P2P_MAIN_OPTIONS=(-Dwerror=true -Dtests=enabled -Dgtk=enabled -Dman=enabled)
P2P_ASAN_CC=clang
# shellcheck disable=SC2054 # the comma belongs to the option's value
P2P_ASAN_OPTIONS=(-Db_sanitize=address,undefined -Db_lundef=false
                  -Dfuzz=true -Dgtk=disabled -Dman=enabled -Dtests=enabled -Dwerror=true)

if [ -t 1 ] && [ "${TERM:-dumb}" != dumb ] && [ -z "${NO_COLOR:-}" ]; then
    P2P_BOLD=$'\e[1m' P2P_RED=$'\e[31m' P2P_GREEN=$'\e[32m'
    P2P_YELLOW=$'\e[33m' P2P_RESET=$'\e[0m'
else
    P2P_BOLD='' P2P_RED='' P2P_GREEN='' P2P_YELLOW='' P2P_RESET=''
fi

p2p_info() { printf '%s\n' "$*"; }
p2p_warn() { printf '%s%s%s\n' "$P2P_YELLOW" "$*" "$P2P_RESET" >&2; }
p2p_die() { printf '%serror: %s%s\n' "$P2P_RED" "$*" "$P2P_RESET" >&2; exit 1; }
p2p_step() { printf '\n%s==> %s%s\n' "$P2P_BOLD" "$*" "$P2P_RESET"; }

# p2p_timed NAME COMMAND... - run COMMAND as the phase NAME, print how long
# it took and whether it failed, and return its exit status.
p2p_timed() {
    local name=$1 start r=0
    shift
    p2p_step "$name"
    start=$(date +%s)
    "$@" || r=$?
    if [ "$r" -eq 0 ]; then
        printf '%s[phase] %s: ok, %d s%s\n' "$P2P_GREEN" "$name" $(($(date +%s) - start)) "$P2P_RESET"
    else
        printf '%s[phase] %s: FAILED (exit %d), %d s%s\n' "$P2P_RED" "$name" "$r" \
            $(($(date +%s) - start)) "$P2P_RESET"
    fi
    return "$r"
}

# p2p_logged LOG COMMAND... - run COMMAND with its output in the file LOG
# (replaced); on failure print the last 40 lines of LOG and where it is.
p2p_logged() {
    local log=$1 r=0
    shift
    "$@" >"$log" 2>&1 </dev/null || r=$?
    if [ "$r" -ne 0 ]; then
        tail -n 40 "$log" >&2
        p2p_warn "the whole log: $log"
    fi
    return "$r"
}

p2p_setup_deps() {
    "$P2P_SRCDIR/scripts/setup-deps"
}

# p2p_build DIR [MESON_OPTION...] - configure DIR (relative to the source
# root) unless it was configured by p2p_build with the same compiler ($CC)
# and options, which DIR/.p2p-setup records; then compile.  Any change means
# a new tree: neither the compiler nor an option that is no longer given can
# be reset in place (meson --reconfigure and --wipe keep old options).
p2p_build() {
    local dir=$1
    shift
    case "$dir" in /*) ;; *) dir="$P2P_SRCDIR/$dir" ;; esac
    [ "$dir" != "$P2P_SRCDIR" ] || p2p_die "p2p_build: the build directory cannot be the source root"

    local stamp="$dir/.p2p-setup" want have=''
    want=$(printf 'CC=%s\n' "${CC:-}"; printf '%s\n' "$@")
    [ -r "$stamp" ] && have=$(cat "$stamp")

    if [ ! -f "$dir/meson-private/coredata.dat" ] || [ "$want" != "$have" ]; then
        rm -rf "$dir"
        meson setup "$dir" "$P2P_SRCDIR" "$@" || return
        printf '%s\n' "$want" >"$stamp"
    fi

    meson compile -C "$dir"
}

p2p_build_main() {
    CC=$P2P_MAIN_CC p2p_build "$P2P_BUILDDIR" "${P2P_MAIN_OPTIONS[@]}"
}

p2p_build_asan() {
    CC=$P2P_ASAN_CC p2p_build "$P2P_ASAN_BUILDDIR" "${P2P_ASAN_OPTIONS[@]}"
}
