#!/bin/bash
# A whole cluster, card after card: `piflash --inventory --all|--only IMAGE DEVICE...` on loop
# devices, which stand for card readers: detaching a loop device (losetup -d) takes the card
# out, attaching it to another backing file puts the next card in. Checked: each card holds
# its own node (debugfs, mtype, fsck), the record (JSON lines) says which node went to which
# device, a run resumes from its record, a failed card is skipped or stops the run, and the
# refusals come before anything is written.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || skip "needs root for loop devices"
need losetup sfdisk e2fsck debugfs fsck.fat mtype jq ssh-keygen
losetup -f >/dev/null 2>&1 || skip "no free loop device (losetup -f failed)"

LOOPS=""
PIDS=""
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	for l in $LOOPS; do losetup -d "$l" 2>/dev/null || true; done
	[ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

export SOURCE_DATE_EPOCH=1700000000
IMG=$WORK/hypriot.img
build_image hypriot "$IMG"
IMG_SUM=$(sha256 "$IMG")
ROOT=$(part_offset "$IMG" 2)
BOOT=$(part_offset "$IMG" 1)
ssh-keygen -q -t ed25519 -N '' -C operator@laptop -f "$WORK/op"
KEY=$(cut -d' ' -f2 "$WORK/op.pub")

cat >"$WORK/cluster.csv" <<EOF
hostname,ip,gateway,ssh_key
node1,10.0.9.1/24,10.0.9.254,op.pub
node2,10.0.9.2/24,10.0.9.254,op.pub
node3,,,op.pub
node4,10.0.9.4/24,10.0.9.254,op.pub
EOF

# card NAME [MiB]: a blank card, the backing file $WORK/NAME.card.
card() {
	rm -f "$WORK/$1.card"
	truncate -s "${2:-300}M" "$WORK/$1.card"
}

# reader CARD: a reader (loop device) holding CARD, in $NEW.
reader() {
	NEW=$(losetup -f --show "$WORK/$1.card") || fail "losetup over $1 failed"
	LOOPS="$LOOPS $NEW"
}

# swap LOOP CARD: take the card out of LOOP, wait a little, put CARD in.
swap() {
	losetup -d "$1"
	sleep 0.5
	losetup "$1" "$WORK/$2.card" || fail "losetup $1 $2 failed"
}

# wait_for FILE REGEX [COUNT]: until FILE has COUNT (default 1) lines matching REGEX (180 s:
# a bound for a loaded machine, not a timing).
wait_for() {
	for _ in $(seq 1 900); do
		[ "$(grep -Ec -- "$2" "$1" 2>/dev/null)" -ge "${3:-1}" ] && return 0
		sleep 0.2
	done
	cat "$1" >&2
	fail "timed out waiting for '$2' in $1"
}

# wait_exit PID: waits for PID to end (60 s at most, then kills it) and returns its status.
wait_exit() {
	for _ in $(seq 1 300); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.2
	done
	if kill -0 "$1" 2>/dev/null; then
		kill "$1"
		wait "$1" || true
		echo "process $1 did not end within 60 s" >&2
		return 1
	fi
	wait "$1"
}

# check_card CARD HOSTNAME [IP]: the card holds HOSTNAME's image, clean.
check_card() {
	ext_clean "$WORK/$1.card" "$ROOT"
	fat_clean "$WORK/$1.card" "$BOOT" "$(part_size "$IMG" 1)"
	assert_eq "$1: /etc/hostname" "$2" "$(e2_cat "$WORK/$1.card" "$ROOT" /etc/hostname)"
	mtype -i "$WORK/$1.card@@$BOOT" ::/user-data >"$WORK/ud" 2>/dev/null ||
		fail "$1: no user-data"
	grep -q "^hostname: \"$2\"" "$WORK/ud" || grep -q "^hostname: $2\$" "$WORK/ud" ||
		fail "$1: user-data does not name $2"
	grep -qF "$KEY" "$WORK/ud" || fail "$1: the operator's key is not in user-data"
	pass "$1: user-data names $2 and holds the operator's key"
	if [ -n "${3:-}" ]; then
		mtype -i "$WORK/$1.card@@$BOOT" ::/network-config 2>/dev/null | grep -qF "$3" ||
			fail "$1: network-config lacks $3"
		pass "$1: network-config has $3"
	fi
}

# ---- one reader, three cards, a record ----------------------------------------------------
card c1
card c2
card c3
reader c1
R1=$NEW
REC=$WORK/run.jsonl
"$PIFLASH" --inventory "$WORK/cluster.csv" --only node1,node2,node3 --yes --record "$REC" \
	"$IMG" "$R1" </dev/null >"$WORK/one.out" 2>"$WORK/one.err" &
PID=$!
PIDS="$PIDS $PID"
wait_for "$WORK/one.err" "node1 done — take the card out of $R1, put in the card for node2"
swap "$R1" c2
wait_for "$WORK/one.err" "node2 done — take the card out of $R1, put in the card for node3"
swap "$R1" c3
wait_for "$WORK/one.err" "node3 done — take the card out of $R1\$"
# The last card stays in: the run ends by itself, saying all are done (it used to wait for
# the removal, silently, and a Ctrl-C then exited 130).
wait_exit "$PID" || { cat "$WORK/one.err" >&2; fail "the run of three cards failed"; }
grep -q "^piflash: all 3 nodes done: 3 written" "$WORK/one.err" ||
	{ cat "$WORK/one.err" >&2; fail "no 'all 3 nodes done' line"; }
pass "one reader: three cards, each announced and done; exit 0 with the last card still in"
losetup -d "$R1"
check_card c1 node1 10.0.9.1/24
check_card c2 node2 10.0.9.2/24
check_card c3 node3
assert_eq "the record has a line per card" 3 "$(wc -l <"$REC")"
assert_eq "the record: node, device, backing file (the loop device's model), result" \
	"node1 $R1 $WORK/c1.card ok ok|node2 $R1 $WORK/c2.card ok ok|node3 $R1 $WORK/c3.card ok ok" \
	"$(jq -r '"\(.node) \(.device) \(.model) \(.verify) \(.result)"' "$REC" | paste -sd'|')"
jq -s -e 'all(.bytes > 0 and (.start | test("^[0-9-]+T[0-9:]+Z$")) and (.end | length) > 0)' \
	"$REC" >/dev/null || fail "record lines lack bytes/start/end"
pass "record lines carry bytes, start and end times"

# ---- resume: nodes on record are skipped ----------------------------------------------------
card c4
losetup "$R1" "$WORK/c4.card"
"$PIFLASH" --inventory "$WORK/cluster.csv" --all --yes --record "$REC" --progress=json \
	"$IMG" "$R1" </dev/null >"$WORK/resume.out" 2>"$WORK/resume.err" &
PID=$!
PIDS="$PIDS $PID"
wait_for "$WORK/resume.err" "node4 done — take the card out of $R1\$"
wait_exit "$PID" || { cat "$WORK/resume.err" >&2; fail "the resumed run failed"; }
losetup -d "$R1"
grep -q "^piflash: all 4 nodes done: 1 written, 3 done before" "$WORK/resume.err" ||
	fail "no 'all 4 nodes done' line"
pass "the resumed run ends by itself: all 4 nodes done"
for n in node1 node2 node3; do
	grep -q "$n: done in an earlier run" "$WORK/resume.err" || fail "$n was not skipped"
done
pass "the resumed run skips the three nodes on record"
check_card c4 node4 10.0.9.4/24
assert_eq "the resumed run adds one record line" 4 "$(wc -l <"$REC")"
grep '^{' "$WORK/resume.err" |
	jq -s -e 'map(select(.phase == "write")) | length > 0 and all(.device and .node)' \
		>/dev/null || fail "progress JSON lines lack the device and node"
pass "--progress=json lines carry the device and the node"
"$PIFLASH" --inventory "$WORK/cluster.csv" --all --yes --record "$REC" "$IMG" "$R1" \
	</dev/null 2>"$WORK/all-done.err" || fail "a run with every node on record failed"
grep -q "Every node is done already" "$WORK/all-done.err" || fail "no word on all done"
pass "with every node on record, nothing is asked of the reader"
# A record line with a value of another type than piflash writes is an error naming the
# file, the line and the field, before any card is touched.
for bad in '{"node": ["node1"], "result": "ok"}' '{"node": "node1", "result": 1}' '[1, 2]'; do
	{ head -n 1 "$REC"; echo "$bad"; } >"$WORK/bad.jsonl"
	expect_fail 1 "bad\.jsonl:2: ('(node|result)' is not a string \((array|int)\)|not a JSON record line)" \
		"$PIFLASH" --inventory "$WORK/cluster.csv" --all --yes --record "$WORK/bad.jsonl" \
		"$IMG" "$WORK/no-such-reader"
done

# ---- two readers at once --------------------------------------------------------------------
for c in d1 d2 d3 d4; do card $c; done
reader d1
RA=$NEW
reader d2
RB=$NEW
REC2=$WORK/two.jsonl
"$PIFLASH" --inventory "$WORK/cluster.csv" --all --yes --record "$REC2" --progress=json \
	--host-keys --known-hosts "$WORK/known_hosts" "$IMG" "$RA" "$RB" </dev/null >"$WORK/two.out" 2>"$WORK/two.err" &
PID=$!
PIDS="$PIDS $PID"
wait_for "$WORK/two.err" " done — take the card out of " 2
swap "$RA" d3
swap "$RB" d4
wait_for "$WORK/two.err" " done — take the card out of " 4
losetup -d "$RA"
losetup -d "$RB"
wait "$PID" || { cat "$WORK/two.err" >&2; fail "the run with two readers failed"; }
assert_eq "two readers: four record lines, all ok" "4 ok" \
	"$(jq -r .result "$REC2" | sort | uniq -c | awk '{print $1, $2}')"
assert_eq "each reader wrote two cards" "2 $RA|2 $RB" \
	"$(jq -r .device "$REC2" | sort | uniq -c | awk '{print $1, $2}' | paste -sd'|')"
for c in d1 d2 d3 d4; do
	node=$(jq -r --arg m "$WORK/$c.card" 'select(.model == $m) | .node' "$REC2")
	[ -n "$node" ] || fail "no record of card $c"
	check_card "$c" "$node"
	e2_cat "$WORK/$c.card" "$ROOT" /etc/ssh/ssh_host_ed25519_key >"$WORK/hk"
	chmod 600 "$WORK/hk"
	assert_eq "$c: the record's host key is the one on the card" \
		"$(jq -r --arg m "$WORK/$c.card" 'select(.model == $m) | .host_key' "$REC2" | cut -d' ' -f1,2)" \
		"$(ssh-keygen -y -f "$WORK/hk" | cut -d' ' -f1,2)"
	assert_eq "$c: the record's fingerprint is ssh-keygen's" \
		"$(jq -r --arg m "$WORK/$c.card" 'select(.model == $m) | .host_key_fingerprint' "$REC2")" \
		"$(ssh-keygen -l -f "$WORK/hk" | cut -d' ' -f2)"
	grep -qF "$(sed -n 2p "$WORK/hk")" "$REC2" "$WORK/two.err" && fail "$c: the private key leaked"
	assert_eq "$c: --known-hosts holds the card's key for $node" \
		"$(ssh-keygen -y -f "$WORK/hk" | cut -d' ' -f1,2)" \
		"$(ssh-keygen -F "$node" -f "$WORK/known_hosts" | grep -v '^#' | cut -d' ' -f2,3)"
	rm -f "$WORK/hk"
done
assert_eq "the four cards hold four different nodes" 4 \
	"$(jq -r .node "$REC2" | sort -u | wc -l)"

# ---- a failed card: --on-error skip moves on, stop ends the run -----------------------------
# A card that is too small is refused up front when it is in the reader at the start; put in
# later, it is a failed card.
card small 64
card e2
reader small
RS=$NEW
losetup -d "$RS"
REC3=$WORK/fail.jsonl
"$PIFLASH" --inventory "$WORK/cluster.csv" --only node1,node2 --yes --record "$REC3" \
	--on-error skip "$IMG" "$RS" </dev/null >"$WORK/skip.out" 2>"$WORK/skip.err" &
PID=$!
PIDS="$PIDS $PID"
wait_for "$WORK/skip.err" "put in the card for node1"
losetup "$RS" "$WORK/small.card"
wait_for "$WORK/skip.err" "node1: failed, skipped"
grep -q "is too small" "$WORK/skip.err" || fail "the small card's refusal gives no reason"
swap "$RS" e2
wait_for "$WORK/skip.err" "node2 done — take the card out of $RS"
losetup -d "$RS"
set +e
wait "$PID"
rc=$?
set -e
assert_eq "a skipped node makes the run exit 1" 1 "$rc"
grep -q "  node1: failed" "$WORK/skip.err" || fail "the summary does not name node1"
assert_eq "the record: node1 failed, node2 ok" "node1 failed|node2 ok" \
	"$(jq -r '"\(.node) \(.result)"' "$REC3" | paste -sd'|')"
check_card e2 node2 10.0.9.2/24
[ -z "$(tr -d '\0' <"$WORK/small.card" | head -c 1)" ] || fail "the small card was written"
pass "the card that is too small is untouched"

"$PIFLASH" --inventory "$WORK/cluster.csv" --only node1,node2 --yes --on-error stop \
	"$IMG" "$RS" </dev/null >"$WORK/stop.out" 2>"$WORK/stop.err" &
PID=$!
PIDS="$PIDS $PID"
wait_for "$WORK/stop.err" "put in the card for node1"
losetup "$RS" "$WORK/small.card"
set +e
wait "$PID"
rc=$?
set -e
assert_eq "--on-error stop: the run ends with exit 1" 1 "$rc"
grep -q "node1: failed, stopping" "$WORK/stop.err" || fail "no word on stopping"
grep -q "  node2: not written" "$WORK/stop.err" || fail "the summary does not name node2"
pass "--on-error stop names the node not written"
losetup -d "$RS"

# On a terminal, the operator decides: here "s" (skip) typed ahead into script(1)'s pty.
if command -v script >/dev/null 2>&1; then
	card e3
	REC4=$WORK/ask.jsonl
	printf 's\n' | script -qfec "'$PIFLASH' --inventory '$WORK/cluster.csv' --only node1,node2 \
		--yes --record '$REC4' '$IMG' '$RS'" "$WORK/ask.log" >/dev/null 2>&1 &
	PID=$!
	PIDS="$PIDS $PID"
	wait_for "$WORK/ask.log" "put in the card for node1"
	losetup "$RS" "$WORK/small.card"
	wait_for "$WORK/ask.log" "node1: failed, skipped"
	grep -q "the card for node1 failed. \[r\]etry it with another card, \[s\]kip node1, or \[q\]uit?" \
		"$WORK/ask.log" || { cat "$WORK/ask.log" >&2; fail "no question on the terminal"; }
	swap "$RS" e3
	wait_for "$WORK/ask.log" "node2 done — take the card out of $RS"
	losetup -d "$RS"
	set +e
	wait "$PID"
	rc=$?
	set -e
	assert_eq "on a TTY, 's' skips the failed node and the run goes on (exit 1)" 1 "$rc"
	assert_eq "the record after the answer: node1 failed, node2 ok" "node1 failed|node2 ok" \
		"$(jq -r '"\(.node) \(.result)"' "$REC4" | paste -sd'|')"
	check_card e3 node2 10.0.9.2/24
else
	echo "# SKIP part: script(1) is not installed: the question on a terminal is not tested" >&2
fi

# A card that is too small, in the reader from the start: refused before anything is written.
losetup "$RS" "$WORK/small.card"
expect_fail 4 "is too small" \
	"$PIFLASH" --inventory "$WORK/cluster.csv" --all --yes "$IMG" "$RS"
losetup -d "$RS"

# ---- refusals, before anything is written ---------------------------------------------------
card r1
reader r1
RR=$NEW
PRE=$(sha256 "$WORK/r1.card")
expect_fail 4 "add --yes" \
	"$PIFLASH" --inventory "$WORK/cluster.csv" --all "$IMG" "$RR"
expect_fail 2 "is not a block device" \
	"$PIFLASH" --inventory "$WORK/cluster.csv" --all --yes "$IMG" "$WORK/r1.card"
expect_fail 2 "are the same device" \
	"$PIFLASH" --inventory "$WORK/cluster.csv" --all --yes "$IMG" "$RR" "$RR"
expect_fail 2 "'nodeX' is not a hostname" \
	"$PIFLASH" --inventory "$WORK/cluster.csv" --only node1,nodeX --yes "$IMG" "$RR"
expect_fail 2 "need --inventory" "$PIFLASH" --all --yes "$IMG" "$RR"
expect_fail 2 "every node the same address" \
	"$PIFLASH" --inventory "$WORK/cluster.csv" --all --yes --ip 10.0.9.9/24 "$IMG" "$RR"
printf 'hostname,ip\nnode1,10.0.9.1/24\nnode2,10.0.9.300/24\n' >"$WORK/bad.csv"
expect_fail 1 "cannot be built; nothing written" \
	"$PIFLASH" --inventory "$WORK/bad.csv" --all --yes "$IMG" "$RR"
# node2 has no key and no password hash: nobody could log into it, so the run stops before
# node1's card is written, not after it.
printf 'hostname,ip,ssh_key\nnode1,10.0.9.1/24,op.pub\nnode2,10.0.9.2/24,\n' >"$WORK/nologin.csv"
expect_fail 1 "node2: .*nobody could log into this node.*--no-login to mean it" \
	"$PIFLASH" --inventory "$WORK/nologin.csv" --all --yes "$IMG" "$RR"
grep -q "1 node of '$WORK/nologin.csv' cannot be built; nothing written" "$WORK/err" ||
	fail "--all with a node nobody could log into: no 'nothing written'"
assert_eq "the card is untouched by the refusals" "$PRE" "$(sha256 "$WORK/r1.card")"

# ---- interrupted while waiting for a card ---------------------------------------------------
losetup -d "$RR"
"$PIFLASH" --inventory "$WORK/cluster.csv" --all --yes "$IMG" "$RR" </dev/null \
	>"$WORK/int.out" 2>"$WORK/int.err" &
PID=$!
wait_for "$WORK/int.err" "put in the card for node1"
kill -INT "$PID"
set +e
wait "$PID"
rc=$?
set -e
assert_eq "SIGINT while waiting for a card exits 130" 130 "$rc"

assert_eq "the input image is unchanged" "$IMG_SUM" "$(sha256 "$IMG")"
finish
