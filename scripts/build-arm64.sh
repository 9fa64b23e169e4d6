#!/bin/sh
# Cross-build piflash for aarch64 (arm64) with Debian's cross toolchain, leaving OUTDIR/piflash.
#   scripts/build-arm64.sh OUTDIR [MESON OPTIONS...]     e.g. -Dprefer_static=true
#   scripts/build-arm64.sh --check                        exit 0 if everything is installed, else 77
# Installs what it needs (apt-get; sudo when not root): gcc-aarch64-linux-gnu, qemu-user-static
# (to run it), and the :arm64
# development packages after `dpkg --add-architecture arm64`. libext2fs-dev is not
# Multi-Arch: same in Debian 12 — installing its :arm64 package removes the amd64 one that
# the native build needs — so it is not installed: its .deb (and libext2fs2's) is fetched with
# `apt-get download` and unpacked into OUTDIR/sysroot, whose .pc file points the build there.
# The build directory is OUTDIR/build; the cross file is cross/aarch64-linux-gnu.ini.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CROSS="$ROOT/cross/aarch64-linux-gnu.ini"
TRIPLET=aarch64-linux-gnu
# Multi-Arch: same, so their :arm64 packages install beside the amd64 ones.
ARM64_DEV="libarchive-dev libfdisk-dev libblkid-dev comerr-dev zlib1g-dev libssl-dev
libjson-c-dev libyaml-dev libcurl4-openssl-dev liblzma-dev libext2fs2"
# qemu-user-static runs the result (tests/integration/arm64.sh).
TOOLS="gcc-$TRIPLET libc6-dev-arm64-cross qemu-user-static"

installed() {
	dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

missing() {
	m=""
	for p in $TOOLS; do installed "$p" || m="$m $p"; done
	for p in $ARM64_DEV; do installed "$p:arm64" || m="$m $p:arm64"; done
	echo "$m"
}

if [ "${1:-}" = --check ]; then
	[ -z "$(missing)" ] && command -v "$TRIPLET-gcc" >/dev/null && exit 0
	echo "build-arm64: missing:$(missing)" >&2
	exit 77
fi
[ $# -ge 1 ] || {
	echo "usage: build-arm64.sh OUTDIR [MESON OPTIONS...] | --check" >&2
	exit 2
}
OUT=$1
shift
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

m=$(missing)
if [ -n "$m" ]; then
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	echo "build-arm64: installing:$m" >&2
	export DEBIAN_FRONTEND=noninteractive
	dpkg --print-foreign-architectures | grep -qx arm64 || $SUDO dpkg --add-architecture arm64
	$SUDO apt-get update -qq >/dev/null
	# shellcheck disable=SC2086
	$SUDO apt-get install -y -qq --no-install-recommends $m >/dev/null
fi

# libext2fs-dev:arm64 into a private sysroot (see above).
SYSROOT=$OUT/sysroot
PCDIR=$SYSROOT/usr/lib/$TRIPLET/pkgconfig
if [ ! -f "$PCDIR/ext2fs.pc" ]; then
	rm -rf "$SYSROOT" "$OUT/debs"
	mkdir -p "$OUT/debs" "$SYSROOT"
	(cd "$OUT/debs" && apt-get download -qq libext2fs-dev:arm64 libext2fs2:arm64 >/dev/null)
	for d in "$OUT"/debs/*.deb; do dpkg-deb -x "$d" "$SYSROOT"; done
	sed -i "s|^prefix=/usr\$|prefix=$SYSROOT/usr|; s|^libdir=/usr/|libdir=$SYSROOT/usr/|; s|^includedir=/usr/|includedir=$SYSROOT/usr/|" \
		"$PCDIR/ext2fs.pc"
	grep -q "$SYSROOT" "$PCDIR/ext2fs.pc" || {
		echo "build-arm64: cannot point $PCDIR/ext2fs.pc at the sysroot" >&2
		exit 1
	}
fi

if [ ! -f "$OUT/build/build.ninja" ]; then
	meson setup --cross-file "$CROSS" -Dpkg_config_path="$PCDIR" -Dtests=disabled \
		"$@" "$OUT/build" "$ROOT" >"$OUT/setup.log" 2>&1 || {
		cat "$OUT/setup.log" >&2
		exit 1
	}
fi
ninja -C "$OUT/build" piflash >"$OUT/build.log" 2>&1 || {
	tail -40 "$OUT/build.log" >&2
	exit 1
}
cp "$OUT/build/piflash" "$OUT/piflash"
file "$OUT/piflash" 2>/dev/null || true
