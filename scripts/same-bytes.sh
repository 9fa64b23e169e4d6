#!/bin/bash
# same-bytes.sh — "behaviour unchanged": the same bytes for the same inputs.
#
# Builds the test images once (scripts/mkimage.sh, every flavor it makes), then runs two piflash
# binaries on exactly the same inputs with SOURCE_DATE_EPOCH and an instance-id seed fixed and
# each with a cache of its own, and compares everything they produce byte for byte: the images
# and batch directories they write, the known_hosts files, stdout, stderr and the exit code of
# every command (good ones and bad ones). Prints one line per artifact, "same" or "DIFFERENT",
# and exits 1 on any difference (2 on a usage error).
#
# A refactoring is proven harmless by running it with the binary built before and the one built
# after; run it with the same binary twice to see that nothing in a run varies by itself.
set -euo pipefail

usage() {
	cat >&2 <<EOF
usage: same-bytes.sh OLD_PIFLASH NEW_PIFLASH [WORKDIR]

Run both binaries on the same test images and inputs and compare every output byte for byte.
WORKDIR (default: a new temporary directory, removed at the end unless KEEP_WORK=1) holds
in/ (the inputs), old/ and new/ (one directory per command: its outputs, stdout, stderr, rc).
EOF
	exit 2
}

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
	usage
fi
OLD=$(realpath "$1")
NEW=$(realpath "$2")
for b in "$OLD" "$NEW"; do
	[ -x "$b" ] || {
		echo "same-bytes: '$b' is not an executable" >&2
		exit 2
	}
done
MKIMAGE=$(cd "$(dirname "$0")" && pwd)/mkimage.sh
if [ $# -eq 3 ]; then
	W=$(realpath -m "$3")
	mkdir -p "$W"
else
	W=$(mktemp -d /var/tmp/same-bytes.XXXXXX)
	[ -n "${KEEP_WORK:-}" ] || trap 'rm -rf "$W"' EXIT
fi
rm -rf "$W/in" "$W/old" "$W/new"
mkdir -p "$W/in"

PATH=$PATH:/usr/sbin:/sbin
export LC_ALL=C TZ=UTC MTOOLS_SKIP_CHECK=1
export SOURCE_DATE_EPOCH=1700000000
export PIFLASH_INSTANCE_ID_SEED=same-bytes-seed
unset PIFLASH_PROGRESS NO_COLOR || true

# ---- the inputs, built once -------------------------------------------------------------------

FLAVORS="hypriot ubuntu rpios-bookworm rpios-trixie raspbian-buster plain
	lookalike-hypriot lookalike-ubuntu lookalike-trixie lookalike-nm lookalike-dhcpcd
	lookalike-ifupdown mismatch-rpiissue-dhcpcd mismatch-networkd-idle mismatch-ci-disabled
	mismatch-nonet"
IN=$W/in
for f in $FLAVORS; do
	"$MKIMAGE" "$f" "$IN/$f.img" >/dev/null
done
xz -T1 -1 -k "$IN/hypriot.img"
(cd "$IN" && zip -q hypriot.img.zip hypriot.img)

# Keys: made once, so both binaries see the same ones; bad.pub has a '!' in its base64.
ssh-keygen -q -t ed25519 -N '' -C ops@cluster -f "$IN/ops"
ssh-keygen -q -t ed25519 -N '' -C dev@cluster -f "$IN/dev"
printf 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBAD!!BASE64xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx x\n' \
	>"$IN/bad.pub"
printf '#cloud-config\nruncmd:\n  - [echo, hello]\n' >"$IN/user-data"
printf 'correct horse battery\n' >"$IN/psk"
mkdir -p "$IN/tpl"
cat >"$IN/tpl/user-data.yaml" <<'T'
#cloud-config
hostname: {{hostname}}
bootcmd:
  - [ echo, {{var_role}}, {{var_rack}} ]
T
cat >"$IN/cluster.csv" <<'CSV'
hostname,ip,gateway,dns,user,ssh_key,group,var_role,var_rack
alpha,10.0.0.11/24,10.0.0.1,10.0.0.1,pirate,ops.pub,control,server,A1
bravo,,,,pirate,ops.pub,workers,agent,A2
charlie,10.0.0.13/24,10.0.0.1,"10.0.0.1,1.1.1.1",pirate,dev.pub,workers,agent,B1
CSV
# A bad row: an address that is none.
cat >"$IN/bad-row.csv" <<'CSV'
hostname,ip,gateway,dns,user,ssh_key
alpha,10.0.0.11/24,10.0.0.1,10.0.0.1,pirate,ops.pub
bravo,10.0.0.999/24,10.0.0.1,10.0.0.1,pirate,ops.pub
CSV
cat >"$IN/bad-key.csv" <<'CSV'
hostname,ip,gateway,dns,user,ssh_key
alpha,10.0.0.11/24,10.0.0.1,10.0.0.1,pirate,bad.pub
CSV
printf 'not piflash output\n' >"$IN/foreign.img"
echo "same-bytes: inputs in $IN"

# ---- one side: every command, run by one binary ----------------------------------------------

# c NAME ARGS...: run "$PF ARGS..." in the new directory $SIDE/NAME (relative output paths
# land there) with stdin from /dev/null; keep its stdout, stderr and exit code there.
c() {
	local name=$1 rc
	shift
	mkdir -p "$SIDE/$name"
	set +e
	(cd "$SIDE/$name" && "$PF" "$@" >"$SIDE/.raw/$name.stdout" 2>"$SIDE/.raw/$name.stderr" \
		</dev/null)
	rc=$?
	set -e
	echo "$rc" >"$SIDE/$name/rc"
}

# The main job, plan and verify, with the same node options.
node_opts=(--node w1 --ssh-key "$IN/ops.pub" --ip 10.0.0.5/24 --gateway 10.0.0.1 --dns 10.0.0.1)

run_side() {
	SIDE=$W/$1
	PF=$2
	mkdir -p "$SIDE/.raw"
	export XDG_CACHE_HOME=$SIDE/cache
	local f
	for f in $FLAVORS; do
		c "main-$f" "${node_opts[@]}" --host-keys --known-hosts known_hosts "$IN/$f.img" out.img
		c "main-dhcp-$f" --node w2 --ssh-key "$IN/dev.pub" "$IN/$f.img" out.img
		c "plan-json-$f" plan --json "${node_opts[@]}" "$IN/$f.img"
		c "plan-$f" plan "${node_opts[@]}" --wifi-ssid lab --wifi-psk-file "$IN/psk" \
			--wifi-country DE "$IN/$f.img"
		c "inspect-json-$f" inspect --json "$IN/$f.img"
		c "inspect-$f" inspect "$IN/$f.img"
		c "ls-$f" ls -l "$IN/$f.img" /etc
	done
	c verify-ok verify "${node_opts[@]}" --host-keys "$IN/hypriot.img" "$SIDE/main-hypriot/out.img"
	c verify-other verify --node w9 --ssh-key "$IN/ops.pub" "$IN/hypriot.img" \
		"$SIDE/main-hypriot/out.img"

	# Compressed inputs through the cache, and the README's reading commands.
	c inspect-xz inspect "$IN/hypriot.img.xz"
	c inspect-json-zip inspect --json "$IN/hypriot.img.zip"
	c ls-part ls -l "$IN/hypriot.img.xz" root:/etc
	c ls-fat ls "$IN/hypriot.img" HypriotOS:/
	c cat-fat cat "$IN/hypriot.img.xz" HypriotOS:/user-data
	c cat-root cat "$IN/hypriot.img" /var/lib/cloud/seed/nocloud-net/user-data
	c cat-passwd cat "$IN/ubuntu.img" /etc/passwd
	c main-zip --inventory "$IN/cluster.csv" --node alpha "$IN/hypriot.img.zip" alpha.img
	c main-xz-nocache --no-cache --node w3 --ssh-key "$IN/ops.pub" "$IN/hypriot.img.xz" w3.img
	c main-tpl --inventory "$IN/cluster.csv" --node charlie --template-dir "$IN/tpl" \
		--set var_rack=C9 --host-keys --known-hosts kh "$IN/hypriot.img" charlie.img
	c main-user-data --node w4 --ssh-key "$IN/ops.pub" --user-data "$IN/user-data" \
		--timezone Europe/Berlin --locale en_US.UTF-8 --domain lab.example \
		"$IN/ubuntu.img" w4.img
	c main-stdout --node w5 --ssh-key "$IN/ops.pub" "$IN/hypriot.img" -
	c add --add "$IN/ops.pub=root:/home/pirate/.ssh/authorized_keys:0600:1000:1000" \
		--add "$IN/user-data=HypriotOS:/user-data" --add "$IN/psk=/etc/piflash-psk:0600" \
		"$IN/hypriot.img.xz" added.img
	c add-plain --add "$IN/user-data=2:/srv/new/dir/file" "$IN/plain.img" added.img
	c cat-added cat "$SIDE/add/added.img" /etc/piflash-psk

	# Batch: the whole out dir, uncompressed with bmap and compressed.
	c batch batch --inventory "$IN/cluster.csv" --host-keys --bmap -j 1 --out-dir out \
		"$IN/hypriot.img"
	c batch-again batch --inventory "$IN/cluster.csv" --host-keys --bmap -j 1 \
		--out-dir "$SIDE/batch/out" "$IN/hypriot.img"
	c batch-j2 batch --inventory "$IN/cluster.csv" --host-keys -j 2 --out-dir out \
		"$IN/rpios-bookworm.img"
	c batch-img.zst batch --inventory "$IN/cluster.csv" --host-keys -j 1 --format img.zst \
		--out-dir out "$IN/hypriot.img"
	# xz and gzip of the whole image take long: one node each.
	local fmt
	for fmt in img.xz img.gz; do
		c "batch-$fmt" batch --inventory "$IN/cluster.csv" --only charlie --host-keys -j 1 \
			--format "$fmt" --out-dir out "$IN/hypriot.img"
	done
	c batch-only batch --inventory "$IN/cluster.csv" --only bravo --ssh-key "$IN/dev.pub" -j 1 \
		--out-dir out "$IN/ubuntu.img"

	# Bad inputs: the message and the exit code.
	c bad-row batch --inventory "$IN/bad-row.csv" -j 1 --out-dir out "$IN/hypriot.img"
	c bad-row-main --inventory "$IN/bad-row.csv" --node bravo "$IN/hypriot.img" x.img
	c bad-key batch --inventory "$IN/bad-key.csv" -j 1 --out-dir out "$IN/hypriot.img"
	c bad-key-main --node w1 --ssh-key "$IN/bad.pub" "$IN/hypriot.img" x.img
	c missing-image --node w1 --ssh-key "$IN/ops.pub" "$IN/nonexistent.img" x.img
	c bad-gateway --node w1 --ssh-key "$IN/ops.pub" --ip 10.0.0.5/24 --gateway 10.1.0.1 \
		"$IN/hypriot.img" x.img
	c bad-add --add nothing-here "$IN/hypriot.img" x.img
	c bad-option --frobnicate "$IN/hypriot.img" x.img
	c foreign-target --node w1 --ssh-key "$IN/ops.pub" "$IN/hypriot.img" "$IN/foreign.img"
	c compressed-target --node w1 --ssh-key "$IN/ops.pub" "$IN/hypriot.img" x.img.xz
	c no-login-refused --node w1 "$IN/hypriot.img" x.img
	c cat-missing cat "$IN/hypriot.img" HypriotOS:/no/such/file
	c bad-sha --sha256 0000000000000000000000000000000000000000000000000000000000000000 \
		--node w1 --ssh-key "$IN/ops.pub" "$IN/hypriot.img" x.img

	normalize "$SIDE"
}

# normalize SIDE: make what legitimately varies between two runs the same, and only that.
normalize() {
	local side=$1 f name
	for f in "$side"/.raw/*.stdout "$side"/.raw/*.stderr; do
		name=${f##*/}
		name=${name%.*}
		if [ "$name" = main-stdout ] && [ "${f##*.}" = stdout ]; then
			cp "$f" "$side/$name/stdout" # an image: compared as it is
			continue
		fi
		# The side's own directory (outputs and cache live under it) and how long things
		# took ("in 0.2 s (80.5 MiB/s)", "failed (0.6 s)") vary; nothing else in a message may.
		sed -e "s|$side|@SIDE@|g" \
			-e 's/ in [0-9.]* s\b/ in @T@ s/g' -e 's/([0-9.]* s)/(@T@ s)/g' \
			-e 's/[0-9.]* [KMG]*i*B\/s/@RATE@/g' \
			"$f" >"$side/$name/${f##*.}"
		# With -j 2 the nodes finish in either order: their lines, without the "[1/3]"
		# counter, are compared as a set.
		case $name in
		*-j2)
			sed -i 's/ \[[0-9]*\/[0-9]*\]$//' "$side/$name/${f##*.}"
			sort -o "$side/$name/${f##*.}" "$side/$name/${f##*.}"
			;;
		esac
	done
	# An output file's mode and the output mark piflash leaves on it: the mark holds the
	# file's size and mtime, and the mtime is the write's own (replaced by @MTIME@ when it is
	# the file's). report.json's mtime_ns is the artifact's mtime too.
	find "$side" -path "$side/.raw" -prune -o -path "$side/cache" -prune -o -type f -print |
		while read -r f; do
			case $f in */stdout | */stderr | */rc | *.meta) continue ;; esac
			{
				stat -c 'mode %a' "$f"
				local mark mt
				mark=$(getfattr --only-values -n user.piflash.output "$f" 2>/dev/null || true)
				mt=$(stat -c %.9Y "$f")
				echo "mark ${mark/$mt/@MTIME@}"
			} >"$f.meta"
		done
	find "$side" -name report.json -path '*/out/*' -print | while read -r f; do
		sed -i -e 's/"mtime_ns": *"[0-9]*"/"mtime_ns": "@MTIME@"/g' \
			-e 's/"seconds": *[0-9.e+-]*/"seconds": @T@/g' "$f"
	done
}

echo "same-bytes: running OLD $OLD"
run_side old "$OLD"
echo "same-bytes: running NEW $NEW"
run_side new "$NEW"

# ---- the comparison: one line per artifact ----------------------------------------------------

status=0
while read -r rel; do
	if [ ! -e "$W/new/$rel" ]; then
		printf 'DIFFERENT %s (missing in NEW)\n' "$rel"
		status=1
	elif cmp -s "$W/old/$rel" "$W/new/$rel"; then
		printf 'same      %s\n' "$rel"
	else
		printf 'DIFFERENT %s\n' "$rel"
		status=1
	fi
done < <(cd "$W/old" && find . -path ./.raw -prune -o -path ./cache -prune -o -type f -print |
	sed 's|^\./||' | sort)
while read -r rel; do
	[ -e "$W/old/$rel" ] || {
		printf 'DIFFERENT %s (missing in OLD)\n' "$rel"
		status=1
	}
done < <(cd "$W/new" && find . -path ./.raw -prune -o -path ./cache -prune -o -type f -print |
	sed 's|^\./||' | sort)

n=$(cd "$W/old" && find . -path ./.raw -prune -o -path ./cache -prune -o -type f -print | wc -l)
if [ "$status" = 0 ]; then
	echo "same-bytes: all $n artifacts the same"
else
	echo "same-bytes: differences (diff -r $W/old $W/new)" >&2
	[ $# -eq 3 ] || [ -n "${KEEP_WORK:-}" ] || echo "same-bytes: set KEEP_WORK=1 to keep $W" >&2
fi
exit "$status"
