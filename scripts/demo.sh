#!/bin/sh
# The newcomer's first command: installs the dependencies, builds piflash, makes a small
# HypriotOS-layout demo image with scripts/mkimage.sh, shows the plan for node worker3,
# writes the customised image, reads back what landed, builds a three-node cluster's images
# with piflash batch, and — as root — flashes worker3 to a loop device standing in for a card
# and verifies it.
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

echo
echo "==> piflash batch: a three-node cluster from $DEMO/cluster.csv into $DEMO/cluster/"
cat >"$DEMO/cluster.csv" <<EOF
hostname,ip,gateway,dns,ssh_key,group
master1,192.168.1.10/24,192.168.1.1,192.168.1.1,id_ed25519.pub,masters
worker1,192.168.1.11/24,192.168.1.1,192.168.1.1,id_ed25519.pub,workers
worker2,,,,id_ed25519.pub,workers
EOF
$P batch --inventory "$DEMO/cluster.csv" --host-keys --bmap --out-dir "$DEMO/cluster" \
	"$DEMO/hypriot.img.xz"
(cd "$DEMO/cluster" && sha256sum -c SHA256SUMS)
echo "--- $DEMO/cluster/known_hosts"
cat "$DEMO/cluster/known_hosts"
echo "--- $DEMO/cluster/inventory.ini"
cat "$DEMO/cluster/inventory.ini"

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
