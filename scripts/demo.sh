#!/bin/sh
# The newcomer's first command: installs the dependencies, builds piflash, makes a small
# HypriotOS-layout demo image with scripts/mkimage.sh, shows the plan for node worker3,
# writes the customised image, reads back what landed, and — as root — flashes it to a
# loop device standing in for a card and verifies it.
set -eu

cd "$(dirname "$0")/.."
DEMO=${DEMO_DIR:-demo}
P=build/piflash

echo "==> Installing dependencies (Debian packages)"
scripts/install-deps.sh

echo "==> Building piflash into build/"
[ -f build/build.ninja ] || meson setup build >/dev/null
meson compile -C build >/dev/null

mkdir -p "$DEMO"
echo "==> Making a HypriotOS-layout demo image: $DEMO/hypriot.img.xz"
scripts/mkimage.sh hypriot "$DEMO/hypriot.img"
xz -T0 -1 -f "$DEMO/hypriot.img"
[ -f "$DEMO/id_ed25519.pub" ] || ssh-keygen -q -t ed25519 -N '' -C demo@piflash -f "$DEMO/id_ed25519"

echo "==> piflash inspect $DEMO/hypriot.img.xz  (decompressed once into the cache)"
$P inspect "$DEMO/hypriot.img.xz"

NODE="--node worker3 --ssh-key $DEMO/id_ed25519.pub --ip 192.168.1.13/24 --gateway 192.168.1.1 --dns 192.168.1.1"
echo
echo "==> piflash plan $NODE $DEMO/hypriot.img.xz"
# shellcheck disable=SC2086
$P plan $NODE "$DEMO/hypriot.img.xz"

echo
echo "==> piflash $NODE $DEMO/hypriot.img.xz $DEMO/worker3.img"
# shellcheck disable=SC2086
$P $NODE "$DEMO/hypriot.img.xz" "$DEMO/worker3.img"

echo
echo "==> Read back with piflash cat (the seed link leads to the FAT partition):"
$P cat "$DEMO/worker3.img" /var/lib/cloud/seed/nocloud-net/meta-data
$P cat "$DEMO/worker3.img" root:/etc/hostname

if [ "$(id -u)" -eq 0 ] && command -v losetup >/dev/null 2>&1; then
	CARD=$DEMO/card.bin
	truncate -s 300M "$CARD"
	if LOOP=$(losetup -f --show "$CARD" 2>/dev/null); then
		trap 'losetup -d "$LOOP" 2>/dev/null || true' EXIT
		echo
		echo "==> Flashing to $LOOP (a loop device standing in for a card), then verifying"
		# shellcheck disable=SC2086
		$P $NODE --yes --progress=none "$DEMO/hypriot.img.xz" "$LOOP"
		echo "==> $LOOP now holds worker3; its hostname: $($P cat "$LOOP" root:/etc/hostname)"
		exit 0
	fi
fi
echo
echo "(Not root or no loop device: the customised image is $DEMO/worker3.img.)"
