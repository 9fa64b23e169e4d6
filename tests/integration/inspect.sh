#!/bin/bash
# piflash inspect reads every flavor, raw and compressed, and reports the same table, partitions
# and filesystems as sfdisk and blkid; compressed images go through the cache once.
. "$(dirname "$0")/lib.sh"

need sfdisk blkid jq mkfs.vfat mke2fs mcopy debugfs openssl gzip xz zstd bzip2 zip cmp du
[ -x "$PIFLASH" ] || skip "'$PIFLASH' is not built"

# json_or_null JQ_VALUE: what blkid or sfdisk reported, as JSON (empty becomes null).
json_or_null() {
	if [ -n "$1" ]; then jq -cn --arg v "$1" '$v'; else echo null; fi
}

# check_inspect JSON RAW GIVEN KIND ENTRY: the output of 'piflash inspect --json GIVEN' agrees
# with sfdisk and blkid on RAW (the decompressed image). ENTRY is the zip entry or null.
check_inspect() {
	local json=$1 raw=$2 given=$3 kind=$4 entry=$5 tag n i off
	tag="$(basename "$given")"
	jq -e 'type == "object"' "$json" >/dev/null || fail "$tag: output is not a JSON object"
	assert_eq "$tag: image" "$given" "$(jq -r .image "$json")"
	assert_eq "$tag: source.kind" "$kind" "$(jq -r .source.kind "$json")"
	assert_eq "$tag: source.entry" "$entry" "$(jq -c .source.entry "$json")"
	assert_eq "$tag: source.size_bytes" "$(stat -c %s "$raw")" "$(jq .source.size_bytes "$json")"
	if [ "$kind" = raw ]; then
		assert_eq "$tag: no cache for a raw image" null "$(jq -c .source.cache "$json")"
	fi

	sfdisk -J "$raw" >"$WORK/sfdisk.json"
	assert_eq "$tag: table.type" "$(jq -r .partitiontable.label "$WORK/sfdisk.json")" \
		"$(jq -r .table.type "$json")"
	assert_eq "$tag: table.id" "$(jq -r .partitiontable.id "$WORK/sfdisk.json")" \
		"$(jq -r .table.id "$json")"
	assert_eq "$tag: table.sector_size" "$(jq '.partitiontable.sectorsize // 512' "$WORK/sfdisk.json")" \
		"$(jq .table.sector_size "$json")"
	n=$(jq '.partitiontable.partitions | length' "$WORK/sfdisk.json")
	assert_eq "$tag: partition count" "$n" "$(jq '.partitions | length' "$json")"

	for ((i = 0; i < n; i++)); do
		local p=".partitions[$i]" s=".partitiontable.partitions[$i]" pt="$tag p$((i + 1))" want
		assert_eq "$pt: number" $((i + 1)) "$(jq "$p.number" "$json")"
		assert_eq "$pt: node" "p$((i + 1))" "$(jq -r "$p.node" "$json")"
		off=$(jq "$s.start * 512" "$WORK/sfdisk.json")
		assert_eq "$pt: start_bytes" "$off" "$(jq "$p.start_bytes" "$json")"
		assert_eq "$pt: size_bytes" "$(jq "$s.size * 512" "$WORK/sfdisk.json")" \
			"$(jq "$p.size_bytes" "$json")"
		assert_eq "$pt: type" "$(jq -r "$s.type" "$WORK/sfdisk.json")" "$(jq -r "$p.type" "$json")"
		assert_eq "$pt: bootable" "$(jq "$s.bootable // false" "$WORK/sfdisk.json")" \
			"$(jq "$p.bootable" "$json")"
		assert_eq "$pt: fstype" "$(json_or_null "$(blkid_field "$raw" "$off" TYPE)")" \
			"$(jq -c "$p.fstype" "$json")"
		assert_eq "$pt: label" "$(json_or_null "$(blkid_field "$raw" "$off" LABEL)")" \
			"$(jq -c "$p.label" "$json")"
		assert_eq "$pt: uuid" "$(json_or_null "$(blkid_field "$raw" "$off" UUID)")" \
			"$(jq -c "$p.uuid" "$json")"
		# PARTUUID as blkid prints it: the GPT entry's GUID, or "<disk id>-<nn>" for dos.
		if [ "$(jq -r .partitiontable.label "$WORK/sfdisk.json")" = gpt ]; then
			want=$(jq -r "$s.uuid" "$WORK/sfdisk.json")
		else
			want=$(printf '%s-%02x' "$(jq -r .partitiontable.id "$WORK/sfdisk.json" | sed 's/^0x//')" $((i + 1)))
		fi
		assert_eq "$pt: partuuid" "${want,,}" "$(jq -r "$p.partuuid | ascii_downcase" "$json")"
	done
}

# inspect_ok GIVEN RAW KIND ENTRY: run inspect --json on GIVEN and check it against RAW.
inspect_ok() {
	if ! "$PIFLASH" inspect --json "$1" >"$WORK/inspect.json" 2>"$WORK/inspect.err"; then
		cat "$WORK/inspect.err" >&2
		fail "piflash inspect --json '$1' failed"
	fi
	if grep -Eq 'Sanitizer|runtime error' "$WORK/inspect.err"; then
		cat "$WORK/inspect.err" >&2
		fail "piflash inspect --json '$1': sanitizer report"
	fi
	check_inspect "$WORK/inspect.json" "$2" "$1" "$3" "$4"
}

# compress KIND RAW: write RAW.<ext> (zip: RAW.zip holding the image by its base name).
compress() {
	case $1 in
	gzip) gzip -1 -c "$2" >"$2.gz" ;;
	xz) xz -1 -T0 -c "$2" >"$2.xz" ;;
	zstd) zstd -q -1 -c "$2" >"$2.zst" ;;
	bzip2) bzip2 -1 -c "$2" >"$2.bz2" ;;
	zip) (cd "$(dirname "$2")" && zip -q -1 "$(basename "$2" .img).zip" "$(basename "$2")") ;;
	esac
}
ext_of() {
	case $1 in
	gzip) echo img.gz ;; xz) echo img.xz ;; zstd) echo img.zst ;; bzip2) echo img.bz2 ;;
	zip) echo zip ;;
	esac
}

# Every flavor raw, at its full default size; the human table names every label.
for flavor in hypriot ubuntu rpios-bookworm rpios-trixie raspbian-buster plain; do
	img=$WORK/$flavor.img
	build_image "$flavor" "$img"
	inspect_ok "$img" "$img" raw null
	"$PIFLASH" inspect "$img" >"$WORK/human" 2>&1 || fail "piflash inspect '$img' failed"
	for label in $(jq -r '.partitions[].label // empty' "$WORK/inspect.json"); do
		grep -qF -- "$label" "$WORK/human" || fail "$flavor: human output lacks label '$label'"
	done
	pass "$flavor: human output names every label"
	if [ "$flavor" = raspbian-buster ]; then
		# An /etc/shells piflash cannot take (too many lines) is set aside, not a reason to
		# stop looking at the image's users: the same user is found as with a good one.
		user=$(grep '^User:' "$WORK/human")
		yes /bin/bash | head -n 10001 >"$WORK/shells"
		"$PIFLASH" -q --add "$WORK/shells=/etc/shells" "$img" "$WORK/shells.img" ||
			fail "--add /etc/shells failed"
		"$PIFLASH" inspect "$WORK/shells.img" >"$WORK/human2" 2>&1 || fail "inspect: bad /etc/shells"
		grep -q "/etc/shells: .*more than 10000 lines, ignoring" "$WORK/human2" ||
			fail "bad /etc/shells: not in the evidence: $(cat "$WORK/human2")"
		[ "$(grep '^User:' "$WORK/human2")" = "$user" ] ||
			fail "bad /etc/shells: '$(grep '^User:' "$WORK/human2")', not '$user'"
		grep -q "^  users: pi (uid 1000" "$WORK/human2" || fail "bad /etc/shells: no users scanned"
		pass "raspbian: a bad /etc/shells is set aside, the users are still found ($user)"
		rm -f "$WORK/shells.img"
	fi
	rm -f "$img"
done

# One flavor in every format, the others in one format each (kept small: compressing reads
# every byte, holes included).
while read -r flavor size kinds; do
	[ -n "$flavor" ] || continue
	mkdir -p "$WORK/$flavor"
	img=$WORK/$flavor/$flavor.img
	build_image "$flavor" "$img" --size "$size"
	for kind in $kinds; do
		compress "$kind" "$img"
		given=$WORK/$flavor/$flavor.$(ext_of "$kind")
		entry=null
		[ "$kind" = zip ] && entry="\"$flavor.img\""
		inspect_ok "$given" "$img" "$kind" "$entry"
		rm -f "$given"
	done
	[ "$flavor" = hypriot ] || rm -rf "${WORK:?}/$flavor"
done <<'EOF'
hypriot 128 gzip xz zstd bzip2 zip
ubuntu 320 xz
rpios-bookworm 600 zstd
rpios-trixie 600 gzip
raspbian-buster 320 gzip
plain 200 zip
EOF

# The cache: decompressed once, where XDG_CACHE_HOME says, equal to the image, sparse.
"$PIFLASH" cache clean >/dev/null 2>&1 || fail "piflash cache clean failed"
img=$WORK/hypriot/hypriot.img
compress xz "$img"
"$PIFLASH" inspect --json "$img.xz" >"$WORK/first.json" || fail "inspect '$img.xz' failed"
cache=$(jq -r .source.cache "$WORK/first.json")
case $cache in
"$XDG_CACHE_HOME"/piflash/*) pass "cache path '$cache' is under \$XDG_CACHE_HOME/piflash" ;;
*) fail "cache path '$cache' is not under '$XDG_CACHE_HOME/piflash'" ;;
esac
[ -f "$cache" ] || fail "cache file '$cache' does not exist"
pass "cache file exists"
cmp "$cache" "$img" || fail "cache file differs from the image"
pass "cache file equals the image"
used=$(du --block-size=1 "$cache" | cut -f1)
apparent=$(stat -c %s "$cache")
[ "$used" -lt "$apparent" ] || fail "cache file is not sparse: $used of $apparent bytes used"
pass "cache file is sparse ($used of $apparent bytes)"
inode=$(stat -c %i "$cache")
"$PIFLASH" inspect --json "$img.xz" >"$WORK/second.json" || fail "second inspect '$img.xz' failed"
assert_eq "second run: same cache path" "$cache" "$(jq -r .source.cache "$WORK/second.json")"
assert_eq "second run: cache not written again" "$inode" "$(stat -c %i "$cache")"
check_inspect "$WORK/second.json" "$img" "$img.xz" xz null

"$PIFLASH" cache >"$WORK/cache.out" 2>&1 || fail "piflash cache failed: $(cat "$WORK/cache.out")"
if ! grep -qF -e "$(basename "$cache")" -e "hypriot.img.xz" "$WORK/cache.out"; then
	cat "$WORK/cache.out" >&2
	fail "piflash cache does not list the entry"
fi
pass "piflash cache lists the entry"
"$PIFLASH" cache clean >"$WORK/cache.out" 2>&1 || fail "piflash cache clean failed: $(cat "$WORK/cache.out")"
assert_eq "cache clean leaves no file" "" "$(cache_files)"

# --no-cache: the same answer, and nothing left in the cache.
"$PIFLASH" inspect --no-cache --json "$img.xz" >"$WORK/nocache.json" ||
	fail "piflash inspect --no-cache '$img.xz' failed"
check_inspect "$WORK/nocache.json" "$img" "$img.xz" xz null
assert_eq "--no-cache leaves no cache entry" "" "$(cache_files)"

# ---- strings from the image reach the terminal escaped ------------------------------------
# os-release and a file name carry ESC sequences (a window title, clear screen), a C1 CSI
# byte and an invalid UTF-8 byte; inspect and ls must show them as \xNN, never raw.
"$PIFLASH" cat "$img" root:/etc/os-release >"$WORK/os-release" || fail "cat os-release"
sed -i 's/^PRETTY_NAME=.*/PRETTY_NAME="Evil \x1b]0;owned\x07 \x1b[2J\xc2\x9b\xff OS"/' "$WORK/os-release"
grep -q $'\x1b\\[2J' "$WORK/os-release" || fail "sed did not put ESC into os-release"
: >"$WORK/empty"
"$PIFLASH" -q --add "$WORK/os-release=root:/etc/os-release" \
	--add "$WORK/empty=root:/etc/name-"$'\x1b'"[31mred" "$img" "$WORK/evil.img" ||
	fail "cannot make the image with escapes"
"$PIFLASH" inspect "$WORK/evil.img" >"$WORK/evil.out" 2>&1 || fail "inspect: $(cat "$WORK/evil.out")"
"$PIFLASH" ls -l "$WORK/evil.img" root:/etc >>"$WORK/evil.out" 2>&1 || fail "ls: $(cat "$WORK/evil.out")"
"$PIFLASH" ls "$WORK/evil.img" root:/etc >>"$WORK/evil.out" 2>&1 || fail "ls: $(cat "$WORK/evil.out")"
if LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f\x80-\x9f]\|\xff' "$WORK/evil.out"; then
	od -c "$WORK/evil.out" | grep -E '033|377|302 233' >&2
	fail "inspect/ls print control bytes from the image raw"
fi
grep -qF 'OS:      Evil \x1b]0;owned\x07 \x1b[2J\xc2\x9b\xff OS' "$WORK/evil.out" ||
	{ cat "$WORK/evil.out" >&2; fail "inspect does not show PRETTY_NAME escaped"; }
assert_eq "ls -l and ls show the file name escaped" 2 "$(grep -cF 'name-\x1b[31mred' "$WORK/evil.out")"
rm -f "$WORK/evil.img"

finish
