#!/bin/bash
# boot-rootfs.sh — the one x86_64 Debian bookworm root filesystem every boot-test image is made
# from, built with debootstrap and cached as a tarball.
#
#   scripts/boot-rootfs.sh            print the path of the cached tarball, building it if needed
#   scripts/boot-rootfs.sh --key      print the cache key only (no network, no build)
#   scripts/boot-rootfs.sh --cached   print the path if the tarball exists, else exit 1
#
# The tarball holds every package any variant needs (a kernel with virtio built in, systemd,
# cloud-init, netplan, NetworkManager, dhcpcd, ifupdown, ...); scripts/boot-images.sh turns it
# into one disk image per variant by enabling, masking and purging in a copy.
#
# Cache: ${PIFLASH_BOOT_CACHE:-/var/cache/piflash-boot}/rootfs-KEY.tar.zst (and the downloaded
# .debs in debs/, so a rebuild after a change does not download them again), where KEY hashes
# the package list, the mirror, the suite and this script, so any change rebuilds it. The tarball
# is written as a temporary file in the cache directory and renamed when complete, under an
# exclusive flock, so an interrupted build never leaves a complete-looking entry and concurrent
# tests wait for one build. Needs root (debootstrap, chroot). Exit 77 when the archive cannot be
# reached and nothing is cached.
set -euo pipefail

PATH=$PATH:/usr/sbin:/sbin
export LC_ALL=C.UTF-8 TZ=UTC

CACHE=${PIFLASH_BOOT_CACHE:-/var/cache/piflash-boot}
MIRROR=${PIFLASH_BOOT_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm

# Everything any variant needs; variants remove what they must not have.
# dhcpcd is the package with dhcpcd.service in bookworm (dhcpcd-base has only the binary);
# isc-dhcp-client is what ifupdown's "inet dhcp" runs; systemd-resolved makes the DNS servers
# systemd-networkd learns reach the resolver; dosfstools lets systemd-fsck check the FAT.
PACKAGES=(
	linux-image-cloud-amd64 initramfs-tools kmod udev
	systemd systemd-sysv systemd-resolved dbus
	openssh-server openssh-client sudo iproute2 procps netbase
	cloud-init netplan.io network-manager dhcpcd isc-dhcp-client ifupdown
	dosfstools
	# debootstrap does not resolve virtual packages: python3-cryptography (cloud-init) needs
	# python3-cffi-backend-api-*, polkitd (network-manager) default-logind | logind.
	python3-cffi-backend libpam-systemd
)

# die MSG: print MSG and exit 1.
die() {
	echo "boot-rootfs: $*" >&2
	exit 1
}

# cache_key: hash of everything that decides the tarball's content.
cache_key() {
	{
		printf '%s\n' "$SUITE" "$MIRROR" "${PACKAGES[@]}"
		cat "${BASH_SOURCE[0]}"
	} | sha256sum | cut -c1-16
}

# archive_reachable: true when the mirror answers for the suite's Release file.
archive_reachable() {
	curl -fsS --max-time 20 -o /dev/null "$MIRROR/dists/$SUITE/Release" 2>/dev/null
}

# build TARBALL: debootstrap into a temporary tree, tidy it, pack it into TARBALL atomically.
build() {
	local out=$1 tree tmp
	tree=$(mktemp -d "$CACHE/tree.XXXXXX")
	tmp=$(mktemp "$CACHE/rootfs.XXXXXX.partial")
	# shellcheck disable=SC2064 # expand now: the paths are fixed
	trap "rm -rf '$tree' '$tmp'" EXIT
	local incl
	incl=$(IFS=,; echo "${PACKAGES[*]}")
	echo "boot-rootfs: debootstrap $SUITE into $tree (a few minutes)" >&2
	mkdir -p "$CACHE/debs"
	if ! debootstrap --variant=minbase --cache-dir="$CACHE/debs" --include="$incl" \
		"$SUITE" "$tree" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1; then
		cat "$tree/debootstrap/debootstrap.log" >>"$CACHE/debootstrap.log" 2>/dev/null || true
		tail -n 30 "$CACHE/debootstrap.log" >&2
		die "debootstrap failed (log: $CACHE/debootstrap.log)"
	fi
	# Nothing in the images needs the downloaded packages or apt's lists.
	rm -rf "$tree"/var/cache/apt/archives/*.deb "$tree"/var/lib/apt/lists/*
	[ -e "$tree/boot/vmlinuz" ] || ls "$tree"/boot/vmlinuz-* >/dev/null 2>&1 ||
		die "no kernel in $tree/boot"
	ls "$tree"/boot/initrd.img-* >/dev/null 2>&1 || die "no initrd in $tree/boot"
	tar --numeric-owner --xattrs --acls -C "$tree" -cf - . | zstd -q -T2 -3 -o "$tmp" -f
	sync "$tmp"
	mv -f "$tmp" "$out"
	rm -rf "$tree"
	trap - EXIT
}

# main [--key|--cached]: see the header.
main() {
	local key out
	key=$(cache_key)
	out="$CACHE/rootfs-$key.tar.zst"
	case ${1:-} in
	--key)
		echo "$key"
		return 0
		;;
	--cached)
		[ -f "$out" ] && echo "$out"
		[ -f "$out" ]
		return
		;;
	'') ;;
	*) die "usage: boot-rootfs.sh [--key|--cached]" ;;
	esac
	[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot)"
	mkdir -p "$CACHE"
	exec 9>"$CACHE/rootfs.lock"
	flock 9
	if [ ! -f "$out" ]; then
		if ! archive_reachable; then
			echo "boot-rootfs: $MIRROR cannot be reached and $out is not cached" >&2
			exit 77
		fi
		build "$out"
	fi
	echo "$out"
}

main "$@"
