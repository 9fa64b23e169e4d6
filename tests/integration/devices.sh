#!/bin/bash
# piflash devices: a loop device shows as a card piflash would write (transport loop, its
# backing file as model, its size); the disk holding / shows as refused, with its reason; a
# card with a mounted filesystem shows its mount point and is refused for it, with the words
# writing it gives.
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || skip "needs root to attach a loop device"
need losetup jq findmnt lsblk mkfs.ext4 mount umount
losetup -f >/dev/null 2>&1 || skip "no free loop device (losetup -f failed)"

LOOP=""
LOOP2=""
MNT=""
cleanup() {
	[ -z "$MNT" ] || umount "$MNT" 2>/dev/null || true
	[ -z "$LOOP2" ] || losetup -d "$LOOP2" 2>/dev/null || true
	[ -z "$LOOP" ] || losetup -d "$LOOP" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

truncate -s 64M "$WORK/card.img"
LOOP=$(losetup -f --show "$WORK/card.img") || fail "losetup failed"

"$PIFLASH" devices --json >"$WORK/devices.json" 2>"$WORK/err" || {
	cat "$WORK/err" >&2
	fail "piflash devices --json failed"
}
jq -e . "$WORK/devices.json" >/dev/null || fail "not JSON: $(head -c 300 "$WORK/devices.json")"
entry() {
	jq -c --arg p "$1" '.devices[] | select(.path == $p)' "$WORK/devices.json"
}
e=$(entry "$LOOP")
[ -n "$e" ] || fail "$LOOP is not listed: $(jq -c '[.devices[].path]' "$WORK/devices.json")"
assert_eq "$LOOP transport" loop "$(jq -r .transport <<<"$e")"
assert_eq "$LOOP size" 67108864 "$(jq -r .size_bytes <<<"$e")"
assert_eq "$LOOP model (the backing file)" "$WORK/card.img" "$(jq -r .model <<<"$e")"
assert_eq "$LOOP removable" true "$(jq -r .removable <<<"$e")"
assert_eq "$LOOP mounted" false "$(jq -r .mounted <<<"$e")"
assert_eq "$LOOP refused" false "$(jq -r .refused <<<"$e")"
assert_eq "$LOOP refusal" null "$(jq -r .refusal <<<"$e")"
# Whole disks only: partitions and unattached loop devices are not cards.
jq -e '[.devices[].path] | all(test("^/dev/[a-z]+[0-9]*$"))' "$WORK/devices.json" >/dev/null ||
	fail "a listed path is not a whole disk node"
jq -e '[.devices[].size_bytes] | all(. > 0)' "$WORK/devices.json" >/dev/null ||
	fail "a device of size 0 is listed"
pass "only whole disks with a size are listed"

# The disk of the running system: refused, with the reason a write would give.
root_src=$(findmnt -no SOURCE / || true)
if [ -b "$root_src" ]; then
	disk=$(lsblk -no PKNAME "$root_src" | head -n1)
	[ -n "$disk" ] || disk=$(basename "$root_src")
	e=$(entry "/dev/$disk")
	[ -n "$e" ] || fail "the system disk /dev/$disk is not listed"
	assert_eq "system disk /dev/$disk refused" true "$(jq -r .refused <<<"$e")"
	jq -r .refusal <<<"$e" | grep -q "running system's root filesystem" ||
		fail "system disk refusal: $(jq -r .refusal <<<"$e")"
	pass "system disk refusal names the root filesystem: $(jq -r .refusal <<<"$e")"
	jq -e '.mountpoints | index("/")' <<<"$e" >/dev/null || fail "/ not among its mountpoints"
	assert_eq "system disk mounted" true "$(jq -r .mounted <<<"$e")"
else
	echo "note: / is on '$root_src', not a block device: system disk check not run" >&2
fi

# The text listing: the loop device and, under it, no refusal.
"$PIFLASH" devices >"$WORK/devices.txt"
head -n1 "$WORK/devices.txt" | grep -q '^DEVICE' || fail "no header: $(head -n1 "$WORK/devices.txt")"
grep -q "^$LOOP .* loop .*$WORK/card.img" "$WORK/devices.txt" ||
	fail "text listing lacks $LOOP: $(cat "$WORK/devices.txt")"
pass "text listing shows $LOOP"

# A card with a mounted filesystem: mounted, refused, and the reason is the one writing the
# card gives (flash/target.c: one set of checks).
"$MKIMAGE" hypriot "$WORK/h.img" >/dev/null
truncate -s 64M "$WORK/mounted.img"
mkfs.ext4 -q -F "$WORK/mounted.img"
LOOP2=$(losetup -f --show "$WORK/mounted.img") || fail "losetup failed"
mkdir "$WORK/mnt"
if mount -t ext4 "$LOOP2" "$WORK/mnt" 2>/dev/null; then
	MNT="$WORK/mnt"
	"$PIFLASH" devices --json >"$WORK/devices.json"
	e=$(entry "$LOOP2")
	assert_eq "$LOOP2 mounted" true "$(jq -r .mounted <<<"$e")"
	assert_eq "$LOOP2 mountpoints" "[\"$WORK/mnt\"]" "$(jq -c .mountpoints <<<"$e")"
	assert_eq "$LOOP2 refused" true "$(jq -r .refused <<<"$e")"
	why=$(jq -r .refusal <<<"$e")
	grep -q "is mounted at $WORK/mnt; unmount it first" <<<"$why" || fail "refusal: $why"
	pass "mounted card refused: $why"
	grep -qF "refused: $why" < <("$PIFLASH" devices) ||
		fail "the text listing does not show the refusal"
	pass "the text listing shows the refusal"
	expect_fail 4 "$(sed 's/[][().*^$]/./g' <<<"$why")" "$PIFLASH" --yes "$WORK/h.img" "$LOOP2"
else
	echo "note: cannot mount ext4 here: the mounted-card check was not run" >&2
fi

# A user who cannot open the disks still sees them (size from sysfs), refused for that.
if command -v setpriv >/dev/null 2>&1 && id nobody >/dev/null 2>&1; then
	chmod 755 "$WORK"
	setpriv --reuid=nobody --regid=nogroup --clear-groups "$PIFLASH" devices --json \
		>"$WORK/devices.json" 2>"$WORK/err" || fail "as nobody: $(cat "$WORK/err")"
	e=$(entry "$LOOP")
	assert_eq "as nobody: $LOOP size from sysfs" 67108864 "$(jq -r .size_bytes <<<"$e")"
	assert_eq "as nobody: $LOOP refused" true "$(jq -r .refused <<<"$e")"
	jq -r .refusal <<<"$e" | grep -q "cannot open: Permission denied" ||
		fail "as nobody: refusal $(jq -r .refusal <<<"$e")"
	pass "as nobody: $(jq -r .refusal <<<"$e")"
fi

expect_fail 2 "unknown argument 'x'" "$PIFLASH" devices x
echo "devices: $CHECKS checks passed"
