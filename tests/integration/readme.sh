#!/bin/bash
# The README as a newcomer reads it: every command of its "Using it" block runs as written on
# the demo image (hypriotos.img.zip/.xz made by mkimage.sh, cluster.csv, ~/.ssh/id_ed25519.pub
# set up here), with loop devices as /dev/sdb and /dev/sdc and the confirmation typed on a
# terminal (script(1)); and the README names the same options as `--help` of the main job
# and of every command. Without root the card commands skip, saying so.
. "$(dirname "$0")/lib.sh"
need zip xz script ssh-keygen awk comm
export MTOOLS_SKIP_CHECK=1
README=$SOURCE_ROOT/README.md

# ---- the options: README and --help name the same set ---------------------------------------

# Options of other tools the README mentions (scripts/install-deps.sh, mkimage.sh, dpkg, cp,
# meson, boot-test.sh), and --vars, the alternative the CSV section explains it did not take.
foreign='--add-architecture --base --boot --fill --print-architecture --sparse --suite --vars'
grep -o -- '--[a-z][a-z0-9-]*' "$README" | sort -u >"$WORK/readme.opts"
{
	"$PIFLASH" --help
	for c in inspect cache ls cat plan verify batch devices; do "$PIFLASH" "$c" --help; done
} | grep -o -- '--[a-z][a-z0-9-]*' | sort -u >"$WORK/help.opts"
for f in $foreign; do
	grep -qx -- "$f" "$WORK/help.opts" && fail "$f is piflash's, not foreign"
	sed -i "/^$f\$/d" "$WORK/readme.opts"
done
missing=$(comm -13 "$WORK/readme.opts" "$WORK/help.opts" | tr '\n' ' ')
extra=$(comm -23 "$WORK/readme.opts" "$WORK/help.opts" | tr '\n' ' ')
[ -z "$missing" ] || fail "options in --help the README never names: $missing"
[ -z "$extra" ] || fail "options the README names that no --help lists: $extra"
pass "the README and --help name the same $(wc -l <"$WORK/help.opts") options"

# ---- the examples ---------------------------------------------------------------------------

# The indented block after "## Using it", continuation lines joined, comments dropped.
awk '/^## Using it/ { on = 1; next } on && /^#/ { exit } on && /^    piflash/ { cmd = $0 }
	on && /^            / && cmd != "" { cmd = cmd " " $0 }
	on && cmd != "" && !/\\$/ { print cmd; cmd = "" }' "$README" |
	sed -e 's/\\ \+/ /g' -e 's/  *# .*$//' -e 's/^ *//' >"$WORK/examples"
[ "$(wc -l <"$WORK/examples")" -ge 10 ] || fail "found only $(wc -l <"$WORK/examples") examples"
pass "$(wc -l <"$WORK/examples") example commands in the README"

mkdir -p "$WORK/home/.ssh" "$WORK/run"
export HOME=$WORK/home
ssh-keygen -q -t ed25519 -N '' -C ops@cluster -f "$HOME/.ssh/id_ed25519"
cd "$WORK/run"
build_image hypriot hypriotos.img
zip -q hypriotos.img.zip hypriotos.img
xz -T0 -1 -k hypriotos.img
cp "$HOME/.ssh/id_ed25519.pub" id.pub
cp "$HOME/.ssh/id_ed25519.pub" id_ed25519.pub
printf '#cloud-config\nruncmd:\n  - [echo, hello]\n' >user-data
cat >cluster.csv <<EOF
hostname,ip,gateway,dns,ssh_key,group
worker3,192.168.1.13/24,192.168.1.1,192.168.1.1,id.pub,workers
worker4,,,,id.pub,workers
EOF

CARDS=0
LOOPS=""
if [ "$(id -u)" = 0 ] && command -v losetup >/dev/null; then
	truncate -s 300M "$WORK/sdb.back" "$WORK/sdc.back"
	SDB=$(losetup -f --show "$WORK/sdb.back") && LOOPS="$SDB"
	SDC=$(losetup -f --show "$WORK/sdc.back") && LOOPS="$LOOPS $SDC"
	CARDS=1
fi
cleanup() {
	for l in $LOOPS; do losetup -d "$l" 2>/dev/null || true; done
	[ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

n=0
while IFS= read -r line; do
	n=$((n + 1))
	case "$line" in
	*/dev/sd*)
		if [ "$CARDS" = 0 ]; then
			echo "# skipped (needs root and loop devices): $line"
			continue
		fi
		cmd=$(printf '%s' "$line" | sed -e "s|/dev/sdb|$SDB|g" -e "s|/dev/sdc|$SDC|g")
		# The confirmation question is answered on a terminal, as a person would.
		cmd=${cmd/#piflash /$PIFLASH }
		if ! printf 'y\n' | timeout 300 script -qefc "$cmd" /dev/null >"$WORK/ex$n.out" 2>&1; then
			cat "$WORK/ex$n.out" >&2
			fail "README example $n failed: $line"
		fi
		;;
	*)
		cmd=${line/#piflash /$PIFLASH }
		if ! eval "$cmd" >"$WORK/ex$n.out" 2>&1 </dev/null; then
			cat "$WORK/ex$n.out" >&2
			fail "README example $n failed: $line"
		fi
		;;
	esac
	pass "README example $n: $line"
done <"$WORK/examples"

# What the examples made is what they say.
# worker3.img was last written by the --add example.
"$PIFLASH" cat worker3.img HypriotOS:/user-data | grep -qF '[echo, hello]' ||
	fail "worker3.img lacks the --add user-data"
"$PIFLASH" cat worker3.img /home/pirate/.ssh/authorized_keys | grep -qF ops@cluster ||
	fail "worker3.img lacks the --add key"
[ -f out/worker3.img ] && [ -f out/worker4.img ] && [ -f out/SHA256SUMS ] || fail "batch made no out/"
pass "worker3.img and out/ hold the nodes"
if [ "$CARDS" = 1 ]; then
	assert_eq "the --all run recorded both cards" "worker3 ok|worker4 ok" \
		"$(jq -r '"\(.node) \(.result)"' run.jsonl | sort | paste -sd'|')"
fi
finish
