#!/bin/bash
# make-corpus.sh — the seed images of fuzz-image, tiny on purpose.
#
# scripts/mkimage.sh builds realistic images of 100 MiB and more; a fuzzer wants inputs it
# can copy and run hundreds of times a second, and git wants small files. These seeds keep
# what matters to the code under test — an MBR or GPT table, a FAT and an ext2/ext4 with the
# files flavor detection reads, symlinks (one across mounts), long names, a directory of
# several blocks — in under 1 MiB each, made directly with sfdisk, mkfs.vfat, mcopy and
# mke2fs -d, as mkimage.sh does. FAT16 needs at least 4085 clusters (2 MiB), so the FATs here
# are FAT12 and a FAT32 forced below its usual size (BPB_FATSz16 == 0 decides, see fat.c).
#
# The result is not byte-identical from run to run (mke2fs -d copies the staged files' ctimes,
# and checksums follow), which does not matter to a seed; the committed ones are what counts.
#
# usage: tests/fuzz/make-corpus.sh [OUTDIR]   (default: tests/fuzz/corpus/fuzz-image)
set -euo pipefail

PATH=$PATH:/usr/sbin:/sbin
export LC_ALL=C TZ=UTC MTOOLS_SKIP_CHECK=1 MTOOLSRC=/dev/null
EPOCH=1700000000
export E2FSPROGS_FAKE_TIME=$EPOCH SOURCE_DATE_EPOCH=$EPOCH
umask 022

OUT=${1:-$(dirname "$0")/corpus/fuzz-image}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/make-corpus.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$OUT"

cat >"$TMP/mke2fs.conf" <<EOF
[defaults]
	base_features = sparse_super,large_file,filetype,dir_index,ext_attr
	enable_periodic_fsck = 0
	reserved_ratio = 0
[fs_types]
	ext2 = {
		inode_size = 256
	}
	ext4 = {
		inode_size = 256
	}
	floppy = {
		inode_size = 256
	}
	small = {
		inode_size = 256
	}
EOF
export MKE2FS_CONFIG=$TMP/mke2fs.conf

put() { # put DIR PATH: stdin into DIR/PATH
	mkdir -p "$(dirname "$1$2")"
	cat >"$1$2"
}

# A root filesystem tree: $1 dir, $2 os-release text, $3 boot mount point.
make_root() {
	local r=$1
	mkdir -p "$r"/etc "$r"/bin "$r"/boot "$r"/home/pi/.ssh "$r"/lib/systemd/system \
		"$r"/etc/systemd/system/multi-user.target.wants "$r"/var/lib/cloud/seed/nocloud-net
	printf '%s\n' "$2" | put "$r" /etc/os-release
	echo node | put "$r" /etc/hostname
	printf 'LABEL=boot %s vfat defaults 0 2\nLABEL=root / ext4 defaults,noatime 0 1\n' "$3" |
		put "$r" /etc/fstab
	printf 'root:x:0:0:root:/root:/bin/bash\npi:x:1000:1000:,,,:/home/pi:/bin/bash\n' |
		put "$r" /etc/passwd
	printf 'root:*:19000:0:99999:7:::\npi:*:19000:0:99999:7:::\n' | put "$r" /etc/shadow
	printf '127.0.0.1 localhost\n127.0.1.1 node\n' | put "$r" /etc/hosts
	printf '[Unit]\nDescription=OpenBSD Secure Shell server\n[Service]\nExecStart=/usr/sbin/sshd -D\n' |
		put "$r" /lib/systemd/system/ssh.service
	ln -s /lib/systemd/system/ssh.service "$r"/etc/systemd/system/multi-user.target.wants/ssh.service
	# An aarch64 ELF header is all pf_elf_arch() reads of /bin/sh.
	printf '\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03\x00\xb7\x00\x01\x00\x00\x00' >"$r"/bin/dash
	head -c 40 /dev/zero >>"$r"/bin/dash
	ln -s dash "$r"/bin/sh
	ln -s "$3"/user-data "$r"/var/lib/cloud/seed/nocloud-net/user-data
	ln -s ../../../../../etc/../etc/hostname "$r"/var/lib/cloud/seed/nocloud-net/meta-data
	: >"$r"/etc/machine-id
	# A directory over several blocks, and a file over several.
	mkdir -p "$r"/etc/many
	for i in $(seq 1 40); do echo "$i" >"$r/etc/many/entry-with-a-longer-name-$i.conf"; done
	seq 1 1200 >"$r"/etc/big.txt
}

make_boot() {
	local b=$1
	mkdir -p "$b"/overlays
	echo 'console=serial0,115200 root=LABEL=root rootwait ds=nocloud;s=/boot/' | put "$b" /cmdline.txt
	printf '[all]\narm_64bit=1\n' | put "$b" /config.txt
	printf '#cloud-config\nhostname: black-pearl\nusers:\n  - name: pirate\n' | put "$b" /user-data
	printf 'instance-id: iid-fuzz\n' | put "$b" /meta-data
	printf 'version: 2\nethernets:\n  eth0:\n    dhcp4: true\n' | put "$b" /network-config
	echo x | put "$b" "/overlays/A long file name with spaces.dtbo"
	echo y | put "$b" /overlays/UPPER.TXT
}

# fat IMG START_SECTOR SIZE_KIB BITS LABEL DIR
fat() {
	mkfs.vfat --invariant -F "$4" -s 1 -i 50494600 -n "$5" -h "$2" --offset="$2" "$1" "$3" >/dev/null 2>&1
	# mtools goes by the cluster count and takes a FAT32 this small for a FAT12: it stays
	# empty (piflash's own writes fill it when fuzzed).
	[ "$4" = 32 ] || (cd "$6" && mcopy -s -m -Q -i "$1@@$(($2 * 512))" ./* ::/)
}

# ext IMG START_SECTOR SIZE_KIB TYPE FEATURES LABEL DIR
ext() {
	mke2fs -q -F -t "$4" -b 1024 -N 96 -O "$5" -L "$6" -U 50494600-e4e4-4e4e-8e4e-000000000001 \
		-E "offset=$(($2 * 512)),hash_seed=50494600-4a5a-4b5b-9c5c-000000000001,root_owner=0:0,nodiscard" \
		-d "$7" "$1" "$3"k
}

# 1: MBR, FAT12 + ext4 (extents, flex_bg, metadata_csum, 64bit), Raspberry Pi OS-like.
IMG=$TMP/dos-fat12-ext4.img
truncate -s 768K "$IMG"
printf 'label: dos\nlabel-id: 0x50494601\n64,512,c,*\n576,960,83\n' |
	sfdisk -q --no-reread --no-tell-kernel "$IMG" >/dev/null
make_boot "$TMP/b1"
make_root "$TMP/r1" $'PRETTY_NAME="Raspbian GNU/Linux 12 (bookworm)"\nID=raspbian\nID_LIKE=debian\nVERSION_CODENAME=bookworm' /boot/firmware
mkdir -p "$TMP/r1/etc/NetworkManager/system-connections" "$TMP/r1/usr/sbin"
: >"$TMP/r1/usr/sbin/NetworkManager"
echo 'Raspberry Pi reference 2024-11-19' >"$TMP/r1/etc/rpi-issue"
fat "$IMG" 64 256 12 boot "$TMP/b1"
ext "$IMG" 576 480 ext4 ^has_journal,extent,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize,huge_file root "$TMP/r1"
cp "$IMG" "$OUT/dos-fat12-ext4"

# 2: GPT, a small empty FAT32 + ext2 (block maps, no extents), Ubuntu-like with cloud-init.
IMG=$TMP/gpt-fat32-ext2.img
truncate -s 960K "$IMG"
printf 'label: gpt\nlabel-id: 50494602-0000-4000-8000-000000000000\nfirst-lba: 34\nstart=34, size=640, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=50494602-0001-4000-8000-000000000001, name=boot\nstart=674, size=1200, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=50494602-0002-4000-8000-000000000002\n' |
	sfdisk -q --no-reread --no-tell-kernel "$IMG" >/dev/null
make_boot "$TMP/b2"
make_root "$TMP/r2" $'NAME="Ubuntu"\nID=ubuntu\nVERSION_ID="24.04"\nVERSION_CODENAME=noble' /boot/firmware
mkdir -p "$TMP/r2/etc/cloud/cloud.cfg.d" "$TMP/r2/usr/lib/python3/dist-packages/cloudinit" "$TMP/r2/etc/netplan"
printf '__VERSION__ = "24.1.3"\n' >"$TMP/r2/usr/lib/python3/dist-packages/cloudinit/version.py"
printf 'users:\n  - default\nsystem_info:\n  default_user:\n    name: ubuntu\ndatasource_list: [ NoCloud, None ]\ncloud_init_modules:\n  - ssh\n' >"$TMP/r2/etc/cloud/cloud.cfg"
printf 'datasource:\n  NoCloud:\n    fs_label: system-boot\n' >"$TMP/r2/etc/cloud/cloud.cfg.d/99-fake.cfg"
printf 'network:\n  version: 2\n' >"$TMP/r2/etc/netplan/50-cloud-init.yaml"
fat "$IMG" 34 320 32 boot "$TMP/b2"
ext "$IMG" 674 600 ext2 ^resize_inode root "$TMP/r2"
cp "$IMG" "$OUT/gpt-fat32-ext2"

# 3: MBR with an extended partition: a logical FAT12 and a logical ext4, HypriotOS-like.
IMG=$TMP/dos-logical.img
truncate -s 800K "$IMG"
printf 'label: dos\nlabel-id: 0x50494603\n64,1500,5\n128,400,c\n592,900,83\n' |
	sfdisk -q --no-reread --no-tell-kernel "$IMG" >/dev/null
make_boot "$TMP/b3"
make_root "$TMP/r3" $'ID=debian\nVERSION_CODENAME=buster\nHYPRIOT_OS="HypriotOS/armhf"\nHYPRIOT_OS_VERSION="v1.12.3"' /boot
mkdir -p "$TMP/r3/etc/network" "$TMP/r3/sbin"
printf 'auto lo\niface lo inet loopback\nsource /etc/network/interfaces.d/*\n' >"$TMP/r3/etc/network/interfaces"
: >"$TMP/r3/sbin/dhcpcd"
fat "$IMG" 128 200 12 boot "$TMP/b3"
ext "$IMG" 592 450 ext4 ^has_journal,extent,dir_nlink,inline_data root "$TMP/r3"
cp "$IMG" "$OUT/dos-logical"

ls -l "$OUT"
