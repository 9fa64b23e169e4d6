#!/bin/bash
# The first card from a fresh .xz: written while the image is decoded (multi-threaded), judged
# against the same image written from a warm cache, by cmp over the ranges that matter, e2fsck
# and fsck.fat; the cache entry completed and reused; a corrupt .xz, a failing card and SIGINT
# leave a card with its table zeroed and no complete-looking cache entry.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || skip "needs root for loop devices"
need losetup sfdisk jq e2fsck fsck.fat xz cmp
losetup -f >/dev/null 2>&1 || skip "no free loop device (losetup -f failed)"

LOOPS=""
MOUNTS=""
cleanup() {
	for l in $LOOPS; do losetup -d "$l" 2>/dev/null || true; done
	for m in $MOUNTS; do umount "$m" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT
export SOURCE_DATE_EPOCH=1700000000 PIFLASH_INSTANCE_ID_SEED=cold-test
NODE=(--node worker3 --no-login --ip 192.168.1.13/24 --gateway 192.168.1.1)
ZERO512=$(head -c 512 /dev/zero | sha256sum | cut -d' ' -f1)

NEW=
# loop_new NAME MiB: a loop device over $WORK/NAME.back filled with a pattern (a used card).
loop_new() {
	yes "used card " | tr -d '\n' | head -c $(($2 * 1048576)) >"$WORK/$1.back"
	NEW=$(losetup -f --show "$WORK/$1.back") || fail "losetup over $WORK/$1.back failed"
	LOOPS="$LOOPS $NEW"
}

# same_ranges CARD FILE RANGES: CARD and FILE hold the same bytes over every "START LENGTH".
same_ranges() {
	while read -r off len; do
		cmp -s <(dd if="$1" bs=1M iflag=skip_bytes,count_bytes skip="$off" count="$len" status=none) \
			<(dd if="$2" bs=1M iflag=skip_bytes,count_bytes skip="$off" count="$len" status=none) ||
			fail "$1 and $2 differ in $off+$len"
	done <"$3"
}

# fsck_card BACKING: both filesystems clean (read from the card's backing file: loop devices
# are shared with other tests on this machine, their names are not held for long).
fsck_card() {
	sync
	fat_clean "$1" "$(part_offset "$1" 1)" "$(part_size "$1" 1)"
	ext_clean "$1" "$(part_offset "$1" 2)"
}

entries() { cache_files | grep -c '\.img$' || true; }
partials() { cache_files | grep -c '\.partial$' || true; }

IMG=$WORK/hypriot.img
build_image hypriot "$IMG" --size 256 --fill 48
# Blocks of 4 MiB with their sizes in the headers (what xz -T writes): decoded on every core.
xz -T2 -1 --block-size=4MiB -c "$IMG" >"$WORK/mb.img.xz"
# One block (what a single-threaded xz writes): decoded on one thread.
xz -T1 -1 -c "$IMG" >"$WORK/sb.img.xz"

for kind in mb sb; do
	export XDG_CACHE_HOME=$WORK/cache-$kind
	loop_new "card-$kind" 272
	CARD=$NEW
	"$PIFLASH" --yes "${NODE[@]}" "$WORK/$kind.img.xz" "$CARD" </dev/null 2>"$WORK/cold.err" ||
		{ cat "$WORK/cold.err" >&2; fail "$kind: the cold write failed"; }
	grep -q "while '.*$kind.img.xz' is decoded" "$WORK/cold.err" ||
		{ cat "$WORK/cold.err" >&2; fail "$kind: not written while decoding"; }
	grep -q "verified" "$WORK/cold.err" || fail "$kind: not verified"
	pass "$kind: written while decoded, and verified"
	assert_eq "$kind: one complete cache entry" "1 0" "$(entries) $(partials)"

	# The same node from the warm cache, to a file: the card holds the same bytes wherever
	# they matter.
	PIFLASH_DEBUG_RANGES=$WORK/ranges.txt "$PIFLASH" -q "${NODE[@]}" "$WORK/$kind.img.xz" \
		"$WORK/warm-$kind.img" 2>"$WORK/warm.err" || { cat "$WORK/warm.err" >&2; fail "warm write"; }
	grep -q "is decoded" "$WORK/warm.err" && fail "$kind: the warm run decoded again"
	sync
	same_ranges "$WORK/card-$kind.back" "$WORK/warm-$kind.img" "$WORK/ranges.txt"
	pass "$kind: the card equals the warm-cache image over every range that matters"
	fsck_card "$WORK/card-$kind.back"

	# A warm run to a card takes the ordinary way.
	"$PIFLASH" --yes "${NODE[@]}" "$WORK/$kind.img.xz" "$CARD" </dev/null 2>"$WORK/warm.err" ||
		{ cat "$WORK/warm.err" >&2; fail "$kind: the warm card write failed"; }
	grep -q "is decoded" "$WORK/warm.err" && fail "$kind: the warm card run decoded again"
	pass "$kind: a warm run to a card does not decode"
	losetup -d "$CARD"
done

# ---- a card smaller than the image: the ordinary way decides ---------------------------------
export XDG_CACHE_HOME=$WORK/cache-small
loop_new card-small 200
expect_fail 4 "too small" "$PIFLASH" --yes "${NODE[@]}" "$WORK/mb.img.xz" "$NEW"
grep -q "is decoded" "$WORK/err" && fail "small card: written while decoding"
assert_eq "small card: refused before a byte is written" "used card " \
	"$(head -c 10 "$WORK/card-small.back")"
losetup -d "$NEW"

# ---- a corrupt .xz: the decode fails half way ------------------------------------------------
export XDG_CACHE_HOME=$WORK/cache-bad
cp "$WORK/mb.img.xz" "$WORK/bad.img.xz"
SZ=$(stat -c %s "$WORK/bad.img.xz")
head -c 4096 /dev/zero | dd of="$WORK/bad.img.xz" bs=1 seek=$((SZ / 2)) conv=notrunc status=none
loop_new card-bad 272
expect_fail 1 "bad.img.xz': xz stream is corrupt or truncated after [0-9]+ bytes of image" \
	"$PIFLASH" --yes "${NODE[@]}" "$WORK/bad.img.xz" "$NEW"
grep -q "is decoded" "$WORK/err" || fail "corrupt: the cold way was not taken"
grep -q "'$NEW': its partition table is left zeroed" "$WORK/err" ||
	{ cat "$WORK/err" >&2; fail "corrupt: no word on the card's table"; }
pass "a corrupt .xz: the error names the file and how far it got, and the card"
assert_eq "corrupt: the card has no partition table" "$ZERO512" \
	"$(head -c 512 "$WORK/card-bad.back" | sha256sum | cut -d' ' -f1)"
assert_eq "corrupt: no cache entry, no partial file" "0 0" "$(entries) $(partials)"

# ---- a card that fails while it is written ---------------------------------------------------
# A loop device over a sparse file on a 24 MiB tmpfs: its writes fail once the tmpfs is full,
# half way through the image's data.
export XDG_CACHE_HOME=$WORK/cache-full
mkdir "$WORK/tiny"
mount -t tmpfs -o size=24m piflash-cold-tiny "$WORK/tiny" || skip "cannot mount a tmpfs"
MOUNTS="$WORK/tiny"
truncate -s 272M "$WORK/tiny/card.back"
FULL=$(losetup -f --show "$WORK/tiny/card.back") || fail "losetup over the tmpfs failed"
LOOPS="$LOOPS $FULL"
expect_fail 1 "write at byte offset [0-9]+ failed" \
	"$PIFLASH" --yes "${NODE[@]}" "$WORK/mb.img.xz" "$FULL"
grep -q "is decoded" "$WORK/err" || fail "failing card: the cold way was not taken"
grep -q "'$FULL': its partition table is left zeroed" "$WORK/err" ||
	{ cat "$WORK/err" >&2; fail "failing card: no word on the table"; }
pass "a failing card: the write error is reported, and the table left zeroed"
assert_eq "failing card: no partition table" "$ZERO512" \
	"$(head -c 512 "$WORK/tiny/card.back" | sha256sum | cut -d' ' -f1)"
# The decode itself went on: the entry is complete and serves the next card.
assert_eq "failing card: the cache entry is complete" "1 0" "$(entries) $(partials)"
losetup -d "$FULL"
umount "$WORK/tiny"
MOUNTS=""

# ---- SIGINT while decoding -------------------------------------------------------------------
export XDG_CACHE_HOME=$WORK/cache-int
loop_new card-int 272
"$PIFLASH" --yes "${NODE[@]}" "$WORK/mb.img.xz" "$NEW" </dev/null 2>"$WORK/int.err" &
PID=$!
# Interrupted once the decode is under way (its temporary cache file holds some data).
for _ in $(seq 1 1000); do
	p=$(find "$XDG_CACHE_HOME" -name '*.partial' -size +8M 2>/dev/null | head -1)
	[ -n "$p" ] && break
	kill -0 "$PID" 2>/dev/null || break
	sleep 0.02
done
[ -n "$p" ] || echo "# note: the decode finished before it could be interrupted" >&2
kill -INT "$PID" 2>/dev/null || true
set +e
wait "$PID"
rc=$?
set -e
if [ -n "$p" ]; then
	[ "$rc" = 130 ] || { cat "$WORK/int.err" >&2; fail "SIGINT: exit $rc, expected 130"; }
	grep -q "interrupted" "$WORK/int.err" || { cat "$WORK/int.err" >&2; fail "SIGINT: no word"; }
	grep -q "partition table is left zeroed" "$WORK/int.err" || fail "SIGINT: no word on the table"
	pass "SIGINT while decoding: exit 130, the table left zeroed"
	assert_eq "SIGINT: no partition table" "$ZERO512" \
		"$(head -c 512 "$WORK/card-int.back" | sha256sum | cut -d' ' -f1)"
	assert_eq "SIGINT: no cache entry, no partial file" "0 0" "$(entries) $(partials)"
fi

finish
