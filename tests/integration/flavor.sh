#!/bin/bash
# piflash inspect reads each flavor from the image's own files: the flavor name, the
# architecture from the ELF header of /bin/sh (links followed inside the image), the default
# user, the cloud-init version and seed, the network stack and what is baked in. An image
# whose flavor cannot be told still inspects, with an error that lists what was found.
. "$(dirname "$0")/lib.sh"

need sfdisk jq mkfs.vfat mke2fs mcopy debugfs openssl e2fsck
[ -x "$PIFLASH" ] || skip "'$PIFLASH' is not built"

# flavor name arch default-user cloud-init seed network boot-mount
FLAVORS='
hypriot hypriot armhf pirate 0.7.9 1:/ cloud-init /boot
ubuntu ubuntu arm64 ubuntu 22.4.2 1:/ cloud-init /boot/firmware
rpios-trixie rpios-trixie arm64 pi 25.1.4 1:/ cloud-init /boot/firmware
rpios-bookworm rpios-bookworm arm64 null null null networkmanager /boot/firmware
raspbian-buster raspbian armhf pi null null dhcpcd /boot
plain debian arm64 ops null null networkd /boot/firmware
'

# inspect_json IMG OUT: piflash inspect --json, exit 0, no sanitizer report.
inspect_json() {
	if ! "$PIFLASH" inspect --json "$1" >"$2" 2>"$WORK/err"; then
		cat "$WORK/err" >&2
		fail "piflash inspect --json '$1' failed"
	fi
	if grep -Eq 'Sanitizer|runtime error' "$WORK/err"; then
		cat "$WORK/err" >&2
		fail "piflash inspect --json '$1': sanitizer report"
	fi
}

# jstr JSON FILTER: a JSON string as text, null as "null".
jstr() {
	jq -r "$2 // \"null\"" "$1"
}

while read -r flavor name arch user ci seed net mount; do
	[ -n "$flavor" ] || continue
	img=$WORK/$flavor.img
	build_image "$flavor" "$img"
	inspect_json "$img" "$WORK/$flavor.json"
	j=$WORK/$flavor.json
	assert_eq "$flavor: flavor.name" "$name" "$(jstr "$j" .flavor.name)"
	assert_eq "$flavor: flavor.error" null "$(jstr "$j" .flavor.error)"
	assert_eq "$flavor: flavor.arch" "$arch" "$(jstr "$j" .flavor.arch)"
	assert_eq "$flavor: flavor.default_user" "$user" "$(jstr "$j" .flavor.default_user)"
	assert_eq "$flavor: flavor.cloud_init" "$ci" "$(jstr "$j" .flavor.cloud_init)"
	assert_eq "$flavor: flavor.seed" "$seed" "$(jstr "$j" .flavor.seed)"
	assert_eq "$flavor: flavor.network" "$net" "$(jstr "$j" .flavor.network)"
	assert_eq "$flavor: flavor.boot_partition" 1 "$(jq .flavor.boot_partition "$j")"
	assert_eq "$flavor: flavor.boot_mount" "$mount" "$(jstr "$j" .flavor.boot_mount)"
	[ "$(jq '.flavor.evidence | length' "$j")" -ge 3 ] || fail "$flavor: too little evidence"
	grep -q "flavor: $name" <(jq -r '.flavor.evidence[]' "$j") ||
		fail "$flavor: evidence does not end in the verdict"
	pass "$flavor: evidence lines"

	"$PIFLASH" inspect "$img" >"$WORK/human" 2>&1 || fail "piflash inspect '$img' failed"
	grep -q "^Flavor: *$name\$" "$WORK/human" || fail "$flavor: human output lacks 'Flavor: $name'"
	grep -q "^Arch: *$arch\$" "$WORK/human" || fail "$flavor: human output lacks 'Arch: $arch'"
	pass "$flavor: human output names flavor and arch"

	case $flavor in
	hypriot)
		assert_eq "hypriot: seed through the links" \
			"link /var/lib/cloud/seed/nocloud-net/user-data -> /boot/user-data" \
			"$(jstr "$j" .flavor.seed_how)"
		assert_eq "hypriot: dhcpcd masked" true "$(jq .flavor.dhcpcd_masked "$j")"
		assert_eq "hypriot: network-config v1" 1 \
			"$(jq .flavor.cloud_init_config.network_config_version "$j")"
		assert_eq "hypriot: instance-id" pirate001 \
			"$(jstr "$j" .flavor.cloud_init_config.instance_id)"
		;;
	ubuntu)
		assert_eq "ubuntu: NoCloud fs_label" system-boot \
			"$(jstr "$j" .flavor.cloud_init_config.nocloud_fs_label)"
		assert_eq "ubuntu: network-config v2" 2 \
			"$(jq .flavor.cloud_init_config.network_config_version "$j")"
		assert_eq "ubuntu: no user in passwd" 0 "$(jq '.flavor.users | length' "$j")"
		;;
	rpios-trixie)
		assert_eq "rpios-trixie: arch read through /bin -> usr/bin and sh -> dash" \
			true "$(jq '[.flavor.evidence[] | select(test("/bin/sh = 2:/usr/bin/dash"))] | length == 1' "$j")"
		assert_eq "rpios-trixie: os-release through the /etc link" trixie \
			"$(jstr "$j" .flavor.os.codename)"
		assert_eq "rpios-trixie: users: list without default" '["pi"] false' \
			"$(jq -c .flavor.cloud_init_config.users "$j") $(jq .flavor.cloud_init_config.users_default "$j")"
		assert_eq "rpios-trixie: fs_label bootfs" bootfs \
			"$(jstr "$j" .flavor.cloud_init_config.nocloud_fs_label)"
		assert_eq "rpios-trixie: ssh_deletekeys false" false \
			"$(jq .flavor.cloud_init_config.ssh_deletekeys "$j")"
		assert_eq "rpios-trixie: network-config v2" 2 \
			"$(jq .flavor.cloud_init_config.network_config_version "$j")"
		assert_eq "rpios-trixie: netplan and NetworkManager" "true true" \
			"$(jq .flavor.has_netplan "$j") $(jq .flavor.has_networkmanager "$j")"
		;;
	rpios-bookworm)
		assert_eq "rpios-bookworm: first user pi (renamed at first boot)" pi \
			"$(jstr "$j" .flavor.first_user)"
		assert_eq "rpios-bookworm: userconf and custom.toml" "true true" \
			"$(jq .flavor.has_userconf "$j") $(jq .flavor.has_custom_toml "$j")"
		;;
	raspbian-buster | plain)
		assert_eq "$flavor: nothing baked" "false false 0" \
			"$(jq -r '"\(.flavor.machine_id_baked) \(.flavor.dbus_machine_id_copy) \(.flavor.host_keys | length)"' "$j")"
		;;
	esac
	case $flavor in
	rpios-trixie | rpios-bookworm)
		assert_eq "$flavor: baked identity" "true true" \
			"$(jq .flavor.machine_id_baked "$j") $(jq .flavor.dbus_machine_id_copy "$j")"
		assert_eq "$flavor: baked host keys" \
			'["/etc/ssh/ssh_host_ed25519_key","/etc/ssh/ssh_host_ed25519_key.pub"]' \
			"$(jq -c .flavor.host_keys "$j")"
		assert_eq "$flavor: host keys regenerated" true "$(jq .flavor.regenerates_host_keys "$j")"
		;;
	esac
	[ "$flavor" = raspbian-buster ] || rm -f "$img"
done <<<"$FLAVORS"

# --flavor takes the flavor as given.
"$PIFLASH" inspect --json --flavor debian "$WORK/raspbian-buster.img" >"$WORK/forced.json" ||
	fail "piflash inspect --flavor debian failed"
assert_eq "--flavor debian: name" debian "$(jstr "$WORK/forced.json" .flavor.name)"
assert_eq "--flavor debian: network follows" dhcpcd "$(jstr "$WORK/forced.json" .flavor.network)"
expect_fail 2 "unknown flavor 'windows'" "$PIFLASH" inspect --flavor windows "$WORK/raspbian-buster.img"

# No os-release: the flavor is unknown, inspect still succeeds and says what it found.
img=$WORK/raspbian-buster.img
o2=$(part_offset "$img" 2)
debugfs -w -R 'rm /etc/os-release' "$img?offset=$o2" >/dev/null 2>&1
ext_clean "$img" "$o2"
inspect_json "$img" "$WORK/noos.json"
assert_eq "no os-release: flavor.name" null "$(jstr "$WORK/noos.json" .flavor.name)"
err=$(jstr "$WORK/noos.json" .flavor.error)
case $err in
"unknown flavor: no os-release"*dhcpcd*"no cloud-init"*) pass "no os-release: error lists what was found ('$err')" ;;
*) fail "no os-release: unexpected error '$err'" ;;
esac
assert_eq "no os-release: partitions still listed" 2 "$(jq '.partitions | length' "$WORK/noos.json")"
assert_eq "no os-release: arch still read" armhf "$(jstr "$WORK/noos.json" .flavor.arch)"
"$PIFLASH" inspect "$img" >"$WORK/human" 2>&1 || fail "piflash inspect (human) failed without os-release"
grep -q '^Flavor: *unknown (unknown flavor: no os-release' "$WORK/human" ||
	fail "human output: no unknown flavor line"
pass "no os-release: human output says unknown"

# A partitioned image with no filesystem at all.
truncate -s 32M "$WORK/bare.img"
printf 'label: dos\nstart=2048, type=83\n' | sfdisk -q "$WORK/bare.img" >/dev/null
inspect_json "$WORK/bare.img" "$WORK/bare.json"
assert_eq "bare image: flavor.name" null "$(jstr "$WORK/bare.json" .flavor.name)"
case $(jstr "$WORK/bare.json" .flavor.error) in
"unknown flavor: no root filesystem"*) pass "bare image: error says there is no root" ;;
*) fail "bare image: unexpected error '$(jstr "$WORK/bare.json" .flavor.error)'" ;;
esac

finish
