#!/bin/bash
# The ext2/3/4 driver against tools nobody here wrote: every change fstool makes through
# piflash's fs layer must leave `e2fsck -fn` clean, and debugfs must read back the same
# bytes, mode and owner. Covers ext2 (1 KiB blocks), ext3 (journal), ext4 (default, without
# metadata_csum/64bit, 4 KiB blocks populated by mke2fs -d with an htree directory), an ext4
# inside a partitioned image at 1 MiB, ENOSPC and a filesystem that needs journal recovery.
. "$(dirname "$0")/lib.sh"

need mke2fs e2fsck debugfs sfdisk jq truncate cmp
[ -x "$FSTOOL" ] || skip "'$FSTOOL' is not built"
export SOURCE_DATE_EPOCH=1700000000

# dbg IMAGE OFFSET REQUEST: debugfs read-only at OFFSET, its banner dropped.
dbg() {
	debugfs -R "$3" "$1?offset=$2" 2>/dev/null
}

# ft IMAGE OFFSET SIZE COMMAND ARGS...: fstool on the ext filesystem at OFFSET.
ft() {
	_img=$1 _off=$2 _size=$3
	shift 3
	"$FSTOOL" --offset "$_off" --size "$_size" "$_img" ext4 "$@"
}

# check_file IMAGE OFFSET PATH LOCALFILE MODE UID GID: debugfs reads back the same bytes,
# mode and owner.
check_file() {
	rm -f "$WORK/dump"
	dbg "$1" "$2" "dump $3 $WORK/dump"
	cmp -s "$4" "$WORK/dump" || fail "debugfs reads other bytes from $3 than were written"
	dbg "$1" "$2" "stat $3" >"$WORK/stat"
	assert_eq "mode of $3" "$5" "$(grep -o 'Mode: *[0-7]*' "$WORK/stat" | grep -o '[0-7]*$')"
	assert_eq "uid of $3" "$6" "$(grep -o 'User: *[0-9]*' "$WORK/stat" | grep -o '[0-9]*$')"
	assert_eq "gid of $3" "$7" "$(grep -o 'Group: *[0-9]*' "$WORK/stat" | grep -o '[0-9]*$')"
}

# check_used IMAGE OFFSET SIZE PATH: the blocks of PATH (from debugfs) lie in fstool's used
# ranges, and so does the superblock.
check_used() {
	ft "$1" "$2" "$3" used >"$WORK/used"
	_bs=$(dbg "$1" "$2" stats | sed -n 's/^Block size: *//p')
	for _b in $(dbg "$1" "$2" "blocks $4") 1024; do
		[ "$_b" = 1024 ] && _at=1024 || _at=$((_b * _bs))
		awk -v at="$_at" '$1 <= at && at < $1 + $2 { found = 1 } END { exit !found }' \
			"$WORK/used" || fail "byte $_at ($4) is not in the used ranges"
	done
	pass "used ranges hold the superblock and the blocks of $4"
}

# exercise KIND IMAGE OFFSET SIZE MANY: every kind of write, each judged by e2fsck and debugfs.
exercise() {
	kind=$1 img=$2 off=$3 size=$4 many=$5

	printf 'hello from piflash\n' >"$WORK/small"
	ft "$img" "$off" "$size" write /hello "$WORK/small" 640 1000 1001
	ext_clean "$img" "$off"
	check_file "$img" "$off" /hello "$WORK/small" 0640 1000 1001

	head -c 300000 /dev/urandom >"$WORK/larger"
	ft "$img" "$off" "$size" write /hello "$WORK/larger" 600 0 0
	ext_clean "$img" "$off"
	check_file "$img" "$off" /hello "$WORK/larger" 0600 0 0
	check_used "$img" "$off" "$size" /hello

	printf 'short' >"$WORK/smaller"
	ft "$img" "$off" "$size" write /hello "$WORK/smaller" 644 100000 70000
	ext_clean "$img" "$off"
	check_file "$img" "$off" /hello "$WORK/smaller" 0644 100000 70000
	assert_eq "$kind: fstool cat" "short" "$(ft "$img" "$off" "$size" cat /hello)"

	long=$(printf 'n%.0s' $(seq 1 255))
	ft "$img" "$off" "$size" write "/$long" "$WORK/small" 644 0 0
	ext_clean "$img" "$off"
	check_file "$img" "$off" "/$long" "$WORK/small" 0644 0 0
	expect_fail 1 'ENAMETOOLONG' ft "$img" "$off" "$size" write "/${long}x" "$WORK/small"

	ft "$img" "$off" "$size" mkdir-p /deep/a/b/c/d/e/f/g/h
	ext_clean "$img" "$off"
	assert_eq "$kind: deep directory" "directory" \
		"$(dbg "$img" "$off" 'stat /deep/a/b/c/d/e/f/g/h' | sed -n 's/.*Type: \([a-z]*\).*/\1/p')"
	expect_fail 1 'ENOENT' ft "$img" "$off" "$size" mkdir /missing/child
	expect_fail 1 'EEXIST' ft "$img" "$off" "$size" mkdir /deep

	ft "$img" "$off" "$size" mkdir /many
	for i in $(seq 1 "$many"); do
		printf '%s\n' "$i" >"$WORK/n"
		ft "$img" "$off" "$size" write "/many/file-number-$i-with-some-padding" "$WORK/n"
	done
	ext_clean "$img" "$off"
	assert_eq "$kind: $many files listed by debugfs" "$many" \
		"$(dbg "$img" "$off" 'ls -p /many' | grep -c '/file-number-')"
	assert_eq "$kind: fstool ls /many" "$many" "$(ft "$img" "$off" "$size" ls /many | wc -l)"
	printf '%s\n' "$many" >"$WORK/n"
	check_file "$img" "$off" "/many/file-number-$many-with-some-padding" "$WORK/n" 0644 0 0

	ft "$img" "$off" "$size" symlink /fast /etc/hostname
	slow=/$(printf 's%.0s' $(seq 1 200))/target
	ft "$img" "$off" "$size" symlink /slow "$slow"
	ext_clean "$img" "$off"
	assert_eq "$kind: fast link (debugfs)" '"/etc/hostname"' \
		"$(dbg "$img" "$off" 'stat /fast' | sed -n 's/^Fast link dest: //p')"
	rm -f "$WORK/dump"
	dbg "$img" "$off" "dump /slow $WORK/dump"
	assert_eq "$kind: slow link (debugfs)" "$slow" "$(cat "$WORK/dump")"
	assert_eq "$kind: readlink fast" /etc/hostname "$(ft "$img" "$off" "$size" readlink /fast)"
	assert_eq "$kind: readlink slow" "$slow" "$(ft "$img" "$off" "$size" readlink /slow)"
	expect_fail 1 "symlink.*ENOTDIR" ft "$img" "$off" "$size" cat /fast/x

	expect_fail 1 'ENOTEMPTY' ft "$img" "$off" "$size" rm /deep/a/b/c/d/e/f/g
	ft "$img" "$off" "$size" rm /deep/a/b/c/d/e/f/g/h
	ft "$img" "$off" "$size" rm /hello
	ft "$img" "$off" "$size" rm /slow
	ft "$img" "$off" "$size" rm "/many/file-number-1-with-some-padding"
	ext_clean "$img" "$off"
	if dbg "$img" "$off" 'stat /hello' | grep -q Inode; then
		fail "$kind: /hello still exists"
	fi
	pass "$kind: removed files are gone"
}

# new_image KIND MKFS_OPTS SIZE_MIB: a bare filesystem image.
new_image() {
	truncate -s "${3}M" "$WORK/$1.img"
	# shellcheck disable=SC2086
	mke2fs -q -F $2 "$WORK/$1.img" >/dev/null 2>&1 || fail "mke2fs $2 failed"
}

new_image ext2-1k "-t ext2 -b 1024" 16
exercise ext2-1k "$WORK/ext2-1k.img" 0 $((16 << 20)) 300

new_image ext3 "-t ext3" 32
exercise ext3 "$WORK/ext3.img" 0 $((32 << 20)) 60
assert_eq "ext3 keeps its journal" "has_journal" \
	"$(dbg "$WORK/ext3.img" 0 stats | grep -o has_journal | head -n1)"

new_image ext4 "-t ext4" 32
exercise ext4 "$WORK/ext4.img" 0 $((32 << 20)) 500

new_image ext4-nocsum "-t ext4 -O ^metadata_csum,^64bit" 32
exercise ext4-nocsum "$WORK/ext4-nocsum.img" 0 $((32 << 20)) 60

# ext4 inside a partition table, 1 MiB into the image.
img=$WORK/disk.img
truncate -s 40M "$img"
printf 'label: dos\nstart=2048, size=65536, type=83\n' | sfdisk -q "$img" >/dev/null
off=$(part_offset "$img" 1)
psize=$(part_size "$img" 1)
assert_eq "partition offset" 1048576 "$off"
mke2fs -q -F -t ext4 -E offset="$off" "$img" $((psize / 1024))k >/dev/null 2>&1
exercise partitioned "$img" "$off" "$psize" 60
sfdisk -d "$img" | grep -q 'start= *2048' || fail "the partition table changed"
pass "partition table intact"

# A tree made by mke2fs -d: files of several owners, a symlink, a big directory that
# e2fsck -D turns into an htree (dir_index). fstool must agree with debugfs on all of it.
tree=$WORK/tree
mkdir -p "$tree/etc/ssh" "$tree/home/pi/.ssh" "$tree/var/lib/big"
printf 'raspberrypi\n' >"$tree/etc/hostname"
printf 'root:x:0:0::/root:/bin/sh\npi:x:1000:1000::/home/pi:/bin/bash\n' >"$tree/etc/passwd"
head -c 70000 /dev/urandom >"$tree/etc/ssh/blob"
printf 'ssh-ed25519 AAAA test\n' >"$tree/home/pi/.ssh/authorized_keys"
chown -R 1000:1000 "$tree/home/pi"
chmod 700 "$tree/home/pi/.ssh"
chmod 600 "$tree/home/pi/.ssh/authorized_keys"
chown 65534:65533 "$tree/etc/ssh/blob"
ln -s /etc/hostname "$tree/etc/name-link"
for i in $(seq 1 400); do
	: >"$tree/var/lib/big/entry-with-a-long-name-$i"
done
truncate -s 64M "$WORK/populated.img"
mke2fs -q -F -t ext4 -b 4096 -d "$tree" "$WORK/populated.img" >/dev/null 2>&1
e2fsck -fyD "$WORK/populated.img" >/dev/null 2>&1 || true
ext_clean "$WORK/populated.img" 0
dbg "$WORK/populated.img" 0 'htree /var/lib/big' | grep -q 'Root node dump' ||
	fail "/var/lib/big is not an htree directory"
pass "/var/lib/big is indexed"

# compare_dir IMAGE DIR: fstool ls and debugfs ls -p list the same names, modes, owners, sizes.
compare_dir() {
	dbg "$1" 0 "ls -p $2" | awk -F/ '$6 != "." && $6 != ".." && NF > 6 {
		printf "%s %s %s %s\n", $3 + 0, $4, $5, $6 }' | sort >"$WORK/dbg.ls"
	ft "$1" 0 "$(stat -c %s "$1")" ls "$2" | awk '{ printf "%s %s %s %s\n", $1, $2, $3, $6 }' |
		sort >"$WORK/ft.ls"
	if ! cmp -s "$WORK/dbg.ls" "$WORK/ft.ls"; then
		diff "$WORK/dbg.ls" "$WORK/ft.ls" >&2 || true
		fail "fstool ls $2 and debugfs ls -p $2 differ"
	fi
	pass "fstool ls $2 agrees with debugfs"
}
pimg=$WORK/populated.img
psz=$(stat -c %s "$pimg")
for d in / /etc /etc/ssh /home/pi /home/pi/.ssh /var/lib/big; do
	compare_dir "$pimg" "$d"
done
for f in /etc/hostname /etc/passwd /etc/ssh/blob /home/pi/.ssh/authorized_keys; do
	ft "$pimg" 0 "$psz" cat "$f" >"$WORK/ft.cat"
	cmp -s "$tree$f" "$WORK/ft.cat" || fail "fstool cat $f differs from the source"
	pass "fstool cat $f"
done
assert_eq "stat of authorized_keys" "100600 1000 1000 22" \
	"$(ft "$pimg" 0 "$psz" stat /home/pi/.ssh/authorized_keys | cut -d' ' -f1-4)"
assert_eq "readlink of a link made by mke2fs" /etc/hostname \
	"$(ft "$pimg" 0 "$psz" readlink /etc/name-link)"

# Writes into the populated tree, including 300 more names in the htree directory.
printf 'node7\n' >"$WORK/hostname"
ft "$pimg" 0 "$psz" write /etc/hostname "$WORK/hostname" 644 0 0
printf 'ssh-ed25519 BBBB new\n' >"$WORK/keys"
ft "$pimg" 0 "$psz" write /home/pi/.ssh/authorized_keys "$WORK/keys" 600 1000 1000
for i in $(seq 401 700); do
	printf '%s\n' "$i" >"$WORK/n"
	ft "$pimg" 0 "$psz" write "/var/lib/big/entry-with-a-long-name-$i" "$WORK/n"
done
ft "$pimg" 0 "$psz" rm /var/lib/big/entry-with-a-long-name-7
ext_clean "$pimg" 0
check_file "$pimg" 0 /etc/hostname "$WORK/hostname" 0644 0 0
check_file "$pimg" 0 /home/pi/.ssh/authorized_keys "$WORK/keys" 0600 1000 1000
printf '700\n' >"$WORK/n"
check_file "$pimg" 0 /var/lib/big/entry-with-a-long-name-700 "$WORK/n" 0644 0 0
assert_eq "entries in the htree directory" 699 \
	"$(dbg "$pimg" 0 'ls -p /var/lib/big' | grep -c '/entry-with-a-long-name-')"
compare_dir "$pimg" /var/lib/big

# Filling a small filesystem: a clean ENOSPC, and e2fsck stays clean.
new_image full "-t ext4 -b 1024" 4
head -c 1000000 /dev/urandom >"$WORK/mb"
fsz=$((4 << 20))
i=1
while ft "$WORK/full.img" 0 "$fsz" write "/mb$i" "$WORK/mb" 2>/dev/null; do
	i=$((i + 1))
	[ "$i" -le 10 ] || fail "a 4 MiB filesystem took 10 MB"
done
expect_fail 1 'ENOSPC' ft "$WORK/full.img" 0 "$fsz" write "/mb$i" "$WORK/mb"
grep -q 'ext4: ' "$WORK/err" || fail "the ENOSPC message does not name the filesystem"
ext_clean "$WORK/full.img" 0
check_file "$WORK/full.img" 0 "/mb$((i - 1))" "$WORK/mb" 0644 0 0
# Files too big for the space left can still be squeezed out block by block: small files
# fill the last blocks, then inodes or blocks run out with the same clean error.
printf 'x%.0s' $(seq 1 3000) >"$WORK/3k"
j=0
while ft "$WORK/full.img" 0 "$fsz" write "/s$j" "$WORK/3k" 2>/dev/null; do
	j=$((j + 1))
	[ "$j" -le 2000 ] || fail "small files never ran out of space"
done
expect_fail 1 'ENOSPC' ft "$WORK/full.img" 0 "$fsz" write "/s$j" "$WORK/3k"
ext_clean "$WORK/full.img" 0

# A filesystem that needs journal recovery reads as it is; writing is refused, and it is left
# as it was.
new_image recover "-t ext4" 16
debugfs -w -R 'feature needs_recovery' "$WORK/recover.img" >/dev/null 2>&1
before=$(sha256 "$WORK/recover.img")
printf 'x\n' >"$WORK/x"
expect_fail 1 'journal recovery.*e2fsck.*EUCLEAN' ft "$WORK/recover.img" 0 $((16 << 20)) write /x "$WORK/x"
ft "$WORK/recover.img" 0 $((16 << 20)) ls / | grep -q lost+found || fail "ls of a filesystem needing recovery"
pass "a filesystem needing recovery is listed"
assert_eq "refused image unchanged" "$before" "$(sha256 "$WORK/recover.img")"

# The same for an ext2 marked not clean (no journal) that e2fsck -fn finds nothing wrong in.
new_image unclean "-t ext2" 16
debugfs -w -R 'ssv state 0' "$WORK/unclean.img" >/dev/null 2>&1
e2fsck -fn "$WORK/unclean.img" >/dev/null 2>&1 || fail "e2fsck -fn finds problems in unclean.img"
before=$(sha256 "$WORK/unclean.img")
ft "$WORK/unclean.img" 0 $((16 << 20)) ls / | grep -q lost+found || fail "ls of a not-clean ext2"
pass "a not-clean ext2 is listed"
expect_fail 1 'not cleanly unmounted.*e2fsck' ft "$WORK/unclean.img" 0 $((16 << 20)) write /x "$WORK/x"
assert_eq "refused image unchanged" "$before" "$(sha256 "$WORK/unclean.img")"

# Not an ext filesystem at all.
truncate -s 4M "$WORK/zero.img"
expect_fail 1 'EUCLEAN' ft "$WORK/zero.img" 0 $((4 << 20)) ls /

finish
