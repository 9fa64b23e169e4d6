#!/bin/bash
# bench.sh — how fast piflash puts an image on a card, against what people use instead.
#
#   scripts/bench.sh [BUILD_DIR]        (root: loop devices, dropping the page cache)
#
# Builds a 4 GiB HypriotOS-style image with 1 GiB of incompressible data (mkimage.sh), puts a
# loop device over a file on disk (not tmpfs: a card is not RAM), and times, each after
# dropping the page cache:
#   1. dd bs=4M oflag=direct conv=fsync, then cmp of the whole image against the device;
#   2. bmaptool create + bmaptool copy (writes the mapped blocks; does not read back);
#   3. piflash --node worker3 IMG LOOP --yes, with its read-back verification;
#   4. the floor: dd over exactly the ranges piflash writes (PIFLASH_DEBUG_RANGES), then dd
#      reading them back from the device (O_DIRECT, to /dev/null: I/O only, no comparison);
# and prints each time, piflash's ratio to each, piflash's peak RSS (/usr/bin/time -v), and
# the time to add one file to a cached 1 GiB image written to an image file, and a cluster of
# BENCH_NODES (100) nodes built by piflash batch from one cached image against as many
# cp --sparse=always and zstd -T0 runs, with its peak RSS. Skips (with a
# message) what it cannot do. Takes a few minutes. BENCH_ONLY=card or BENCH_ONLY=cluster runs
# one half.
#
#   scripts/bench.sh cold [BUILD_DIR]   (or BENCH_ONLY=cold)
#
# The first card from a fresh download: a 1.35 GiB image with ~400 MiB of files as xz -T2 -6
# writes it, decoded and flashed to a loop device with direct I/O by piflash with an empty
# cache, beside xz -dc and xz -T0 -dc to /dev/null, piflash with the cache warm, and bmaptool
# copy of the .xz and of the raw image (best of two, page cache dropped before each).
set -euo pipefail
export LC_ALL=C TZ=UTC
PATH=$PATH:/usr/sbin:/sbin

TOP=$(cd "$(dirname "$0")/.." && pwd)
if [ "${1:-}" = cold ]; then
	BENCH_ONLY=cold
	shift
fi
BUILD=${1:-$TOP/build}
PIFLASH=$(cd "$BUILD" && pwd)/piflash
MKIMAGE=$TOP/scripts/mkimage.sh

say() { printf '%s\n' "$*"; }
die() {
	say "bench: $*" >&2
	exit 1
}

[ "$(id -u)" = 0 ] || die "needs root (loop devices, drop_caches); nothing measured"
[ -x "$PIFLASH" ] || die "no piflash at $PIFLASH: build first (meson compile -C build)"
for t in losetup dd cmp xz; do
	command -v "$t" >/dev/null || die "'$t' is not installed"
done

# Work on disk: /var/tmp unless it is a tmpfs.
BASE=${BENCH_DIR:-/var/tmp}
[ "$(stat -f -c %T "$BASE")" != tmpfs ] || die "$BASE is a tmpfs; set BENCH_DIR to a directory on disk"
W=$(mktemp -d "$BASE/piflash-bench.XXXXXX")
LOOP=
cleanup() {
	[ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT
export XDG_CACHE_HOME=$W/cache SOURCE_DATE_EPOCH=1700000000
printf 'bench\n' >"$W/note"

DROP=1
drop_caches() {
	sync
	if [ "$DROP" = 1 ] && ! echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
		say "note: cannot drop the page cache here; the figures include warm reads"
		DROP=0
	fi
}

now() { date +%s.%N; }
# secs START: seconds since START, 2 decimals.
secs() { awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.2f", e - s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

bench_card() {
	IMG=$W/hypriot-4g.img
	say "Building a 4 GiB hypriot image with 1 GiB of data..."
	"$MKIMAGE" hypriot "$IMG" --size 4096 --fill 1024
	SIZE=$(stat -c %s "$IMG")
	truncate -s $((SIZE + 16 * 1048576)) "$W/card.back"
	LOOP=$(losetup -f --show "$W/card.back")
	say "Image: $IMG ($((SIZE / 1048576)) MiB), card: $LOOP over $W/card.back"
	say ""

	# 1. dd + cmp
	drop_caches
	t=$(now)
	dd if="$IMG" of="$LOOP" bs=4M oflag=direct conv=fsync status=none
	cmp -n "$SIZE" "$IMG" "$LOOP"
	T_DD=$(secs "$t")
	say "1. dd bs=4M oflag=direct conv=fsync + cmp:   ${T_DD} s"

	# 2. bmaptool
	T_BMAP=
	if command -v bmaptool >/dev/null; then
		drop_caches
		t=$(now)
		bmaptool -q create -o "$W/img.bmap" "$IMG"
		bmaptool -q copy --bmap "$W/img.bmap" "$IMG" "$LOOP"
		T_BMAP=$(secs "$t")
		say "2. bmaptool create + copy (no read-back):  ${T_BMAP} s"
	else
		say "2. bmaptool: not installed (apt-get install bmap-tools), skipped"
	fi

	# 3. piflash
	drop_caches
	t=$(now)
	PIFLASH_DEBUG_RANGES=$W/ranges.txt /usr/bin/time -v -o "$W/time.txt" \
		"$PIFLASH" -q --yes --node worker3 --no-login --ip 192.168.1.13/24 --gateway 192.168.1.1 "$IMG" "$LOOP" </dev/null
	T_PF=$(secs "$t")
	RSS=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$W/time.txt")
	NR=$(wc -l <"$W/ranges.txt")
	BYTES=$(awk '{ s += $2 } END { print s }' "$W/ranges.txt")
	say "3. piflash --node worker3 IMG CARD --yes, verified:  ${T_PF} s" \
		"($((BYTES / 1048576)) MiB in $NR ranges, peak RSS $((RSS / 1024)) MiB)"

	# 4. the floor: dd over the same ranges, then read back and compare
	drop_caches
	t=$(now)
	while read -r off len; do
		dd if="$IMG" of="$LOOP" bs=4M iflag=skip_bytes,count_bytes oflag=seek_bytes,direct \
			skip="$off" seek="$off" count="$len" conv=notrunc status=none
	done <"$W/ranges.txt"
	sync
	while read -r off len; do
		dd if="$LOOP" of=/dev/null bs=4M iflag=skip_bytes,count_bytes,direct skip="$off" \
			count="$len" status=none
	done <"$W/ranges.txt"
	T_FLOOR=$(secs "$t")
	say "4. floor: dd of the same ranges + dd read-back: ${T_FLOOR} s"
	say ""
	say "piflash vs dd+cmp:   $(ratio "$T_DD" "$T_PF")x faster (target >= 3x)"
	[ -n "$T_BMAP" ] && say "piflash vs bmaptool: $(ratio "$T_BMAP" "$T_PF")x faster (target > 1x)"
	say "piflash vs floor:    $(ratio "$T_PF" "$T_FLOOR")x the floor (target <= 1.15x)"
	say "piflash peak RSS:    $((RSS / 1024)) MiB (target <= 32 MiB)"
	losetup -d "$LOOP"
	LOOP=
	rm -f "$W/card.back"

	# 5. customising a cached image: the second run of --add on a 1 GiB .xz
	say ""
	IMG1=$W/hypriot-1g.img
	"$MKIMAGE" hypriot "$IMG1" --size 1024
	xz -T0 -1 "$IMG1"
	"$PIFLASH" -q --add "$W/note=1:/f" "$IMG1.xz" "$W/out1.img" # fills the cache
	rm -f "$W/out1.img"
	t=$(now)
	"$PIFLASH" -q --add "$W/note=1:/f" "$IMG1.xz" "$W/out1.img"
	T_ADD=$(secs "$t")
	t=$(now)
	"$PIFLASH" -q --no-verify --add "$W/note=1:/f" "$IMG1.xz" "$W/out2.img"
	T_ADD_NV=$(secs "$t")
	say "5. --add f=1:/f on a cached 1 GiB .xz to an image file: ${T_ADD} s (${T_ADD_NV} s with --no-verify)"
}

bench_cluster() {
	# 6. a whole cluster as CI artifacts: N nodes from the cached 1 GiB image (128 MiB of data)
	N=${BENCH_NODES:-100}
	say ""
	say "6. $N nodes from one cached 1 GiB image (128 MiB of data), as files in $W"
	IMGC=$W/cluster-1g.img
	"$MKIMAGE" hypriot "$IMGC" --size 1024 --fill 128
	xz -T0 -1 -k "$IMGC"
	ssh-keygen -q -t ed25519 -N '' -f "$W/op" 2>/dev/null || true
	{
		echo "hostname,ip,gateway,ssh_key"
		for i in $(seq 1 "$N"); do
			echo "node$i,10.1.$((i / 250)).$((i % 250 + 1))/16,10.1.255.254,op.pub"
		done
	} >"$W/cluster.csv"
	"$PIFLASH" -q --add "$W/note=1:/f" "$IMGC.xz" "$W/warm.img" # fills the cache
	rm -f "$W/warm.img"
	mkdir -p "$W/cp"
	sync
	t=$(now)
	for i in $(seq 1 "$N"); do cp --sparse=always "$IMGC" "$W/cp/node$i.img"; done
	sync
	T_CP=$(secs "$t")
	rm -rf "$W/cp"
	say "   $N x cp --sparse=always IMG (the floor of writing $N copies):  ${T_CP} s"
	sync
	t=$(now)
	/usr/bin/time -v -o "$W/time-batch.txt" "$PIFLASH" batch -q --inventory "$W/cluster.csv" \
		--host-keys --instance-id-seed bench --out-dir "$W/out" "$IMGC.xz" 2>"$W/batch.err" ||
		{ cat "$W/batch.err"; die "piflash batch failed"; }
	sync
	T_BATCH=$(secs "$t")
	RSS_B=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$W/time-batch.txt")
	# A sample of the sums (checking all would read 100 GiB of holes for minutes).
	(cd "$W/out" && head -3 SHA256SUMS | sha256sum -c --quiet) || die "SHA256SUMS does not check"
	say "   piflash batch, $N sparse .img + SHA256SUMS, report, known_hosts: ${T_BATCH} s" \
		"(peak RSS $((RSS_B / 1024)) MiB, $(ratio "$T_BATCH" "$T_CP")x the cp floor)"
	rm -rf "$W/out"
	if command -v zstd >/dev/null; then
		mkdir -p "$W/zst"
		t=$(now)
		for i in $(seq 1 "$N"); do zstd -q -T0 "$IMGC" -o "$W/zst/node$i.img.zst"; done
		sync
		T_ZSTD=$(secs "$t")
		rm -rf "$W/zst"
		say "   $N x zstd -T0 IMG:  ${T_ZSTD} s"
		t=$(now)
		/usr/bin/time -v -o "$W/time-zst.txt" "$PIFLASH" batch -q --format img.zst \
			--inventory "$W/cluster.csv" --out-dir "$W/out" "$IMGC.xz" 2>"$W/batch.err" ||
			{ cat "$W/batch.err"; die "piflash batch --format img.zst failed"; }
		sync
		T_BZ=$(secs "$t")
		RSS_Z=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$W/time-zst.txt")
		say "   piflash batch --format img.zst, $N nodes: ${T_BZ} s (peak RSS $((RSS_Z / 1024)) MiB," \
			"$(ratio "$T_BZ" "$T_ZSTD")x the time of $N x zstd -T0)"
		rm -rf "$W/out"
	else
		say "   zstd: not installed, the compressed comparison is skipped"
	fi
}

bench_cold() {
	# The first card of a new release, straight from the .xz: a 1.35 GiB image with ~400 MiB
	# of real files (the host's libraries and /usr/share: they compress like an OS image's),
	# xz -T2 -6 as pi-gen compresses it (blocks of 24 MiB), to a loop device with direct I/O.
	local IMG=$W/cold.img N=0
	if [ -n "${BENCH_COLD_IMG:-}" ]; then
		# Reuse an image built before (and its .xz beside it): BENCH_COLD_IMG=FILE.img.
		IMG=$BENCH_COLD_IMG
		[ -f "$IMG" ] && [ -f "$IMG.xz" ] || die "BENCH_COLD_IMG: no $IMG and $IMG.xz"
		N=4
	else
		cold_image "$IMG"
	fi
	bench_cold_run "$IMG" "$N"
}

cold_image() {
	local IMG=$1
	say "Building a 1.35 GiB hypriot image with ~400 MiB of the host's files..."
	"$MKIMAGE" hypriot "$W/cold-base.img" --size 1382
	mkdir -p "$W/files"
	# tar is cut short by head (SIGPIPE): its status does not count.
	{ tar -cf - -C / usr/lib/x86_64-linux-gnu usr/share usr/bin 2>/dev/null || true; } |
		head -c $((400 * 1048576)) | split -b $((100 * 1048576)) -d - "$W/files/part-"
	set --
	for f in "$W"/files/part-*; do
		set -- "$@" --add "$f=2:/usr/lib/bench/$(basename "$f")"
		N=$((N + 1))
	done
	"$PIFLASH" -q "$@" "$W/cold-base.img" "$IMG"
	rm -rf "$W/files" "$W/cold-base.img" "$XDG_CACHE_HOME"
	xz -T2 -6 -k "$IMG"
}

# step NAME CMD...: runs CMD after dropping the page cache; its wall, user and system seconds
# and peak RSS (KiB) go to $W/t.NAME (one line per run).
step() {
	local name=$1
	shift
	drop_caches
	/usr/bin/time -f '%e %U %S %M' -o "$W/t.tmp" "$@"
	tail -1 "$W/t.tmp" >>"$W/t.$name"
}
# wall NAME: the best wall time of NAME's runs; cpu NAME: user+system of that run; rss NAME:
# its peak RSS in MiB.
wall() { sort -n "$W/t.$1" | head -1 | awk '{ printf "%.2f", $1 }'; }
cpu() { sort -n "$W/t.$1" | head -1 | awk '{ printf "%.1f", $2 + $3 }'; }
rss() { sort -n "$W/t.$1" | head -1 | awk '{ printf "%d", $4 / 1024 }'; }

bench_cold_run() {
	local IMG=$1 N=$2 BLOCKS R HAVE_BMAP= NODE_ARGS
	NODE_ARGS=(--node worker3 --no-login --ip 192.168.1.13/24 --gateway 192.168.1.1)
	BLOCKS=$(xz --robot -lv "$IMG.xz" | awk '$1 == "totals" { print $3 }')
	SIZE=$(stat -c %s "$IMG")
	truncate -s $((SIZE + 16 * 1048576)) "$W/card.back"
	LOOP=$(losetup -f --show --direct-io=on "$W/card.back")
	say "Image: $((SIZE / 1048576)) MiB with $N files of 100 MiB; .xz: $(($(stat -c %s "$IMG.xz") / 1048576)) MiB" \
		"in $BLOCKS blocks; card: $LOOP (direct I/O) over $W/card.back; $(nproc) CPUs"
	say "Two rounds of every step (interleaved, so a change in the machine's load hits all"
	say "alike), the page cache dropped before each; the better of the two is shown."
	say "Load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
	command -v bmaptool >/dev/null && HAVE_BMAP=1 && bmaptool -q create -o "$W/cold.bmap" "$IMG"
	rm -f "$W"/t.*
	for R in 1 2; do
		step x1 sh -c "xz -dc '$IMG.xz' >/dev/null"
		step xt sh -c "xz -T0 -dc '$IMG.xz' >/dev/null"
		rm -rf "$XDG_CACHE_HOME"
		step cold "$PIFLASH" -q --yes "${NODE_ARGS[@]}" "$IMG.xz" "$LOOP" </dev/null
		# The same without the overlap: decoded (on every core) into a temporary file
		# first, then written; no cache entry to flush.
		step nocache "$PIFLASH" -q --yes --no-cache "${NODE_ARGS[@]}" "$IMG.xz" "$LOOP" </dev/null
		step warm "$PIFLASH" -q --yes "${NODE_ARGS[@]}" "$IMG.xz" "$LOOP" </dev/null
		if [ -n "$HAVE_BMAP" ]; then
			step bx bmaptool -q copy --bmap "$W/cold.bmap" "$IMG.xz" "$LOOP"
			step br bmaptool -q copy --bmap "$W/cold.bmap" "$IMG" "$LOOP"
		fi
	done
	say "Load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
	say ""
	say "| step | time | CPU (user+sys) | peak RSS |"
	say "|---|---|---|---|"
	say "| \`xz -dc > /dev/null\` (one thread) | $(wall x1) s | $(cpu x1) s | |"
	say "| \`xz -T0 -dc > /dev/null\` | $(wall xt) s | $(cpu xt) s | |"
	say "| piflash, empty cache (writes while decoding, verified) | $(wall cold) s | $(cpu cold) s | $(rss cold) MiB |"
	say "| piflash --no-cache (decodes first, then writes; verified) | $(wall nocache) s | $(cpu nocache) s | $(rss nocache) MiB |"
	say "| piflash, warm cache (verified) | $(wall warm) s | $(cpu warm) s | $(rss warm) MiB |"
	if [ -n "$HAVE_BMAP" ]; then
		say "| \`bmaptool copy --bmap\` of the \`.xz\` (no read-back) | $(wall bx) s | $(cpu bx) s | |"
		say "| \`bmaptool copy --bmap\` of the raw image (no read-back) | $(wall br) s | $(cpu br) s | |"
	else
		say "| bmaptool copy | skipped: bmaptool not installed | | |"
	fi
	say ""
	say "cold piflash vs xz -T0 -dc: $(ratio "$(wall cold)" "$(wall xt)")x the time (target <= 1.3x)"
	[ -n "$HAVE_BMAP" ] &&
		say "cold piflash vs bmaptool copy of the .xz: $(ratio "$(wall bx)" "$(wall cold)")x faster (target > 1x)"
	losetup -d "$LOOP"
	LOOP=
	rm -f "$W/card.back"
}

case ${BENCH_ONLY:-} in
card) bench_card ;;
cluster) bench_cluster ;;
cold) bench_cold ;;
"") bench_card && bench_cluster ;;
*) die "BENCH_ONLY=$BENCH_ONLY: expected card, cluster or cold" ;;
esac
