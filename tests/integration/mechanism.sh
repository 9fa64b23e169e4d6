#!/bin/bash
# Mechanisms, not names: on every mkimage flavor and on look-alikes (one OS's mechanism under a
# plain Debian name, or a name and a mechanism that disagree), inspect names the network
# service, the user set-up and the SSH switch from the image's files; the plan uses exactly
# those; the files land where that mechanism reads them and nowhere else (read back with
# debugfs and mtools); cloud-init seeds are edited, not replaced; --ip is refused where no
# service is in charge, and --network names one.
. "$(dirname "$0")/lib.sh"

need sfdisk jq mkfs.vfat mke2fs mcopy mtype debugfs openssl e2fsck fsck.fat ssh-keygen
[ -x "$PIFLASH" ] || skip "'$PIFLASH' is not built"

ssh-keygen -q -t ed25519 -N '' -C op@test -f "$WORK/op" >/dev/null
NODE=(--node worker3 --ssh-key "$WORK/op.pub" --ip 192.168.50.13/24 --gateway 192.168.50.1
	--dns 192.168.50.1)

# image network user ssh: what the mechanisms are, whatever the image is called.
IMAGES='
hypriot cloud-init cloud-init enabled
ubuntu cloud-init cloud-init enabled
rpios-trixie cloud-init cloud-init switch-file
rpios-bookworm networkmanager custom.toml switch-file
raspbian-buster dhcpcd passwd switch-file
plain networkd passwd enabled
lookalike-hypriot cloud-init cloud-init enabled
lookalike-ubuntu cloud-init cloud-init enabled
lookalike-trixie cloud-init cloud-init switch-file
lookalike-nm networkmanager passwd switch-file
lookalike-dhcpcd dhcpcd passwd switch-file
lookalike-ifupdown ifupdown passwd enabled
mismatch-rpiissue-dhcpcd dhcpcd custom.toml switch-file
mismatch-networkd-idle ifupdown passwd enabled
mismatch-ci-disabled netplan passwd enabled
mismatch-nonet none passwd enabled
'

# Every network file piflash may write, by the service that reads it.
declare -A NETFILE=(
	[networkmanager]=/etc/NetworkManager/system-connections/piflash-eth.nmconnection
	[networkd]=/etc/systemd/network/00-piflash.network
	[netplan]=/etc/netplan/90-piflash.yaml
)

e2() { debugfs -R "$2" "$1?offset=$(part_offset "$1" 2)" 2>/dev/null; }
e2_exists() { e2 "$1" "stat $2" | grep -q '^Inode:'; }
fat() { mtype -i "$1@@$(part_offset "$1" 1)" "::$2" 2>/dev/null; }

# clean IMG: both filesystems pass their checkers.
clean() {
	fat_clean "$1" "$(part_offset "$1" 1)" "$(part_size "$1" 1)"
	ext_clean "$1" "$(part_offset "$1" 2)"
}

while read -r img net user ssh; do
	[ -n "$img" ] || continue
	base=$WORK/$img.img out=$WORK/$img.out.img
	build_image "$img" "$base"
	"$PIFLASH" inspect --json "$base" >"$WORK/i.json" 2>"$WORK/err" || {
		cat "$WORK/err" >&2
		fail "$img: inspect failed"
	}
	got=$(jq -r '.flavor.mechanisms | "\(.network) \(.user) \(.ssh)"' "$WORK/i.json")
	assert_eq "$img: inspect names the mechanisms" "$net $user $ssh" "$got"
	[ -n "$(jq -r '.flavor.mechanisms.network_why // empty' "$WORK/i.json")" ] ||
		fail "$img: no reason given for the network service"

	if [ "$net" = none ]; then
		before=$(sha256sum "$base")
		expect_fail 1 "--ip: no network service is in charge at boot.*--network" \
			"$PIFLASH" "${NODE[@]}" "$base" "$out"
		[ ! -e "$out" ] || fail "$img: an output was written although --ip was refused"
		assert_eq "$img: the input is unchanged" "$before" "$(sha256sum "$base")"
		"$PIFLASH" "${NODE[@]}" --network networkd "$base" "$out" >/dev/null 2>"$WORK/err" ||
			{ cat "$WORK/err" >&2; fail "$img: --network networkd failed"; }
		e2 "$out" 'cat /etc/systemd/network/00-piflash.network' | grep -q '^Address=192.168.50.13/24$' ||
			fail "$img: --network networkd wrote no address"
		e2 "$out" 'stat /etc/systemd/system/multi-user.target.wants/systemd-networkd.service' |
			grep -q 'Fast link dest: "/lib/systemd/system/systemd-networkd.service"' ||
			fail "$img: --network networkd did not enable systemd-networkd.service"
		pass "$img: --network networkd writes the file and enables the unit"
		clean "$out"
		rm -f "$base" "$out"
		continue
	fi

	"$PIFLASH" plan --json "${NODE[@]}" "$base" >"$WORK/p.json" 2>"$WORK/err" || {
		cat "$WORK/err" >&2
		fail "$img: plan failed"
	}
	assert_eq "$img: the plan uses what inspect names" "$net $user $ssh" \
		"$(jq -r '.mechanisms | "\(.network) \(.user) \(.ssh)"' "$WORK/p.json")"
	"$PIFLASH" "${NODE[@]}" "$base" "$out" >/dev/null 2>"$WORK/err" || {
		cat "$WORK/err" >&2
		fail "$img: the main job failed"
	}
	clean "$out"

	# The address is where the service in charge reads it, and in no other service's file.
	for svc in "${!NETFILE[@]}"; do
		if [ "$svc" = "$net" ]; then
			e2 "$out" "cat ${NETFILE[$svc]}" | grep -q '192.168.50.13' ||
				fail "$img: no address in ${NETFILE[$svc]}"
		elif e2_exists "$out" "${NETFILE[$svc]}"; then
			fail "$img: wrote ${NETFILE[$svc]} although $net is in charge"
		fi
	done
	case $net in
	dhcpcd)
		e2 "$out" 'cat /etc/dhcpcd.conf' | grep -q '^static ip_address=192.168.50.13/24$' ||
			fail "$img: no static block in dhcpcd.conf"
		;;
	ifupdown)
		e2 "$out" 'cat /etc/network/interfaces' >"$WORK/eni"
		grep -q '^iface eth0 inet static$' "$WORK/eni" || fail "$img: no static stanza"
		e2 "$out" 'cat /etc/network/interfaces.d/eth0' >"$WORK/eni.d"
		if grep -q 'iface eth0' "$WORK/eni.d"; then
			fail "$img: the image's own eth0 stanza is still in interfaces.d/eth0"
		fi
		;;
	cloud-init)
		seed=$(jq -r .flavor.mechanisms.seed "$WORK/i.json")
		[ "${seed%%:*}" = 1 ] || fail "$img: seed not on the FAT ($seed)"
		fat "$out" /network-config >"$WORK/nc"
		grep -q '192.168.50.13/24' "$WORK/nc" || fail "$img: no address in network-config"
		fat "$out" /meta-data >"$WORK/md"
		grep -q '^instance-id: "*iid-piflash-worker3-' "$WORK/md" || fail "$img: no new instance-id"
		fat "$out" /user-data >"$WORK/ud"
		grep -q 'hypriot' "$WORK/ud" && fail "$img: the image's default password survived"
		if command -v cloud-init >/dev/null 2>&1; then
			cloud-init schema -c "$WORK/ud" >/dev/null 2>&1 ||
				fail "$img: cloud-init schema rejects the user-data"
		fi
		pass "$img: seed written, old password gone"
		;;
	esac
	pass "$img: the address is in $net's file only"

	case $img in
	*hypriot)
		grep -q '^package_upgrade: false' "$WORK/ud" || fail "$img: package_upgrade lost"
		grep -q "systemctl restart avahi-daemon" "$WORK/ud" || fail "$img: runcmd lost"
		grep -q 'gecos: "*Hypriot Pirate' "$WORK/ud" || fail "$img: the image's gecos not used"
		pass "$img: the image's own user-data settings are kept"
		;;
	*trixie)
		grep -q '^dsmode: local' "$WORK/md" || fail "$img: dsmode lost from meta-data"
		pass "$img: dsmode kept in meta-data"
		;;
	esac

	case $ssh in
	switch-file)
		sw=$(jq -r .flavor.mechanisms.ssh_switch "$WORK/i.json")
		fat "$out" /ssh >/dev/null || fail "$img: no ssh file on the FAT (switch $sw)"
		e2_exists "$out" /boot/firmware/ssh && fail "$img: ssh file hidden under the mount"
		pass "$img: ssh switch file on the FAT"
		;;
	esac
	case $user in
	passwd)
		u=$(jq -r .user "$WORK/p.json")
		home=$(e2 "$out" 'cat /etc/passwd' | awk -F: -v u="$u" '$1 == u { print $6 }')
		e2 "$out" "cat $home/.ssh/authorized_keys" | grep -q 'op@test' ||
			fail "$img: the key is not in $home/.ssh/authorized_keys"
		pass "$img: the key is in $u's authorized_keys"
		;;
	esac
	rm -f "$base" "$out"
done <<<"$IMAGES"

# sshd installed but turned on by nothing: piflash makes the links systemctl enable would.
build_image plain "$WORK/p.img"
o2=$(part_offset "$WORK/p.img" 2)
debugfs -w -R 'rm /etc/systemd/system/multi-user.target.wants/ssh.service' "$WORK/p.img?offset=$o2" >/dev/null 2>&1
debugfs -w -R 'rm /etc/systemd/system/sshd.service' "$WORK/p.img?offset=$o2" >/dev/null 2>&1
assert_eq "sshd not enabled: inspect says piflash enables it" enable-unit \
	"$("$PIFLASH" inspect --json "$WORK/p.img" | jq -r .flavor.mechanisms.ssh)"
"$PIFLASH" "${NODE[@]}" "$WORK/p.img" "$WORK/p.out" >/dev/null 2>"$WORK/err" ||
	{ cat "$WORK/err" >&2; fail "sshd not enabled: the main job failed"; }
e2 "$WORK/p.out" 'stat /etc/systemd/system/multi-user.target.wants/ssh.service' |
	grep -q 'Fast link dest: "/lib/systemd/system/ssh.service"' || fail "ssh.service not enabled"
e2 "$WORK/p.out" 'stat /etc/systemd/system/sshd.service' |
	grep -q 'Fast link dest: "/lib/systemd/system/ssh.service"' || fail "sshd.service alias missing"
pass "sshd not enabled: ssh.service enabled with its WantedBy and Alias links"

# --network for a service the image lacks is refused before anything is written.
expect_fail 1 "--network dhcpcd: it is not installed" \
	"$PIFLASH" "${NODE[@]}" --network dhcpcd "$WORK/p.img" "$WORK/none.img"
[ ! -e "$WORK/none.img" ] || fail "--network dhcpcd on an image without dhcpcd wrote an output"

finish
