#!/bin/bash
# The FAT driver (src/fs/fat.c) judged by tools nobody here wrote. On FAT12, FAT16, FAT32,
# FAT32 with fewer than 65525 clusters and 4096-byte sectors, after every kind of change
# (new file, replace larger and smaller, long names, deep mkdir, directories growing,
# remove, a full volume, a full root directory) fsck.fat -n must call the volume clean and
# mtools must read back the same bytes and names. fstool's ls and cat must agree with mdir
# and mtype on volumes populated by mcopy.
. "$(dirname "$0")/lib.sh"
need mkfs.fat fsck.fat mtype mdir mcopy mmd mattrib cmp
[ -x "$FSTOOL" ] || skip "fstool is not built ($FSTOOL)"
export MTOOLS_SKIP_CHECK=1

IMG=
KIND=
MTOOLS=1

fst() {
	"$FSTOOL" "$IMG" vfat "$@"
}

# mk KIND SIZE MKFS_ARGS...: a fresh volume filling a whole image file.
mk() {
	KIND=$1
	IMG=$WORK/$1.img
	rm -f "$IMG"
	truncate -s "$2" "$IMG"
	shift 2
	mkfs.fat "$@" "$IMG" >/dev/null 2>&1 || fail "mkfs.fat $* failed"
}

clean() {
	fat_clean "$IMG" 0 >/dev/null
	pass "$KIND: fsck.fat -n clean after $1"
}

# free_bytes: what fsck.fat counts as free.
free_bytes() {
	fsck.fat -nv "$IMG" 2>/dev/null | awk '
		/bytes per cluster/ { cb = $1 }
		/files, [0-9]+\/[0-9]+ clusters/ {
			split($(NF - 1), a, "/"); free = (a[2] - a[1]) * cb
		}
		END { print free }'
}

# same_file PATH LOCAL: fstool cat and mtype read back LOCAL's bytes.
same_file() {
	fst cat "$1" >"$WORK/got" || fail "$KIND: fstool cat '$1' failed"
	cmp -s "$WORK/got" "$2" || fail "$KIND: fstool cat '$1' differs from what was written"
	if [ "$MTOOLS" = 1 ]; then
		if ! mtype -i "$IMG" "::$1" >"$WORK/got" 2>"$WORK/mtype.err"; then
			cat "$WORK/mtype.err" >&2
			fail "$KIND: mtype '::$1' failed"
		fi
		cmp -s "$WORK/got" "$2" || fail "$KIND: mtype '::$1' differs from what was written"
	fi
	pass "$KIND: '$1' reads back ($(stat -c %s "$2") bytes)"
}

# same_names DIR [EXPECTED]: fstool ls and mdir list the same names (and EXPECTED, one
# name a line, when given).
same_names() {
	fst ls "$1" | cut -d' ' -f6- | LC_ALL=C sort >"$WORK/names.fst" ||
		fail "$KIND: fstool ls '$1' failed"
	if [ "$MTOOLS" = 1 ]; then
		mdir -b -i "$IMG" "::$1" 2>"$WORK/mdir.err" | sed -e 's|/$||' -e 's|.*/||' |
			LC_ALL=C sort >"$WORK/names.mdir"
		if ! diff "$WORK/names.mdir" "$WORK/names.fst" >&2; then
			cat "$WORK/mdir.err" >&2
			fail "$KIND: fstool ls '$1' and mdir disagree (< mdir, > fstool)"
		fi
	fi
	if [ $# -ge 2 ]; then
		printf '%s\n' "$2" | grep -v '^$' | LC_ALL=C sort >"$WORK/names.want"
		diff "$WORK/names.want" "$WORK/names.fst" >&2 ||
			fail "$KIND: names in '$1' are not what was written (< expected)"
	fi
	pass "$KIND: names in '$1' agree ($(wc -l <"$WORK/names.fst"))"
}

# Every kind of change, each judged by fsck.fat and mtools.
scenario() {
	local i n free

	clean "mkfs.fat"
	printf 'hello\n' >"$WORK/small"
	head -c 100000 /dev/urandom >"$WORK/r100k"
	head -c 300000 /dev/urandom >"$WORK/r300k"
	head -c 1000 /dev/urandom >"$WORK/r1k"

	# A new file, with an 8.3 lower-case name: no long entry needed.
	fst write /config.txt "$WORK/small"
	clean "a new file"
	same_file /config.txt "$WORK/small"
	assert_eq "$KIND: stat of a new file" "100755 0 0 6" "$(fst stat /config.txt | cut -d' ' -f1-4)"
	if [ "$MTOOLS" = 1 ]; then
		assert_eq "$KIND: mdir shows the lower-case 8.3 name" "::/config.txt" \
			"$(mdir -b -i "$IMG" ::/ | grep -i config)"
	fi

	# Replace: larger, then smaller, found case-insensitively.
	fst write /user-data "$WORK/r100k"
	clean "a 100 kB file"
	same_file /user-data "$WORK/r100k"
	fst write /user-data "$WORK/r300k"
	clean "replacing it with a larger one"
	same_file /user-data "$WORK/r300k"
	fst write /USER-DATA "$WORK/r1k"
	clean "replacing it with a smaller one"
	same_file /user-data "$WORK/r1k"

	# Long names: spaces, mixed case, non-ASCII.
	fst write "/A long file name with spaces.txt" "$WORK/small"
	fst write /Network-Config "$WORK/r1k"
	fst write "/café ☕.txt" "$WORK/small"
	fst write /ro.txt "$WORK/small" 0444 0 0
	clean "long names"
	same_file "/A long file name with spaces.txt" "$WORK/small"
	same_file /Network-Config "$WORK/r1k"
	same_file "/café ☕.txt" "$WORK/small"
	same_names / "config.txt
user-data
A long file name with spaces.txt
Network-Config
café ☕.txt
ro.txt"
	assert_eq "$KIND: a mode without write bits is read-only" "100555" \
		"$(fst stat /ro.txt | cut -d' ' -f1)"
	if [ "$MTOOLS" = 1 ]; then
		case "$(mattrib -i "$IMG" ::/ro.txt)" in
		*R*) pass "$KIND: mattrib sees the read-only attribute" ;;
		*) fail "$KIND: mattrib does not see the read-only attribute" ;;
		esac
	fi

	# Deep directories.
	fst mkdir-p /a/b/c/d/e
	fst write /a/b/c/d/e/file.txt "$WORK/r100k"
	clean "mkdir -p /a/b/c/d/e"
	same_file /a/b/c/d/e/file.txt "$WORK/r100k"
	same_names /a/b/c/d "e"
	expect_fail 1 '\(EEXIST\)' fst mkdir /a/b
	expect_fail 1 '\(ENOTEMPTY\)' fst rm /a
	expect_fail 1 '\(EPERM\)' fst symlink /link /target
	expect_fail 1 '\(EINVAL\)' fst write "/bad*name" "$WORK/small"

	# A subdirectory grows by clusters; on FAT32 the root does too.
	fst mkdir /many
	for i in $(seq 1 200); do
		printf 'file %s\n' "$i" >"$WORK/f"
		fst write "/many/File number $i.txt" "$WORK/f"
	done
	clean "200 long names in a subdirectory"
	same_names /many "$(seq 1 200 | sed 's/.*/File number &.txt/')"
	for i in 1 9 10 99 100 200; do
		printf 'file %s\n' "$i" >"$WORK/f"
		same_file "/many/File number $i.txt" "$WORK/f"
	done
	if [ "$ROOT_GROWS" = 1 ]; then
		for i in $(seq 1 200); do
			printf 'root %s\n' "$i" >"$WORK/f"
			fst write "/Root file $i.txt" "$WORK/f"
		done
		clean "200 long names in the FAT32 root"
		n=$(fst ls / | wc -l)
		assert_eq "$KIND: root entries" 208 "$n"
		printf 'root %s\n' 150 >"$WORK/f"
		same_file "/Root file 150.txt" "$WORK/f"
		same_names /
	fi

	# Remove files, a non-empty tree bottom up, half of the grown directory.
	fst rm /user-data
	fst rm "/café ☕.txt"
	for p in /a/b/c/d/e/file.txt /a/b/c/d/e /a/b/c/d /a/b/c /a/b /a; do
		fst rm "$p"
	done
	for i in $(seq 1 2 200); do
		fst rm "/many/File number $i.txt"
	done
	clean "removing files and directories"
	same_names /many "$(seq 2 2 200 | sed 's/.*/File number &.txt/')"
	expect_fail 1 '\(ENOENT\)' fst cat /user-data
	expect_fail 1 '\(ENOENT\)' fst ls /a

	# Fill the volume: one byte too many is ENOSPC and changes nothing; exactly full works.
	free=$(free_bytes)
	[ -n "$free" ] && [ "$free" -gt 0 ] || fail "$KIND: cannot read the free space"
	head -c $((free + 1)) /dev/zero >"$WORK/fill"
	sum=$(sha256 "$IMG")
	expect_fail 1 '\(ENOSPC\)' fst write /fill.bin "$WORK/fill"
	assert_eq "$KIND: a failed write leaves the image alone" "$sum" "$(sha256 "$IMG")"
	truncate -s "$free" "$WORK/fill"
	fst write /FILL.BIN "$WORK/fill"
	clean "filling the volume"
	assert_eq "$KIND: nothing free" 0 "$(free_bytes)"
	expect_fail 1 '\(ENOSPC\)' fst write /one.txt "$WORK/small"
	expect_fail 1 '\(ENOSPC\)' fst mkdir /dir
	clean "ENOSPC on a full volume"
	fst rm /FILL.BIN
	clean "emptying it again"
	assert_eq "$KIND: free space back" "$free" "$(free_bytes)"
	rm -f "$WORK/fill"
}

# fstool ls and cat agree with mdir and mtype on what mcopy wrote.
read_mcopy() {
	printf 'user data\n' >"$WORK/a"
	head -c 50000 /dev/urandom >"$WORK/b"
	mcopy -i "$IMG" "$WORK/a" ::/User-Data
	mcopy -i "$IMG" "$WORK/b" ::/network-config
	mcopy -i "$IMG" "$WORK/a" ::/README.TXT
	mcopy -i "$IMG" "$WORK/a" ::/lower.txt
	mcopy -i "$IMG" "$WORK/b" ::/MiXeD.TxT
	mcopy -i "$IMG" "$WORK/a" "::/café ☕.txt"
	mcopy -i "$IMG" "$WORK/b" "::/A long file name with spaces.txt"
	mmd -i "$IMG" "::/Sub Dir"
	mmd -i "$IMG" "::/Sub Dir/deeper"
	mcopy -i "$IMG" "$WORK/b" "::/Sub Dir/deeper/Inner File.md"
	same_names / "User-Data
network-config
README.TXT
lower.txt
MiXeD.TxT
café ☕.txt
A long file name with spaces.txt
Sub Dir"
	same_names "/Sub Dir/deeper" "Inner File.md"
	same_file /User-Data "$WORK/a"
	same_file /network-config "$WORK/b"
	same_file /readme.txt "$WORK/a"
	same_file /LOWER.TXT "$WORK/a"
	same_file /mixed.txt "$WORK/b"
	same_file "/café ☕.txt" "$WORK/a"
	same_file "/a long file name with spaces.txt" "$WORK/b"
	same_file "/Sub Dir/deeper/Inner File.md" "$WORK/b"
	# And what fstool then changes there stays clean and readable.
	fst write "/Sub Dir/deeper/Inner File.md" "$WORK/a"
	fst rm /MiXeD.TxT
	clean "changes on an mcopy-made volume"
	same_file "/Sub Dir/deeper/Inner File.md" "$WORK/a"
}

ROOT_GROWS=0
mk fat12 4M -F 12
scenario
mk fat12-mcopy 4M -F 12
read_mcopy

mk fat16 32M -F 16
scenario
mk fat16-mcopy 32M -F 16
read_mcopy

mk fat16-4k 64M -F 16 -S 4096
scenario

ROOT_GROWS=1
mk fat32 64M -F 32
scenario
mk fat32-mcopy 64M -F 32
read_mcopy

mk fat32-4k 300M -F 32 -S 4096 -s 1
scenario

# FAT32 by its BPB (FATSz16 == 0) with 64496 clusters, as Linux reads it. mtools 4.0.32
# decides by the cluster count and cannot read or write such a volume, so only fsck.fat
# (which follows the BPB) judges it.
mk fat32-small 32M -F 32 -s 1
[ "$(od -An -tu2 -j22 -N2 "$IMG" | tr -d ' ')" = 0 ] || fail "$KIND: BPB_FATSz16 is not 0"
fsck.fat -nv "$IMG" 2>/dev/null | grep -Eq '/64496 clusters' ||
	fail "$KIND: expected 64496 clusters"
MTOOLS=0
scenario
MTOOLS=1

# A small FAT16 root directory fills up: ENOSPC, and the volume stays clean. mkfs.fat
# rounds -r up to whole sectors, so the count comes from the BPB.
ROOT_GROWS=0
mk fat16-root16 16M -F 16 -r 16 -s 1
n=$(od -An -tu2 -j17 -N2 "$IMG" | tr -d ' ')
[ "$n" -ge 16 ] && [ "$n" -le 64 ] || fail "$KIND: $n root entries"
for i in $(seq 1 "$n"); do
	fst write "/F$i" "$WORK/small"
done
clean "$n files in a $n-entry root"
sum=$(sha256 "$IMG")
expect_fail 1 'root directory is full.*\(ENOSPC\)' fst write /G1 "$WORK/small"
expect_fail 1 '\(ENOSPC\)' fst mkdir /D1
assert_eq "$KIND: a failed write leaves the image alone" "$sum" "$(sha256 "$IMG")"
fst rm /F3
fst rm /F4
expect_fail 1 'root directory is full.*\(ENOSPC\)' fst write "/A name of 3 slots.txt" "$WORK/small"
fst write /G1 "$WORK/small"
clean "ENOSPC in a full root directory"
same_file /G1 "$WORK/small"
same_names / "$(seq 1 "$n" | grep -vx 3 | grep -vx 4 | sed 's/^/F/')
G1"

finish
