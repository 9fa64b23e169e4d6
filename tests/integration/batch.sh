#!/bin/bash
# piflash batch: one image per inventory row, judged by tools nobody here wrote — fsck.fat,
# e2fsck, mtools, debugfs, ssh-keygen, sha256sum, bmaptool, ansible-inventory, zstd/xz/gzip,
# cmp, jq. A failing row does not stop the others; artifacts, SHA256SUMS, report.json,
# inventory.ini, hosts and known_hosts agree with each other and with what is on each card;
# re-runs skip what is up to date; seeded runs, -j and --shard give byte-identical artifacts.
. "$(dirname "$0")/lib.sh"
need sfdisk mtype debugfs e2fsck fsck.fat jq ssh-keygen sha256sum cmp bmaptool zstd xz gzip python3
export MTOOLS_SKIP_CHECK=1
export SOURCE_DATE_EPOCH=1700000000
SEED=batch-test-seed

IMG=$WORK/hypriot.img
build_image hypriot "$IMG" --size 105
IN_SHA=$(sha256 "$IMG")
P1=$(part_offset "$IMG" 1)
P1_SIZE=$(part_size "$IMG" 1)
P2=$(part_offset "$IMG" 2)

# Operator keys: ops (pirate's) and dev (the ops user's); bad.pub has a '!' in its base64.
ssh-keygen -q -t ed25519 -N '' -C 'ops@cluster' -f "$WORK/ops"
ssh-keygen -q -t ed25519 -N '' -C 'dev@cluster' -f "$WORK/dev"
printf 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBAD!!BASE64xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx x\n' >"$WORK/bad.pub"
OPS_KEY=$(cut -d' ' -f2 "$WORK/ops.pub")
DEV_KEY=$(cut -d' ' -f2 "$WORK/dev.pub")

# Five nodes: static and DHCP, users pirate and ops, groups control and workers (echo has
# none), delta with the bad key. The names fall into both halves of --shard N/2.
CSV=$WORK/cluster.csv
cat >"$CSV" <<'CSV'
hostname,ip,gateway,dns,user,ssh_key,group
alpha,10.0.0.11/24,10.0.0.1,10.0.0.1,pirate,ops.pub,control
bravo,,,,pirate,ops.pub,workers
charlie,10.0.0.13/24,10.0.0.1,"10.0.0.1,1.1.1.1",ops,dev.pub,workers
delta,10.0.0.14/24,10.0.0.1,10.0.0.1,pirate,bad.pub,workers
echo,,,,ops,dev.pub,
CSV
GOOD="alpha bravo charlie echo"
ALL="alpha bravo charlie delta echo"
declare -A IP=([alpha]=10.0.0.11 [charlie]=10.0.0.13)
declare -A USR=([alpha]=pirate [bravo]=pirate [charlie]=ops [echo]=ops)
declare -A KEY=([alpha]=$OPS_KEY [bravo]=$OPS_KEY [charlie]=$DEV_KEY [echo]=$DEV_KEY)
declare -A GRP=([alpha]=control [bravo]=workers [charlie]=workers [echo]=)

# batch TAG RC ARGS...: piflash batch ARGS... must exit RC (stdout and stderr kept in
# $WORK/TAG.out and .err) without a sanitizer report.
batch() {
	local tag=$1 want=$2 rc
	shift 2
	set +e
	"$PIFLASH" batch "$@" >"$WORK/$tag.out" 2>"$WORK/$tag.err"
	rc=$?
	set -e
	if grep -Eq 'Sanitizer|runtime error' "$WORK/$tag.err"; then
		cat "$WORK/$tag.err" >&2
		fail "$tag: sanitizer report"
	fi
	if [ "$rc" -ne "$want" ]; then
		cat "$WORK/$tag.out" "$WORK/$tag.err" >&2
		fail "$tag: piflash batch $* exited $rc, expected $want"
	fi
}

# status DIR: "name=status ..." from DIR/report.json, in report order.
status() {
	jq -r '[.nodes[] | "\(.hostname)=\(.status)"] | join(" ")' "$1/report.json"
}

# mtimes DIR NAMES...: "name:mtime-in-ns" of each DIR/NAME.img, from stat.
mtimes() {
	local d=$1 n
	shift
	for n in "$@"; do
		printf '%s:%s ' "$n" "$(stat -c %.9Y "$d/$n.img")"
	done
}

# ptable IMG: sfdisk's view of the table without the file names.
ptable() {
	sfdisk -J "$1" | jq -c '.partitiontable | del(.device) | .partitions |= map(del(.node))'
}

fat() { # IMG PATH
	mtype -i "$1@@$P1" "::$2"
}

e2() { # IMG CMD
	debugfs -R "$2" "$1?offset=$P2" 2>/dev/null
}

common=(--inventory "$CSV" --host-keys --instance-id-seed "$SEED")

# ---- 1. a five-node run with one bad row -------------------------------------------------
A=$WORK/a
batch full 1 "${common[@]}" --bmap -j 2 --out-dir "$A" "$IMG"
grep -Eq '^ *failed: delta: .*bad\.pub' "$WORK/full.err" ||
	{ cat "$WORK/full.err" >&2; fail "stderr does not say 'failed: delta: ... bad.pub'"; }
grep -E 'failed: (alpha|bravo|charlie|echo)' "$WORK/full.err" && fail "a good node is reported failed"
pass "one bad row: exit 1, 'failed: delta: ...bad.pub...' on stderr, no other node failed"
for n in $GOOD; do
	[ -s "$A/$n.img" ] || fail "no artifact $n.img"
	[ -s "$A/$n.img.bmap" ] || fail "no $n.img.bmap"
done
ls "$A" | grep -q '^delta' && fail "an artifact for the failed node: $(ls "$A")"
assert_eq "4 images in the out dir" 4 "$(find "$A" -name '*.img' | wc -l)"
assert_eq "report.json: statuses" "alpha=ok bravo=ok charlie=ok delta=failed echo=ok" \
	"$(status "$A")"
jq -e '.flavor == "hypriot" and .format == "img" and (.nodes | length) == 5' "$A/report.json" \
	>/dev/null || fail "report.json header: $(jq -c 'del(.nodes)' "$A/report.json")"
jq -e '.nodes[] | select(.hostname == "delta") | (.error | test("bad\\.pub")) and
	.artifact == null and .sha256 == null and .host_keys == []' "$A/report.json" >/dev/null ||
	fail "report.json delta: $(jq -c '.nodes[3]' "$A/report.json")"
for n in $GOOD; do
	want_addr=null
	[ -n "${IP[$n]:-}" ] && want_addr="\"${IP[$n]}/24\""
	want_grp=null
	[ -n "${GRP[$n]}" ] && want_grp="\"${GRP[$n]}\""
	got=$(jq -c --arg n "$n" '.nodes[] | select(.hostname == $n) |
		[.address, .group, .user, .artifact, .bmap, .error]' "$A/report.json")
	assert_eq "report.json $n: address, group, user, artifact, bmap" \
		"[$want_addr,$want_grp,\"${USR[$n]}\",\"$n.img\",\"$n.img.bmap\",null]" "$got"
	# SHA256SUMS itself is checked by sha256sum -c below.
	assert_eq "report.json $n: sha256 is SHA256SUMS's" "$(awk -v f="$n.img" '$2 == f { print $1 }' "$A/SHA256SUMS")" \
		"$(jq -r --arg n "$n" '.nodes[] | select(.hostname == $n) | .sha256' "$A/report.json")"
	assert_eq "report.json $n: size is the artifact's" "$(stat -c %s "$A/$n.img")" \
		"$(jq -r --arg n "$n" '.nodes[] | select(.hostname == $n) | .size' "$A/report.json")"
done
# mtime_ns holds more digits than a double (jq's numbers): a string of the exact integer.
python3 - "$A" $GOOD <<'PY' || fail "report.json mtime_ns differs from the artifacts'"
import json, os, sys
d = sys.argv[1]
nodes = {n["hostname"]: n for n in json.load(open(os.path.join(d, "report.json")))["nodes"]}
for h in sys.argv[2:]:
    st = os.stat(os.path.join(d, h + ".img"))
    if int(nodes[h]["mtime_ns"]) != st.st_mtime_ns:
        sys.exit(f"{h}: report {nodes[h]['mtime_ns']}, stat {st.st_mtime_ns}")
PY
pass "report.json mtime_ns is each artifact's st_mtime_ns"

# ---- 2. each artifact: clean filesystems and its own identity -----------------------------
declare -A IID
for n in $GOOD; do
	img=$A/$n.img
	assert_eq "$n: same partition table as the input" "$(ptable "$IMG")" "$(ptable "$img")"
	fat_clean "$img" "$P1" "$P1_SIZE"
	ext_clean "$img" "$P2"
	fat "$img" /user-data >"$WORK/ud"
	fat "$img" /meta-data >"$WORK/md"
	fat "$img" /network-config >"$WORK/nc"
	assert_eq "$n: /etc/hostname" "$n" "$(e2 "$img" 'cat /etc/hostname')"
	grep -q "^hostname: \"$n\"$" "$WORK/ud" || fail "$n: user-data hostname: $(cat "$WORK/ud")"
	grep -q "^  - name: \"${USR[$n]}\"$" "$WORK/ud" || fail "$n: user-data user ${USR[$n]}"
	grep -qF "${KEY[$n]}" "$WORK/ud" || fail "$n: the operator key is missing from user-data"
	other=$OPS_KEY
	[ "${KEY[$n]}" = "$OPS_KEY" ] && other=$DEV_KEY
	grep -qF "$other" "$WORK/ud" && fail "$n: another row's key is in user-data"
	grep -q "local-hostname: \"$n\"" "$WORK/md" || fail "$n: meta-data local-hostname"
	IID[$n]=$(sed -n 's/^instance-id: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$WORK/md")
	[ -n "${IID[$n]}" ] || fail "$n: no instance-id in meta-data: $(cat "$WORK/md")"
	assert_eq "$n: meta-data instance-id is report.json's" "${IID[$n]}" \
		"$(jq -r --arg n "$n" '.nodes[] | select(.hostname == $n) | .instance_id' "$A/report.json")"
	if [ -n "${IP[$n]:-}" ]; then
		grep -q "address: \"${IP[$n]}/24\"" "$WORK/nc" || fail "$n: network-config: $(cat "$WORK/nc")"
		grep -q 'type: static' "$WORK/nc" || fail "$n: network-config not static"
	else
		grep -q 'type: dhcp' "$WORK/nc" || fail "$n: network-config not DHCP: $(cat "$WORK/nc")"
		grep -q 'address:' "$WORK/nc" && fail "$n: DHCP node has an address"
	fi
	grep -q '10\.0\.0\.1[0-9]/' "$WORK/nc" && ! grep -q "${IP[$n]:-none}/" "$WORK/nc" &&
		fail "$n: another node's address in network-config"
	pass "$n: hostname, user, key, instance-id and address on the card"
done
assert_eq "instance-ids are distinct" 4 "$(printf '%s\n' "${IID[@]}" | sort -u | wc -l)"

# ---- 3. host keys -------------------------------------------------------------------------
: >"$WORK/pub.all"
: >"$WORK/needles"
for n in $GOOD; do
	img=$A/$n.img
	rm -f "$WORK/hk" "$WORK/hk.pub"
	e2 "$img" "dump /etc/ssh/ssh_host_ed25519_key $WORK/hk"
	e2 "$img" "dump /etc/ssh/ssh_host_ed25519_key.pub $WORK/hk.pub"
	[ -s "$WORK/hk" ] && [ -s "$WORK/hk.pub" ] || fail "$n: no host key in /etc/ssh"
	assert_eq "$n: host key 0600 root" "0:0 0600" \
		"$(e2_owner "$img" "$P2" /etc/ssh/ssh_host_ed25519_key)"
	assert_eq "$n: host key .pub 0644 root" "0:0 0644" \
		"$(e2_owner "$img" "$P2" /etc/ssh/ssh_host_ed25519_key.pub)"
	chmod 600 "$WORK/hk"
	derived=$(ssh-keygen -y -f "$WORK/hk" | cut -d' ' -f1,2) || fail "$n: ssh-keygen -y rejects the key"
	pub=$(cut -d' ' -f1,2 "$WORK/hk.pub")
	assert_eq "$n: ssh-keygen -y of the private key is the .pub" "$pub" "$derived"
	case $pub in ssh-ed25519\ AAAA*) ;; *) fail "$n: not an ed25519 key: $pub" ;; esac
	echo "$pub" >>"$WORK/pub.all"
	fp=$(ssh-keygen -l -f "$WORK/hk.pub" | cut -d' ' -f2)
	assert_eq "$n: report.json fingerprint is ssh-keygen -l's" "$fp" \
		"$(jq -r --arg n "$n" '.nodes[] | select(.hostname == $n) | .host_keys[0].fingerprint' "$A/report.json")"
	assert_eq "$n: report.json public key is the .pub" "$pub" \
		"$(jq -r --arg n "$n" '.nodes[] | select(.hostname == $n) | .host_keys[0].public' "$A/report.json" | cut -d' ' -f1,2)"
	# known_hosts: ssh-keygen -F finds the node by name (and by address when static).
	names=$n
	[ -n "${IP[$n]:-}" ] && names="$n ${IP[$n]}"
	for h in $names; do
		got=$(ssh-keygen -F "$h" -f "$A/known_hosts" | grep -v '^#' | cut -d' ' -f2,3)
		assert_eq "$n: known_hosts entry for $h" "$pub" "$got"
	done
	fat "$img" /user-data >"$WORK/ud"
	grep -q '^ssh_deletekeys: false$' "$WORK/ud" && grep -q '^ssh_genkeytypes: \["ed25519"\]$' "$WORK/ud" ||
		fail "$n: user-data does not keep the host keys: $(cat "$WORK/ud")"
	pass "$n: user-data has ssh_deletekeys: false, ssh_genkeytypes: [ed25519]"
	if command -v cloud-init >/dev/null 2>&1; then
		cloud-init schema -c "$WORK/ud" >"$WORK/schema.out" 2>&1 ||
			{ cat "$WORK/schema.out" >&2; fail "$n: cloud-init schema rejects the user-data"; }
		pass "$n: cloud-init schema accepts the user-data"
	fi
	# Every base64 line of the private key is a needle nothing else may contain.
	sed '/^-----/d' "$WORK/hk" | awk 'length >= 20' >>"$WORK/needles"
done
assert_eq "host keys are distinct" 4 "$(sort -u "$WORK/pub.all" | wc -l)"
assert_eq "known_hosts has one line per good node" 4 "$(grep -vc '^#' "$A/known_hosts")"
for f in "$A/report.json" "$A/known_hosts" "$A/inventory.ini" "$A/hosts" "$A/SHA256SUMS" \
	"$WORK/full.out" "$WORK/full.err"; do
	if grep -qFf "$WORK/needles" "$f"; then
		fail "private host key text in $f"
	fi
done
pass "no private host key text in report.json, known_hosts, inventory.ini, hosts or the run's output"

# ---- 4. SHA256SUMS, bmap, inventory.ini, hosts --------------------------------------------
(cd "$A" && sha256sum -c --strict SHA256SUMS >"$WORK/sums.out" 2>&1) ||
	{ cat "$WORK/sums.out" >&2; fail "sha256sum -c SHA256SUMS"; }
assert_eq "SHA256SUMS lists the artifacts and bmaps in name order" \
	"$(cd "$A" && ls -1 ./*.img ./*.img.bmap | sed 's|^\./||' | LC_ALL=C sort | tr '\n' ' ')" \
	"$(awk '{ print $2 }' "$A/SHA256SUMS" | sed 's/^\*//' | tr '\n' ' ')"
for n in alpha echo; do
	bmaptool copy --bmap "$A/$n.img.bmap" "$A/$n.img" "$WORK/copy.img" >"$WORK/bmap.out" 2>&1 ||
		{ cat "$WORK/bmap.out" >&2; fail "bmaptool copy $n"; }
	cmp "$A/$n.img" "$WORK/copy.img" || fail "$n: bmaptool's copy differs from the image"
	rm -f "$WORK/copy.img"
	pass "$n: bmaptool copy with the bmap verifies and gives the same bytes"
done
# hosts: one line per static node, a comment for each DHCP one.
assert_eq "hosts: static nodes" "10.0.0.11 alpha|10.0.0.13 charlie|" \
	"$(grep -v '^#' "$A/hosts" | grep -v '^$' | awk '{ printf "%s %s|", $1, $2 }')"
grep -q '^#.*bravo' "$A/hosts" && grep -q '^#.*echo' "$A/hosts" || fail "hosts: no DHCP comments"
grep -q 'delta' "$A/hosts" && fail "hosts: names the failed node"
pass "hosts: static lines and DHCP comments"
if command -v ansible-inventory >/dev/null 2>&1; then
	ANSIBLE_LOCAL_TEMP=$WORK/ansible ANSIBLE_HOME=$WORK/ansible \
		ansible-inventory -i "$A/inventory.ini" --list >"$WORK/inv.json" 2>"$WORK/inv.err" ||
		{ cat "$WORK/inv.err" >&2; fail "ansible-inventory --list rejects inventory.ini"; }
	assert_eq "ansible: control" '["alpha"]' "$(jq -c '.control.hosts' "$WORK/inv.json")"
	assert_eq "ansible: workers" '["bravo","charlie"]' "$(jq -c '.workers.hosts | sort' "$WORK/inv.json")"
	assert_eq "ansible: ungrouped" '["echo"]' "$(jq -c '.ungrouped.hosts' "$WORK/inv.json")"
	for n in $GOOD; do
		assert_eq "ansible: $n hostvars" "{\"ansible_host\":\"${IP[$n]:-$n}\",\"ansible_user\":\"${USR[$n]}\"}" \
			"$(jq -c --arg n "$n" '._meta.hostvars[$n] | {ansible_host, ansible_user}' "$WORK/inv.json")"
	done
	jq -e '._meta.hostvars | has("delta") | not' "$WORK/inv.json" >/dev/null ||
		fail "ansible: the failed node is in the inventory"
else
	echo "note: ansible-inventory is not installed (apt package ansible-core): inventory.ini not checked by Ansible" >&2
fi

# ---- 6. reproducible: -j 1 gives the same bytes as -j 2 -----------------------------------
B=$WORK/b
batch j1 1 "${common[@]}" --bmap -j 1 --out-dir "$B" "$IMG"
for n in $GOOD; do
	cmp "$A/$n.img" "$B/$n.img" || fail "$n: -j 1 and -j 2 artifacts differ"
	cmp "$A/$n.img.bmap" "$B/$n.img.bmap" || fail "$n: -j 1 and -j 2 bmaps differ"
done
cmp "$A/SHA256SUMS" "$B/SHA256SUMS" || fail "SHA256SUMS differ between -j 1 and -j 2"
cmp "$A/known_hosts" "$B/known_hosts" || fail "known_hosts differ between -j 1 and -j 2"
cmp "$A/inventory.ini" "$B/inventory.ini" || fail "inventory.ini differs between -j 1 and -j 2"
pass "-j 1 and -j 2: byte-identical artifacts, bmaps, SHA256SUMS, known_hosts, inventory.ini"

# ---- 7. shards ----------------------------------------------------------------------------
# The shard holding delta exits 1, the other 0.
for k in 1 2; do
	set +e
	"$PIFLASH" batch "${common[@]}" --bmap --shard "$k/2" --out-dir "$WORK/s$k" "$IMG" \
		>"$WORK/s$k.out" 2>"$WORK/s$k.err"
	rc=$?
	set -e
	grep -Eq 'Sanitizer|runtime error' "$WORK/s$k.err" && { cat "$WORK/s$k.err" >&2; fail "shard $k: sanitizer"; }
	[ -f "$WORK/s$k/report.json" ] || { cat "$WORK/s$k.err" >&2; fail "shard $k/2: no report.json (exit $rc)"; }
	want=0
	jq -e '.nodes[] | select(.hostname == "delta")' "$WORK/s$k/report.json" >/dev/null && want=1
	[ "$rc" = "$want" ] || { cat "$WORK/s$k.err" >&2; fail "shard $k/2 exited $rc, expected $want"; }
	jq -r '.nodes[].hostname' "$WORK/s$k/report.json" | sort >"$WORK/s$k.names"
	[ -s "$WORK/s$k.names" ] || fail "shard $k/2 is empty"
done
assert_eq "shards are disjoint" "" "$(comm -12 "$WORK/s1.names" "$WORK/s2.names" | tr '\n' ' ')"
assert_eq "the shards together are the inventory" "$ALL " "$(sort "$WORK/s1.names" "$WORK/s2.names" | tr '\n' ' ')"
for k in 1 2; do
	for n in $(cat "$WORK/s$k.names"); do
		[ "$n" = delta ] && continue
		cmp "$A/$n.img" "$WORK/s$k/$n.img" || fail "shard $k: $n differs from the full run's"
	done
	(cd "$WORK/s$k" && sha256sum -c --quiet SHA256SUMS) || fail "shard $k: sha256sum -c"
done
pass "shard artifacts are byte-identical to the full run's"
assert_eq "sorted union of the shards' SHA256SUMS is the full run's" "$(sort "$A/SHA256SUMS")" \
	"$(cat "$WORK/s1/SHA256SUMS" "$WORK/s2/SHA256SUMS" | sort)"
if command -v ansible-inventory >/dev/null 2>&1; then
	# The README's CI example joins the shards' inventory.ini files by concatenation.
	groups() {
		ANSIBLE_LOCAL_TEMP=$WORK/ansible-tmp ANSIBLE_HOME=$WORK/ansible-home \
			ansible-inventory -i "$1" --list 2>/dev/null |
			jq -S 'del(._meta) | map_values(if .hosts then .hosts |= sort else . end) |
				.all.children |= sort'
	}
	cat "$WORK/s1/inventory.ini" "$WORK/s2/inventory.ini" >"$WORK/joined.ini"
	groups "$A/inventory.ini" | jq -e '.workers.hosts | length == 2' >/dev/null ||
		fail "ansible-inventory does not read the full run's inventory.ini"
	assert_eq "the shards' inventory.ini files, concatenated, are the full run's groups" \
		"$(groups "$A/inventory.ini")" "$(groups "$WORK/joined.ini")"
else
	echo "# SKIP part: ansible-inventory is not installed: joined inventory.ini not checked" >&2
fi
rm -rf "$WORK/s1" "$WORK/s2"

# ---- 8. compressed formats ----------------------------------------------------------------
Z=$WORK/z
batch zst 1 "${common[@]}" --format img.zst --out-dir "$Z" "$IMG"
assert_eq "zst: report format" "img.zst" "$(jq -r .format "$Z/report.json")"
for n in $GOOD; do
	[ -s "$Z/$n.img.zst" ] || fail "no $n.img.zst"
	[ -e "$Z/$n.img" ] && fail "zst: a raw $n.img was left"
	zstd -t -q "$Z/$n.img.zst" || fail "zstd -t $n.img.zst"
	zstd -dc "$Z/$n.img.zst" | cmp - "$A/$n.img" || fail "zst: $n decompresses to other bytes"
done
pass "zstd -dc of each .img.zst is the .img of the same seeded run"
(cd "$Z" && sha256sum -c --quiet SHA256SUMS) || fail "zst: sha256sum -c"
assert_eq "zst: SHA256SUMS names" "alpha.img.zst bravo.img.zst charlie.img.zst echo.img.zst " \
	"$(awk '{ print $2 }' "$Z/SHA256SUMS" | tr '\n' ' ')"
rm -rf "$Z"
for fmt in xz gz; do
	D=$WORK/$fmt
	batch "$fmt" 0 "${common[@]}" --format "img.$fmt" --only charlie --out-dir "$D" "$IMG"
	assert_eq "$fmt --only charlie: one node" "charlie=ok" "$(status "$D")"
	case $fmt in
	xz) xz -dc "$D/charlie.img.xz" >"$WORK/dec.img" || fail "xz -dc" ;;
	gz) gzip -dc "$D/charlie.img.gz" >"$WORK/dec.img" || fail "gzip -dc" ;;
	esac
	cmp "$WORK/dec.img" "$A/charlie.img" || fail "$fmt: charlie decompresses to other bytes"
	(cd "$D" && sha256sum -c --quiet SHA256SUMS) || fail "$fmt: sha256sum -c"
	pass "$fmt: decompressed charlie is the .img of the same seeded run; SHA256SUMS passes"
	rm -rf "$D" "$WORK/dec.img"
done

# ---- 5. re-runs ---------------------------------------------------------------------------
before=$(mtimes "$A" $GOOD)
batch again 1 "${common[@]}" --bmap --out-dir "$A" "$IMG"
assert_eq "re-run: statuses" "alpha=up-to-date bravo=up-to-date charlie=up-to-date delta=failed echo=up-to-date" \
	"$(status "$A")"
assert_eq "re-run: artifacts untouched (mtimes)" "$before" "$(mtimes "$A" $GOOD)"
(cd "$A" && sha256sum -c --quiet SHA256SUMS) || fail "re-run: sha256sum -c"
sleep 0.05
batch force 1 "${common[@]}" --bmap --force --out-dir "$A" "$IMG"
assert_eq "--force: statuses" "alpha=ok bravo=ok charlie=ok delta=failed echo=ok" "$(status "$A")"
after=$(mtimes "$A" $GOOD)
for n in $GOOD; do
	b=$(echo "$before" | tr ' ' '\n' | grep "^$n:")
	a=$(echo "$after" | tr ' ' '\n' | grep "^$n:")
	[ "$a" != "$b" ] || fail "--force: $n.img not rewritten (mtime $a)"
	cmp "$B/$n.img" "$A/$n.img" || fail "--force: $n is not byte-identical"
done
pass "--force rewrites every artifact, byte-identical (seeded)"
# One row's address changes: only that node is rebuilt.
before=$(mtimes "$A" alpha bravo echo)
c_before=$(mtimes "$A" charlie)
sed -i 's|^charlie,10\.0\.0\.13/24,|charlie,10.0.0.23/24,|' "$CSV"
grep -q '^charlie,10.0.0.23/24' "$CSV" || fail "sed did not change the row"
sleep 0.05
batch changed 1 "${common[@]}" --bmap --out-dir "$A" "$IMG"
assert_eq "one row changed: statuses" "alpha=up-to-date bravo=up-to-date charlie=ok delta=failed echo=up-to-date" \
	"$(status "$A")"
assert_eq "one row changed: others untouched" "$before" "$(mtimes "$A" alpha bravo echo)"
[ "$c_before" != "$(mtimes "$A" charlie)" ] || fail "charlie.img not rewritten"
fat "$A/charlie.img" /network-config | grep -q 'address: "10.0.0.23/24"' ||
	fail "charlie: the new address is not on the card"
ext_clean "$A/charlie.img" "$P2"
(cd "$A" && sha256sum -c --quiet SHA256SUMS) || fail "after the change: sha256sum -c"
grep -q '^10\.0\.0\.23[[:space:]]charlie' "$A/hosts" || fail "hosts: charlie's new address"
grep -q '^charlie ansible_host=10\.0\.0\.23 ' "$A/inventory.ini" || fail "inventory.ini: charlie's new address"
grep -q '^charlie,10\.0\.0\.23 ' "$A/known_hosts" || fail "known_hosts: charlie's new address"
assert_eq "report.json: charlie's new address" "10.0.0.23/24" \
	"$(jq -r '.nodes[] | select(.hostname == "charlie") | .address' "$A/report.json")"
cmp -s "$B/charlie.img" "$A/charlie.img" && fail "charlie.img did not change"
pass "one changed row rebuilds only that node; SHA256SUMS, hosts, inventory.ini, known_hosts follow"

# ---- 9. errors ----------------------------------------------------------------------------
snapshot() { (cd "$A" && stat -c '%n %s %.9Y' * | sort); }
snap=$(snapshot)
expect_fail 2 "nosuchnode" "$PIFLASH" batch "${common[@]}" --only alpha,nosuchnode --out-dir "$WORK/e1" "$IMG"
[ ! -e "$WORK/e1" ] || fail "--only with an unknown name created the out dir"
expect_fail 2 "out-dir" "$PIFLASH" batch "${common[@]}" "$IMG"
expect_fail 2 "every node the same address" "$PIFLASH" batch "${common[@]}" --ip 10.0.0.9/24 \
	--out-dir "$WORK/e1" "$IMG"
expect_fail 2 "choose nodes with --only" "$PIFLASH" batch "${common[@]}" --node alpha \
	--out-dir "$WORK/e1" "$IMG"
[ ! -e "$WORK/e1" ] || fail "a usage error created the out dir"
printf 'hostname,ip\nw1,10.0.0.1/24\nw2,"10.0.0.2/24\nw3,10.0.0.3/24\n' >"$WORK/unterminated.csv"
expect_fail 1 "unterminated\.csv:3" "$PIFLASH" batch --inventory "$WORK/unterminated.csv" \
	--out-dir "$WORK/e2" "$IMG"
[ ! -e "$WORK/e2" ] || fail "a CSV syntax error created the out dir: $(ls -A "$WORK/e2")"
expect_fail 1 "unterminated\.csv:3" "$PIFLASH" batch --inventory "$WORK/unterminated.csv" \
	--out-dir "$A" "$IMG"
assert_eq "a CSV syntax error leaves an existing out dir untouched" "$snap" "$(snapshot)"
# A bad address in one row fails that node only, named by file:line:column.
printf 'hostname,ip,gateway,ssh_key\nfoxtrot,10.0.0.300/24,10.0.0.1,ops.pub\ngolf,10.0.0.17/24,10.0.0.1,ops.pub\n' \
	>"$WORK/badip.csv"
batch badip 1 --inventory "$WORK/badip.csv" --out-dir "$WORK/e3" "$IMG"
grep -Eq 'failed: foxtrot: .*badip\.csv:2:[0-9]+.*10\.0\.0\.300' "$WORK/badip.err" ||
	{ cat "$WORK/badip.err" >&2; fail "bad address: stderr does not name foxtrot, badip.csv:2:COL"; }
assert_eq "bad address: statuses" "foxtrot=failed golf=ok" "$(status "$WORK/e3")"
[ -s "$WORK/e3/golf.img" ] && [ ! -e "$WORK/e3/foxtrot.img" ] || fail "bad address: artifacts $(ls "$WORK/e3")"
pass "a bad address in one row fails only that node"
rm -rf "$WORK/e3"

# One batch at a time in an out dir; the lock file goes with the lock.
[ ! -e "$A/.piflash-batch.lock" ] || fail "a finished run left its lock file in the out dir"
if command -v flock >/dev/null 2>&1; then
	expect_fail 1 "in use by another piflash batch" flock "$A/.piflash-batch.lock" \
		"$PIFLASH" batch "${common[@]}" --out-dir "$A" "$IMG"
	rm -f "$A/.piflash-batch.lock"
fi

# ---- 10. what an out dir holds after runs that choose fewer nodes ---------------------------
# More runners than nodes: an empty slice is a normal outcome, not an error.
batch empty 0 "${common[@]}" --shard 9/9 --out-dir "$WORK/e4" "$IMG"
assert_eq "an empty shard: no nodes in report.json" 0 "$(jq '.nodes | length' "$WORK/e4/report.json")"
[ ! -s "$WORK/e4/SHA256SUMS" ] || fail "an empty shard lists artifacts"
pass "an empty shard exits 0 with empty listings"
# --only into a full out dir keeps the other nodes' intact artifacts listed ("kept").
batch only 0 "${common[@]}" --only bravo --force --out-dir "$A" "$IMG"
assert_eq "--only bravo: the others are kept" "alpha=kept bravo=ok charlie=kept echo=kept" \
	"$(status "$A")"
(cd "$A" && sha256sum -c --quiet SHA256SUMS) || fail "after --only: sha256sum -c"
assert_eq "after --only: SHA256SUMS still lists every artifact" 4 "$(grep -c '\.img$' "$A/SHA256SUMS")"
# A node that fails now leaves no artifact of an earlier run behind.
sed 's/^bravo,\(.*\),ops\.pub,/bravo,\1,bad.pub,/' "$CSV" >"$WORK/bravo-bad.csv"
batch bravobad 1 "${common[@]/$CSV/$WORK/bravo-bad.csv}" --only bravo --out-dir "$A" "$IMG"
[ ! -e "$A/bravo.img" ] || fail "the failed node's old artifact is still there"
grep -q 'bravo\.img' "$A/SHA256SUMS" && fail "SHA256SUMS lists the failed node"
pass "a node that fails loses its old artifact, and no listing names it"

# A row with neither a key nor a password hash fails its node alone (nobody could log into it);
# --no-login builds it, with a locked password and password login off.
printf 'hostname,ip,ssh_key\nkilo,10.0.0.51/24,%s\nlima,10.0.0.52/24,\n' "$WORK/ops.pub" >"$WORK/login.csv"
batch nologin 1 --inventory "$WORK/login.csv" --out-dir "$WORK/nl" "$IMG"
assert_eq "a row without key or hash: its node alone fails" "kilo=ok lima=failed" "$(status "$WORK/nl")"
grep -q "lima: .*nobody could log into this node.*--no-login to mean it" "$WORK/nologin.err" ||
	{ cat "$WORK/nologin.err" >&2; fail "no reason given for the node nobody could log into"; }
[ ! -e "$WORK/nl/lima.img" ] || fail "an artifact was written for the node nobody could log into"
batch nologin2 0 --inventory "$WORK/login.csv" --no-login --only lima --out-dir "$WORK/nl2" "$IMG"
fat "$WORK/nl2/lima.img" /user-data >"$WORK/ud-lima"
grep -q '^    lock_passwd: true$' "$WORK/ud-lima" && grep -q '^ssh_pwauth: false$' "$WORK/ud-lima" ||
	fail "--no-login: user-data is not locked with password login off: $(cat "$WORK/ud-lima")"
grep -q 'ssh_authorized_keys' "$WORK/ud-lima" && fail "--no-login: a key in user-data"
pass "--no-login: lock_passwd true, ssh_pwauth false, no key"
rm -rf "$WORK/nl" "$WORK/nl2"

# ---- 11. hostile input: names, files in the out dir, strings from the image and the report --
H=$WORK/hostile
mkdir -p "$H"
# A hostname that is a path: the row fails, and nothing outside --out-dir is touched (the
# old clean-up of a failed row unlinked OUT/../victim.img and .img.bmap).
echo precious >"$H/victim.img"
echo precious >"$H/victim.img.bmap"
echo precious >"$H/victim.img.zst"
printf 'hostname,ip,gateway\n../victim,10.0.0.31/24,10.0.0.1\nhotel,10.0.0.32/24,10.0.0.1\n' >"$H/path.csv"
for fmt in img img.zst; do
	batch "path-$fmt" 1 --inventory "$H/path.csv" --no-login --bmap --format "$fmt" --out-dir "$H/out" "$IMG"
	grep -q 'failed: \.\./victim: .*hostname' "$WORK/path-$fmt.err" ||
		{ cat "$WORK/path-$fmt.err" >&2; fail "a path as hostname: no 'failed: ../victim: ...hostname'"; }
done
for f in victim.img victim.img.bmap victim.img.zst; do
	assert_eq "a failed row named '../victim' leaves $f outside the out dir" precious "$(cat "$H/$f")"
done
assert_eq "a path as hostname: the good node's artifacts, nothing else" \
	"hotel.img hotel.img.bmap hotel.img.zst" "$(cd "$H/out" && ls *.img* | tr '\n' ' ' | sed 's/ $//')"
rm -rf "$H/out"

# The input image in the out dir under a name the run writes or removes: refused before
# anything is written (exit 4), as the main job refuses its input as the target. hotel's row
# fails on its address, so the old clean-up also unlinked the input named hotel.img.
printf 'hostname,ip,gateway\nhotel,10.0.0.300/24,10.0.0.1\n' >"$H/hotel-bad.csv"
for name in hotel.img hotel.img.bmap report.json SHA256SUMS hosts known_hosts inventory.ini \
	.piflash-batch.lock; do
	rm -rf "$H/in"
	mkdir "$H/in"
	cp --sparse=always "$IMG" "$H/in/$name"
	expect_fail 4 "'$H/in/$name' is the input image" "$PIFLASH" batch --inventory "$H/hotel-bad.csv" \
		--bmap --host-keys --out-dir "$H/in" "$H/in/$name"
	assert_eq "the input named $name in the out dir is unchanged" "$IN_SHA" "$(sha256 "$H/in/$name")"
	assert_eq "the refused run leaves only the input in the out dir" "$name" "$(ls -A "$H/in")"
done
# A hard link to the input is the input too.
rm -rf "$H/in"
mkdir "$H/in"
ln "$IMG" "$H/in/hotel.img"
expect_fail 4 "is the input image" "$PIFLASH" batch --inventory "$H/hotel-bad.csv" \
	--out-dir "$H/in" "$IMG"
[ -f "$H/in/hotel.img" ] || fail "a hard link to the input in the out dir was removed"
rm -rf "$H/in"

# The image names its default user with a newline and an [all:vars] section: detection does
# not take such a name (the seed's valid user is the node's), and no line of it reaches
# inventory.ini (where Ansible would run the ProxyCommand on the operator's machine). The
# listings check every user name again as they are written.
"$PIFLASH" cat "$IMG" /etc/cloud/cloud.cfg >"$H/cloud.cfg"
sed -i 's|^\( *\)name: pirate$|\1name: "pirate\\n[all:vars]\\nansible_ssh_common_args=-o ProxyCommand=\\"touch PWNED\\""|' "$H/cloud.cfg"
grep -q 'ProxyCommand' "$H/cloud.cfg" || fail "sed did not change cloud.cfg's default user"
"$PIFLASH" -q --add "$H/cloud.cfg=/etc/cloud/cloud.cfg" "$IMG" "$H/evil.img"
printf 'hostname,ip,gateway,user\nindia,10.0.0.41/24,10.0.0.1,\njuliet,10.0.0.42/24,10.0.0.1,ops\n' >"$H/user.csv"
batch evil-user 0 --inventory "$H/user.csv" --no-login --out-dir "$H/out" "$H/evil.img"
assert_eq "the image's bad user: statuses" "india=ok juliet=ok" "$(status "$H/out")"
assert_eq "the image's bad user is not india's" pirate \
	"$(jq -r '.nodes[] | select(.hostname == "india") | .user' "$H/out/report.json")"
if grep -q 'all:vars\|ProxyCommand' "$H/out/inventory.ini" "$H/out/hosts" "$H/out/known_hosts" \
	"$H/out/report.json" 2>/dev/null; then
	cat "$H/out/inventory.ini" >&2
	fail "a string from the image reached a listing"
fi
pass "a user name from the image with a newline is not used and reaches no listing"
rm -rf "$H/out" "$H/evil.img"

# report.json of an earlier run with values of the wrong type or content: each node it
# cannot trust is rebuilt, said on stderr naming the file and the field; never a crash (a
# null status crashed), never a listing line from the file.
batch rep0 0 --inventory "$H/user.csv" --no-login --host-keys --out-dir "$H/out" "$IMG"
edit_report() { # JQ TAG FIELD: edit report.json with JQ; the re-run rebuilds india only
	jq "$1" "$H/out/report.json" >"$H/r.json"
	mv "$H/r.json" "$H/out/report.json"
	batch "rep-$2" 0 --inventory "$H/user.csv" --no-login --host-keys --out-dir "$H/out" "$IMG"
	grep -q "report.json': node 'india' is rebuilt: .*$3" "$WORK/rep-$2.err" ||
		{ cat "$WORK/rep-$2.err" >&2; fail "report.json with $2: no message naming the file and '$3'"; }
	assert_eq "report.json with $2: india rebuilt, juliet reused" "india=ok juliet=up-to-date" \
		"$(status "$H/out")"
}
edit_report '.nodes[0].status = null' status-null status
edit_report '.nodes[0].status = 7' status-number status
edit_report '.nodes[0].size = "big"' size-string size
edit_report '.nodes[0].mtime_ns = 12' mtime-number mtime_ns
edit_report '.nodes[0].artifact = "../india.img"' artifact-path artifact
edit_report '.nodes[0].host_keys = [5]' host-key-number 'host_keys\[0\]'
edit_report '.nodes[0].user = "pirate\n[all:vars]\nansible_ssh_common_args=-o ProxyCommand=x"' user-newline user
edit_report '.nodes[0].address = "10.0.0.41/24\n[all:vars]"' address-newline address
edit_report '.nodes[0].host_keys[0].public = "ssh-ed25519 AAAA\n[all:vars]"' host-key-newline 'host key'
grep -q 'all:vars' "$H/out/inventory.ini" "$H/out/hosts" "$H/out/known_hosts" &&
	fail "a string from report.json reached a listing"
for bad in '[]' '{"nodes": 5}' 'not json'; do
	echo "$bad" >"$H/out/report.json"
	batch rep-bad 0 --inventory "$H/user.csv" --no-login --host-keys --out-dir "$H/out" "$IMG"
	grep -q "report.json': .*every node is rebuilt" "$WORK/rep-bad.err" ||
		{ cat "$WORK/rep-bad.err" >&2; fail "report.json '$bad': no message naming the file"; }
	assert_eq "report.json '$bad': every node rebuilt" "india=ok juliet=ok" "$(status "$H/out")"
done
# A record with a bad user for a node left out by --only is not kept either.
jq '.nodes[1].user = "ops\n[all:vars]"' "$H/out/report.json" >"$H/r.json"
mv "$H/r.json" "$H/out/report.json"
batch rep-kept 0 --inventory "$H/user.csv" --no-login --host-keys --only india --out-dir "$H/out" "$IMG"
assert_eq "a kept node with a bad user in report.json is not kept" "india=up-to-date" "$(status "$H/out")"
grep -q 'all:vars' "$H/out/inventory.ini" && fail "a kept record's user reached inventory.ini"
pass "report.json values of the wrong type or content rebuild their node, never crash"

# The seed from a file of the user's alone, or from the environment, gives the bytes of the
# same seed as an argument (run 6); a file open to others is refused before anything is
# done; the argument, which every local user can read in /proc/PID/cmdline, warns.
printf '%s\n' "$SEED" >"$H/seed"
chmod 644 "$H/seed"
expect_fail 1 "instance-id-seed-file: '.*/seed' is open to group or others \(mode 0644\).*chmod 600" \
	"$PIFLASH" batch --inventory "$CSV" --host-keys --instance-id-seed-file "$H/seed" \
	--only alpha --out-dir "$H/s0" "$IMG"
[ ! -e "$H/s0" ] || fail "a refused seed file created the out dir"
chmod 600 "$H/seed"
batch seed-file 0 --inventory "$CSV" --host-keys --bmap --instance-id-seed-file "$H/seed" \
	--only alpha --out-dir "$H/s1" "$IMG"
cmp "$B/alpha.img" "$H/s1/alpha.img" || fail "--instance-id-seed-file: other bytes than --instance-id-seed"
(
	export PIFLASH_INSTANCE_ID_SEED=$SEED
	batch seed-env 0 --inventory "$CSV" --host-keys --bmap --only alpha --out-dir "$H/s2" "$IMG"
) || fail "PIFLASH_INSTANCE_ID_SEED run"
cmp "$B/alpha.img" "$H/s2/alpha.img" || fail "PIFLASH_INSTANCE_ID_SEED: other bytes than --instance-id-seed"
grep -q 'warning' "$WORK/seed-file.err" "$WORK/seed-env.err" && fail "the file or environment seed warns"
grep -q 'warning: --instance-id-seed shows the seed to every local user' "$WORK/full.err" ||
	fail "--instance-id-seed S gives no warning"
pass "seed from a 0600 file or PIFLASH_INSTANCE_ID_SEED: same artifact; 0644 refused; argument warns"
rm -rf "$H"

assert_eq "the input image is unchanged" "$IN_SHA" "$(sha256 "$IMG")"

finish
