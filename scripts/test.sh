#!/bin/sh
# Installs what the build and the tests need, builds, and runs every test suite.
# Exits non-zero on any failure. Usage: scripts/test.sh [BUILD_DIR] [-- extra meson setup args]
set -eu

cd "$(dirname "$0")/.."
BUILD=${1:-build}
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift

scripts/install-deps.sh

if [ ! -f "$BUILD/build.ninja" ]; then
	meson setup "$BUILD" "$@" >/dev/null
else
	meson setup --reconfigure "$BUILD" "$@" >/dev/null
fi
meson compile -C "$BUILD"
meson test -C "$BUILD" --print-errorlogs --num-processes "$(nproc)"
