#!/bin/bash
# Bad images and bad arguments: piflash inspect exits 1 (2 for usage) with one message that names
# the file, is not killed by a sanitizer, and leaves nothing in its cache.
. "$(dirname "$0")/lib.sh"

need sfdisk jq mkfs.vfat mke2fs mcopy debugfs openssl gzip xz zstd zip truncate
[ -x "$PIFLASH" ] || skip "'$PIFLASH' is not built"

# bad RC REGEX IMAGE [OPTIONS...]: inspect IMAGE fails as asked and leaves no cache file.
bad() {
	local rc=$1 re=$2 image=$3
	shift 3
	expect_fail "$rc" "$re" "$PIFLASH" inspect "$@" "$image"
	assert_eq "$(basename "$image"): nothing left in the cache" "" "$(cache_files)"
}

# mbr_entry IMAGE N TYPE START SECTORS: write MBR partition entry N by hand (sfdisk refuses
# to write overlapping partitions, even with --force). CHS fields are left at 0xfe 0xff 0xff.
le32() {
	printf '\\%03o\\%03o\\%03o\\%03o' $(($1 & 255)) $((($1 >> 8) & 255)) \
		$((($1 >> 16) & 255)) $((($1 >> 24) & 255))
}
mbr_entry() {
	# shellcheck disable=SC2059 # the format is built from octal escapes on purpose
	printf "\\000\\376\\377\\377\\$(printf %03o "$3")\\376\\377\\377$(le32 "$4")$(le32 "$5")" |
		dd of="$1" bs=1 seek=$((446 + 16 * ($2 - 1))) conv=notrunc status=none
}

# Deterministic noise: AES-CTR of zeros under a fixed key.
noise() {
	head -c "$1" /dev/zero |
		openssl enc -aes-128-ctr -nosalt -K 000102030405060708090a0b0c0d0e0f -iv 00000000000000000000000000000000
}

img=$WORK/hypriot.img
build_image hypriot "$img" --size 128
p2_start=$(part_offset "$img" 2)
p2_size=$(part_size "$img" 2)

# Not images at all.
: >"$WORK/empty.img"
bad 1 'piflash: .*empty\.img' "$WORK/empty.img"
noise 1048576 >"$WORK/noise.img"
bad 1 'piflash: .*noise\.img' "$WORK/noise.img"
mkdir "$WORK/adir"
bad 1 'piflash: .*adir' "$WORK/adir"
bad 1 'piflash: .*missing\.img' "$WORK/missing.img"

# A card image cut short in the middle of p2: the message says which partition.
cp --sparse=always "$img" "$WORK/cut.img"
truncate -s $((p2_start + p2_size / 2)) "$WORK/cut.img"
bad 1 'piflash: .*cut\.img.*(partition|p) ?#?2' "$WORK/cut.img"

# p2 starting inside p1.
cp --sparse=always "$img" "$WORK/ovl.img"
mbr_entry "$WORK/ovl.img" 2 $((0x83)) $((2048 + 65536)) $((p2_size / 512))
assert_eq "crafted p2 starts inside p1" $(((2048 + 65536) * 512)) "$(part_offset "$WORK/ovl.img" 2)"
bad 1 'piflash: .*ovl\.img.*overlap' "$WORK/ovl.img"

# Broken compressed images.
xz -1 -T0 -c "$img" >"$WORK/flip.img.xz"
len=$(stat -c %s "$WORK/flip.img.xz")
noise 64 | dd of="$WORK/flip.img.xz" bs=1 seek=$((len / 2)) conv=notrunc status=none
bad 1 'piflash: .*flip\.img\.xz' "$WORK/flip.img.xz"
gzip -1 -c "$img" >"$WORK/whole.gz"
head -c $(($(stat -c %s "$WORK/whole.gz") / 2)) "$WORK/whole.gz" >"$WORK/half.img.gz"
bad 1 'piflash: .*half\.img\.gz' "$WORK/half.img.gz"
zstd -q -1 -c "$img" >"$WORK/whole.zst"
head -c $(($(stat -c %s "$WORK/whole.zst") / 2)) "$WORK/whole.zst" >"$WORK/half.img.zst"
bad 1 'piflash: .*half\.img\.zst' "$WORK/half.img.zst"
rm -f "$WORK/whole.gz" "$WORK/whole.zst"

# Zip files without exactly one image.
mkdir "$WORK/z"
echo "not an image" >"$WORK/z/README.txt"
(cd "$WORK/z" && zip -q "$WORK/readme.zip" README.txt)
bad 1 'piflash: .*readme\.zip.*README\.txt' "$WORK/readme.zip"
build_image plain "$WORK/z/b.img" --size 200
cp --sparse=always "$img" "$WORK/z/a.img"
(cd "$WORK/z" && zip -q -1 "$WORK/two.zip" a.img b.img)
bad 1 'piflash: .*two\.zip' "$WORK/two.zip"
rm -rf "$WORK/z"

# A compressed file named like a raw one is still found by its magic, and still refused when cut.
cp "$WORK/half.img.gz" "$WORK/looks-raw.img"
bad 1 'piflash: .*looks-raw\.img' "$WORK/looks-raw.img"

# Usage errors.
expect_fail 2 '^piflash: ' "$PIFLASH" inspect
expect_fail 2 '^piflash: .*--bogus' "$PIFLASH" inspect --bogus "$img"
assert_eq "usage errors leave nothing in the cache" "" "$(cache_files)"

finish
