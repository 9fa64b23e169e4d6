#!/bin/bash
# piflash --node on every mkimage flavor: each planned file read back with mtools/debugfs,
# filesystems clean, cloud-init files accepted by cloud-init itself, and bad input refused.
. "$(dirname "$0")/lib.sh"
need sfdisk mtype debugfs e2fsck fsck.fat jq ssh-keygen
export MTOOLS_SKIP_CHECK=1
export SOURCE_DATE_EPOCH=1700000000

HAVE_CLOUD_INIT=1
if ! command -v cloud-init >/dev/null; then
	# CI installs it (scripts/install-deps.sh); a developer machine may not have it.
	echo "note: cloud-init is not installed: schema checks are skipped" >&2
	HAVE_CLOUD_INIT=0
fi

ssh-keygen -q -t ed25519 -N '' -C 'ops@cluster' -f "$WORK/id"
ssh-keygen -q -t ecdsa -b 256 -N '' -C 'backup' -f "$WORK/id2"
KEY=$(cut -d' ' -f2 "$WORK/id.pub")
KEY2=$(cut -d' ' -f2 "$WORK/id2.pub")

# e2 IMG PART_NO CMD: debugfs on partition N of IMG
e2() {
	debugfs -R "$3" "$1?offset=$(part_offset "$1" "$2")" 2>/dev/null
}

# fat IMG PART_NO PATH: mtype of a file on partition N
fat() {
	mtype -i "$1@@$(part_offset "$1" "$2")" "::$3"
}

# e2_stat IMG PART PATH: "MODE UID GID" from debugfs
e2_stat() {
	e2 "$1" "$2" "stat $3" | sed -n 's/.*Mode: *\([0-7]*\).*/\1/p;s/.*User: *\([0-9]*\) *Group: *\([0-9]*\).*/\1 \2/p' | tr '\n' ' ' | sed 's/ $//'
}

check_clean() {
	local img=$1
	fat_clean "$img" "$(part_offset "$img" 1)" "$(part_size "$img" 1)"
	ext_clean "$img" "$(part_offset "$img" 2)"
}

cloud_checks() { # IMG FLAVOR SEED_PART: the seed files as cloud-init itself reads them
	local img=$1 flavor=$2 p=$3 v
	fat "$img" "$p" /user-data >"$WORK/user-data"
	fat "$img" "$p" /meta-data >"$WORK/meta-data"
	fat "$img" "$p" /network-config >"$WORK/network-config"
	grep -q '^hostname: "worker3"$' "$WORK/user-data" || fail "$flavor: user-data hostname"
	grep -q "$KEY" "$WORK/user-data" || fail "$flavor: key missing from user-data"
	grep -q '^ssh_pwauth: false$' "$WORK/user-data" || fail "$flavor: password login not off"
	grep -q 'instance-id: "iid-piflash-worker3-' "$WORK/meta-data" || fail "$flavor: instance-id"
	grep -q 'local-hostname: "worker3"' "$WORK/meta-data" || fail "$flavor: local-hostname"
	grep -q '192.168.1.13/24' "$WORK/network-config" || fail "$flavor: address"
	pass "$flavor: seed user-data, meta-data, network-config on partition $p"
	if [ "$HAVE_CLOUD_INIT" = 1 ]; then
		cloud-init schema -c "$WORK/user-data" >"$WORK/schema.out" 2>&1 ||
			{ cat "$WORK/schema.out" >&2; fail "$flavor: cloud-init schema rejects user-data"; }
		pass "$flavor: cloud-init schema -c user-data: valid"
		v=$(sed -n 's/^version: *\([0-9]\).*/\1/p' "$WORK/network-config")
		mkdir -p "$WORK/net-$flavor"
		cloud-init devel net-convert -p "$WORK/network-config" -k yaml -d "$WORK/net-$flavor" \
			-D debian -O netplan >"$WORK/nc.out" 2>&1 ||
			{ cat "$WORK/nc.out" >&2; fail "$flavor: net-convert rejects network-config v$v"; }
		grep -rq '192.168.1.13/24' "$WORK/net-$flavor" || fail "$flavor: address lost in net-convert"
		pass "$flavor: cloud-init devel net-convert accepts network-config v$v"
	fi
}

node_args=(--node worker3 --ssh-key "$WORK/id.pub" --ip 192.168.1.13/24 --gateway 192.168.1.1
	--dns 192.168.1.1,1.1.1.1)

for flavor in hypriot ubuntu rpios-trixie rpios-bookworm raspbian-buster plain; do
	IMG=$WORK/$flavor.img
	OUT=$WORK/$flavor-worker3.img
	"$MKIMAGE" "$flavor" "$IMG" || fail "mkimage $flavor"
	IN_SHA=$(sha256 "$IMG")

	"$PIFLASH" -q "${node_args[@]}" "$IMG" "$OUT" || fail "$flavor: piflash --node failed"
	assert_eq "$flavor: input unchanged" "$IN_SHA" "$(sha256 "$IMG")"
	check_clean "$OUT"
	assert_eq "$flavor: /etc/hostname" "worker3" "$(e2 "$OUT" 2 'cat /etc/hostname')"
	e2 "$OUT" 2 'cat /etc/hosts' | grep -q '^127.0.1.1	worker3$' || fail "$flavor: /etc/hosts"
	pass "$flavor: /etc/hosts names the node"

	json=$("$PIFLASH" inspect --json "$IMG")
	if [ "$(echo "$json" | jq -r '.flavor.name')" = "$flavor" ] ||
		{ [ "$flavor" = raspbian-buster ] && [ "$(echo "$json" | jq -r .flavor.name)" = raspbian ]; } ||
		{ [ "$flavor" = plain ] && [ "$(echo "$json" | jq -r .flavor.name)" = debian ]; }; then
		pass "$flavor: detected"
	else
		fail "$flavor: detected as $(echo "$json" | jq -r .flavor.name)"
	fi

	# No baked identity survives.
	mid=$(e2 "$OUT" 2 'cat /etc/machine-id')
	[ -z "$mid" ] || fail "$flavor: machine-id still baked: $mid"
	if e2 "$OUT" 2 'ls /etc/ssh' | grep -q 'ssh_host_'; then
		fail "$flavor: baked host keys remain"
	fi
	pass "$flavor: no baked machine-id or host keys"

	case $flavor in
	hypriot | ubuntu | rpios-trixie)
		cloud_checks "$OUT" "$flavor" 1
		;;
	esac
	case $flavor in
	hypriot)
		grep -q '^version: 1' "$WORK/network-config" || fail "hypriot: needs network-config v1"
		grep -q 'name: "pirate"' "$WORK/user-data" || fail "hypriot: user pirate"
		# cloud-init 0.7.9 reaches the seed through the links: they still lead there.
		assert_eq "hypriot: seed link" "$(fat "$OUT" 1 /user-data)" \
			"$("$PIFLASH" cat "$OUT" /var/lib/cloud/seed/nocloud-net/user-data)"
		;;
	ubuntu)
		grep -q '^version: 2' "$WORK/network-config" || fail "ubuntu: needs network-config v2"
		grep -q 'name: "ubuntu"' "$WORK/user-data" || fail "ubuntu: user ubuntu"
		;;
	rpios-trixie)
		grep -q 'name: "pi"' "$WORK/user-data" || fail "trixie: the users: list carries pi"
		fat "$OUT" 1 /ssh >/dev/null || fail "trixie: no ssh file on bootfs"
		;;
	rpios-bookworm)
		fat "$OUT" 1 /ssh >/dev/null || fail "bookworm: no ssh file on bootfs"
		st=$(e2_stat "$OUT" 2 /etc/NetworkManager/system-connections/piflash-eth.nmconnection)
		assert_eq "bookworm: keyfile 0600 root" "0600 0 0" "$st"
		e2 "$OUT" 2 'cat /etc/NetworkManager/system-connections/piflash-eth.nmconnection' |
			grep -q '^address1=192.168.1.13/24,192.168.1.1$' || fail "bookworm: keyfile address"
		;;
	raspbian-buster)
		fat "$OUT" 1 /ssh >/dev/null || fail "buster: no ssh file on boot"
		assert_eq "buster: authorized_keys" "0600 1000 1000" \
			"$(e2_stat "$OUT" 2 /home/pi/.ssh/authorized_keys)"
		assert_eq "buster: .ssh" "0700 1000 1000" "$(e2_stat "$OUT" 2 /home/pi/.ssh)"
		e2 "$OUT" 2 'cat /home/pi/.ssh/authorized_keys' | grep -q "$KEY" || fail "buster: key"
		e2 "$OUT" 2 'cat /etc/dhcpcd.conf' >"$WORK/dhcpcd.conf"
		grep -q '^interface eth0$' "$WORK/dhcpcd.conf" &&
			grep -q '^static ip_address=192.168.1.13/24$' "$WORK/dhcpcd.conf" &&
			grep -q '^static routers=192.168.1.1$' "$WORK/dhcpcd.conf" ||
			fail "buster: dhcpcd.conf block"
		pass "buster: static address under 'interface eth0' in dhcpcd.conf"
		# Again on the result: the block is replaced, not added.
		"$PIFLASH" -q --node worker3 --ip 192.168.1.14/24 --gateway 192.168.1.1 "$OUT" "$WORK/again.img"
		e2 "$WORK/again.img" 2 'cat /etc/dhcpcd.conf' >"$WORK/dhcpcd2.conf"
		assert_eq "buster: one piflash block after a second run" 1 \
			"$(grep -c '^# piflash begin' "$WORK/dhcpcd2.conf")"
		grep -q '^static ip_address=192.168.1.14/24$' "$WORK/dhcpcd2.conf" || fail "buster: rerun address"
		;;
	plain)
		# The user's uid is read from the image, never assumed to be 1000.
		assert_eq "plain: authorized_keys owned by ops (1500)" "0600 1500 1500" \
			"$(e2_stat "$OUT" 2 /home/ops/.ssh/authorized_keys)"
		e2 "$OUT" 2 'cat /etc/systemd/network/00-piflash.network' >"$WORK/net"
		grep -q '^Address=192.168.1.13/24$' "$WORK/net" && grep -q '^Gateway=192.168.1.1$' "$WORK/net" ||
			fail "plain: networkd file"
		pass "plain: systemd-networkd file"
		;;
	esac
done

# Two nodes from one image: different instance-ids.
"$PIFLASH" -q --node worker4 --ssh-key "$WORK/id.pub" "$WORK/hypriot.img" "$WORK/w4.img"
"$PIFLASH" -q --node worker5 --ssh-key "$WORK/id.pub" "$WORK/hypriot.img" "$WORK/w5.img"
a=$(fat "$WORK/w4.img" 1 /meta-data | grep instance-id)
b=$(fat "$WORK/w5.img" 1 /meta-data | grep instance-id)
[ "$a" != "$b" ] || fail "two nodes got the same instance-id"
pass "two nodes, two instance-ids"

# The same node from an inventory row.
cat >"$WORK/cluster.csv" <<CSV
hostname,ip,gateway,dns,ssh_key,var_role
worker2,192.168.1.12/24,192.168.1.1,1.1.1.1,id.pub,worker
worker3,192.168.1.13/24,192.168.1.1,"192.168.1.1,1.1.1.1",id.pub,worker
CSV
"$PIFLASH" -q --inventory "$WORK/cluster.csv" --node worker3 --ssh-key "$WORK/id2.pub" \
	"$WORK/raspbian-buster.img" "$WORK/csv.img"
check_clean "$WORK/csv.img"
keys=$(e2 "$WORK/csv.img" 2 'cat /home/pi/.ssh/authorized_keys')
echo "$keys" | grep -q "$KEY2" || fail "csv: the command line's key is missing"
echo "$keys" | grep -q "$KEY" && fail "csv: --ssh-key should replace the row's key"
e2 "$WORK/csv.img" 2 'cat /etc/dhcpcd.conf' | grep -q 'static ip_address=192.168.1.13/24' ||
	fail "csv: address from the row"
pass "inventory row, with --ssh-key overriding its key"

# plan prints and writes nothing.
printf 'correct horse battery\n' >"$WORK/psk"
"$PIFLASH" plan --json "${node_args[@]}" --wifi-ssid lab --wifi-psk-file "$WORK/psk" \
	--wifi-country DE "$WORK/rpios-bookworm.img" >"$WORK/plan.json"
jq -e '.operations | length > 3' "$WORK/plan.json" >/dev/null || fail "plan: no operations"
grep -q 'correct horse' "$WORK/plan.json" && fail "plan shows the WiFi passphrase"
jq -e '[.operations[] | select(.path | test("wifi")) | .secret] | all' "$WORK/plan.json" >/dev/null ||
	fail "plan: wifi file not secret"
pass "plan --json lists operations and masks secrets"

# A value that would break YAML stays a string.
mkdir -p "$WORK/tpl"
cat >"$WORK/tpl/user-data.yaml" <<'T'
#cloud-config
hostname: {{hostname}}
bootcmd:
  - [ echo, {{var_motd}} ]
T
"$PIFLASH" -q --node worker3 --ssh-key "$WORK/id.pub" --template-dir "$WORK/tpl" --set 'var_motd=x ]
  - evil: true
#' "$WORK/hypriot.img" "$WORK/yaml.img"
fat "$WORK/yaml.img" 1 /user-data >"$WORK/ud"
grep -q 'evil' "$WORK/ud" && ! grep -q '^  - evil' "$WORK/ud" || fail "YAML-breaking value: $(cat "$WORK/ud")"
if [ "$HAVE_CLOUD_INIT" = 1 ]; then
	cloud-init schema -c "$WORK/ud" >/dev/null 2>&1 || fail "YAML-breaking value broke the schema"
fi
pass "a YAML-breaking value stays one string"

# A node of a cloud-init image can be verified later when its instance-id is derived from a
# seed (and the times from SOURCE_DATE_EPOCH): the rebuilt image is the same, host key included.
SEEDED=(--node worker3 --ssh-key "$WORK/id.pub" --ip 10.0.0.13/24 --host-keys --instance-id-seed s3cr3t)
SOURCE_DATE_EPOCH=1700000000 "$PIFLASH" -q "${SEEDED[@]}" "$WORK/hypriot.img" "$WORK/seeded.img"
SOURCE_DATE_EPOCH=1700000000 "$PIFLASH" verify -q "${SEEDED[@]}" "$WORK/hypriot.img" \
	"$WORK/seeded.img" || fail "piflash verify with the same seed: the image differs"
pass "piflash verify --instance-id-seed: the seeded node rebuilds byte for byte"
SOURCE_DATE_EPOCH=1700000000 expect_fail 3 "verification failed" \
	"$PIFLASH" verify --node worker3 --ssh-key "$WORK/id.pub" --ip 10.0.0.13/24 --host-keys --instance-id-seed other \
	"$WORK/hypriot.img" "$WORK/seeded.img"
assert_eq "the seeded instance-id is HMAC-SHA256(seed, hostname)" \
	"instance-id: \"iid-piflash-worker3-$(printf worker3 | openssl dgst -sha256 -hmac s3cr3t -r | cut -c1-16)\"" \
	"$(fat "$WORK/seeded.img" 1 /meta-data | grep '^instance-id')"
rm -f "$WORK/seeded.img"

# --known-hosts: the node's new key replaces the lines that named it; other lines stay.
printf '# mine\nother.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOTHERxx\nworker3,10.0.0.13 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOLDKEYxx\n' \
	>"$WORK/known_hosts"
"$PIFLASH" -q --node worker3 --no-login --ip 10.0.0.13/24 --host-keys --known-hosts "$WORK/known_hosts" \
	"$WORK/hypriot.img" "$WORK/kh.img"
pub=$(e2 "$WORK/kh.img" 2 "cat /etc/ssh/ssh_host_ed25519_key.pub" | cut -d' ' -f1,2)
for h in worker3 10.0.0.13; do
	assert_eq "known_hosts: $h has the key on the image" "$pub" \
		"$(ssh-keygen -F "$h" -f "$WORK/known_hosts" | grep -v '^#' | cut -d' ' -f2,3)"
done
grep -q OLDKEY "$WORK/known_hosts" && fail "known_hosts: the old key of worker3 is still there"
grep -q '^other.example .*OTHERxx$' "$WORK/known_hosts" && grep -q '^# mine$' "$WORK/known_hosts" ||
	fail "known_hosts: other lines were lost: $(cat "$WORK/known_hosts")"
pass "--known-hosts replaces the node's old key and keeps the other lines"
expect_fail 2 "goes with --host-keys" "$PIFLASH" --node worker3 --known-hosts "$WORK/known_hosts" \
	"$WORK/hypriot.img" "$WORK/kh2.img"
rm -f "$WORK/kh.img"

# Bad input, each refused before anything is written.
printf 'hostname,ip\nw1,"10.0.0.1/24\nw2,10.0.0.2/24\n' >"$WORK/unbalanced.csv"
printf 'hostname,ip\nw1,10.0.0.1/24\nw2,10.0.0.1/24\n' >"$WORK/dup.csv"
expect_fail 1 "Worker_3|lower|hostname" "$PIFLASH" --node Worker_3 "$WORK/plain.img" "$WORK/x.img"
expect_fail 1 "private key" "$PIFLASH" --node w1 --ssh-key "$WORK/id" "$WORK/plain.img" "$WORK/x.img"
grep -v -- '-----' "$WORK/id" | head -c 12 >"$WORK/needle"
grep -qF "$(cat "$WORK/needle")" "$WORK/err" && fail "the private key was echoed"
printf 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBADBASE64 x\n' >"$WORK/bad.pub"
expect_fail 1 "bad.pub:1" "$PIFLASH" --node w1 --ssh-key "$WORK/bad.pub" "$WORK/plain.img" "$WORK/x.img"
expect_fail 1 "gateway" "$PIFLASH" --node w1 --ip 10.0.0.5/24 --gateway 10.0.1.1 "$WORK/plain.img" "$WORK/x.img"
expect_fail 1 "unbalanced.csv:2" "$PIFLASH" --inventory "$WORK/unbalanced.csv" --node w1 "$WORK/plain.img" "$WORK/x.img"
expect_fail 1 "dup.csv:3.*10.0.0.1|10.0.0.1.*dup.csv:3" "$PIFLASH" --inventory "$WORK/dup.csv" --node w1 "$WORK/plain.img" "$WORK/x.img"
expect_fail 1 "worker9" "$PIFLASH" --inventory "$WORK/cluster.csv" --node worker9 "$WORK/plain.img" "$WORK/x.img"
# A misspelt column or --set name is an error, not a template variable nothing reads (it once
# built every node without its key, or without its default route).
printf 'hostname,ip,gatway,sshkey\nw1,10.0.0.2/24,10.0.0.1,id.pub\n' >"$WORK/typo.csv"
expect_fail 1 "^piflash: inventory: $WORK/typo.csv:1:13: unknown column 'gatway' \(did you mean gateway\?\)$" \
	"$PIFLASH" --inventory "$WORK/typo.csv" --node w1 "$WORK/plain.img" "$WORK/x.img"
expect_fail 2 "^piflash: --set: unknown setting 'sshkey' \(did you mean ssh_key\?\)$" \
	"$PIFLASH" --node w1 --set "sshkey=$WORK/id.pub" "$WORK/plain.img" "$WORK/x.img"
# Each message names the setting once, and IPv6 is called IPv6.
expect_fail 1 "^piflash: node 'w1': invalid node settings: --ip: '2001:db8::13/64' is an IPv6 address: piflash sets IPv4 addresses only \(IPv6 is not supported here\)$" \
	"$PIFLASH" --node w1 --ip 2001:db8::13/64 "$WORK/plain.img" "$WORK/x.img"
expect_fail 1 "^piflash: node 'W1': --node: hostname 'W1' has upper case; write it 'w1'$" \
	"$PIFLASH" --node W1 "$WORK/plain.img" "$WORK/x.img"
expect_fail 1 "^piflash: node 'w1': invalid node settings: --password-hash: password hash is not a crypt" \
	"$PIFLASH" --node w1 --password-hash hunter2 "$WORK/plain.img" "$WORK/x.img"
mkdir -p "$WORK/tpl2"
printf 'instance-id: {{instance_id}}\nlocal-hostname: {{nope}}\n' >"$WORK/tpl2/meta-data.yaml"
expect_fail 1 "meta-data.yaml:2.*nope" "$PIFLASH" --node w1 --no-login --template-dir "$WORK/tpl2" "$WORK/hypriot.img" "$WORK/x.img"
expect_fail 1 "arm64.*pi1|pi1.*arm64" "$PIFLASH" --node w1 --board pi1 "$WORK/ubuntu.img" "$WORK/x.img"
[ ! -e "$WORK/x.img" ] && pass "nothing written for bad input"

# A node nobody could log into: where piflash replaces the image's login (cloud-init's users:,
# custom.toml, userconf), no key and no hash is refused unless --no-login says it is meant.
for f in hypriot ubuntu rpios-trixie rpios-bookworm; do
	expect_fail 1 "nobody could log into this node: .*give --ssh-key FILE or --password-hash HASH .*or --no-login to mean it" \
		"$PIFLASH" --node w1 "$WORK/$f.img" "$WORK/x.img"
	expect_fail 1 "nobody could log into this node" "$PIFLASH" plan --node w1 "$WORK/$f.img"
done
[ ! -e "$WORK/x.img" ] || fail "an image was written for a node nobody could log into"
expect_fail 1 "SSH password login .* no password is set: give --password-hash HASH" \
	"$PIFLASH" --node w1 --ssh-key "$WORK/id.pub" --ssh-password "$WORK/hypriot.img" "$WORK/x.img"
expect_fail 1 "--no-login asks for a node nobody can log into, but an SSH key is given" \
	"$PIFLASH" --node w1 --ssh-key "$WORK/id.pub" --no-login "$WORK/hypriot.img" "$WORK/x.img"
# The image's own /etc/shadow login is not touched where piflash only adds keys: said, not refused.
"$PIFLASH" plan --node w1 "$WORK/plain.img" | grep -q "^Note: no SSH key or password hash given: the login of 'ops' stays as the image has it" ||
	fail "plain image without key: no note that its login stays"
pass "plain image without a key: built, its own login stays (a note says so)"

# Never password login over SSH next to a locked password (ssh_pwauth true only with a hash).
HASH='$6$abcdefgh$KQeXafAQAaOoKTevphVU215RvJdgzyfASRasIOuh12hO8u0r1bGW92ZnTmC9IjsiQ8VPiTXBiZF49dFL1U4wX/'
"$PIFLASH" -q --node w1 --no-login "$WORK/hypriot.img" "$WORK/nl.img"
"$PIFLASH" -q --node w1 --password-hash "$HASH" "$WORK/hypriot.img" "$WORK/pw.img"
"$PIFLASH" -q --node w1 --password-hash "$HASH" --ssh-key "$WORK/id.pub" "$WORK/hypriot.img" "$WORK/pwk.img"
"$PIFLASH" -q --node w1 --password-hash "$HASH" --ssh-key "$WORK/id.pub" --ssh-password \
	"$WORK/hypriot.img" "$WORK/pwks.img"
for t in nl:true:false pw:false:true pwk:false:false pwks:false:true; do
	IFS=: read -r n lock pwauth <<<"$t"
	fat "$WORK/$n.img" 1 /user-data >"$WORK/ud-$n"
	assert_eq "$n: lock_passwd" "$lock" "$(sed -n 's/^    lock_passwd: //p' "$WORK/ud-$n")"
	assert_eq "$n: ssh_pwauth" "$pwauth" "$(sed -n 's/^ssh_pwauth: //p' "$WORK/ud-$n")"
	if [ "$HAVE_CLOUD_INIT" = 1 ]; then
		cloud-init schema -c "$WORK/ud-$n" >/dev/null 2>&1 || fail "$n: cloud-init schema rejects user-data"
	fi
	rm -f "$WORK/$n.img"
done
"$PIFLASH" plan --json --node w1 --no-login "$WORK/rpios-bookworm.img" |
	jq -r '.operations[] | select(.path == "/custom.toml") | .content' >"$WORK/custom.toml"
if [ -s "$WORK/custom.toml" ]; then
	grep -q '^password_authentication = false$' "$WORK/custom.toml" ||
		fail "custom.toml: password login on without a password: $(cat "$WORK/custom.toml")"
	pass "custom.toml: password_authentication false without a password"
fi

# ---- WiFi on HypriotOS: cloud-init 0.7.9's network-config (version 1) has none, so it goes
# into user-data's write_files, as HypriotOS documents it, with the derived key (0600).
printf 'correct horse battery\n' >"$WORK/psk"
WIFI=(--wifi-ssid 'lab net' --wifi-psk-file "$WORK/psk" --wifi-country DE)
"$PIFLASH" -q --node worker3 --ssh-key "$WORK/id.pub" --ip 192.168.1.13/24 "${WIFI[@]}" \
	"$WORK/hypriot.img" "$WORK/wifi.img" || fail "hypriot: WiFi refused"
check_clean "$WORK/wifi.img"
fat "$WORK/wifi.img" 1 /user-data >"$WORK/ud-wifi"
grep -q 'correct horse' "$WORK/ud-wifi" && fail "hypriot WiFi: the passphrase is in user-data"
python3 - "$WORK/ud-wifi" <<'PY' || fail "hypriot WiFi: user-data: $(cat "$WORK/ud-wifi")"
import hashlib, sys, yaml
# libyaml's parser (CSafeLoader), as cloud-init uses it where it is there.
d = yaml.load(open(sys.argv[1]), Loader=yaml.CSafeLoader)
files = {f["path"]: f for f in d["write_files"]}
wpa = files["/etc/wpa_supplicant/wpa_supplicant.conf"]
assert wpa["permissions"] == "0600", wpa
key = hashlib.pbkdf2_hmac("sha1", b"correct horse battery", b"lab net", 4096, 32).hex()
assert "\tpsk=" + key + "\n" in wpa["content"], wpa["content"]
assert "\tssid=" + b"lab net".hex() + "\n" in wpa["content"], wpa["content"]
assert "country=DE\n" in wpa["content"], wpa["content"]
eni = files["/etc/network/interfaces.d/wlan0"]["content"]
assert "iface wlan0 inet dhcp" in eni and "wpa-conf /etc/wpa_supplicant/wpa_supplicant.conf" in eni, eni
assert "ifup wlan0" in files["/var/lib/cloud/scripts/per-instance/piflash-wifi"]["content"]
assert files["/var/lib/cloud/scripts/per-instance/piflash-wifi"]["permissions"] == "0755"
assert d["runcmd"] == ["systemctl restart avahi-daemon"], d["runcmd"]  # the image's, kept
PY
pass "hypriot WiFi: user-data write_files, wpa_supplicant.conf 0600 with the derived key"
if [ "$HAVE_CLOUD_INIT" = 1 ]; then
	cloud-init schema -c "$WORK/ud-wifi" >"$WORK/schema.out" 2>&1 ||
		{ cat "$WORK/schema.out" >&2; fail "hypriot WiFi: cloud-init schema rejects user-data"; }
	pass "hypriot WiFi: cloud-init schema -c user-data: valid"
fi
fat "$WORK/wifi.img" 1 /network-config | grep -q '192.168.1.13/24' || fail "hypriot WiFi: wired address lost"
"$PIFLASH" plan --json --node worker3 --ssh-key "$WORK/id.pub" "${WIFI[@]}" "$WORK/hypriot.img" >"$WORK/wplan.json"
assert_eq "hypriot WiFi: plan shows user-data as secret" true \
	"$(jq '.operations[] | select(.path == "/user-data") | .secret' "$WORK/wplan.json")"
grep -q 'correct horse' "$WORK/wplan.json" && fail "hypriot WiFi: plan shows the passphrase"
rm -f "$WORK/wifi.img"
# Without wpasupplicant's ifupdown hook nothing would read the files: refused, with the fact.
cp --sparse=always "$WORK/hypriot.img" "$WORK/nowpa.img"
debugfs -w -R "rm /etc/network/if-pre-up.d/wpasupplicant" "$WORK/nowpa.img?offset=$(part_offset "$WORK/nowpa.img" 2)" >/dev/null 2>&1
expect_fail 1 "WiFi: cloud-init 0.7.9 reads network-config version 1, which has no WiFi, and the image has no wpasupplicant ifupdown hook" \
	"$PIFLASH" --node worker3 --ssh-key "$WORK/id.pub" "${WIFI[@]}" "$WORK/nowpa.img" "$WORK/x.img"
rm -f "$WORK/nowpa.img"

# ---- --user-data FILE: merged with piflash's settings, the file winning where it sets a key.
cat >"$WORK/ud.yaml" <<'UD'
#cloud-config
# the operator's own
hostname: {{hostname}}
package_upgrade: true
runcmd:
  - [ echo, {{var_msg}} ]
ssh_genkeytypes: [ed25519, rsa]
UD
"$PIFLASH" -q --node worker3 --ssh-key "$WORK/id.pub" --host-keys --set var_msg=hi \
	--user-data "$WORK/ud.yaml" "$WORK/hypriot.img" "$WORK/ud.img" || fail "--user-data refused"
fat "$WORK/ud.img" 1 /user-data >"$WORK/ud-merged"
python3 - "$WORK/ud-merged" "$KEY" <<'PY' || fail "--user-data merge: $(cat "$WORK/ud-merged")"
import sys, yaml
d = yaml.load(open(sys.argv[1]), Loader=yaml.CSafeLoader)
assert d["hostname"] == "worker3", d
assert d["package_upgrade"] is True, d            # the file's, not the image's false
assert d["runcmd"] == [["echo", "hi"]], d         # the file's, rendered
assert d["ssh_genkeytypes"] == ["ed25519", "rsa"], d  # the file wins where it sets a key
assert d["ssh_deletekeys"] is False, d            # piflash's, for --host-keys
u = d["users"][0]
assert u["name"] == "pirate" and any(sys.argv[2] in k for k in u["ssh_authorized_keys"]), u
assert d["ssh_pwauth"] is False, d
PY
pass "--user-data: the file's keys, and piflash's key, user, hostname and ssh_deletekeys"
if [ "$HAVE_CLOUD_INIT" = 1 ]; then
	cloud-init schema -c "$WORK/ud-merged" >/dev/null 2>&1 || fail "--user-data merge: schema"
fi
rm -f "$WORK/ud.img"
# A key of the file that would break a promise is an error naming it.
ud_conflict() { # REGEX YAML-LINES... : the file with these lines is refused with REGEX
	local re=$1
	shift
	printf '#cloud-config\n' >"$WORK/ud-bad.yaml"
	printf '%s\n' "$@" >>"$WORK/ud-bad.yaml"
	expect_fail 1 "$re" "$PIFLASH" --node worker3 --ssh-key "$WORK/id.pub" --host-keys \
		--user-data "$WORK/ud-bad.yaml" "$WORK/hypriot.img" "$WORK/x.img"
}
ud_conflict "sets ssh_deletekeys: cloud-init would delete the host key piflash made" 'ssh_deletekeys: true'
ud_conflict "sets ssh_keys, which would replace the host key" 'ssh_keys:' '  ed25519_private: x'
ud_conflict "sets users, which would replace the user 'pirate' piflash gives the keys of --ssh-key" \
	'users:' '  - name: pirate'
ud_conflict "sets hostname 'other', but the node is 'worker3'" 'hostname: other'
expect_fail 1 "--user-data '$WORK/ud.yaml': nothing on this image reads user-data \\(the user is made by passwd" \
	"$PIFLASH" --node worker3 --ssh-key "$WORK/id.pub" --user-data "$WORK/ud.yaml" "$WORK/plain.img" "$WORK/x.img"
printf '#!/bin/sh\necho hi\n' >"$WORK/ud-script"
expect_fail 1 "is not #cloud-config" "$PIFLASH" --node worker3 --ssh-key "$WORK/id.pub" \
	--user-data "$WORK/ud-script" "$WORK/hypriot.img" "$WORK/x.img"
# The file's own users: carry the login: no key needed, the file's users kept.
printf '#cloud-config\nusers:\n  - name: ops\n    ssh_authorized_keys: ["%s"]\n' "$(cat "$WORK/id.pub")" >"$WORK/ud-users.yaml"
"$PIFLASH" plan --node worker3 --user-data "$WORK/ud-users.yaml" "$WORK/hypriot.img" >"$WORK/plan.out" ||
	fail "--user-data with its own users: refused without --ssh-key"
grep -q "makes its own users: the logins are the file's" "$WORK/plan.out" || fail "no note on the file's users"
grep -q '  - name: ops' "$WORK/plan.out" && ! grep -q 'name: "pirate"' "$WORK/plan.out" ||
	fail "--user-data users: not the file's: $(cat "$WORK/plan.out")"
pass "--user-data with its own users: its login, no refusal"
# cloud-init's own jinja template: passed on as written, never rendered as mustache; it cannot
# carry options piflash would merge, and cloud-init 0.7.9 does not render jinja at all.
printf '## template: jinja\n#cloud-config\nruncmd:\n  - echo {{ v1.local_hostname }}\n' >"$WORK/ud-jinja"
expect_fail 1 "is a jinja template .* cannot carry --ssh-key" "$PIFLASH" --node worker3 \
	--ssh-key "$WORK/id.pub" --user-data "$WORK/ud-jinja" "$WORK/hypriot.img" "$WORK/x.img"
expect_fail 1 "jinja template, which cloud-init renders from 18.4 on; the image's cloud-init 0.7.9" \
	"$PIFLASH" --node worker3 --user-data "$WORK/ud-jinja" "$WORK/hypriot.img" "$WORK/x.img"
"$PIFLASH" -q --node worker3 --user-data "$WORK/ud-jinja" "$WORK/rpios-trixie.img" "$WORK/j.img" ||
	fail "a jinja user-data was refused on trixie"
cmp "$WORK/ud-jinja" <(fat "$WORK/j.img" 1 /user-data) || fail "the jinja user-data was changed"
pass "a jinja user-data is written as given"
rm -f "$WORK/j.img"

finish
