#!/bin/bash
# Operator mistakes (issue 13): nothing lost, nothing silently wrong. Swapped IMAGE and TARGET,
# an output name that says compressed, an existing file piflash did not write, secrets in
# world-readable artifacts, the system disk named as the card. Run as root, the loop-device
# cases are tried too; without root they skip with the reason.
. "$(dirname "$0")/lib.sh"
need sfdisk cmp ssh-keygen stat sha256sum getfattr debugfs jq
export SOURCE_DATE_EPOCH=1700000000
export PIFLASH_INSTANCE_ID_SEED=mistakes-seed

IMG=$WORK/hypriot.img
build_image hypriot "$IMG" --size 105
ssh-keygen -q -t ed25519 -N '' -C 'ops@cluster' -f "$WORK/ops"

# ---- 1. an existing file piflash did not write is not replaced -------------------------------

cp "$IMG" "$WORK/download.img"
SUM=$(sha256sum <"$WORK/download.img")
expect_fail 4 "exists and is not an image piflash wrote.*--force" \
	"$PIFLASH" "$IMG" "$WORK/download.img"
assert_eq "the refused file is untouched" "$SUM" "$(sha256sum <"$WORK/download.img")"
[ ! -e "$WORK/download.img.piflash-partial" ] || fail "a partial file was left behind"
pass "no partial file left"

# A compressed name is refused, existing or not, --force or not.
printf 'xz bytes' >"$WORK/release.img.xz"
for name in release.img.xz new.img.zst new.img.gz new.zip NEW.IMG.BZ2; do
	expect_fail 4 "the name says compressed.*raw image" "$PIFLASH" --force "$IMG" "$WORK/$name"
done
assert_eq "the .xz is untouched" "xz bytes" "$(cat "$WORK/release.img.xz")"
[ ! -e "$WORK/new.img.zst" ] || fail "new.img.zst was created"
pass "no compressed-looking file created"

# A new name is written, 0600 whatever the umask: it may hold keys.
(umask 022 && "$PIFLASH" -q --node w1 --ssh-key "$WORK/ops.pub" --host-keys "$IMG" "$WORK/out.img") ||
	fail "the main job failed"
assert_eq "OUT.img mode" "600" "$(stat -c %a "$WORK/out.img")"
getfattr -n user.piflash.output "$WORK/out.img" >/dev/null 2>&1 ||
	skip "the filesystem of $WORK keeps no user extended attributes"
pass "OUT.img carries piflash's mark"

# ... and replaced by the next run (it is piflash's, unchanged), ...
"$PIFLASH" -q --node w2 --ssh-key "$WORK/ops.pub" "$IMG" "$WORK/out.img" ||
	fail "replacing piflash's own output failed"
pass "piflash's own output is replaced without --force"

# ... but not once something else changed it.
printf 'x' | dd of="$WORK/out.img" bs=1 seek=1000 conv=notrunc status=none
expect_fail 4 "exists and is not an image piflash wrote" "$PIFLASH" "$IMG" "$WORK/out.img"
"$PIFLASH" -q --force "$IMG" "$WORK/out.img" || fail "--force did not replace the file"
cmp -s "$IMG" "$WORK/out.img" || fail "the forced output differs from the image"
pass "--force replaces a changed file"

# ---- 11. --progress=json: a rate wherever something is done, and a last line with the result --

"$PIFLASH" --progress=json "$IMG" "$WORK/out.img" 2>"$WORK/progress.err" || fail "write failed"
grep '^{' "$WORK/progress.err" >"$WORK/progress.json"
jq -s -e 'map(select(.phase == "verify" or .phase == "write")) | length > 0 and
	all(.done == 0 or .rate > 0)' "$WORK/progress.json" >/dev/null ||
	fail "a progress line with bytes done has rate 0"
pass "every write/verify line with bytes done has a rate"
assert_eq "the last JSON line of a write" "end $WORK/out.img ok 0 true" \
	"$(tail -n 1 "$WORK/progress.json" | jq -r '"\(.phase) \(.target) \(.result) \(.exit) \(.written > 0)"')"
"$PIFLASH" verify --progress=json "$IMG" "$WORK/out.img" 2>"$WORK/progress.err" || fail "verify failed"
assert_eq "the last JSON line of a verification" "end ok 0" \
	"$(grep '^{' "$WORK/progress.err" | tail -n 1 | jq -r '"\(.phase) \(.result) \(.exit)"')"
printf 'y' | dd of="$WORK/out.img" bs=1 seek=$((1024 * 1024 + 3)) conv=notrunc status=none
set +e
"$PIFLASH" verify --progress=json "$IMG" "$WORK/out.img" 2>"$WORK/progress.err"
set -e
assert_eq "a mismatch's last JSON line" "end verify-failed 3" \
	"$(grep '^{' "$WORK/progress.err" | tail -n 1 | jq -r '"\(.phase) \(.result) \(.exit)"')"
rm -f "$WORK/out.img"

# A node that fails after OUT.img was checked and opened leaves nothing behind: no image, no
# half-made temporary file next to it.
expect_fail 1 "gateway" "$PIFLASH" --node w1 --ssh-key "$WORK/ops.pub" --ip 10.0.0.5/24 \
	--gateway 10.1.0.1 "$IMG" "$WORK/out.img"
left=$(ls "$WORK" | grep '^out\.img' || true)
[ -z "$left" ] || fail "a failed main job left '$left' behind"
pass "a failed main job leaves no OUT.img and no OUT.img.piflash-partial"

# ---- 6. verify a card written without the seed and SOURCE_DATE_EPOCH -------------------------

# What the run chose itself (time stamp, random instance-id, random host key) is read back
# from the target; every other byte must still match, and a change anywhere else fails.
node=(--node w6 --ssh-key "$WORK/ops.pub" --host-keys)
(
	unset SOURCE_DATE_EPOCH PIFLASH_INSTANCE_ID_SEED
	"$PIFLASH" -q "${node[@]}" "$IMG" "$WORK/w6.img"
	sleep 1.1 # a rebuild with its own clock would differ
	"$PIFLASH" verify "${node[@]}" "$IMG" "$WORK/w6.img" 2>"$WORK/v6.err"
) || { cat "$WORK/v6.err" >&2; fail "verify of an unseeded write failed"; }
grep -q "Read back from $WORK/w6.img: time stamp 20..-..-.. ..:..:.. UTC, instance-id iid-piflash-w6-[0-9a-f]\{16\}, 1 host key" \
	"$WORK/v6.err" || { cat "$WORK/v6.err" >&2; fail "verify does not say what it read back"; }
pass "verify passes on an unseeded write, naming the values it read back"
cp "$WORK/w6.img" "$WORK/w6-changed.img"
off=$(grep -abo 'ssh-ed25519' "$WORK/w6.img" | head -n 1 | cut -d: -f1)
[ -n "$off" ] || fail "no key text found in w6.img"
printf 'X' | dd of="$WORK/w6-changed.img" bs=1 seek=$((off + 20)) conv=notrunc status=none
expect_fail 3 "verification failed" env -u SOURCE_DATE_EPOCH -u PIFLASH_INSTANCE_ID_SEED \
	"$PIFLASH" verify "${node[@]}" "$IMG" "$WORK/w6-changed.img"
# An instance-id not of piflash's form is not taken from the card: the rebuild differs.
cp "$WORK/w6.img" "$WORK/w6-iid.img"
off=$(grep -abo 'iid-piflash-w6-' "$WORK/w6-iid.img" | head -n 1 | cut -d: -f1)
printf 'Z' | dd of="$WORK/w6-iid.img" bs=1 seek=$((off + 15)) conv=notrunc status=none
expect_fail 3 "verification failed" env -u SOURCE_DATE_EPOCH -u PIFLASH_INSTANCE_ID_SEED \
	"$PIFLASH" verify "${node[@]}" "$IMG" "$WORK/w6-iid.img"
# Another node's options do not verify.
expect_fail 3 "verification failed" env -u SOURCE_DATE_EPOCH -u PIFLASH_INSTANCE_ID_SEED \
	"$PIFLASH" verify --node w7 --ssh-key "$WORK/ops.pub" --host-keys "$IMG" "$WORK/w6.img"
rm -f "$WORK"/w6*.img
# With --add alone (no node), the time stamp comes from the card's copy of the file.
printf 'hello\n' >"$WORK/hello"
(
	unset SOURCE_DATE_EPOCH PIFLASH_INSTANCE_ID_SEED
	"$PIFLASH" -q --add "$WORK/hello=2:/etc/hello" "$IMG" "$WORK/add.img"
	sleep 1.1
	"$PIFLASH" verify --add "$WORK/hello=2:/etc/hello" "$IMG" "$WORK/add.img" 2>"$WORK/v6.err"
) || { cat "$WORK/v6.err" >&2; fail "verify of an unseeded --add write failed"; }
pass "verify passes on an --add write without SOURCE_DATE_EPOCH"
rm -f "$WORK/add.img"

# ---- 10. the same mistake, the same exit code ---------------------------------------------

expect_fail 2 "--node NAME is needed to say which node this is" \
	"$PIFLASH" --ssh-key "$WORK/ops.pub" "$IMG" "$WORK/nonode.img"
expect_fail 2 "--node NAME is needed to say which node this is" \
	"$PIFLASH" plan --ssh-key "$WORK/ops.pub" "$IMG"
[ ! -e "$WORK/nonode.img" ] || fail "nonode.img was written"

# ---- 9. batch: node images 0600, the lists beside them readable -------------------------------

cat >"$WORK/nodes.csv" <<EOF
hostname,ssh_key
n1,$WORK/ops.pub
EOF
(umask 022 && "$PIFLASH" batch -q --inventory "$WORK/nodes.csv" --host-keys --bmap \
	--out-dir "$WORK/arts" "$IMG") || fail "batch failed"
assert_eq "batch image mode" "600" "$(stat -c %a "$WORK/arts/n1.img")"
assert_eq "bmap mode" "644" "$(stat -c %a "$WORK/arts/n1.img.bmap")"
assert_eq "SHA256SUMS mode" "644" "$(stat -c %a "$WORK/arts/SHA256SUMS")"

# ---- 8. an ext filesystem e2fsck should see first: read, not written ---------------------------

cp "$IMG" "$WORK/unclean.img"
P2=$(part_offset "$IMG" 2)
debugfs -w -R 'feature needs_recovery' "$WORK/unclean.img?offset=$P2" >/dev/null 2>&1
SUM=$(sha256sum <"$WORK/unclean.img")
"$PIFLASH" ls "$WORK/unclean.img" 2:/etc >"$WORK/ls.out" || fail "ls of a filesystem needing recovery"
grep -q '^hostname$' "$WORK/ls.out" || fail "ls 2:/etc lists no hostname"
pass "piflash ls reads a filesystem that needs journal recovery"
"$PIFLASH" cat "$WORK/unclean.img" 2:/etc/hostname >/dev/null || fail "cat 2:/etc/hostname"
pass "piflash cat reads it too"
expect_fail 1 "journal recovery.*run 'e2fsck'" "$PIFLASH" --node w1 --ssh-key "$WORK/ops.pub" \
	"$WORK/unclean.img" "$WORK/unclean-out.img"
assert_eq "the image is untouched" "$SUM" "$(sha256sum <"$WORK/unclean.img")"

# ---- root: swapped arguments with a card, the system disk -------------------------------------

[ "$(id -u)" = 0 ] || {
	finish
	skip "the card cases need root for loop devices ($CHECKS checks passed)"
}
need losetup findmnt lsblk
LOOP=
cleanup() {
	[ -z "$LOOP" ] || losetup -d "$LOOP" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
truncate -s 120M "$WORK/card.back"
LOOP=$(losetup -f --show "$WORK/card.back") || skip "no free loop device"
"$PIFLASH" -q --yes "$IMG" "$LOOP" || fail "writing the card failed"

# The README's order swapped: the card read as IMAGE, the download as TARGET. Refused, with
# the hint, and the download is untouched.
cp "$IMG" "$WORK/hypriotos.img"
SUM=$(sha256sum <"$WORK/hypriotos.img")
expect_fail 4 "IMAGE comes first" "$PIFLASH" --yes --node worker3 --ssh-key "$WORK/ops.pub" \
	"$LOOP" "$WORK/hypriotos.img"
assert_eq "the swapped download is untouched" "$SUM" "$(sha256sum <"$WORK/hypriotos.img")"
printf 'xz bytes' >"$WORK/hypriotos.img.xz"
expect_fail 4 "IMAGE comes first" "$PIFLASH" --yes "$LOOP" "$WORK/hypriotos.img.xz"
assert_eq "the swapped .xz is untouched" "xz bytes" "$(cat "$WORK/hypriotos.img.xz")"

# 6. The same check of a card written without the seed and SOURCE_DATE_EPOCH.
(
	unset SOURCE_DATE_EPOCH PIFLASH_INSTANCE_ID_SEED
	"$PIFLASH" -q --yes "${node[@]}" "$IMG" "$LOOP"
	sleep 1.1
	"$PIFLASH" verify "${node[@]}" "$IMG" "$LOOP" 2>"$WORK/v6.err"
) || { cat "$WORK/v6.err" >&2; fail "verify of an unseeded card failed"; }
pass "verify passes on a card written without seed and SOURCE_DATE_EPOCH"

# 10. The disk holding / is refused as the system disk (exit 4), before it is opened.
root_src=$(findmnt -no SOURCE / 2>/dev/null || true)
if [ -b "$root_src" ]; then
	disk=/dev/$(lsblk -no PKNAME "$root_src" 2>/dev/null | head -n1)
	[ "$disk" != /dev/ ] || disk=$root_src
	expect_fail 4 "running system's root" "$PIFLASH" --yes --force "$IMG" "$disk"
	expect_fail 4 "running system's root" "$PIFLASH" --yes --force "$IMG" "$root_src"
else
	echo "# / is not on a block device here ($root_src): system-disk case not tried"
fi
finish
