#!/bin/bash
# piflash ls / cat / --add on mkimage images, judged by mtools, debugfs, fsck.fat, e2fsck.
. "$(dirname "$0")/lib.sh"
need sfdisk mtype mdir debugfs e2fsck fsck.fat jq xz
export MTOOLS_SKIP_CHECK=1

IMG=$WORK/hypriot.img
"$MKIMAGE" hypriot "$IMG"
IN_SHA=$(sha256 "$IMG")
BOOT=$(part_offset "$IMG" 1)
ROOT=$(part_offset "$IMG" 2)

# ls and cat agree with mtools and debugfs on what mkfs.fat/mke2fs -d made.
assert_eq "cat FAT file by label" "$(mtype -i "$IMG@@$BOOT" ::/meta-data)" \
	"$("$PIFLASH" cat "$IMG" HypriotOS:/meta-data)"
assert_eq "cat FAT file by number" "$(mtype -i "$IMG@@$BOOT" ::/user-data)" \
	"$("$PIFLASH" cat "$IMG" 1:/user-data)"
assert_eq "cat ext file" "$(debugfs -R 'cat /etc/hostname' "$IMG?offset=$ROOT" 2>/dev/null)" \
	"$("$PIFLASH" cat "$IMG" root:/etc/hostname)"
# The seed link leads, through the image's fstab, to the FAT partition.
assert_eq "cat through a cross-partition link" "$(mtype -i "$IMG@@$BOOT" ::/meta-data)" \
	"$("$PIFLASH" cat "$IMG" root:/var/lib/cloud/seed/nocloud-net/meta-data)"
assert_eq "cat in the booted namespace" "$(mtype -i "$IMG@@$BOOT" ::/user-data)" \
	"$("$PIFLASH" cat "$IMG" /boot/user-data)"

want=$(mdir -b -i "$IMG@@$BOOT" ::/ | sed 's|^::/||' | tr 'A-Z' 'a-z' | sort)
got=$("$PIFLASH" ls "$IMG" HypriotOS:/ | tr 'A-Z' 'a-z' | sort)
assert_eq "ls of the FAT root matches mdir" "$want" "$got"

want=$(debugfs -R 'ls /etc' "$IMG?offset=$ROOT" 2>/dev/null | tr -s ' \n' '\n' |
	grep -v '^$' | grep -v '^[0-9(]' | grep -vx '\.' | grep -vx '\.\.' | sort)
got=$("$PIFLASH" ls "$IMG" root:/etc | sort)
assert_eq "ls of /etc matches debugfs" "$want" "$got"

line=$("$PIFLASH" ls -l "$IMG" root:/var/lib/cloud/seed/nocloud-net | grep ' user-data')
case "$line" in
l*"-> /boot/user-data") pass "ls -l shows the link target" ;;
*) fail "ls -l line for the seed link: '$line'" ;;
esac
line=$("$PIFLASH" ls -l "$IMG" root:/home | grep ' pirate$')
case "$line" in
d*" 1000  1000 "*) pass "ls -l shows owner 1000:1000 of /home/pirate" ;;
*) fail "ls -l line for /home/pirate: '$line'" ;;
esac

# --add: to the FAT through the seed link, to ext with mode and owner, new directories.
printf '#cloud-config\nhostname: worker3\n' >"$WORK/user-data"
printf 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKv0 test@piflash\n' >"$WORK/key.pub"
head -c 300000 /dev/urandom >"$WORK/blob"
OUT=$WORK/out.img
SOURCE_DATE_EPOCH=1700000000 "$PIFLASH" -q \
	--add "$WORK/user-data=root:/var/lib/cloud/seed/nocloud-net/user-data" \
	--add "$WORK/key.pub=root:/home/pirate/.ssh/authorized_keys:0600:1000:1000" \
	--add "$WORK/blob=HypriotOS:/deep/er/Long File Name.bin" \
	--add "$WORK/blob=/opt/piflash/blob:0640" \
	"$IMG" "$OUT"
assert_eq "input image unchanged" "$IN_SHA" "$(sha256 "$IMG")"
fat_clean "$OUT" "$BOOT" "$(part_size "$OUT" 1)"
ext_clean "$OUT" "$ROOT"
assert_eq "user-data landed on the FAT" "$(cat "$WORK/user-data")" \
	"$(mtype -i "$OUT@@$BOOT" ::/user-data)"
cmp <(mtype -i "$OUT@@$BOOT" "::/deep/er/Long File Name.bin") "$WORK/blob" &&
	pass "long-named file in new FAT directories reads back with mtype"
cmp <(debugfs -R 'cat /opt/piflash/blob' "$OUT?offset=$ROOT" 2>/dev/null) "$WORK/blob" &&
	pass "file in new ext directories reads back with debugfs"
st=$(debugfs -R 'stat /home/pirate/.ssh/authorized_keys' "$OUT?offset=$ROOT" 2>/dev/null)
echo "$st" | grep -q 'Mode:  0600' || fail "authorized_keys mode: $st"
echo "$st" | grep -Eq 'User: +1000 +Group: +1000' || fail "authorized_keys owner: $st"
pass "authorized_keys is 0600 1000:1000"
st=$(debugfs -R 'stat /opt/piflash/blob' "$OUT?offset=$ROOT" 2>/dev/null)
echo "$st" | grep -q 'Mode:  0640' || fail "blob mode: $st"
echo "$st" | grep -q 'mtime: 0x6553f100' || fail "blob mtime is not SOURCE_DATE_EPOCH: $st"
pass "blob is 0640 with mtime from SOURCE_DATE_EPOCH"

# The output is sparse and has the input's size.
assert_eq "output size" "$(stat -c %s "$IMG")" "$(stat -c %s "$OUT")"
[ "$(du -B1 "$OUT" | cut -f1)" -lt "$(stat -c %s "$OUT")" ] && pass "output is sparse"

# A compressed input: cached, and the result is the same image.
xz -T2 -1 -k "$IMG"
SOURCE_DATE_EPOCH=1700000000 "$PIFLASH" -q \
	--add "$WORK/user-data=root:/var/lib/cloud/seed/nocloud-net/user-data" \
	--add "$WORK/key.pub=root:/home/pirate/.ssh/authorized_keys:0600:1000:1000" \
	--add "$WORK/blob=HypriotOS:/deep/er/Long File Name.bin" \
	--add "$WORK/blob=/opt/piflash/blob:0640" \
	"$IMG.xz" "$WORK/out2.img"
cmp "$OUT" "$WORK/out2.img" && pass "same result from the .xz as from the raw image"

# Refusals: the input itself, its cache file, a hard link to the input.
expect_fail 4 "is the input image itself" "$PIFLASH" "$IMG" "$IMG"
ln "$IMG" "$WORK/hardlink.img"
expect_fail 4 "is the input image itself" "$PIFLASH" "$IMG" "$WORK/hardlink.img"
CACHE=$("$PIFLASH" inspect --json "$IMG.xz" | jq -r .source.cache)
expect_fail 4 "cache file" "$PIFLASH" "$IMG.xz" "$CACHE"
assert_eq "input image still unchanged" "$IN_SHA" "$(sha256 "$IMG")"

# Bad requests name what and where.
expect_fail 1 "no partition 'nope'" "$PIFLASH" cat "$IMG" nope:/x
expect_fail 1 "user-data" "$PIFLASH" cat "$IMG" HypriotOS:/no/such/user-data
expect_fail 2 "expected LOCAL=PART:/path" "$PIFLASH" --add bogus "$IMG" "$WORK/x.img"
expect_fail 1 "cannot read the local file: '$WORK/missing': No such file" "$PIFLASH" --add "$WORK/missing=1:/x" "$IMG" "$WORK/x.img"
[ ! -e "$WORK/x.img" ] && pass "no output left after a failed run"

finish
