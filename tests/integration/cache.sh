#!/bin/bash
# The cache does not grow without bound: each new entry evicts the least recently used ones
# down to the cap ($PIFLASH_CACHE_MAX, default 20 GiB), never the entry the run uses;
# `piflash cache` shows the cap and when each entry was last used; `cache clean --older-than`
# and `--max-size` remove only what they name.
. "$(dirname "$0")/lib.sh"
need sfdisk gzip xz zstd
[ -x "$PIFLASH" ] || skip "'$PIFLASH' is not built"
unset PIFLASH_CACHE_MAX
CACHE=$XDG_CACHE_HOME/piflash

IMG=$WORK/hypriot.img
build_image hypriot "$IMG" --size 128 --fill 4
gzip -1 -c "$IMG" >"$WORK/a.img.gz"
xz -0 -T1 -c "$IMG" >"$WORK/b.img.xz"
zstd -q -1 -c "$IMG" >"$WORK/c.img.zst"

entries() {
	find "$CACHE" -name '*.img' | wc -l
}
# entry_of INPUT: the cache file inspect names for INPUT.
entry_of() {
	"$PIFLASH" inspect "$@" | sed -n 's/^Cache: *//p'
}

A=$(entry_of "$WORK/a.img.gz")
B=$(entry_of "$WORK/b.img.xz")
C=$(entry_of "$WORK/c.img.zst")
assert_eq "three inputs, three entries" 3 "$(entries)"
one=$(($(stat -c %b "$C") * 512))

"$PIFLASH" cache >"$WORK/out"
grep -q "^3 entries, .* on disk, cap 20.0 GiB (default" "$WORK/out" || {
	cat "$WORK/out" >&2
	fail "piflash cache does not show the default cap"
}
pass "piflash cache shows the default cap"
grep -q "from $WORK/a.img.gz, used 0 min ago" "$WORK/out" || fail "no last use shown"
pass "piflash cache shows the last use"
PIFLASH_CACHE_MAX=7G "$PIFLASH" cache | grep -q "cap 7.0 GiB (\$PIFLASH_CACHE_MAX)" ||
	fail "PIFLASH_CACHE_MAX not shown"
pass "PIFLASH_CACHE_MAX is shown"
expect_fail 1 "PIFLASH_CACHE_MAX='lots'" env PIFLASH_CACHE_MAX=lots "$PIFLASH" cache

# Last use is the info file's time: a used 10 days ago, b 3 days ago, c now.
touch -d '10 days ago' "${A%.img}.info"
touch -d '3 days ago' "${B%.img}.info"
"$PIFLASH" cache | head -3 | grep -q "$A" || fail "the least recently used entry is not first"
pass "entries are listed least recently used first"
expect_fail 2 "--older-than '7': expected" "$PIFLASH" cache clean --older-than 7
expect_fail 2 "go with 'clean'" "$PIFLASH" cache --older-than 7d
"$PIFLASH" cache clean --older-than 7d | grep -q "^Removed 1 entry" || fail "--older-than 7d"
[ ! -e "$A" ] && [ ! -e "${A%.img}.info" ] && [ -e "$B" ] && [ -e "$C" ] ||
	fail "--older-than 7d removed the wrong entries"
pass "clean --older-than 7d removes only the entry last used 10 days ago"

# Using an entry makes it recent: b, used now, outlives c at the next eviction.
touch -d '1 day ago' "${C%.img}.info"
"$PIFLASH" inspect "$WORK/b.img.xz" >/dev/null
"$PIFLASH" cache clean --max-size $((one * 3 / 2)) | grep -q "^Removed 1 entry" || fail "--max-size"
[ -e "$B" ] && [ ! -e "$C" ] || fail "--max-size did not remove the least recently used"
pass "clean --max-size removes the least recently used (c), keeps the one just used (b)"

# The cap on add: a cache holding one entry's worth. A new input (a copy: a new identity,
# the 'three entries for one name' case) evicts the older entry, never its own.
cp "$WORK/a.img.gz" "$WORK/copy.img.gz"
A2=$(PIFLASH_CACHE_MAX=$((one * 3 / 2)) entry_of "$WORK/copy.img.gz")
assert_eq "after adding under the cap: one entry" 1 "$(entries)"
[ -e "$A2" ] && [ ! -e "$B" ] || fail "the cap evicted the wrong entry"
pass "adding an entry evicts the least recently used, not the new one"
# A cap smaller than the one entry in use: kept all the same (the run needs it).
cp "$WORK/a.img.gz" "$WORK/copy2.img.gz"
A3=$(PIFLASH_CACHE_MAX=1K entry_of "$WORK/copy2.img.gz")
[ -e "$A3" ] && [ ! -e "$A2" ] || fail "a cap below one entry"
pass "an entry in use is kept even above the cap"
# No cap: nothing is evicted.
PIFLASH_CACHE_MAX=0 entry_of "$WORK/c.img.zst" >/dev/null
PIFLASH_CACHE_MAX=0 entry_of "$WORK/b.img.xz" >/dev/null
assert_eq "PIFLASH_CACHE_MAX=0: no eviction" 3 "$(entries)"

"$PIFLASH" cache clean | grep -q "^Removed 3 entries" || fail "cache clean"
assert_eq "cache clean leaves nothing" "" "$(cache_files)"
finish
