#!/bin/bash
# mkimage.sh — build small, deterministic SD-card images for the tests.
#
# Each flavor is a miniature of a real OS image: the same partition table, filesystem types
# and labels, and the files its first boot reads (cloud-init seed, os-release, passwd, network
# configuration, the ELF class of /bin/sh). Everything is built without root and without
# mounting: sfdisk writes the table into a sparse file, mkfs.vfat --offset and mke2fs -E offset=
# write the filesystems in place, mcopy fills the FAT and mke2fs -d copies a staging tree.
# debugfs then pins what mke2fs -d takes from the host (ownership, atime, ctime), so two runs
# give byte-identical images.
set -euo pipefail

PATH=$PATH:/usr/sbin:/sbin
export LC_ALL=C TZ=UTC
umask 022

# Every timestamp in the image; SOURCE_DATE_EPOCH wins where it is set.
EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
MIB=1048576

usage() {
	cat >&2 <<EOF
usage: mkimage.sh FLAVOR OUT.img [--size MiB] [--fill MiB] [-v]

Build a deterministic test image of FLAVOR into OUT.img (sparse).
  FLAVOR      hypriot | ubuntu | rpios-bookworm | rpios-trixie | raspbian-buster | plain
              or a variant: one OS's mechanism under a plain Debian name (lookalike-hypriot,
              lookalike-ubuntu, lookalike-trixie, lookalike-nm, lookalike-dhcpcd,
              lookalike-ifupdown), or name and mechanism disagreeing (mismatch-rpiissue-dhcpcd,
              mismatch-networkd-idle, mismatch-ci-disabled, mismatch-nonet)
  --size MiB  total image size (the root partition takes what the boot partition leaves)
  --fill MiB  add that many MiB of incompressible data under /var/lib/fill in the root
  -v          say what is being built
EOF
	exit 2
}

die() {
	echo "mkimage: $*" >&2
	exit 1
}

bad_arg() {
	echo "mkimage: $*" >&2
	usage
}

say() {
	if [ "$VERBOSE" = 1 ]; then
		echo "mkimage: $*"
	fi
}

# run CMD...: run a tool quietly; show its output only when it fails.
run() {
	if ! "$@" >"$TMP/run.log" 2>&1; then
		cat "$TMP/run.log" >&2
		die "'$1' failed"
	fi
}

is_mib() {
	case $1 in
	'' | *[!0-9]*) return 1 ;;
	esac
	[ "${#1}" -le 7 ]
}

FLAVOR=
OUT=
SIZE_MIB=
FILL_MIB=0
VERBOSE=0
while [ $# -gt 0 ]; do
	case $1 in
	--size)
		[ $# -ge 2 ] || bad_arg "--size needs a number of MiB"
		is_mib "$2" || bad_arg "--size '$2': not a number of MiB"
		SIZE_MIB=$((10#$2))
		shift 2
		;;
	--size=*)
		is_mib "${1#*=}" || bad_arg "$1: not a number of MiB"
		SIZE_MIB=$((10#${1#*=}))
		shift
		;;
	--fill)
		[ $# -ge 2 ] || bad_arg "--fill needs a number of MiB"
		is_mib "$2" || bad_arg "--fill '$2': not a number of MiB"
		FILL_MIB=$((10#$2))
		shift 2
		;;
	--fill=*)
		is_mib "${1#*=}" || bad_arg "$1: not a number of MiB"
		FILL_MIB=$((10#${1#*=}))
		shift
		;;
	-v | --verbose)
		VERBOSE=1
		shift
		;;
	-h | --help)
		usage
		;;
	-*)
		bad_arg "unknown option '$1'"
		;;
	*)
		if [ -z "$FLAVOR" ]; then
			FLAVOR=$1
		elif [ -z "$OUT" ]; then
			OUT=$1
		else
			bad_arg "unexpected argument '$1'"
		fi
		shift
		;;
	esac
done
if [ -z "$FLAVOR" ] || [ -z "$OUT" ]; then
	usage
fi

# ---- layouts ---------------------------------------------------------------------------------
# NO (flavor number), TABLE dos|gpt, DISKID, P1_START (sectors), P1_MIB, FAT_BITS, FAT_SPC
# (sectors per cluster), labels and ids; DEFAULT_MIB is the total size without --size. The ids
# spell "PIF" (0x50 0x49 0x46) and the flavor number, so a failing test shows at once which
# image a value came from.
P1_BOOTABLE=0
# A variant is built on a base flavor's layout and files, then changed (variant_* below).
VARIANT=
case $FLAVOR in
lookalike-hypriot) BASE=hypriot ;;
lookalike-ubuntu | mismatch-ci-disabled) BASE=ubuntu ;;
lookalike-trixie) BASE=rpios-trixie ;;
lookalike-nm | mismatch-rpiissue-dhcpcd) BASE=rpios-bookworm ;;
lookalike-dhcpcd) BASE=raspbian-buster ;;
lookalike-ifupdown | mismatch-networkd-idle | mismatch-nonet) BASE=plain ;;
*) BASE=$FLAVOR ;;
esac
[ "$BASE" = "$FLAVOR" ] || VARIANT=$FLAVOR
case $BASE in
hypriot)
	TABLE=dos DISKID=0x50494601
	NO=1 P1_START=2048 P1_MIB=64 FAT_BITS=16 FAT_SPC=4 P1_LABEL=HypriotOS P1_VOLID=50490101
	P2_LABEL=root DEFAULT_MIB=256
	EXT_FEATURES=has_journal,extent,huge_file,flex_bg,dir_nlink,extra_isize
	;;
ubuntu)
	TABLE=gpt DISKID=50494602-0000-4000-8000-000000000000
	P1_GUID=50494602-0001-4000-8000-000000000001
	P2_GUID=50494602-0002-4000-8000-000000000002
	NO=2 P1_START=2048 P1_MIB=256 FAT_BITS=32 FAT_SPC=1 P1_LABEL=system-boot P1_VOLID=50490201
	P2_LABEL=writable DEFAULT_MIB=512
	EXT_FEATURES=has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
	;;
rpios-bookworm)
	TABLE=dos DISKID=0x50494603
	NO=3 P1_START=8192 P1_MIB=512 FAT_BITS=32 FAT_SPC=8 P1_LABEL=bootfs P1_VOLID=50490301
	P2_LABEL=rootfs DEFAULT_MIB=768
	EXT_FEATURES=has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
	;;
raspbian-buster)
	TABLE=dos DISKID=0x50494604
	NO=4 P1_START=8192 P1_MIB=256 FAT_BITS=32 FAT_SPC=1 P1_LABEL=boot P1_VOLID=50490401
	P2_LABEL=rootfs DEFAULT_MIB=512
	EXT_FEATURES=has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
	;;
rpios-trixie)
	TABLE=dos DISKID=0x50494606
	NO=6 P1_START=8192 P1_MIB=512 FAT_BITS=32 FAT_SPC=8 P1_LABEL=bootfs P1_VOLID=50490601
	P2_LABEL=rootfs DEFAULT_MIB=768
	EXT_FEATURES=has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
	;;
plain)
	TABLE=dos DISKID=0x50494605
	NO=5 P1_START=2048 P1_MIB=128 FAT_BITS=32 FAT_SPC=1 P1_LABEL=boot P1_VOLID=50490501 P1_BOOTABLE=1
	P2_LABEL=rootfs DEFAULT_MIB=320
	EXT_FEATURES=has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
	;;
*)
	bad_arg "unknown flavor '$FLAVOR'"
	;;
esac
P2_UUID=5049460$NO-e4e4-4e4e-8e4e-00000000000$NO
P2_HASH_SEED=5049460$NO-4a5a-4b5b-9c5c-00000000000$NO

# The root needs room for the tree, the journal and the fill (ext4 metadata takes a few %).
MIN_ROOT_MIB=$((40 + FILL_MIB + FILL_MIB / 8))
P1_START_BYTES=$((P1_START * 512))
P1_END_MIB=$((P1_START_BYTES / MIB + P1_MIB))
TAIL_MIB=0
[ "$TABLE" = gpt ] && TAIL_MIB=1 # room for the backup GPT
if [ -z "$SIZE_MIB" ]; then
	SIZE_MIB=$DEFAULT_MIB
	if [ "$FILL_MIB" -gt 0 ]; then
		SIZE_MIB=$((DEFAULT_MIB + FILL_MIB + FILL_MIB / 8 + 8))
	fi
fi
P2_MIB=$((SIZE_MIB - P1_END_MIB - TAIL_MIB))
if [ "$P2_MIB" -lt "$MIN_ROOT_MIB" ]; then
	bad_arg "--size $SIZE_MIB is too small for '$FLAVOR': needs at least" \
		"$((P1_END_MIB + TAIL_MIB + MIN_ROOT_MIB)) MiB"
fi
P2_START_BYTES=$((P1_END_MIB * MIB))

for t in sfdisk mkfs.vfat mke2fs mcopy debugfs openssl split; do
	command -v "$t" >/dev/null 2>&1 || die "'$t' is not installed"
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/mkimage.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
BOOT=$TMP/boot
ROOT=$TMP/root
OWNERS=$TMP/owners # lines "uid gid /path" applied after mke2fs, recursively for dirs
mkdir -p "$BOOT" "$ROOT"
: >"$OWNERS"

# ---- staging helpers ---------------------------------------------------------------------------

# put TREE PATH [MODE] < CONTENT: write a file, making its directories.
put() {
	mkdir -p "$(dirname "$1$2")"
	cat >"$1$2"
	chmod "${3:-0644}" "$1$2"
}

# link TARGET PATH: a symbolic link in the root tree.
link() {
	mkdir -p "$(dirname "$ROOT$2")"
	ln -sfn "$1" "$ROOT$2"
}

# dir PATH [MODE]: a directory in the root tree.
dir() {
	mkdir -p "$ROOT$1"
	chmod "${2:-0755}" "$ROOT$1"
}

# own UID GID PATH: ownership of PATH (and all below it) in the root filesystem.
own() {
	echo "$1 $2 $3" >>"$OWNERS"
}

# elf_arm32 PATH / elf_arm64 PATH: just the ELF header of a little-endian executable, enough
# for anything that reads e_ident and e_machine to tell the architecture.
elf_arm32() {
	# e_ident: ELFCLASS32, ELFDATA2LSB, EV_CURRENT; e_type EXEC, e_machine 40 (ARM),
	# e_version 1, e_entry/phoff/shoff 0, e_flags EABI5 hard-float, e_ehsize 52,
	# e_phentsize 32, e_shentsize 40.
	printf '\177ELF\001\001\001\000\000\000\000\000\000\000\000\000' |
		put "$ROOT" "$1" 0755
	printf '\002\000\050\000\001\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000' >>"$ROOT$1"
	printf '\000\004\000\005\064\000\040\000\000\000\050\000\000\000\000\000' >>"$ROOT$1"
}

elf_arm64() {
	# ELFCLASS64, ELFDATA2LSB; e_type DYN, e_machine 183 (AArch64), e_ehsize 64,
	# e_phentsize 56, e_shentsize 64.
	printf '\177ELF\002\001\001\000\000\000\000\000\000\000\000\000' |
		put "$ROOT" "$1" 0755
	printf '\003\000\267\000\001\000\000\000' >>"$ROOT$1"
	printf '\000\000\000\000\000\000\000\000' >>"$ROOT$1" # e_entry
	printf '\000\000\000\000\000\000\000\000' >>"$ROOT$1" # e_phoff
	printf '\000\000\000\000\000\000\000\000' >>"$ROOT$1" # e_shoff
	printf '\000\000\000\000\100\000\070\000\000\000\100\000\000\000\000\000' >>"$ROOT$1"
}

# The skeleton every Debian-like root has; "skeleton usrmerge" makes /bin, /sbin and /lib links
# into /usr, as Debian has since bookworm's installs and trixie's images.
skeleton() {
	for d in boot dev etc home media mnt opt proc run srv sys usr usr/bin \
		usr/lib usr/sbin usr/share var var/cache var/lib var/log var/tmp; do
		dir "/$d"
	done
	for d in bin lib sbin; do
		if [ "${1:-}" = usrmerge ]; then
			link "usr/$d" "/$d"
		else
			dir "/$d"
		fi
	done
	dir /root 0700
	dir /tmp 1777
	chmod 1777 "$ROOT/var/tmp"
	cat <<'EOF' | put "$ROOT" /etc/hosts
127.0.0.1	localhost
::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters

EOF
}

# passwd_base / group_base / shadow_base: the system accounts of Debian.
passwd_base() {
	cat <<'EOF'
root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
bin:x:2:2:bin:/bin:/usr/sbin/nologin
sys:x:3:3:sys:/dev:/usr/sbin/nologin
sync:x:4:65534:sync:/bin:/bin/sync
games:x:5:60:games:/usr/games:/usr/sbin/nologin
man:x:6:12:man:/var/cache/man:/usr/sbin/nologin
lp:x:7:7:lp:/var/spool/lpd:/usr/sbin/nologin
mail:x:8:8:mail:/var/mail:/usr/sbin/nologin
news:x:9:9:news:/var/spool/news:/usr/sbin/nologin
uucp:x:10:10:uucp:/var/spool/uucp:/usr/sbin/nologin
proxy:x:13:13:proxy:/bin:/usr/sbin/nologin
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
backup:x:34:34:backup:/var/backups:/usr/sbin/nologin
list:x:38:38:Mailing List Manager:/var/list:/usr/sbin/nologin
irc:x:39:39:ircd:/run/ircd:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
systemd-network:x:998:998:systemd Network Management:/:/usr/sbin/nologin
messagebus:x:100:107::/nonexistent:/usr/sbin/nologin
sshd:x:105:65534::/run/sshd:/usr/sbin/nologin
EOF
}

group_base() {
	cat <<'EOF'
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
news:x:9:
uucp:x:10:
man:x:12:
proxy:x:13:
kmem:x:15:
dialout:x:20:
cdrom:x:24:
sudo:x:27:
audio:x:29:
www-data:x:33:
backup:x:34:
operator:x:37:
list:x:38:
irc:x:39:
shadow:x:42:
utmp:x:43:
video:x:44:
plugdev:x:46:
staff:x:50:
games:x:60:
users:x:100:
input:x:101:
netdev:x:102:
messagebus:x:107:
systemd-network:x:998:
nogroup:x:65534:
EOF
}

shadow_base() {
	passwd_base | awk -F: '{ printf "%s:%s:19000:0:99999:7:::\n", $1, ($1 == "root" ? "*" : "*") }'
}

# accounts [USER UID GID GECOS GROUPS]: passwd, group and shadow, with one regular user
# (member of the comma-separated supplementary GROUPS) or none.
accounts() {
	{
		passwd_base
		[ $# -eq 0 ] || echo "$1:x:$2:$3:$4:/home/$1:/bin/bash"
	} | put "$ROOT" /etc/passwd
	if [ $# -eq 0 ]; then
		group_base | put "$ROOT" /etc/group
	else
		group_base | awk -F: -v user="$1" -v groups=",$5," '
			index(groups, "," $1 ",") { $4 = ($4 == "" ? user : $4 "," user) }
			{ print $1 ":" $2 ":" $3 ":" $4 }' | put "$ROOT" /etc/group
		echo "$1:x:$3:" >>"$ROOT/etc/group"
	fi
	{
		shadow_base
		# A fixed SHA-512 crypt of the image's documented password, or USER_PW ('*': no
		# password login, as Raspberry Pi OS bookworm ships its first user).
		[ $# -eq 0 ] || echo "$1:${USER_PW:-\$6\$pIfLaSh0\$X0dQm4jw1S0oG6rY5z1mUq9tCkH3f7yPr2bLnVxJ8aW4eDcT6gKsZiN0uMhB5vA9lRjOyE3pQ7tF2wXsI8kGm1}:19000:0:99999:7:::"
	} | put "$ROOT" /etc/shadow 0640
	own 0 42 /etc/shadow
	if [ $# -gt 0 ]; then
		dir "/home/$1" 0755
		cat <<'EOF' | put "$ROOT" "/home/$1/.bashrc"
# ~/.bashrc: executed by bash(1) for non-login shells.
[ -z "$PS1" ] && return
EOF
		own "$2" "$3" "/home/$1"
	fi
}

fstab() {
	put "$ROOT" /etc/fstab
}

# baked_identity MACHINE_ID: what a built Raspberry Pi OS image carries that every card would
# share unless changed: a machine-id with D-Bus's copy of it (not a link), SSH host keys (fake
# but well-formed), and raspberrypi-sys-mods' unit that remakes the keys at first boot.
baked_identity() {
	echo "$1" | put "$ROOT" /etc/machine-id 0444
	echo "$1" | put "$ROOT" /var/lib/dbus/machine-id 0444
	cat <<'EOF' | put "$ROOT" /etc/ssh/ssh_host_ed25519_key 0600
-----BEGIN OPENSSH PRIVATE KEY-----
cGlmbGFzaCB0ZXN0IGltYWdlOiBub3QgYSByZWFsIGtleSwgYmFrZWQgc28gdGhhdCB0aGUg
dGVzdHMgc2VlIHdoYXQgZXZlcnkgY2FyZCB3b3VsZCBzaGFyZQo=
-----END OPENSSH PRIVATE KEY-----
EOF
	echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHBpZmxhc2gtdGVzdC1pbWFnZS1ob3N0LWtleS0wMQ root@raspberrypi" |
		put "$ROOT" /etc/ssh/ssh_host_ed25519_key.pub 0644
	cat <<'EOF' | put "$ROOT" /lib/systemd/system/regenerate_ssh_host_keys.service
[Unit]
Description=Regenerate SSH host keys
Before=ssh.service
ConditionFileIsExecutable=/usr/bin/ssh-keygen

[Service]
Type=oneshot
ExecStartPre=-/bin/dd if=/dev/hwrng of=/dev/urandom count=1 bs=4096
ExecStart=/bin/sh -c "/bin/rm -f -v /etc/ssh/ssh_host_*_key*"
ExecStart=/usr/bin/ssh-keygen -A -v
ExecStartPost=/bin/systemctl disable regenerate_ssh_host_keys

[Install]
WantedBy=multi-user.target
EOF
	link /lib/systemd/system/regenerate_ssh_host_keys.service \
		/etc/systemd/system/multi-user.target.wants/regenerate_ssh_host_keys.service
}

# rpi_sys_mods: raspberrypi-sys-mods' first boot (firstboot, run as init= once) and its
# init_config, which applies custom.toml from the boot partition.
rpi_sys_mods() {
	cat <<'EOF' | put "$ROOT" /usr/lib/raspberrypi-sys-mods/firstboot 0755
#!/bin/sh
# Runs once, as init= on the first boot: resizes the root, applies custom.toml through
# init_config, removes itself from cmdline.txt and reboots.
EOF
	cat <<'EOF' | put "$ROOT" /usr/lib/raspberrypi-sys-mods/init_config 0755
#!/usr/bin/python3
# Applies /boot/firmware/custom.toml: [system] hostname, [user] name/password,
# [ssh] enabled/authorized_keys, [wlan], [locale].
EOF
}


# unit NAME [WANTEDBY] [UNIT_LINES] [EXEC]: a unit file in /lib/systemd/system that
# `systemctl enable` would link into WANTEDBY.wants (default multi-user.target).
unit() {
	{
		echo "[Unit]"
		echo "Description=$1 (piflash test image)"
		[ -z "${3:-}" ] || printf '%s\n' "$3"
		echo
		echo "[Service]"
		echo "ExecStart=${4:-/bin/true}"
		echo
		echo "[Install]"
		echo "WantedBy=${2:-multi-user.target}"
		[ "$1" != ssh.service ] || echo "Alias=sshd.service"
	} | put "$ROOT" "/lib/systemd/system/$1"
}

# enable NAME [WANTEDBY]: the links `systemctl enable NAME` makes.
enable() {
	link "/lib/systemd/system/$1" "/etc/systemd/system/${2:-multi-user.target}.wants/$1"
	if [ "$1" = ssh.service ]; then
		link /lib/systemd/system/ssh.service /etc/systemd/system/sshd.service
	fi
}

# disable NAME [WANTEDBY]: remove what enable made.
disable() {
	rm -f "$ROOT/etc/systemd/system/${2:-multi-user.target}.wants/$1"
}

# mask NAME: the link `systemctl mask NAME` makes.
mask() {
	link /dev/null "/etc/systemd/system/$1"
}

# exe PATH: an executable stand-in (detection only asks whether it is there).
exe() {
	printf '#!/bin/sh\n' | put "$ROOT" "$1" 0755
}

# sshd [enabled]: OpenSSH's server and its unit, enabled or not.
sshd() {
	exe /usr/sbin/sshd
	unit ssh.service
	[ "${1:-}" != enabled ] || enable ssh.service
}

# sshswitch DIR: raspberrypi-sys-mods' unit that turns sshd on when DIR/ssh exists.
sshswitch() {
	unit sshswitch.service multi-user.target \
		"ConditionPathExistsGlob=$1/ssh{,.txt}
After=regenerate_ssh_host_keys.service" \
		"/bin/sh -c \"systemctl enable --now ssh && rm -f $1/ssh ; rm -f $1/ssh.txt\""
	enable sshswitch.service
}

# cloud_init_units: cloud-init's four stages, enabled as its package does.
cloud_init_units() {
	for u in cloud-init-local cloud-init cloud-config cloud-final; do
		unit "$u.service" cloud-init.target
		enable "$u.service" cloud-init.target
	done
}

# ifupdown_base: ifupdown with only lo configured and interfaces.d sourced.
ifupdown_base() {
	exe /sbin/ifup
	unit networking.service
	cat <<'EOF' | put "$ROOT" /etc/network/interfaces
# interfaces(5) file used by ifup(8) and ifdown(8)
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback
EOF
	dir /etc/network/interfaces.d
}

# debianize: a plain Debian name — no rpi-issue, no HypriotOS or Ubuntu in os-release.
debianize() {
	rm -f "$ROOT/etc/rpi-issue" "$BOOT/issue.txt" "$ROOT/usr/lib/os-release"
	rm -f "$ROOT/etc/os-release"
	cat <<'EOF' | put "$ROOT" /etc/os-release
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
EOF
}

set_hostname() {
	echo "$1" | put "$ROOT" /etc/hostname
	printf '127.0.1.1\t%s\n' "$1" >>"$ROOT/etc/hosts"
}

# ---- flavors -----------------------------------------------------------------------------------

flavor_hypriot() {
	skeleton
	cat <<'EOF' | put "$BOOT" /cmdline.txt
dwc_otg.lpm_enable=0 console=serial0,115200 console=tty1 root=/dev/mmcblk0p2 rootfstype=ext4 cgroup_enable=cpuset cgroup_memory=1 swapaccount=1 elevator=deadline fsck.repair=yes rootwait
EOF
	cat <<'EOF' | put "$BOOT" /config.txt
hdmi_force_hotplug=1
enable_uart=0

# camera settings, see http://elinux.org/RPiconfig#Camera
start_x=1
disable_camera_led=1
gpu_mem=128
EOF
	cat <<'EOF' | put "$BOOT" /user-data
#cloud-config
# vim: syntax=yaml
#

# The current version of cloud-init in the Hypriot rpi-64 is 0.7.9
# When dealing with cloud-init, it is SUPER important to know the version
# I have wasted many hours creating servers to find out the module I was trying to use wasn't in the cloud-init version I had
# Documentation: http://cloudinit.readthedocs.io/en/0.7.9/index.html

# Set your hostname here, the manage_etc_hosts will update the hosts file entries as well
hostname: black-pearl
manage_etc_hosts: true

# You could modify this for your own user information
users:
  - name: pirate
    gecos: "Hypriot Pirate"
    sudo: ALL=(ALL) NOPASSWD:ALL
    shell: /bin/bash
    groups: users,docker,video,input
    plain_text_passwd: hypriot
    lock_passwd: false
    ssh_pwauth: true
    chpasswd: { expire: false }

# # Set the locale of the system
# locale: "en_US.UTF-8"

# # Set the timezone
# # Value of 'timezone' must exist in /usr/share/zoneinfo
# timezone: "America/Los_Angeles"

# # Update apt packages on first boot
# package_update: true
# package_upgrade: true
# package_reboot_if_required: true
package_upgrade: false

# # Install any additional apt packages you need here
# packages:
#  - ntp

# These commands will be ran once on first boot only
runcmd:
  # Pickup the hostname changes
  - 'systemctl restart avahi-daemon'
EOF
	cat <<'EOF' | put "$BOOT" /meta-data
instance-id: pirate001
local-hostname: black-pearl
EOF
	cat <<'EOF' | put "$BOOT" /network-config
version: 1
config:
  - type: physical
    name: eth0
    subnets:
      - type: dhcp
EOF
	# HypriotOS v1.12 is built on Raspbian buster but keeps cloud-init 0.7.9.
	cat <<'EOF' | put "$ROOT" /etc/os-release
PRETTY_NAME="Raspbian GNU/Linux 10 (buster)"
NAME="Raspbian GNU/Linux"
VERSION_ID="10"
VERSION="10 (buster)"
VERSION_CODENAME=buster
ID=raspbian
ID_LIKE=debian
HOME_URL="http://www.raspbian.org/"
SUPPORT_URL="http://www.raspbian.org/RaspbianForums"
BUG_REPORT_URL="http://www.raspbian.org/RaspbianBugs"
HYPRIOT_OS="HypriotOS/armhf"
HYPRIOT_OS_VERSION="v1.12.3"
HYPRIOT_DEVICE="Raspberry Pi"
HYPRIOT_IMAGE_VERSION="v1.12.3"
EOF
	cat <<'EOF' | fstab
proc /proc proc defaults 0 0
/dev/mmcblk0p1 /boot vfat defaults 0 0
/dev/mmcblk0p2 / ext4 defaults,noatime 0 1
EOF
	set_hostname black-pearl
	accounts pirate 1000 1000 "Hypriot Pirate,,," sudo,users,video,input
	elf_arm32 /bin/sh
	elf_arm32 /bin/bash
	cat <<'EOF' | put "$ROOT" /usr/bin/cloud-init 0755
#!/usr/bin/python3
# EASY-INSTALL-ENTRY-SCRIPT: 'cloud-init==0.7.9','console_scripts','cloud-init'
__requires__ = 'cloud-init==0.7.9'
import sys
from pkg_resources import load_entry_point

if __name__ == '__main__':
    sys.exit(load_entry_point('cloud-init==0.7.9', 'console_scripts', 'cloud-init')())
EOF
	cat <<'EOF' | put "$ROOT" /usr/lib/python3/dist-packages/cloudinit/version.py
# vi: ts=4 expandtab
#
# Copyright (C) 2012 Yahoo! Inc.
#
# This file is part of cloud-init. See LICENSE file for license information.

__VERSION__ = "0.7.9"

FEATURES = [
    # supports network config version 1
    'NETWORK_CONFIG_V1',
    # supports network config version 2 (netplan)
    'NETWORK_CONFIG_V2',
]


def version_string():
    return __VERSION__

# vi: ts=4 expandtab
EOF
	cat <<'EOF' | put "$ROOT" /etc/cloud/cloud.cfg
# The top level settings are used as module
# and system configuration.

# A set of users which may be applied and/or used by various modules
# when a 'default' entry is found it will reference the 'default_user'
# from the distro configuration specified below
users:
   - default

# If this is set, 'root' will not be able to ssh in and they
# will get a message to login instead as the above $user (debian)
disable_root: true

# This will cause the set+update hostname module to not operate (if true)
preserve_hostname: false

# Example datasource config
# datasource:
#    Ec2:
#      metadata_urls: [ 'blah.com' ]
#      timeout: 5 # (defaults to 50 seconds)
#      max_wait: 10 # (defaults to 120 seconds)
datasource_list: [ NoCloud, None ]

# The modules that run in the 'init' stage
cloud_init_modules:
 - migrator
 - seed_random
 - bootcmd
 - write-files
 - growpart
 - resizefs
 - disk_setup
 - mounts
 - set_hostname
 - update_hostname
 - update_etc_hosts
 - ca-certs
 - rsyslog
 - users-groups
 - ssh

# The modules that run in the 'config' stage
cloud_config_modules:
 - emit_upstart
 - ssh-import-id
 - locale
 - set-passwords
 - grub-dpkg
 - apt-pipelining
 - apt-configure
 - ntp
 - timezone
 - disable-ec2-metadata
 - runcmd
 - byobu

# The modules that run in the 'final' stage
cloud_final_modules:
 - package-update-upgrade-install
 - fan
 - puppet
 - chef
 - salt-minion
 - mcollective
 - rightscale_userdata
 - scripts-vendor
 - scripts-per-once
 - scripts-per-boot
 - scripts-per-instance
 - scripts-user
 - ssh-authkey-fingerprints
 - keys-to-console
 - phone-home
 - final-message
 - power-state-change

# System and/or distro specific settings
# (not accessible to handlers/transforms)
system_info:
   # This will affect which distro class gets used
   distro: debian
   # Default user name + that default users groups (if added/used)
   default_user:
     name: pirate
     lock_passwd: True
     gecos: Hypriot Pirate
     groups: [adm, audio, cdrom, dialout, dip, floppy, netdev, plugdev, sudo, video]
     sudo: ["ALL=(ALL) NOPASSWD:ALL"]
     shell: /bin/bash
   # Other config here will be given to the distro class and/or path classes
   paths:
      cloud_dir: /var/lib/cloud/
      templates_dir: /etc/cloud/templates/
      upstart_dir: /etc/init/
   package_mirrors:
     - arches: [default]
       failsafe:
         primary: http://deb.debian.org/debian
         security: http://security.debian.org/
   ssh_svcname: ssh
EOF
	# The seed lives on the FAT; cloud-init reaches it through these links.
	for f in user-data meta-data network-config; do
		link "/boot/$f" "/var/lib/cloud/seed/nocloud-net/$f"
	done
	link /dev/null /etc/systemd/system/dhcpcd.service
	cat <<'EOF' | put "$ROOT" /etc/dhcpcd.conf
# A sample configuration for dhcpcd.
# See dhcpcd.conf(5) for details.

# Inform the DHCP server of our hostname for DDNS.
hostname

# Use the hardware address of the interface for the Client ID.
clientid

# Persist interface configuration when dhcpcd exits.
persistent

# Rapid commit support.
option rapid_commit

# A list of options to request from the DHCP server.
option domain_name_servers, domain_name, domain_search, host_name
option classless_static_routes
option ntp_servers
option interface_mtu

# A ServerID is required by RFC2131.
require dhcp_server_identifier

# Generate Stable Private IPv6 Addresses instead of hardware based ones
slaac private

# dhcpcd is masked on HypriotOS: eth0 is configured by cloud-init (network-config).
denyinterfaces eth0
EOF
	# HypriotOS enables sshd; cloud-init renders eth0 for ifupdown (ENI).
	sshd enabled
	cloud_init_units
	ifupdown_base
	enable networking.service
	# wpasupplicant, with its ifupdown hook that starts it for a stanza's wpa-conf line.
	exe /sbin/wpa_supplicant
	exe /etc/network/if-pre-up.d/wpasupplicant
}

flavor_ubuntu() {
	skeleton
	dir /boot/firmware
	cat <<'EOF' | put "$BOOT" /config.txt
[all]
kernel=vmlinuz
cmdline=cmdline.txt
initramfs initrd.img followkernel

[pi4]
max_framebuffers=2
arm_boost=1

[all]
# Enable the audio output, I2C and SPI interfaces on the GPIO header. As these
# parameters related to the base device-tree they must appear *before* any
# other dtoverlay= specification
dtparam=audio=on
dtparam=i2c_arm=on
dtparam=spi=on

# Comment out the following line if the edges of the desktop appear outside
# the edges of your display
disable_overscan=1

# Enable the KMS ("full" KMS) graphics overlay, leaving GPU memory as the
# default (the kernel is in control of graphics memory with full KMS)
dtoverlay=vc4-kms-v3d

# Autoload overlays for any recognized cameras or displays that are attached
# to the CSI/DSI ports. Please note this is for libcamera support, *not* for
# the legacy camera stack
camera_auto_detect=1
display_auto_detect=1

# Config settings specific to arm64
arm_64bit=1
dtoverlay=dwc2
EOF
	cat <<'EOF' | put "$BOOT" /cmdline.txt
console=serial0,115200 dwc_otg.lpm_enable=0 console=tty1 root=LABEL=writable rootfstype=ext4 rootwait fixrtc quiet splash
EOF
	cat <<'EOF' | put "$BOOT" /user-data
#cloud-config

# This is the user-data configuration file for cloud-init. By default this sets
# up an initial user called "ubuntu" with password "ubuntu", which must be
# changed at first login. However, many additional actions can be initiated on
# first boot from this file. The cloud-init documentation has more details:
#
# https://cloudinit.readthedocs.io/
#
# Please note that the YAML format employed by this file is sensitive to
# differences in whitespace; if you are editing this file in an editor (like
# Notepad) which uses literal tabs, take care to only use spaces for
# indentation. See the following link for more details:
#
# https://en.wikipedia.org/wiki/YAML
#
# Some additional examples are provided in comments below the default
# configuration.

# On first boot, set the (default) ubuntu user's password to "ubuntu" and
# expire user passwords
chpasswd:
  expire: true
  list:
  - ubuntu:ubuntu

# Enable password authentication with the SSH daemon
ssh_pwauth: true

## Update apt database and upgrade packages on first boot
#package_update: true
#package_upgrade: true

## Install additional packages on first boot
#packages:
#- pwgen
#- pastebinit
#- [libpython2.7, 2.7.3-0ubuntu3.1]

## Run arbitrary commands at rc.local like time
#runcmd:
#- [ ls, -l, / ]
#- [ sh, -xc, "echo $(date) ': hello world!'" ]
EOF
	cat <<'EOF' | put "$BOOT" /meta-data
# This is the meta-data configuration file for cloud-init. Please refer to the
# cloud-init documentation for more information:
#
# https://cloudinit.readthedocs.io/

# Set the datasource mode to "local". This ensures that user-data is acted upon
# prior to bringing up the network (because everything about the datasource is
# assumed to be local). If you wish to use an HTTP datasource instead, you can
# change this to "net" or override it on the kernel cmdline (see README).
dsmode: local

# Specifies the "unique" identifier of the instance. Typically in cloud-init
# this is generated by the owning cloud and is actually unique (to some
# degree). Here our data-source is local, so this is just a fixed string.
# Warning: changing this will cause cloud-init to assume it is running on a
# "new" instance, and to go through first time setup again (the value is
# compared to a cached copy).
instance-id: cloud-image
EOF
	cat <<'EOF' | put "$BOOT" /network-config
# This file contains a netplan-compatible configuration which cloud-init will
# apply on first-boot (note: it will *not* update the config after the first
# boot). Please refer to the cloud-init documentation and the netplan reference
# for full details:
#
# https://netplan.io/reference
# https://cloudinit.readthedocs.io/en/latest/topics/network-config.html
# https://cloudinit.readthedocs.io/en/latest/topics/network-config-format-v2.html
#
# Please note that the YAML format employed by this file is sensitive to
# differences in whitespace; if you are editing this file in an editor (like
# Notepad) which uses literal tabs, take care to only use spaces for
# indentation. See the following link for more details:
#
# https://en.wikipedia.org/wiki/YAML

version: 2
ethernets:
  eth0:
    dhcp4: true
    optional: true
EOF
	cat <<'EOF' | put "$ROOT" /etc/os-release
PRETTY_NAME="Ubuntu 22.04.5 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.5 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
HOME_URL="https://www.ubuntu.com/"
SUPPORT_URL="https://help.ubuntu.com/"
BUG_REPORT_URL="https://bugs.launchpad.net/ubuntu/"
PRIVACY_POLICY_URL="https://www.ubuntu.com/legal/terms-and-policies/privacy-policy"
UBUNTU_CODENAME=jammy
EOF
	cat <<'EOF' | fstab
LABEL=writable	/	ext4	discard,errors=remount-ro	0 1
LABEL=system-boot       /boot/firmware  vfat    defaults        0       1
EOF
	set_hostname ubuntu
	accounts
	elf_arm64 /bin/sh
	elf_arm64 /bin/bash
	cat <<'EOF' | put "$ROOT" /usr/bin/cloud-init 0755
#!/usr/bin/python3
# -*- coding: utf-8 -*-
import re
import sys
from cloudinit.cmd.main import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\.pyw|\.exe)?$', '', sys.argv[0])
    sys.exit(main())
EOF
	cat <<'EOF' | put "$ROOT" /usr/lib/python3/dist-packages/cloudinit/version.py
# Copyright (C) 2012 Yahoo! Inc.
#
# This file is part of cloud-init. See LICENSE file for license information.

__VERSION__ = "22.4.2"
_PACKAGED_VERSION = "22.4.2-0ubuntu0~22.04.1"

FEATURES = [
    # supports network config version 1
    "NETWORK_CONFIG_V1",
    # supports network config version 2 (netplan)
    "NETWORK_CONFIG_V2",
]


def version_string():
    """Extract a version string from cloud-init."""
    if not _PACKAGED_VERSION.startswith("@@"):
        return _PACKAGED_VERSION
    return __VERSION__


# vi: ts=4 expandtab
EOF
	cat <<'EOF' | put "$ROOT" /etc/cloud/cloud.cfg
# The top level settings are used as module
# and base configuration.

# A set of users which may be applied and/or used by various modules
# when a 'default' entry is found it will reference the 'default_user'
# from the distro configuration specified below
users:
   - default

# If this is set, 'root' will not be able to ssh in and they
# will get a message to login instead as the default $user
disable_root: true

# This will cause the set+update hostname module to not operate (if true)
preserve_hostname: false

# If you use datasource_list array, keep array items in a single line.
# If you use multi line array, ds-identify script won't read array items.
# Example datasource config
# datasource:
#    Ec2:
#      metadata_urls: [ 'blah.com' ]
#      timeout: 5 # (defaults to 50 seconds)
#      max_wait: 10 # (defaults to 120 seconds)

# The modules that run in the 'init' stage
cloud_init_modules:
 - migrator
 - seed_random
 - bootcmd
 - write-files
 - growpart
 - resizefs
 - disk_setup
 - mounts
 - set_hostname
 - update_hostname
 - update_etc_hosts
 - ca-certs
 - rsyslog
 - users-groups
 - ssh

# The modules that run in the 'config' stage
cloud_config_modules:
 - wireguard
 - snap
 - ubuntu_autoinstall
 - ssh-import-id
 - keyboard
 - locale
 - set-passwords
 - grub-dpkg
 - apt-pipelining
 - apt-configure
 - ubuntu-advantage
 - ntp
 - timezone
 - disable-ec2-metadata
 - runcmd
 - byobu

# The modules that run in the 'final' stage
cloud_final_modules:
 - package-update-upgrade-install
 - fan
 - landscape
 - lxd
 - ubuntu-drivers
 - write-files-deferred
 - puppet
 - chef
 - mcollective
 - salt-minion
 - reset_rmc
 - refresh_rmc_and_interface
 - rightscale_userdata
 - scripts-vendor
 - scripts-per-once
 - scripts-per-boot
 - scripts-per-instance
 - scripts-user
 - ssh-authkey-fingerprints
 - keys-to-console
 - install-hotplug
 - phone-home
 - final-message
 - power-state-change

# System and/or distro specific settings
# (not accessible to handlers/transforms)
system_info:
   # This will affect which distro class gets used
   distro: ubuntu
   # Default user name + that default users groups (if added/used)
   default_user:
     name: ubuntu
     lock_passwd: True
     gecos: Ubuntu
     groups: [adm, audio, cdrom, dialout, dip, floppy, lxd, netdev, plugdev, sudo, video]
     sudo: ["ALL=(ALL) NOPASSWD:ALL"]
     shell: /bin/bash
   network:
     renderers: ['netplan', 'eni', 'sysconfig']
     activators: ['netplan', 'eni', 'network-manager', 'networkd']
   # Automatically discover the best ntp_client
   ntp_client: auto
   # Other config here will be given to the distro class and/or path classes
   paths:
      cloud_dir: /var/lib/cloud/
      templates_dir: /etc/cloud/templates/
   package_mirrors:
     - arches: [arm64, armel, armhf]
       failsafe:
         primary: http://ports.ubuntu.com/ubuntu-ports
         security: http://ports.ubuntu.com/ubuntu-ports
   ssh_svcname: ssh
EOF
	cat <<'EOF' | put "$ROOT" /etc/cloud/cloud.cfg.d/99-fake_cloud.cfg
# configure cloud-init for NoCloud
datasource_list: [ NoCloud, None ]
datasource:
  NoCloud:
    fs_label: system-boot
EOF
	cat <<'EOF' | put "$ROOT" /etc/netplan/50-cloud-init.yaml 0600
# This file is generated from information provided by the datasource.  Changes
# to it will not persist across an instance reboot.  To disable cloud-init's
# network configuration capabilities, write a file
# /etc/cloud/cloud.cfg.d/99-disable-network-config.cfg with the following:
# network: {config: disabled}
network:
    ethernets:
        eth0:
            dhcp4: true
            optional: true
    version: 2
EOF
	dir /var/lib/cloud
	# Ubuntu enables sshd; cloud-init renders netplan.
	sshd enabled
	cloud_init_units
	exe /usr/sbin/netplan
}

flavor_rpios-bookworm() {
	skeleton
	dir /boot/firmware
	local partuuid=${DISKID#0x}
	cat <<EOF | put "$BOOT" /cmdline.txt
console=serial0,115200 console=tty1 root=PARTUUID=$partuuid-02 rootfstype=ext4 fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot splash plymouth.ignore-serial-consoles
EOF
	cat <<'EOF' | put "$BOOT" /config.txt
# For more options and information see
# http://rptl.io/configtxt
# Some settings may impact device functionality. See link above for details

# Uncomment some or all of these to enable the optional hardware interfaces
#dtparam=i2c_arm=on
#dtparam=i2s=on
#dtparam=spi=on

# Enable audio (loads snd_bcm2835)
dtparam=audio=on

# Additional overlays and parameters are documented
# /boot/firmware/overlays/README

# Automatically load overlays for detected cameras
camera_auto_detect=1

# Automatically load overlays for detected DSI displays
display_auto_detect=1

# Automatically load initramfs files, if found
auto_initramfs=1

# Enable DRM VC4 V3D driver
dtoverlay=vc4-kms-v3d
max_framebuffers=2

# Don't have the firmware create an initial video= setting in cmdline.txt.
# Use the kernel's default instead.
disable_fw_kms_setup=1

# Run in 64-bit mode
arm_64bit=1

# Disable compensation for displays with overscan
disable_overscan=1

# Run as fast as firmware / board allows
arm_boost=1

[cm4]
# Enable host mode on the 2711 built-in XHCI USB controller.
# This line should be removed if the legacy DWC2 controller is required
# (e.g. for USB device mode) or if USB support is not required.
otg_mode=1

[cm5]
dtoverlay=dwc2,dr_mode=host

[all]
EOF
	cat <<'EOF' | put "$BOOT" /issue.txt
Raspberry Pi reference 2024-11-19
Generated using pi-gen, https://github.com/RPi-Distro/pi-gen, 891df1e21ed2b6099a2e6a13e26c91dea44b34d4, stage2
EOF
	cp "$BOOT/issue.txt" "$ROOT/etc/rpi-issue"
	cat <<'EOF' | put "$ROOT" /etc/os-release
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
EOF
	cat <<EOF | fstab
proc            /proc           proc    defaults          0       0
PARTUUID=$partuuid-01  /boot/firmware  vfat    defaults          0       2
PARTUUID=$partuuid-02  /               ext4    defaults,noatime  0       1
EOF
	set_hostname raspberrypi
	# pi-gen makes the first user and disables its password; userconf-pi renames it (home,
	# group and all) at first boot to what userconf.txt or custom.toml says.
	USER_PW='*' accounts pi 1000 1000 ",,," adm,dialout,cdrom,sudo,audio,video,plugdev,games,users,input,netdev
	baked_identity 5049460350494603504946035049460f
	rpi_sys_mods
	cat <<'EOF' | put "$ROOT" /lib/systemd/system/userconfig.service
[Unit]
Description=User configuration dialog
After=systemd-user-sessions.service
Before=getty@tty1.service

[Service]
Type=oneshot
ExecStart=/usr/lib/userconf-pi/userconf-service

[Install]
WantedBy=multi-user.target
EOF
	link /lib/systemd/system/userconfig.service \
		/etc/systemd/system/multi-user.target.wants/userconfig.service
	elf_arm64 /bin/sh
	elf_arm64 /bin/bash
	elf_arm64 /usr/sbin/NetworkManager
	cat <<'EOF' | put "$ROOT" /etc/NetworkManager/NetworkManager.conf
[main]
plugins=ifupdown,keyfile

[ifupdown]
managed=false
EOF
	dir /etc/NetworkManager/system-connections 0700
	dir /etc/NetworkManager/conf.d
	unit NetworkManager.service
	enable NetworkManager.service
	cat <<'EOF' | put "$ROOT" /usr/lib/userconf-pi/userconf 0755
#!/bin/sh -e

# Called by the first-boot service: renames the first user and sets the password
# read from /boot/firmware/userconf.txt (name:encrypted-password).
if [ -n "${SUDO_USER}" ] || [ "$(id -u)" -ne 0 ]; then
  echo "$0 must be run as root"
  exit 1
fi
EOF
	sshd
	sshswitch /boot/firmware
}

flavor_rpios-trixie() {
	skeleton usrmerge
	dir /boot/firmware
	local partuuid=${DISKID#0x}
	cat <<EOF | put "$BOOT" /cmdline.txt
console=serial0,115200 console=tty1 root=PARTUUID=$partuuid-02 rootfstype=ext4 fsck.repair=yes rootwait quiet splash plymouth.ignore-serial-consoles
EOF
	cat <<'EOF' | put "$BOOT" /config.txt
# For more options and information see
# http://rptl.io/configtxt
# Some settings may impact device functionality. See link above for details

# Enable audio (loads snd_bcm2835)
dtparam=audio=on

# Automatically load overlays for detected cameras
camera_auto_detect=1

# Automatically load overlays for detected DSI displays
display_auto_detect=1

# Automatically load initramfs files, if found
auto_initramfs=1

# Enable DRM VC4 V3D driver
dtoverlay=vc4-kms-v3d
max_framebuffers=2

# Don't have the firmware create an initial video= setting in cmdline.txt.
# Use the kernel's default instead.
disable_fw_kms_setup=1

# Run in 64-bit mode
arm_64bit=1

# Disable compensation for displays with overscan
disable_overscan=1

# Run as fast as firmware / board allows
arm_boost=1

[all]
EOF
	cat <<'EOF' | put "$BOOT" /issue.txt
Raspberry Pi reference 2025-10-01
Generated using pi-gen, https://github.com/RPi-Distro/pi-gen, 5e2e3b3d8d2e2d0b8a9e1c5f7a3d6b4c2e1f0a9b, stage2
EOF
	cp "$BOOT/issue.txt" "$ROOT/etc/rpi-issue"
	# The seed cloud-init reads (NoCloud, found by the label of this partition).
	cat <<'EOF' | put "$BOOT" /user-data
#cloud-config
# This is the user-data configuration file for cloud-init. See
# https://cloudinit.readthedocs.io/ and the Raspberry Pi documentation.

hostname: raspberrypi
manage_etc_hosts: true

# A users: list here replaces the image's (/etc/cloud/cloud.cfg.d): give each user whole.
users:
  - name: pi
    groups: users,adm,dialout,audio,netdev,video,plugdev,cdrom,games,input,gpio,spi,i2c,render,sudo
    shell: /bin/bash
    lock_passwd: true
    sudo: ALL=(ALL) NOPASSWD:ALL

enable_ssh: false
EOF
	cat <<'EOF' | put "$BOOT" /meta-data
instance-id: rpios-image
dsmode: local
EOF
	cat <<'EOF' | put "$BOOT" /network-config
# netplan-style network configuration (version 2); netplan hands every device to
# NetworkManager on Raspberry Pi OS.
network:
  version: 2
  ethernets:
    eth0:
      dhcp4: true
      optional: true
EOF
	# Debian 13 keeps os-release in /usr/lib; /etc/os-release is a link.
	cat <<'EOF' | put "$ROOT" /usr/lib/os-release
PRETTY_NAME="Debian GNU/Linux 13 (trixie)"
NAME="Debian GNU/Linux"
VERSION_ID="13"
VERSION="13 (trixie)"
VERSION_CODENAME=trixie
DEBIAN_VERSION_FULL=13.1
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
EOF
	link ../usr/lib/os-release /etc/os-release
	cat <<EOF | fstab
proc            /proc           proc    defaults          0       0
PARTUUID=$partuuid-01  /boot/firmware  vfat    defaults          0       2
PARTUUID=$partuuid-02  /               ext4    defaults,noatime  0       1
EOF
	set_hostname raspberrypi
	accounts
	baked_identity 5049460650494606504946065049460f
	# usrmerge: /bin/sh -> /usr/bin/sh -> dash.
	elf_arm64 /usr/bin/dash
	link dash /usr/bin/sh
	elf_arm64 /usr/bin/bash
	elf_arm64 /usr/sbin/NetworkManager
	cat <<'EOF' | put "$ROOT" /etc/NetworkManager/NetworkManager.conf
[main]
plugins=ifupdown,keyfile

[ifupdown]
managed=false
EOF
	dir /etc/NetworkManager/system-connections 0700
	unit NetworkManager.service
	enable NetworkManager.service
	cat <<'EOF' | put "$ROOT" /usr/lib/netplan/00-network-manager-all.yaml
# Let NetworkManager manage all devices on this system.
network:
  version: 2
  renderer: NetworkManager
EOF
	dir /etc/netplan
	cat <<'EOF' | put "$ROOT" /usr/bin/cloud-init 0755
#!/usr/bin/python3
import re
import sys
from cloudinit.cmd.main import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\.pyw|\.exe)?$', '', sys.argv[0])
    sys.exit(main())
EOF
	cat <<'EOF' | put "$ROOT" /usr/lib/python3/dist-packages/cloudinit/version.py
# Copyright (C) 2012 Yahoo! Inc.
#
# This file is part of cloud-init. See LICENSE file for license information.

__VERSION__ = "25.1.4"
_PACKAGED_VERSION = "25.1.4-1"

FEATURES = [
    # supports network config version 1
    "NETWORK_CONFIG_V1",
    # supports network config version 2 (netplan)
    "NETWORK_CONFIG_V2",
]


def version_string():
    """Extract a version string from cloud-init."""
    if not _PACKAGED_VERSION.startswith("@@"):
        return _PACKAGED_VERSION
    return __VERSION__
EOF
	cat <<'EOF' | put "$ROOT" /etc/cloud/cloud.cfg
# The top level settings are used as module and base configuration.
# A set of users which may be applied and/or used by various modules
# when a 'default' entry is found it will reference the 'default_user'
# from the distro configuration specified below
users:
   - default

# If this is set, 'root' will not be able to ssh in and they
# will get a message to login instead as the default $user
disable_root: true

# This will cause the set+update hostname module to not operate (if true)
preserve_hostname: false

# The modules that run in the 'init' stage
cloud_init_modules:
 - seed_random
 - bootcmd
 - write_files
 - growpart
 - resizefs
 - disk_setup
 - mounts
 - set_hostname
 - update_hostname
 - update_etc_hosts
 - ca_certs
 - rsyslog
 - users_groups
 - ssh
 - set_passwords

# The modules that run in the 'config' stage
cloud_config_modules:
 - ssh_import_id
 - keyboard
 - locale
 - apt_pipelining
 - apt_configure
 - ntp
 - timezone
 - disable_ec2_metadata
 - runcmd

# The modules that run in the 'final' stage
cloud_final_modules:
 - package_update_upgrade_install
 - write_files_deferred
 - scripts_vendor
 - scripts_per_once
 - scripts_per_boot
 - scripts_per_instance
 - scripts_user
 - ssh_authkey_fingerprints
 - keys_to_console
 - install_hotplug
 - phone_home
 - final_message
 - power_state_change

# System and/or distro specific settings
# (not accessible to handlers/transforms)
system_info:
   # This will affect which distro class gets used
   distro: debian
   # Default user name + that default users groups (if added/used)
   default_user:
     name: debian
     lock_passwd: True
     gecos: Debian
     groups: [adm, audio, cdrom, dialout, dip, floppy, plugdev, sudo, video]
     sudo: ["ALL=(ALL) NOPASSWD:ALL"]
     shell: /bin/bash
   # Other config here will be given to the distro class and/or path classes
   paths:
      cloud_dir: /var/lib/cloud/
      templates_dir: /etc/cloud/templates/
   package_mirrors:
     - arches: [default]
       failsafe:
         primary: https://deb.debian.org/debian
         security: https://deb.debian.org/debian-security
   ssh_svcname: ssh
EOF
	# Raspberry Pi OS: its user as a users: list with no default, the seed on the FAT by
	# label, and the baked host keys kept (regenerate_ssh_host_keys makes fresh ones).
	cat <<'EOF' | put "$ROOT" /etc/cloud/cloud.cfg.d/10_raspberry-pi-user.cfg
# The first user of Raspberry Pi OS. A users: list in user-data replaces this one.
users:
  - name: pi
    groups: users,adm,dialout,audio,netdev,video,plugdev,cdrom,games,input,gpio,spi,i2c,render,sudo
    shell: /bin/bash
    lock_passwd: true
    sudo: ALL=(ALL) NOPASSWD:ALL
EOF
	cat <<'EOF' | put "$ROOT" /etc/cloud/cloud.cfg.d/99_raspberry-pi.cfg
# Raspberry Pi OS reads its NoCloud seed from the root of the boot partition.
datasource_list: [ NoCloud, None ]
datasource:
  NoCloud:
    fs_label: bootfs

# Keep the host keys of the image: regenerate_ssh_host_keys.service makes new ones.
ssh_deletekeys: false
EOF
	dir /var/lib/cloud
	# sshd stays off until sshswitch finds /boot/firmware/ssh; netplan hands devices to NM.
	sshd
	sshswitch /boot/firmware
	cloud_init_units
	exe /usr/sbin/netplan
}

flavor_raspbian-buster() {
	skeleton
	local partuuid=${DISKID#0x}
	cat <<EOF | put "$BOOT" /cmdline.txt
console=serial0,115200 console=tty1 root=PARTUUID=$partuuid-02 rootfstype=ext4 elevator=deadline fsck.repair=yes rootwait quiet init=/usr/lib/raspi-config/init_resize.sh
EOF
	cat <<'EOF' | put "$BOOT" /config.txt
# For more options and information see
# http://rpf.io/configtxt
# Some settings may impact device functionality. See link above for details

# uncomment if you get no picture on HDMI for a default "safe" mode
#hdmi_safe=1

# uncomment this if your display has a black border of unused pixels visible
# and your display can output without overscan
#disable_overscan=1

# Uncomment some or all of these to enable the optional hardware interfaces
#dtparam=i2c_arm=on
#dtparam=i2s=on
#dtparam=spi=on

# Enable audio (loads snd_bcm2835)
dtparam=audio=on

[pi4]
# Enable DRM VC4 V3D driver on top of the dispmanx display stack
dtoverlay=vc4-fkms-v3d
max_framebuffers=2

[all]
#dtoverlay=vc4-fkms-v3d
EOF
	cat <<'EOF' | put "$BOOT" /issue.txt
Raspberry Pi reference 2021-05-07
Generated using pi-gen, https://github.com/RPi-Distro/pi-gen, dcfd74d7d1fa293065ac6d565711e9ff891fe2b8, stage2
EOF
	cp "$BOOT/issue.txt" "$ROOT/etc/rpi-issue"
	cat <<'EOF' | put "$ROOT" /etc/os-release
PRETTY_NAME="Raspbian GNU/Linux 10 (buster)"
NAME="Raspbian GNU/Linux"
VERSION_ID="10"
VERSION="10 (buster)"
VERSION_CODENAME=buster
ID=raspbian
ID_LIKE=debian
HOME_URL="http://www.raspbian.org/"
SUPPORT_URL="http://www.raspbian.org/RaspbianForums"
BUG_REPORT_URL="http://www.raspbian.org/RaspbianBugs"
EOF
	cat <<EOF | fstab
proc            /proc           proc    defaults          0       0
PARTUUID=$partuuid-01  /boot           vfat    defaults          0       2
PARTUUID=$partuuid-02  /               ext4    defaults,noatime  0       1
EOF
	set_hostname raspberrypi
	accounts pi 1000 1000 ",,," adm,dialout,cdrom,sudo,audio,video,plugdev,games,users,input,netdev
	elf_arm32 /bin/sh
	elf_arm32 /bin/bash
	elf_arm32 /sbin/dhcpcd
	cat <<'EOF' | put "$ROOT" /etc/dhcpcd.conf
# A sample configuration for dhcpcd.
# See dhcpcd.conf(5) for details.

# Allow users of this group to interact with dhcpcd via the control socket.
#controlgroup wheel

# Inform the DHCP server of our hostname for DDNS.
hostname

# Use the hardware address of the interface for the Client ID.
clientid
# or
# Use the same DUID + IAID as set in DHCPv6 for DHCPv4 ClientID as per RFC4361.
# Some non-RFC compliant DHCP servers do not reply with this set.
# In this case, comment out duid and enable clientid above.
#duid

# Persist interface configuration when dhcpcd exits.
persistent

# Rapid commit support.
# Safe to enable by default because it requires the equivalent option set
# on the server to actually work.
option rapid_commit

# A list of options to request from the DHCP server.
option domain_name_servers, domain_name, domain_search, host_name
option classless_static_routes
# Respect the network MTU. This is applied to DHCP routes.
option interface_mtu

# Most distributions have NTP support.
#option ntp_servers

# A ServerID is required by RFC2131.
require dhcp_server_identifier

# Generate SLAAC address using the Hardware Address of the interface
#slaac hwaddr
# OR generate Stable Private IPv6 Addresses based from the DUID
slaac private

# Example static IP configuration:
#interface eth0
#static ip_address=192.168.0.10/24
#static ip6_address=fd51:42f8:caae:d92e::ff/64
#static routers=192.168.0.1
#static domain_name_servers=192.168.0.1 8.8.8.8 fd51:42f8:caae:d92e::1

# It is possible to fall back to a static IP if DHCP fails:
# define static profile
#profile static_eth0
#static ip_address=192.168.1.23/24
#static routers=192.168.1.1
#static domain_name_servers=192.168.1.1

# fallback to static profile on eth0
#interface eth0
#fallback static_eth0
EOF
	dir /etc/ssh
	sshd
	sshswitch /boot
	unit dhcpcd.service
	enable dhcpcd.service
}

flavor_plain() {
	skeleton
	cat <<'EOF' | put "$BOOT" /cmdline.txt
console=serial0,115200 console=tty1 root=LABEL=rootfs rootfstype=ext4 fsck.repair=yes rootwait
EOF
	cat <<'EOF' | put "$BOOT" /config.txt
arm_64bit=1
enable_uart=1
upstream_kernel=1
kernel=vmlinuz
initramfs initrd.img
EOF
	cat <<'EOF' | put "$ROOT" /etc/os-release
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
EOF
	cat <<'EOF' | fstab
# /etc/fstab: static file system information.
LABEL=rootfs	/		ext4	errors=remount-ro	0	1
LABEL=boot	/boot/firmware	vfat	defaults		0	2
EOF
	dir /boot/firmware
	set_hostname node
	accounts ops 1500 1500 "Operations,,," sudo,users
	elf_arm64 /bin/sh
	elf_arm64 /bin/bash
	elf_arm64 /lib/systemd/systemd-networkd
	cat <<'EOF' | put "$ROOT" /etc/systemd/network/10-eth0.network
[Match]
Name=eth0

[Network]
DHCP=yes
EOF
	unit systemd-networkd.service
	enable systemd-networkd.service
	dir /etc/ssh
	dir /home/ops/.ssh 0700
	sshd enabled
}

# ---- variants: one mechanism under another name ------------------------------------------------

# HypriotOS's mechanism (cloud-init 0.7.9, seed links to the FAT, ENI) named Debian.
variant_lookalike-hypriot() {
	debianize
}

# Ubuntu's (NoCloud by fs_label, netplan) named Debian.
variant_lookalike-ubuntu() {
	debianize
}

# Trixie's (seed on bootfs, users: list, netplan -> NetworkManager) named Debian.
variant_lookalike-trixie() {
	debianize
}

# NetworkManager and sshswitch, named Debian, no first-boot user set-up.
variant_lookalike-nm() {
	debianize
	sed -i 's| init=/usr/lib/raspberrypi-sys-mods/firstboot||' "$BOOT/cmdline.txt"
	rm -rf "$ROOT/usr/lib/raspberrypi-sys-mods" "$ROOT/usr/lib/userconf-pi"
	disable userconfig.service
	rm -f "$ROOT/lib/systemd/system/userconfig.service"
}

# dhcpcd and sshswitch, named Debian.
variant_lookalike-dhcpcd() {
	debianize
}

# ifupdown in charge, no cloud-init, named Debian.
variant_lookalike-ifupdown() {
	disable systemd-networkd.service
	rm -f "$ROOT/etc/systemd/network/10-eth0.network"
	ifupdown_base
	enable networking.service
	printf 'allow-hotplug eth0\niface eth0 inet dhcp\n' | put "$ROOT" /etc/network/interfaces.d/eth0
}

# rpi-issue says Raspberry Pi OS, but NetworkManager is masked and dhcpcd runs.
variant_mismatch-rpiissue-dhcpcd() {
	disable NetworkManager.service
	mask NetworkManager.service
	exe /usr/sbin/dhcpcd
	unit dhcpcd.service
	enable dhcpcd.service
	printf '# dhcpcd.conf\nhostname\nclientid\npersistent\n' | put "$ROOT" /etc/dhcpcd.conf
}

# systemd-networkd installed but not enabled; ifupdown in charge.
variant_mismatch-networkd-idle() {
	variant_lookalike-ifupdown
}

# cloud-init installed but disabled; netplan's own file brings eth0 up.
variant_mismatch-ci-disabled() {
	: | put "$ROOT" /etc/cloud/cloud-init.disabled
	accounts ops 1001 1001 "Operations,,," sudo,users
}

# No network service at all.
variant_mismatch-nonet() {
	disable systemd-networkd.service
}

# fill MIB: incompressible, deterministic data (AES-CTR of zeros under a fixed key), 1 MiB a file.
fill() {
	[ "$1" -gt 0 ] || return 0
	dir /var/lib/fill
	head -c $(($1 * MIB)) /dev/zero |
		openssl enc -aes-128-ctr -nosalt -K 7069666c6173682d66696c6c2d6b6579 \
			-iv 00000000000000000000000000000000 |
		(cd "$ROOT/var/lib/fill" && split -b $MIB -a 4 -d --additional-suffix=.bin - fill-)
	chmod 0644 "$ROOT"/var/lib/fill/*
}

say "building $FLAVOR: $TABLE, p1 ${P1_MIB} MiB FAT$FAT_BITS '$P1_LABEL'," \
	"p2 ${P2_MIB} MiB ext4 '$P2_LABEL', ${SIZE_MIB} MiB in all"
"flavor_$BASE"
if [ -n "$VARIANT" ]; then
	"variant_$VARIANT"
fi
fill "$FILL_MIB"

# Fixed times on everything staged: mcopy -m and mke2fs -d copy them.
find "$BOOT" "$ROOT" -exec touch -h -d "@$EPOCH" {} +

# ---- partition table ------------------------------------------------------------------------
# Built next to OUT and renamed at the end, so a failed run leaves no half image.
OUT_DIR=$(cd "$(dirname "$OUT")" 2>/dev/null && pwd) || die "'$OUT': no such directory"
IMG=$OUT_DIR/.$(basename "$OUT").tmp.$$
trap 'rm -rf "$TMP" "$IMG"' EXIT
truncate -s $((SIZE_MIB * MIB)) "$IMG"
P1_SECTORS=$((P1_MIB * MIB / 512))
P2_START=$((P2_START_BYTES / 512))
P2_SECTORS=$((P2_MIB * MIB / 512))
if [ "$TABLE" = dos ]; then
	boot_flag=
	[ "$P1_BOOTABLE" = 1 ] && boot_flag=", bootable"
	cat >"$TMP/sfdisk" <<EOF
label: dos
label-id: $DISKID
unit: sectors
sector-size: 512

start=$P1_START, size=$P1_SECTORS, type=c$boot_flag
start=$P2_START, size=$P2_SECTORS, type=83
EOF
else
	cat >"$TMP/sfdisk" <<EOF
label: gpt
label-id: $DISKID
unit: sectors
first-lba: 34
sector-size: 512

start=$P1_START, size=$P1_SECTORS, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, uuid=$P1_GUID
start=$P2_START, size=$P2_SECTORS, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=$P2_GUID
EOF
fi
run sfdisk --no-reread --no-tell-kernel "$IMG" <"$TMP/sfdisk"

# ---- FAT ----------------------------------------------------------------------------------------
# --invariant fixes the boot code's time-derived bytes; -h records the partition start in the
# boot sector as real cards have it.
# The cluster size is given (sectors per cluster): with --offset and a block count, mkfs.vfat
# 4.2 picks 4 KiB clusters for a 256 MiB FAT32, too few clusters for FAT32, which mtools then
# refuses to read.
run mkfs.vfat --invariant -F "$FAT_BITS" -s "$FAT_SPC" -i "$P1_VOLID" -n "$P1_LABEL" -h "$P1_START" \
	--offset="$P1_START" "$IMG" $((P1_MIB * 1024))
# mtools takes directory times from SOURCE_DATE_EPOCH and file times from the source (-m).
export MTOOLS_SKIP_CHECK=1 MTOOLSRC=/dev/null
(cd "$BOOT" && SOURCE_DATE_EPOCH=$EPOCH run mcopy -s -m -Q -i "$IMG@@$P1_START_BYTES" ./* ::/)

# ---- ext4 ---------------------------------------------------------------------------------------
# Our own mke2fs.conf, so the host's defaults cannot change the result.
cat >"$TMP/mke2fs.conf" <<EOF
[defaults]
	base_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
	default_mntopts = acl,user_xattr
	enable_periodic_fsck = 0
	blocksize = 4096
	inode_size = 256
	inode_ratio = 16384
	reserved_ratio = 5.0
	lazy_itable_init = true
[fs_types]
	ext4 = {
		features = $EXT_FEATURES
		inode_size = 256
	}
EOF
MKE2FS_CONFIG=$TMP/mke2fs.conf E2FSPROGS_FAKE_TIME=$EPOCH run mke2fs -q -F -t ext4 -b 4096 \
	-L "$P2_LABEL" -U "$P2_UUID" -M / \
	-E "offset=$P2_START_BYTES,hash_seed=$P2_HASH_SEED,lazy_itable_init=1,lazy_journal_init=1,nodiscard,root_owner=0:0" \
	-d "$ROOT" "$IMG" $((P2_MIB * 1024))k

# mke2fs -d copies the stager's uid/gid, atime and ctime: set them for every inode.
# Ownership: root, except what own() listed (recursively).
(
	cd "$ROOT"
	find . -mindepth 1 | sort | while IFS= read -r p; do
		p=${p#.}
		uid=0 gid=0
		while read -r ouid ogid opath; do
			case $p in
			"$opath" | "$opath"/*) uid=$ouid gid=$ogid ;;
			esac
		done <"$OWNERS"
		printf 'sif "%s" uid %s\nsif "%s" gid %s\n' "$p" "$uid" "$p" "$gid"
		for f in atime ctime mtime crtime; do
			printf 'sif "%s" %s @%s\n' "$p" "$f" "$EPOCH"
		done
	done
	for f in atime ctime mtime crtime; do
		printf 'sif / %s @%s\nsif /lost+found %s @%s\n' "$f" "$EPOCH" "$f" "$EPOCH"
	done
) >"$TMP/debugfs.cmds"
E2FSPROGS_FAKE_TIME=$EPOCH run debugfs -w -f "$TMP/debugfs.cmds" "$IMG?offset=$P2_START_BYTES"
# debugfs -f exits 0 whatever fails; anything but its banner and the echoed commands is an error.
if grep -v -q '^debugfs' "$TMP/run.log"; then
	cat "$TMP/run.log" >&2
	die "debugfs could not set inode fields"
fi

mv -f "$IMG" "$OUT" || die "cannot rename '$IMG' to '$OUT'"
say "wrote $OUT"
