#!/bin/bash
# boot-test.sh — run the boot suite: piflash writes node worker3 into each bootable Debian test
# image (scripts/boot-images.sh) and qemu boots the result (tests/boot/boot-test.sh checks it).
#
#   scripts/boot-test.sh [BUILD_DIR] [VARIANT...]
#
# Installs the suite's tools (scripts/install-deps.sh --boot), builds piflash in BUILD_DIR
# (default build-boot), and runs `meson test --suite boot`, two tests at a time (each VM uses
# one core; never more than two at once), or only the named variants. Prints each test's
# time and the whole run's. Exit non-zero when a test fails. Needs root.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# variants: the known variant names, one a line.
variants() {
	scripts/boot-images.sh list
}

# main [BUILD_DIR] [VARIANT...]: see the header.
main() {
	local build=build-boot
	if [ $# -gt 0 ] && ! variants | grep -qxF -- "$1"; then
		build=$1
		shift
	fi
	local -a tests=()
	local v
	for v in "$@"; do
		variants | grep -qxF -- "$v" || {
			echo "boot-test: unknown variant '$v'; known: $(variants | paste -sd' ' -)" >&2
			exit 2
		}
		tests+=("boot-$v")
	done
	scripts/install-deps.sh --boot
	if [ -d "$build" ]; then
		meson setup --reconfigure "$build" >/dev/null
	else
		meson setup "$build" >/dev/null
	fi
	meson compile -C "$build" >/dev/null
	local t0 rc=0
	t0=$(date +%s)
	meson test -C "$build" --suite boot --num-processes 2 --print-errorlogs "${tests[@]}" ||
		rc=$?
	echo "boot-test: whole suite $(($(date +%s) - t0))s"
	grep -h '^# boot-' "$build"/meson-logs/testlog.txt 2>/dev/null || true
	return "$rc"
}

main "$@"
