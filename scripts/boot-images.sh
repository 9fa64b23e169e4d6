#!/bin/bash
# boot-images.sh — bootable x86_64 Debian test images, one per mechanism piflash must handle.
#
#   scripts/boot-images.sh list                 the variant names, one a line
#   scripts/boot-images.sh build VARIANT        build (or reuse) VARIANT's image; print the
#                                               directory holding VARIANT.img, VARIANT.facts,
#                                               vmlinuz and initrd.img
#   scripts/boot-images.sh clean                remove outdated cache entries
#
# Every image is an MBR disk: partition 1 FAT16 (64 MiB, the variant's label) mounted by LABEL=
# at /boot or /boot/firmware, partition 2 ext4 holding a copy of the debootstrap root from
# scripts/boot-rootfs.sh, changed the way the variant's OS ships (units enabled, masked or
# purged with the guest's own systemctl and dpkg in a chroot, configuration written). Each bakes
# what real Pi images bake — a non-empty /etc/machine-id with /var/lib/dbus/machine-id as a copy,
# SSH host keys — and VARIANT.facts records those values, the user the node's key must reach and
# where the cloud-init seed is, for tests/boot/boot-test.sh to compare against after boot.
# Every image runs boot-report.service (tests/boot/boot-report), which prints what the booted
# node looks like to the second serial port and powers off.
#
# The images are built without mounting: mkfs.ext4 -d from a staging tree, mkfs.vfat + mcopy,
# sfdisk for the table, dd conv=notrunc,sparse to stitch them together. They are cached under
# ${PIFLASH_BOOT_CACHE:-/var/cache/piflash-boot}/images-KEY/ (KEY: the root filesystem's key and
# the hash of this script and of the report script), each written under a temporary name and
# renamed once complete, under a per-variant flock. Needs root (chroot, file ownership).
set -euo pipefail

PATH=$PATH:/usr/sbin:/sbin
export LC_ALL=C.UTF-8 TZ=UTC
umask 022

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/.." && pwd)
CACHE=${PIFLASH_BOOT_CACHE:-/var/cache/piflash-boot}
REPORT_SCRIPT="$SRC/tests/boot/boot-report"
MIB=1048576
FAT_START_MIB=4
FAT_MIB=64

VARIANTS=(seedlinks label-networkd nm dhcpcd bootfs-nm ifupdown rpiissue-dhcpcd networkd-idle
	ci-disabled)

# die MSG: print MSG and exit 1.
die() {
	echo "boot-images: $*" >&2
	exit 1
}

# run CMD...: run CMD with its output in the build log; show the log's tail when it fails.
run() {
	if ! "$@" >>"$LOG" 2>&1; then
		tail -n 40 "$LOG" >&2
		die "'$*' failed (log: $LOG)"
	fi
}

# in_root CMD...: run CMD inside the staging tree (the guest's own tools, offline).
in_root() {
	run chroot "$TREE" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
		DEBIAN_FRONTEND=noninteractive "$@"
}

# put PATH MODE: write standard input to the tree's PATH (root-owned) with MODE.
put() {
	mkdir -p "$(dirname "$TREE$1")"
	cat >"$TREE$1"
	chmod "$2" "$TREE$1"
}

# seed NAME: write standard input as NAME on the FAT staging directory.
seed() {
	cat >"$FATDIR/$1"
}

# purge PKG...: remove packages with dpkg, maintainer scripts included, as an admin would.
purge() {
	in_root dpkg --purge "$@"
}

# units ACTION UNIT...: systemctl ACTION (enable, disable, mask) offline in the tree: exactly
# the links a running system's systemctl would make or remove.
units() {
	local action=$1
	shift
	in_root systemctl "$action" "$@"
}

# add_user NAME UID GID: a login user with a home, in groups sudo and users.
add_user() {
	in_root groupadd -g "$3" "$1"
	in_root useradd -m -u "$2" -g "$3" -G sudo,users -s /bin/bash -c "$1" "$1"
}

# resolv_file: /etc/resolv.conf as a plain file, as on a system where the DHCP client or
# NetworkManager writes it (systemd-resolved's postinst made it a link to its stub).
resolv_file() {
	rm -f "$TREE/etc/resolv.conf"
	printf '# baked into the image; replaced by the network service at boot\n' |
		put /etc/resolv.conf 0644
}

# fstab ROOT_LABEL FAT_LABEL FAT_DIR: mount the root and the FAT by label.
fstab() {
	mkdir -p "$TREE$3"
	put /etc/fstab 0644 <<EOF
LABEL=$1	/	ext4	defaults,noatime	0	1
LABEL=$2	$3	vfat	defaults	0	2
EOF
	ROOT_LABEL=$1
	FAT_LABEL=$2
	FAT_DIR=$3
}

# interfaces_lo: /etc/network/interfaces with loopback only (no service in charge of eth0).
interfaces_lo() {
	put /etc/network/interfaces 0644 <<'EOF'
# interfaces(5) file used by ifup(8) and ifdown(8)
source-directory /etc/network/interfaces.d

auto lo
iface lo inet loopback
EOF
}

# interfaces_dhcp: eth0 on DHCP the way Debian's installer writes it.
interfaces_dhcp() {
	put /etc/network/interfaces 0644 <<'EOF'
# This file describes the network interfaces available on your system
# and how to activate them. For more information, see interfaces(5).

source /etc/network/interfaces.d/*

# The loopback network interface
auto lo
iface lo inet loopback

# The primary network interface
allow-hotplug eth0
iface eth0 inet dhcp
EOF
}

# sshswitch DIR: Raspberry Pi OS's sshswitch.service: an ssh or ssh.txt file in DIR (the FAT)
# enables and starts sshd, then is removed. sshd itself is not enabled.
sshswitch() {
	put /usr/lib/systemd/system/sshswitch.service 0644 <<EOF
[Unit]
Description=Turn on SSH if $1/ssh is present
ConditionPathExistsGlob=$1/ssh{,.txt}
After=regenerate_ssh_host_keys.service

[Service]
Type=oneshot
ExecStart=/bin/sh -c "systemctl enable --now --no-block ssh; rm -f $1/ssh ; rm -f $1/ssh.txt"

[Install]
WantedBy=multi-user.target
EOF
	units enable sshswitch.service
	units disable ssh.service
}

# regenerate_keys: Raspberry Pi OS's unit that makes missing SSH host keys before sshd.
regenerate_keys() {
	put /usr/lib/systemd/system/regenerate_ssh_host_keys.service 0644 <<'EOF'
[Unit]
Description=Regenerate SSH host keys
Before=ssh.service
ConditionFileIsExecutable=/usr/bin/ssh-keygen

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A -v
ExecStartPost=/bin/systemctl disable regenerate_ssh_host_keys

[Install]
WantedBy=multi-user.target
EOF
	units enable regenerate_ssh_host_keys.service
}

# rpi_issue: /etc/rpi-issue as Raspberry Pi OS's pi-gen writes it.
rpi_issue() {
	put /etc/rpi-issue 0644 <<'EOF'
Raspberry Pi reference 2023-05-03
Generated using pi-gen, https://github.com/RPi-Distro/pi-gen, 5b6b8fd2a0bbd0e9e7c1e8e0f2f4f1ff0c4a64c8, stage2
EOF
}

# variant_seedlinks: HypriotOS's mechanism under a Debian name: cloud-init NoCloud through
# links in /var/lib/cloud/seed/nocloud-net to the FAT at /boot, network-config v1 rendered for
# ifupdown, dhcpcd masked, the user made by cloud-init from user-data.
variant_seedlinks() {
	fstab root HypriotOS /boot
	purge network-manager netplan.io systemd-resolved
	resolv_file
	interfaces_lo
	units mask dhcpcd.service
	units enable networking.service ssh.service
	units disable systemd-networkd.service
	put /etc/cloud/cloud.cfg.d/90_seedlinks.cfg 0644 <<'EOF'
datasource_list: [NoCloud, None]
# The minbase root has no locales package: update-locale refuses en_US.UTF-8 (Debian's
# default), C.UTF-8 needs none.
locale: C.UTF-8
system_info:
  default_user:
    name: pirate
  network:
    renderers: [eni]
EOF
	# cloud-init-local runs before local-fs.target; the links lead into the FAT.
	put /etc/systemd/system/cloud-init-local.service.d/10-boot.conf 0644 <<'EOF'
[Unit]
RequiresMountsFor=/boot
EOF
	mkdir -p "$TREE/var/lib/cloud/seed/nocloud-net"
	local f
	for f in user-data meta-data network-config; do
		ln -s "/boot/$f" "$TREE/var/lib/cloud/seed/nocloud-net/$f"
	done
	seed user-data <<'EOF'
#cloud-config
# vim: syntax=yaml
hostname: black-pearl
manage_etc_hosts: true

users:
  - name: pirate
    gecos: "Hypriot Pirate"
    sudo: ALL=(ALL) NOPASSWD:ALL
    shell: /bin/bash
    groups: users,video
    plain_text_passwd: hypriot
    lock_passwd: false
    ssh_pwauth: true
    chpasswd: { expire: false }

package_upgrade: false

runcmd:
  - [sh, -c, "echo seedlinks > /var/lib/seed-runcmd"]
EOF
	seed meta-data <<'EOF'
instance-id: pirate001
EOF
	seed network-config <<'EOF'
version: 1
config:
  - type: physical
    name: eth0
    subnets:
      - type: dhcp
EOF
	FACT_NET=networking
	FACT_USER=pirate
	# user-data names it (piflash must replace that)
	FACT_HOSTNAME=black-pearl
	FACT_CLOUD_INIT=yes
	FACT_RUNCMD=/var/lib/seed-runcmd
}

# variant_label_networkd: Ubuntu's mechanism: NoCloud by fs_label system-boot, network-config
# v2 for netplan, rendered for systemd-networkd; the default user made by cloud-init.
variant_label_networkd() {
	fstab writable system-boot /boot/firmware
	purge network-manager dhcpcd
	interfaces_lo
	units disable networking.service
	units enable systemd-networkd.service systemd-resolved.service ssh.service
	put /etc/cloud/cloud.cfg.d/99-fs-label.cfg 0644 <<'EOF'
datasource_list: [NoCloud, None]
datasource:
  NoCloud:
    fs_label: system-boot
# The minbase root has no locales package: update-locale refuses en_US.UTF-8 (Debian's
# default), C.UTF-8 needs none.
locale: C.UTF-8
system_info:
  default_user:
    name: ubuntu
    lock_passwd: true
    gecos: Ubuntu
    groups: [adm, sudo, users]
    sudo: "ALL=(ALL) NOPASSWD:ALL"
    shell: /bin/bash
  network:
    renderers: [netplan]
EOF
	put /etc/netplan/01-renderer.yaml 0600 <<'EOF'
network:
  version: 2
  renderer: networkd
EOF
	seed user-data <<'EOF'
#cloud-config
# On first boot, set the (default) ubuntu user's password to "ubuntu" and
# expire user passwords
chpasswd:
  expire: true
  list:
  - ubuntu:ubuntu

# Enable password authentication with the SSH daemon
ssh_pwauth: true
EOF
	seed meta-data <<'EOF'
instance-id: cloud-image
EOF
	# Not "optional: true" as on Ubuntu's cards: with every link optional,
	# systemd-networkd-wait-online waits for a link that never counts, times out and fails.
	seed network-config <<'EOF'
version: 2
ethernets:
  eth0:
    dhcp4: true
EOF
	FACT_NET=systemd-networkd
	FACT_USER=ubuntu
	FACT_CLOUD_INIT=yes
}

# variant_nm: Raspberry Pi OS bookworm's mechanism under a Debian name: NetworkManager in
# charge, no cloud-init (purged), sshd off until an ssh file on the FAT turns it on.
variant_nm() {
	fstab rootfs bootfs /boot/firmware
	purge cloud-init netplan.io dhcpcd ifupdown isc-dhcp-client systemd-resolved
	resolv_file
	units enable NetworkManager.service
	units disable systemd-networkd.service
	regenerate_keys
	sshswitch /boot/firmware
	add_user pi 1000 1000
	FACT_NET=NetworkManager
	FACT_SSH=switch
	FACT_USER=pi
	FACT_CLOUD_INIT=no
}

# variant_dhcpcd: Raspbian buster's mechanism: dhcpcd in charge (ifupdown installed, not
# enabled), the ssh switch on /boot, user pi.
variant_dhcpcd() {
	fstab rootfs boot /boot
	purge cloud-init netplan.io network-manager systemd-resolved
	resolv_file
	interfaces_lo
	units disable networking.service systemd-networkd.service
	units enable dhcpcd.service
	sshswitch /boot
	add_user pi 1000 1000
	FACT_NET=dhcpcd
	FACT_SSH=switch
	FACT_USER=pi
	FACT_CLOUD_INIT=no
}

# variant_bootfs_nm: Raspberry Pi OS trixie's mechanism: NoCloud by fs_label bootfs, netplan
# handing every device to NetworkManager, the user as a users: list with no default user,
# baked host keys kept by cloud-init (missing ones regenerated), sshd behind the ssh switch.
variant_bootfs_nm() {
	fstab rootfs bootfs /boot/firmware
	purge dhcpcd ifupdown systemd-resolved
	resolv_file
	units enable NetworkManager.service
	units disable systemd-networkd.service
	regenerate_keys
	sshswitch /boot/firmware
	put /usr/lib/netplan/00-network-manager-all.yaml 0600 <<'EOF'
# Let NetworkManager manage all devices on this system
network:
  version: 2
  renderer: NetworkManager
EOF
	put /etc/cloud/cloud.cfg.d/99_raspberry-pi.cfg 0644 <<'EOF'
datasource_list: [NoCloud, None]
datasource:
  NoCloud:
    fs_label: bootfs
# The minbase root has no locales package: update-locale refuses en_US.UTF-8 (Debian's
# default), C.UTF-8 needs none.
locale: C.UTF-8
system_info:
  network:
    renderers: [netplan]
ssh_deletekeys: false
users:
  - name: pi
    groups: users,adm,dialout,audio,netdev,video,plugdev,sudo
    sudo: "ALL=(ALL) NOPASSWD:ALL"
    shell: /bin/bash
    lock_passwd: false
EOF
	seed user-data <<'EOF'
#cloud-config
# This is the user-data configuration file for cloud-init. By default this sets
# up an initial user called "pi" (see /etc/cloud/cloud.cfg.d).
manage_etc_hosts: true
EOF
	seed meta-data <<'EOF'
# This is the meta-data configuration file for cloud-init.
dsmode: local
instance-id: rpios-image
EOF
	seed network-config <<'EOF'
version: 2
ethernets:
  eth0:
    dhcp4: true
    optional: true
EOF
	FACT_NET=NetworkManager
	FACT_SSH=switch
	FACT_USER=pi
	FACT_CLOUD_INIT=yes
	FACT_KEEP_META="dsmode: local"
}

# variant_ifupdown: a plain Debian install: ifupdown with eth0 on DHCP, sshd enabled, no
# cloud-init (purged), the one user at uid 1001.
variant_ifupdown() {
	fstab RASPIROOT RASPIFIRM /boot/firmware
	purge cloud-init netplan.io network-manager dhcpcd systemd-resolved
	resolv_file
	interfaces_dhcp
	units enable networking.service ssh.service
	units disable systemd-networkd.service
	add_user ops 1001 1001
	FACT_NET=networking
	FACT_USER=ops
	FACT_CLOUD_INIT=no
}

# variant_rpiissue_dhcpcd: like dhcpcd, but with /etc/rpi-issue and NetworkManager installed
# and masked.
variant_rpiissue_dhcpcd() {
	fstab rootfs boot /boot
	purge cloud-init netplan.io systemd-resolved
	resolv_file
	interfaces_lo
	rpi_issue
	units disable networking.service systemd-networkd.service
	units mask NetworkManager.service
	units enable dhcpcd.service
	sshswitch /boot
	add_user pi 1000 1000
	FACT_NET=dhcpcd
	FACT_SSH=switch
	FACT_USER=pi
	FACT_CLOUD_INIT=no
}

# variant_networkd_idle: ifupdown in charge; systemd-networkd installed with a .network file
# for eth0 but not enabled.
variant_networkd_idle() {
	fstab RASPIROOT RASPIFIRM /boot/firmware
	purge cloud-init netplan.io network-manager dhcpcd systemd-resolved
	resolv_file
	interfaces_dhcp
	units enable networking.service ssh.service
	units disable systemd-networkd.service
	put /etc/systemd/network/20-wired.network 0644 <<'EOF'
[Match]
Name=eth0

[Network]
DHCP=yes
EOF
	add_user debian 1000 1000
	FACT_NET=networking
	FACT_USER=debian
	FACT_CLOUD_INIT=no
}

# variant_ci_disabled: cloud-init installed but off (/etc/cloud/cloud-init.disabled),
# systemd-networkd in charge with a DHCP .network file, sshd enabled, user ops uid 1001.
variant_ci_disabled() {
	fstab RASPIROOT RASPIFIRM /boot/firmware
	purge network-manager dhcpcd
	interfaces_lo
	units disable networking.service
	units enable systemd-networkd.service systemd-resolved.service ssh.service
	put /etc/cloud/cloud-init.disabled 0644 </dev/null
	put /etc/systemd/network/20-wired.network 0644 <<'EOF'
[Match]
Name=eth0

[Network]
DHCP=yes
EOF
	add_user ops 1001 1002
	FACT_NET=systemd-networkd
	FACT_USER=ops
	FACT_CLOUD_INIT=disabled
}

# common_identity NAME: what every image bakes: hostname, machine-id (and a D-Bus copy of it),
# SSH host keys of its own, the report unit.
common_identity() {
	local name=$1
	echo "$name" | put /etc/hostname 0644
	put /etc/hosts 0644 <<EOF
127.0.0.1	localhost
::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters

127.0.1.1	$name
EOF
	od -An -N16 -tx1 /dev/urandom | tr -d ' \n' | put /etc/machine-id 0444
	echo >>"$TREE/etc/machine-id"
	mkdir -p "$TREE/var/lib/dbus"
	rm -f "$TREE/var/lib/dbus/machine-id"
	cp "$TREE/etc/machine-id" "$TREE/var/lib/dbus/machine-id"
	rm -f "$TREE"/etc/ssh/ssh_host_*
	run ssh-keygen -q -A -f "$TREE"
	# The root account stays locked; the console is for reading, not for logging in.
	install -D -m 0755 "$REPORT_SCRIPT" "$TREE/usr/local/sbin/boot-report"
	put /etc/boot-report.conf 0644 <<EOF
REPORT_USER=$FACT_USER
REPORT_RUNCMD=${FACT_RUNCMD:-}
EOF
	put /etc/systemd/system/boot-report.service 0644 <<'EOF'
[Unit]
Description=Print the booted node's state to ttyS1 and power off (piflash boot test)
After=multi-user.target cloud-final.service

[Service]
# simple, not oneshot: the boot must complete while the script waits for it.
Type=simple
ExecStart=/usr/local/sbin/boot-report
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
EOF
	units enable boot-report.service
}

# write_facts FILE: what the check compares the booted node with.
write_facts() {
	local f
	{
		echo "VARIANT=$VARIANT"
		echo "USER=$FACT_USER"
		echo "NET=$FACT_NET"
		echo "HOSTNAME=${FACT_HOSTNAME:-$VARIANT}"
		echo "SSH=$FACT_SSH"
		echo "CLOUD_INIT=$FACT_CLOUD_INIT"
		echo "RUNCMD=${FACT_RUNCMD:-}"
		echo "KEEP_META=${FACT_KEEP_META:-}"
		echo "FAT_LABEL=$FAT_LABEL"
		echo "FAT_DIR=$FAT_DIR"
		echo "ROOT_LABEL=$ROOT_LABEL"
		echo "FAT_OFFSET=$((FAT_START_MIB * MIB))"
		echo "MACHINE_ID=$(cat "$TREE/etc/machine-id")"
		if [ -f "$FATDIR/meta-data" ]; then
			echo "INSTANCE_ID=$(sed -n 's/^instance-id:[[:space:]]*//p' "$FATDIR/meta-data")"
		fi
		for f in "$TREE"/etc/ssh/ssh_host_*_key.pub; do
			echo "HOSTKEY=$(ssh-keygen -lf "$f" | awk '{print $2}')"
		done
	} >"$1"
}

# make_disk IMG: the FAT and ext4 filesystems from the staging trees, stitched into an MBR disk.
make_disk() {
	local img=$1 root_mib total_mib fat ext
	fat="$WORK/fat.img"
	ext="$WORK/ext.img"
	run mkfs.vfat -F 16 -n "$FAT_LABEL" -C "$fat" $((FAT_MIB * 1024))
	if [ -n "$(ls -A "$FATDIR")" ]; then
		run mcopy -i "$fat" -s "$FATDIR"/* ::/
	fi
	# Room for what the first boot writes (journal, cloud-init, keys) and for piflash.
	root_mib=$(($(du -sm "$TREE" | cut -f1) + 256))
	run mkfs.ext4 -q -F -L "$ROOT_LABEL" -d "$TREE" "$ext" "${root_mib}M"
	total_mib=$((FAT_START_MIB + FAT_MIB + root_mib + 1))
	rm -f "$img"
	truncate -s "${total_mib}M" "$img"
	printf 'label: dos\nlabel-id: 0x%s\n%s\n%s\n' "$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')" \
		"start=$((FAT_START_MIB * 2048)), size=$((FAT_MIB * 2048)), type=c, bootable" \
		"start=$(((FAT_START_MIB + FAT_MIB) * 2048)), size=$((root_mib * 2048)), type=83" |
		run sfdisk -q "$img"
	run dd if="$fat" of="$img" bs=1M seek=$FAT_START_MIB conv=notrunc,sparse status=none
	run dd if="$ext" of="$img" bs=1M seek=$((FAT_START_MIB + FAT_MIB)) conv=notrunc,sparse \
		status=none
	rm -f "$fat" "$ext"
}

# kernel TARBALL DIR: the kernel and initrd from the root filesystem's /boot, for qemu -kernel.
kernel() {
	local tarball=$1 dir=$2 tmp
	[ -f "$dir/vmlinuz" ] && [ -f "$dir/initrd.img" ] && return 0
	tmp=$(mktemp -d "$CACHE/kernel.XXXXXX")
	tar -I zstd -C "$tmp" -xf "$tarball" --wildcards './boot/vmlinuz-*' './boot/initrd.img-*'
	cp "$tmp"/boot/vmlinuz-* "$dir/vmlinuz.partial"
	cp "$tmp"/boot/initrd.img-* "$dir/initrd.img.partial"
	mv -f "$dir/initrd.img.partial" "$dir/initrd.img"
	mv -f "$dir/vmlinuz.partial" "$dir/vmlinuz"
	rm -rf "$tmp"
}

# build VARIANT: print the cache directory holding VARIANT.img and VARIANT.facts.
build() {
	VARIANT=$1
	local fn="variant_${VARIANT//-/_}" tarball key dir
	declare -F "$fn" >/dev/null || die "unknown variant '$VARIANT' (see: boot-images.sh list)"
	[ "$(id -u)" -eq 0 ] || die "needs root (chroot, file ownership)"
	local rc=0
	tarball=$("$HERE/boot-rootfs.sh") || rc=$?
	[ "$rc" -eq 0 ] || exit "$rc"
	key=$("$HERE/boot-rootfs.sh" --key)-$(cat "${BASH_SOURCE[0]}" "$REPORT_SCRIPT" |
		sha256sum | cut -c1-12)
	dir="$CACHE/images-$key"
	mkdir -p "$dir"
	# The kernel is shared by the variants: one extraction at a time.
	exec 8>"$dir/kernel.lock"
	flock 8
	kernel "$tarball" "$dir"
	exec 8>&-
	exec 8>"$dir/$VARIANT.lock"
	flock 8
	if [ ! -f "$dir/$VARIANT.img" ]; then
		WORK=$(mktemp -d "$CACHE/build-$VARIANT.XXXXXX")
		# shellcheck disable=SC2064 # expand now: the path is fixed
		trap "rm -rf '$WORK'" EXIT
		TREE="$WORK/root"
		FATDIR="$WORK/fat"
		LOG="$dir/$VARIANT.log"
		: >"$LOG"
		mkdir -p "$TREE" "$FATDIR"
		run tar -I zstd --numeric-owner --xattrs --acls -C "$TREE" -xf "$tarball"
		FACT_RUNCMD=
		FACT_KEEP_META=
		FACT_SSH=enabled
		FACT_HOSTNAME=
		"$fn"
		common_identity "$VARIANT"
		# The FAT mount point hides what is under it; the kernel comes from outside (qemu -kernel).
		if [ "$FAT_DIR" = /boot ]; then
			rm -rf "${TREE:?}"/boot/*
		fi
		write_facts "$WORK/facts"
		make_disk "$WORK/disk.img"
		mv -f "$WORK/facts" "$dir/$VARIANT.facts"
		mv -f "$WORK/disk.img" "$dir/$VARIANT.img"
		rm -rf "$WORK"
		trap - EXIT
	fi
	echo "$dir"
}

# clean: remove cached images and root filesystems other than the current ones (left behind
# when this script, the report script or the package list changed).
clean() {
	local key keep f
	key=$("$HERE/boot-rootfs.sh" --key)
	keep="images-$key-$(cat "${BASH_SOURCE[0]}" "$REPORT_SCRIPT" | sha256sum | cut -c1-12)"
	for f in "$CACHE"/images-* "$CACHE"/rootfs-*.tar.zst; do
		[ -e "$f" ] || continue
		case ${f##*/} in
		"$keep" | "rootfs-$key.tar.zst") ;;
		*)
			echo "boot-images: removing $f"
			rm -rf "$f"
			;;
		esac
	done
}

case ${1:-} in
list) printf '%s\n' "${VARIANTS[@]}" ;;
clean) clean ;;
build)
	[ $# -eq 2 ] || die "usage: boot-images.sh build VARIANT"
	build "$2"
	;;
*) die "usage: boot-images.sh list | build VARIANT | clean" ;;
esac
