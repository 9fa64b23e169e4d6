#!/bin/bash
# scripts/mkimage.sh builds every flavor, the same bytes twice, and images that fsck.fat,
# e2fsck, blkid, mtools and debugfs accept, with the files each OS's first boot reads.
. "$(dirname "$0")/lib.sh"

need sfdisk mkfs.vfat mke2fs mcopy mtype mdir debugfs fsck.fat e2fsck blkid jq openssl od
export MTOOLS_SKIP_CHECK=1

# flavor table label p1-label p1-fat p2-label
FLAVORS='
hypriot dos HypriotOS FAT16 root
ubuntu gpt system-boot FAT32 writable
rpios-bookworm dos bootfs FAT32 rootfs
rpios-trixie dos bootfs FAT32 rootfs
raspbian-buster dos boot FAT32 rootfs
plain dos boot FAT32 rootfs
'

# fat_has IMG OFF FILE: mtype prints FILE from the FAT.
fat_has() {
	mtype -i "$1@@$2" "::/$3" 2>/dev/null
}

while read -r flavor table l1 fat l2; do
	[ -n "$flavor" ] || continue
	img=$WORK/$flavor.img
	build_image "$flavor" "$img"
	pass "$flavor: built"

	assert_eq "$flavor: table" "$table" "$(sfdisk -J "$img" | jq -r .partitiontable.label)"
	assert_eq "$flavor: 2 partitions" 2 "$(sfdisk -J "$img" | jq '.partitiontable.partitions | length')"
	o1=$(part_offset "$img" 1)
	s1=$(part_size "$img" 1)
	o2=$(part_offset "$img" 2)
	assert_eq "$flavor: p1 type" vfat "$(blkid_field "$img" "$o1" TYPE)"
	assert_eq "$flavor: p1 FAT size" "$fat" "$(blkid_field "$img" "$o1" VERSION)"
	assert_eq "$flavor: p1 label" "$l1" "$(blkid_field "$img" "$o1" LABEL)"
	assert_eq "$flavor: p2 type" ext4 "$(blkid_field "$img" "$o2" TYPE)"
	assert_eq "$flavor: p2 label" "$l2" "$(blkid_field "$img" "$o2" LABEL)"
	fat_clean "$img" "$o1" "$s1"
	ext_clean "$img" "$o2"
	mdir -i "$img@@$o1" ::/ >"$WORK/mdir" 2>&1 || fail "$flavor: mdir: $(cat "$WORK/mdir")"
	grep -q cmdline "$WORK/mdir" || fail "$flavor: no cmdline.txt in mdir output"
	pass "$flavor: mdir lists the FAT"
	debugfs -R 'ls -l /etc' "$img?offset=$o2" >"$WORK/ls" 2>/dev/null
	grep -q ' os-release$' "$WORK/ls" || fail "$flavor: debugfs ls /etc shows no os-release"
	pass "$flavor: debugfs lists /etc"

	# What the first boot reads.
	grep -q "root=" <(fat_has "$img" "$o1" cmdline.txt) || fail "$flavor: cmdline.txt has no root="
	pass "$flavor: cmdline.txt names the root"
	assert_eq "$flavor: /etc/shadow is root:shadow 0640" "0:42 0640" "$(e2_owner "$img" "$o2" /etc/shadow)"
	sh=/bin/sh
	[ "$flavor" = rpios-trixie ] && sh=/usr/bin/dash # usrmerge: /bin/sh -> /usr/bin/sh -> dash
	e2_cat "$img" "$o2" "$sh" >"$WORK/sh"
	case $flavor in
	hypriot | raspbian-buster) want_elf="1 40" ;; # ELFCLASS32, EM_ARM
	*) want_elf="2 183" ;;                         # ELFCLASS64, EM_AARCH64
	esac
	assert_eq "$flavor: /bin/sh ELF class and machine" "$want_elf" "$(elf_machine "$WORK/sh")"
	case $flavor in
	hypriot)
		grep -q '^instance-id: pirate001$' <(fat_has "$img" "$o1" meta-data) ||
			fail "hypriot: meta-data lacks instance-id: pirate001"
		pass "hypriot: meta-data has instance-id: pirate001"
		grep -q '^version: 1$' <(fat_has "$img" "$o1" network-config) ||
			fail "hypriot: network-config is not version 1"
		pass "hypriot: network-config version 1"
		for f in user-data meta-data network-config; do
			assert_eq "hypriot: seed link $f" "/boot/$f" \
				"$(e2_readlink "$img" "$o2" "/var/lib/cloud/seed/nocloud-net/$f")"
		done
		assert_eq "hypriot: dhcpcd masked" /dev/null \
			"$(e2_readlink "$img" "$o2" /etc/systemd/system/dhcpcd.service)"
		grep -q '__VERSION__ = "0.7.9"' \
			<(e2_cat "$img" "$o2" /usr/lib/python3/dist-packages/cloudinit/version.py) ||
			fail "hypriot: cloud-init is not 0.7.9"
		pass "hypriot: cloud-init 0.7.9"
		grep -q '^HYPRIOT_OS_VERSION="v1.12.3"$' <(e2_cat "$img" "$o2" /etc/os-release) ||
			fail "hypriot: os-release lacks HYPRIOT_OS_VERSION"
		pass "hypriot: os-release"
		assert_eq "hypriot: /home/pirate owner" "1000:1000 0755" "$(e2_owner "$img" "$o2" /home/pirate)"
		;;
	ubuntu)
		grep -q 'fs_label: system-boot' \
			<(e2_cat "$img" "$o2" /etc/cloud/cloud.cfg.d/99-fake_cloud.cfg) ||
			fail "ubuntu: no fs_label in cloud.cfg.d"
		pass "ubuntu: NoCloud fs_label system-boot"
		grep -q '^version: 2$' <(fat_has "$img" "$o1" network-config) ||
			fail "ubuntu: network-config is not version 2"
		pass "ubuntu: network-config version 2"
		if e2_cat "$img" "$o2" /etc/passwd | grep -q '^ubuntu:'; then
			fail "ubuntu: passwd has a ubuntu user (cloud-init makes it)"
		fi
		pass "ubuntu: no ubuntu user baked in"
		assert_eq "ubuntu: p1 PARTUUID" 50494602-0001-4000-8000-000000000001 \
			"$(sfdisk -J "$img" | jq -r '.partitiontable.partitions[0].uuid | ascii_downcase')"
		;;
	rpios-bookworm)
		assert_eq "rpios-bookworm: system-connections" "0:0 0700" \
			"$(e2_owner "$img" "$o2" /etc/NetworkManager/system-connections)"
		grep -q '^VERSION_CODENAME=bookworm$' <(e2_cat "$img" "$o2" /etc/os-release) ||
			fail "rpios-bookworm: os-release is not bookworm"
		pass "rpios-bookworm: os-release"
		grep -q 'root=PARTUUID=50494603-02 ' <(fat_has "$img" "$o1" cmdline.txt) ||
			fail "rpios-bookworm: cmdline.txt root is not the disk's PARTUUID"
		pass "rpios-bookworm: cmdline.txt root=PARTUUID"
		# The first user as pi-gen leaves it: no password until userconf renames it.
		assert_eq "rpios-bookworm: one regular user, pi" "pi:1000" \
			"$(e2_cat "$img" "$o2" /etc/passwd | awk -F: '$3 >= 1000 && $3 < 65534 { print $1 ":" $3 }')"
		assert_eq "rpios-bookworm: pi has no password" "pi:*" \
			"$(e2_cat "$img" "$o2" /etc/shadow | awk -F: '$1 == "pi" { print $1 ":" $2 }')"
		grep -q 'init=/usr/lib/raspberrypi-sys-mods/firstboot' <(fat_has "$img" "$o1" cmdline.txt) ||
			fail "rpios-bookworm: cmdline.txt does not run firstboot"
		pass "rpios-bookworm: cmdline.txt runs firstboot"
		;;
	rpios-trixie)
		for f in user-data meta-data network-config; do
			fat_has "$img" "$o1" "$f" >/dev/null || fail "rpios-trixie: no $f on bootfs"
		done
		pass "rpios-trixie: seed at the root of bootfs"
		grep -q '^  version: 2$' <(fat_has "$img" "$o1" network-config) ||
			fail "rpios-trixie: network-config is not version 2"
		pass "rpios-trixie: network-config version 2"
		assert_eq "rpios-trixie: /bin is a link" usr/bin "$(e2_readlink "$img" "$o2" /bin)"
		assert_eq "rpios-trixie: sh is dash" dash "$(e2_readlink "$img" "$o2" /usr/bin/sh)"
		assert_eq "rpios-trixie: /etc/os-release is a link" ../usr/lib/os-release \
			"$(e2_readlink "$img" "$o2" /etc/os-release)"
		grep -q '^VERSION_CODENAME=trixie$' <(e2_cat "$img" "$o2" /usr/lib/os-release) ||
			fail "rpios-trixie: os-release is not trixie"
		pass "rpios-trixie: os-release"
		grep -q '__VERSION__ = "25\.' \
			<(e2_cat "$img" "$o2" /usr/lib/python3/dist-packages/cloudinit/version.py) ||
			fail "rpios-trixie: cloud-init is not 25.x"
		pass "rpios-trixie: cloud-init 25.x"
		e2_cat "$img" "$o2" /etc/cloud/cloud.cfg.d/10_raspberry-pi-user.cfg >"$WORK/users.cfg"
		grep -q '^  - name: pi$' "$WORK/users.cfg" || fail "rpios-trixie: no pi in users:"
		if grep -q 'default' "$WORK/users.cfg"; then
			fail "rpios-trixie: the users: list names a default user"
		fi
		pass "rpios-trixie: users: list with pi and no default"
		grep -q '^ssh_deletekeys: false$' \
			<(e2_cat "$img" "$o2" /etc/cloud/cloud.cfg.d/99_raspberry-pi.cfg) ||
			fail "rpios-trixie: ssh_deletekeys is not false"
		pass "rpios-trixie: ssh_deletekeys false"
		grep -q 'renderer: NetworkManager' \
			<(e2_cat "$img" "$o2" /usr/lib/netplan/00-network-manager-all.yaml) ||
			fail "rpios-trixie: netplan does not hand devices to NetworkManager"
		pass "rpios-trixie: netplan -> NetworkManager"
		;;
	raspbian-buster)
		assert_eq "raspbian-buster: /home/pi owner" "1000:1000 0755" "$(e2_owner "$img" "$o2" /home/pi)"
		grep -q '^#static ip_address=' <(e2_cat "$img" "$o2" /etc/dhcpcd.conf) ||
			fail "raspbian-buster: dhcpcd.conf lacks the commented example"
		pass "raspbian-buster: stock dhcpcd.conf"
		;;
	plain)
		assert_eq "plain: ops in passwd" "ops:x:1500:1500:Operations,,,:/home/ops:/bin/bash" \
			"$(e2_cat "$img" "$o2" /etc/passwd | grep '^ops:')"
		assert_eq "plain: /home/ops/.ssh owner" "1500:1500 0700" "$(e2_owner "$img" "$o2" /home/ops/.ssh)"
		grep -q '^DHCP=yes$' <(e2_cat "$img" "$o2" /etc/systemd/network/10-eth0.network) ||
			fail "plain: no networkd DHCP file"
		pass "plain: systemd-networkd file"
		assert_eq "plain: p1 bootable" true \
			"$(sfdisk -J "$img" | jq '.partitiontable.partitions[0].bootable // false')"
		;;
	esac
	case $flavor in
	rpios-bookworm | rpios-trixie)
		mid=$(e2_cat "$img" "$o2" /etc/machine-id)
		[[ $mid =~ ^[0-9a-f]{32}$ ]] || fail "$flavor: machine-id '$mid' is not 32 hex digits"
		pass "$flavor: machine-id baked"
		assert_eq "$flavor: D-Bus machine-id is a copy" "$mid" \
			"$(e2_cat "$img" "$o2" /var/lib/dbus/machine-id)"
		assert_eq "$flavor: baked host key mode" "0:0 0600" \
			"$(e2_owner "$img" "$o2" /etc/ssh/ssh_host_ed25519_key)"
		assert_eq "$flavor: regenerate_ssh_host_keys enabled" \
			/lib/systemd/system/regenerate_ssh_host_keys.service \
			"$(e2_readlink "$img" "$o2" /etc/systemd/system/multi-user.target.wants/regenerate_ssh_host_keys.service)"
		;;
	esac
done <<<"$FLAVORS"

# The same bytes twice (and when the staging directory lives elsewhere).
for flavor in hypriot ubuntu rpios-trixie; do
	sleep 1 # a different second: a time that leaks in shows up
	TMPDIR=$WORK build_image "$flavor" "$WORK/$flavor.again.img"
	assert_eq "$flavor: deterministic" "$(sha256 "$WORK/$flavor.img")" "$(sha256 "$WORK/$flavor.again.img")"
	rm -f "$WORK/$flavor.again.img"
done

# Images are sparse: the empty space takes no room.
apparent=$(stat -c %s "$WORK/rpios-bookworm.img")
used=$(du --block-size=1 "$WORK/rpios-bookworm.img" | cut -f1)
[ "$used" -lt $((apparent / 10)) ] || fail "rpios-bookworm.img is not sparse: $used of $apparent bytes used"
pass "images are sparse"

rm -f "$WORK"/*.img

# --size and --fill.
build_image plain "$WORK/size.img" --size 200
assert_eq "--size 200" $((200 * 1048576)) "$(stat -c %s "$WORK/size.img")"
ext_clean "$WORK/size.img" "$(part_offset "$WORK/size.img" 2)"
build_image plain "$WORK/fill.img" --fill 8
o2=$(part_offset "$WORK/fill.img" 2)
ext_clean "$WORK/fill.img" "$o2"
assert_eq "--fill 8: files" 8 "$(debugfs -R 'ls /var/lib/fill' "$WORK/fill.img?offset=$o2" 2>/dev/null |
	tr -s ' ' '\n' | grep -c '^fill-.*\.bin$')"
e2_cat "$WORK/fill.img" "$o2" /var/lib/fill/fill-0003.bin >"$WORK/fill.bin"
assert_eq "--fill 8: 1 MiB a file" 1048576 "$(stat -c %s "$WORK/fill.bin")"
gz=$(gzip -c "$WORK/fill.bin" | wc -c)
[ "$gz" -gt 1040000 ] || fail "--fill data compresses to $gz bytes"
pass "--fill data is incompressible"
rm -f "$WORK"/*.img

# Bad arguments: exit 2 with a message.
expect_fail 2 'usage' "$MKIMAGE"
expect_fail 2 "mkimage: unknown flavor 'nosuch'" "$MKIMAGE" nosuch "$WORK/x.img"
expect_fail 2 'mkimage: --size 100 is too small' "$MKIMAGE" plain "$WORK/x.img" --size 100
expect_fail 2 'mkimage: .*not a number' "$MKIMAGE" plain "$WORK/x.img" --fill lots
expect_fail 2 "mkimage: unknown option '--bogus'" "$MKIMAGE" plain "$WORK/x.img" --bogus
[ ! -e "$WORK/x.img" ] || fail "a refused run left $WORK/x.img"
pass "refused runs leave no image"

finish
