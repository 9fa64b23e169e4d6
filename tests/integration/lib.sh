# Shared helpers for the integration tests. Source it: . "$(dirname "$0")/lib.sh"
# Environment from meson: PIFLASH (the built program), SOURCE_ROOT, BUILD_ROOT.
set -eu

: "${SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${BUILD_ROOT:=$SOURCE_ROOT/build}"
: "${PIFLASH:=$BUILD_ROOT/piflash}"
export LC_ALL=C.UTF-8 TZ=UTC
MKIMAGE="$SOURCE_ROOT/scripts/mkimage.sh"
FSTOOL="$BUILD_ROOT/tests/fstool"

TEST_NAME=$(basename "$0" .sh)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/piflash-$TEST_NAME.XXXXXX")
# Every test keeps its cache apart from the user's and from other tests.
export XDG_CACHE_HOME="$WORK/cache"
trap '[ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"' EXIT

CHECKS=0

# skip REASON: exit 77, which meson reports as SKIP.
skip() {
	echo "SKIP: $TEST_NAME: $*" >&2
	exit 77
}

fail() {
	echo "FAIL: $TEST_NAME: $*" >&2
	exit 1
}

pass() {
	CHECKS=$((CHECKS + 1))
	echo "ok $CHECKS - $*"
}

need() {
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || skip "'$t' is not installed"
	done
}

# assert_eq WHAT EXPECTED ACTUAL
assert_eq() {
	if [ "$2" != "$3" ]; then
		fail "$1: expected '$2', got '$3'"
	fi
	pass "$1"
}

# expect_fail EXIT_CODE MESSAGE_REGEX CMD...: CMD must exit with EXIT_CODE and print a
# stderr line matching MESSAGE_REGEX; it must not be killed by a signal or sanitizer.
expect_fail() {
	want_rc=$1
	want_msg=$2
	shift 2
	set +e
	"$@" >"$WORK/out" 2>"$WORK/err"
	rc=$?
	set -e
	if [ "$rc" -ne "$want_rc" ]; then
		cat "$WORK/err" >&2
		fail "'$*' exited $rc, expected $want_rc"
	fi
	if ! grep -Eq -- "$want_msg" "$WORK/err"; then
		cat "$WORK/err" >&2
		fail "'$*': stderr does not match '$want_msg'"
	fi
	if grep -Eq 'Sanitizer|runtime error' "$WORK/err"; then
		cat "$WORK/err" >&2
		fail "'$*': sanitizer report"
	fi
	pass "$* -> exit $want_rc, '$want_msg'"
}

# part_offset IMAGE N: byte offset of partition N, from sfdisk (not from piflash).
part_offset() {
	sfdisk -J "$1" | jq -r --argjson n "$2" \
		'.partitiontable | (.sectorsize // 512) * .partitions[$n - 1].start'
}

# part_size IMAGE N: byte size of partition N, from sfdisk.
part_size() {
	sfdisk -J "$1" | jq -r --argjson n "$2" \
		'.partitiontable | (.sectorsize // 512) * .partitions[$n - 1].size'
}

sha256() {
	sha256sum "$1" | cut -d' ' -f1
}

# fat_clean IMAGE OFFSET: fsck.fat -n on the FAT at OFFSET (copied out: fsck.fat has no
# offset option) must report no problem.
fat_clean() {
	_sz=${3:-}
	if [ -z "$_sz" ]; then
		dd if="$1" of="$WORK/fat.part" bs=512 skip=$(($2 / 512)) conv=sparse status=none
	else
		dd if="$1" of="$WORK/fat.part" bs=512 skip=$(($2 / 512)) count=$((_sz / 512)) conv=sparse status=none
	fi
	if ! fsck.fat -n "$WORK/fat.part" >"$WORK/fsck.out" 2>&1; then
		cat "$WORK/fsck.out" >&2
		fail "fsck.fat -n reports problems in $1 at offset $2"
	fi
	rm -f "$WORK/fat.part"
	pass "fsck.fat -n clean at offset $2"
}

# ext_clean IMAGE OFFSET: e2fsck -fn must report a clean filesystem.
ext_clean() {
	if ! e2fsck -fn "$1?offset=$2" >"$WORK/e2fsck.out" 2>&1; then
		cat "$WORK/e2fsck.out" >&2
		fail "e2fsck -fn reports problems in $1 at offset $2"
	fi
	pass "e2fsck -fn clean at offset $2"
}

finish() {
	echo "$TEST_NAME: $CHECKS passed, 0 failed"
}

# ---- image helpers (used by mkimage.sh, inspect.sh, bad-input.sh) ----------------------------

# build_image FLAVOR OUT [--size MiB] [--fill MiB]: scripts/mkimage.sh, or the test fails.
build_image() {
	"$MKIMAGE" "$@" || fail "mkimage.sh $* failed"
}

# e2_cat IMAGE OFFSET PATH: the contents of PATH in the ext4 at byte OFFSET.
e2_cat() {
	debugfs -R "cat \"$3\"" "$1?offset=$2" 2>/dev/null
}

# e2_readlink IMAGE OFFSET PATH: the target of the (fast) symbolic link PATH.
e2_readlink() {
	debugfs -R "stat \"$3\"" "$1?offset=$2" 2>/dev/null |
		sed -n 's/^Fast link dest: "\(.*\)"$/\1/p'
}

# e2_owner IMAGE OFFSET PATH: "uid:gid mode" of PATH (permission bits in octal, e.g. 0700).
e2_owner() {
	debugfs -R "stat \"$3\"" "$1?offset=$2" 2>/dev/null |
		awk '/^Inode:/ { for (i = 1; i < NF; i++) if ($i == "Mode:") mode = $(i + 1) }
		     /^User:/ { u = $2; g = $4 }
		     END { print u ":" g " " mode }'
}

# elf_machine FILE: "class machine" of an ELF header (1 or 2, then e_machine: 40 ARM, 183 AArch64).
elf_machine() {
	printf '%s %s\n' "$(od -An -tu1 -j4 -N1 "$1" | tr -d ' ')" \
		"$(od -An -tu2 -j18 -N2 --endian=little "$1" | tr -d ' ')"
}

# blkid_field IMAGE OFFSET KEY: KEY (TYPE, LABEL, UUID, ...) of the filesystem at byte OFFSET,
# from blkid's low-level probe; empty when blkid does not report it.
blkid_field() {
	blkid -p -O "$2" -o export "$1" 2>/dev/null | sed -n "s/^$3=//p"
}

# cache_files: the files under piflash's cache directory, one a line (none: nothing printed).
cache_files() {
	if [ -d "$XDG_CACHE_HOME/piflash" ]; then
		find "$XDG_CACHE_HOME/piflash" -type f | sort
	fi
}
