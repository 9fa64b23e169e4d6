#!/bin/bash
# The command-line surface: every command's --help lists exactly the options the command
# accepts, --version works anywhere, a mistyped command is called one.
#
# "Accepts" is asked of the program itself: each candidate option (every long option in the
# getopt tables of src/, every option any --help or the man page lists, every short option
# of an optstring) is given to each command, and it is accepted unless the command answers
# "unknown option '--x'". "Listed" is every option line of the command's --help (an option
# within the first 8 columns). Any difference fails, so an option added to a table without
# help text, or help text for an option a command refuses, fails here.
. "$(dirname "$0")/lib.sh"
need sed grep sort comm

COMMANDS="main inspect cache ls cat plan verify batch devices"
PROBE=piflash-cli-probe
cd "$WORK"

# pf COMMAND ARGS...: the program with that command (main: none).
pf() {
	_c=$1
	shift
	if [ "$_c" = main ]; then
		"$PIFLASH" "$@"
	else
		"$PIFLASH" "$_c" "$@"
	fi
}

listed_long() {
	pf "$1" --help | sed -nE 's/^ {1,7}(-[a-zA-Z] +)?--([a-z0-9-]+).*/--\2/p' | sort
}

listed_short() {
	pf "$1" --help | sed -nE 's/^ {1,7}-([a-zA-Z])( .*)?$/-\1/p' | sort
}

version=$(sed -nE "s/^\tversion : '([^']+)'.*/\1/p" "$SOURCE_ROOT/meson.build")
[ -n "$version" ] || fail "cannot read the version from meson.build"

# Candidates: the option tables and optstrings in the sources, and every help.
{
	grep -ohE '\{ "[a-z0-9-]+", (no|required|optional)_argument' \
		"$SOURCE_ROOT"/src/piflash.c "$SOURCE_ROOT"/src/cmd/*.c |
		sed -E 's/\{ "([^"]+)".*/--\1/'
	grep -ohE 'getopt_long\(argc, argv, "[^"]*"' "$SOURCE_ROOT"/src/piflash.c \
		"$SOURCE_ROOT"/src/cmd/*.c | sed -E 's/.*"(.*)"/\1/' | tr -d ':' | grep -o . |
		sed 's/^/-/'
	for c in $COMMANDS; do
		listed_long "$c"
		listed_short "$c"
	done
	if [ -f "$SOURCE_ROOT/doc/piflash.1.scd" ]; then
		grep -E '^\*-' "$SOURCE_ROOT/doc/piflash.1.scd" |
			grep -oE '\*--?[a-zA-Z0-9-]+\*' | tr -d '*'
	fi
	echo --version
	echo -V
} | sort -u >"$WORK/candidates"
n=$(wc -l <"$WORK/candidates")
[ "$n" -gt 40 ] || fail "only $n candidate options found: the source scan is broken"
pass "$n candidate options from the sources, the helps and the man page"

# accepted COMMAND: the candidates the command does not call unknown.
accepted() {
	while read -r opt; do
		set +e
		pf "$1" "$opt" "$PROBE" </dev/null >/dev/null 2>"$WORK/err"
		rc=$?
		set -e
		if grep -Eq 'Sanitizer|runtime error' "$WORK/err"; then
			cat "$WORK/err" >&2
			fail "'$1 $opt': sanitizer report"
		fi
		[ "$rc" -lt 128 ] || fail "'$1 $opt' was killed (exit $rc)"
		if ! grep -qF "unknown option '$opt'" "$WORK/err"; then
			echo "$opt"
		fi
	done <"$WORK/candidates"
}

for c in $COMMANDS; do
	accepted "$c" | sort >"$WORK/acc.$c"
	{
		listed_long "$c"
		listed_short "$c"
	} | sort >"$WORK/list.$c"
	dups=$(uniq -d "$WORK/list.$c" | tr '\n' ' ')
	[ -z "$dups" ] || fail "'$c --help' lists $dups more than once"
	sort -u -o "$WORK/list.$c" "$WORK/list.$c"
	# --version and -V are global (main() takes them before any command): the main help
	# lists them, a command's help does not.
	if [ "$c" != main ]; then
		grep -vxE -- '--version|-V' "$WORK/acc.$c" >"$WORK/acc.tmp" || true
		mv "$WORK/acc.tmp" "$WORK/acc.$c"
	fi
	missing=$(comm -23 "$WORK/acc.$c" "$WORK/list.$c" | tr '\n' ' ')
	extra=$(comm -13 "$WORK/acc.$c" "$WORK/list.$c" | tr '\n' ' ')
	[ -z "$missing" ] || fail "'$c' accepts $missing but its --help does not list them"
	[ -z "$extra" ] || fail "'$c --help' lists $extra but '$c' does not accept them"
	[ -s "$WORK/list.$c" ] || fail "'$c --help' lists no option"
	pass "$c: --help lists exactly the $(wc -l <"$WORK/list.$c") options it accepts"
done

# The main job takes the whole node and card option set; batch none of the one-node ones.
for o in --yes --force --discard --no-verify --progress --all --only --exclude --record \
	--on-error --node --ssh-key --ip --inventory --add --version; do
	grep -qx -- "$o" "$WORK/list.main" || fail "piflash --help does not list $o"
done
pass "piflash --help lists the card, cluster and node options"
for o in --node --known-hosts --ip; do
	! grep -qx -- "$o" "$WORK/list.batch" || fail "batch --help lists $o, which batch refuses"
done
expect_fail 2 "unknown option '--node' \(one node: choose nodes with --only\)" \
	"$PIFLASH" batch --node a --inventory x.csv --out-dir d img
pass "batch --help leaves out --node, --ip and --known-hosts"

# --version and -V, first, after a command, after other options.
for c in $COMMANDS; do
	for v in --version -V; do
		if [ "$c" = main ]; then
			out=$("$PIFLASH" -q "$v" 2>&1)
		else
			out=$("$PIFLASH" "$c" "$PROBE" "$v" 2>&1)
		fi
		assert_eq "$c ... $v" "piflash $version" "$out"
	done
done
out=$("$PIFLASH" -- --version 2>&1 || true)
[ "$out" != "piflash $version" ] || fail "--version after -- was taken as the option"
pass "--version after -- is an argument"

# A mistyped command is called one, with a suggestion when one is close.
expect_fail 2 "^piflash: unknown command 'inpsect'; did you mean 'inspect'\?$" \
	"$PIFLASH" inpsect img.zip
expect_fail 2 "^piflash: unknown command 'bacth'; did you mean 'batch'\?$" \
	"$PIFLASH" bacth --inventory c.csv img.zip
expect_fail 2 "did you mean 'devices'" "$PIFLASH" device
expect_fail 2 "^piflash: unknown command 'help'; did you mean '--help'\?$" "$PIFLASH" help
expect_fail 2 "did you mean 'ls'" "$PIFLASH" lss img.zip /etc
expect_fail 2 "^piflash: unknown command 'frobnicate'$" "$PIFLASH" frobnicate img.zip out.img
! grep -q "did you mean" "$WORK/err" || fail "a suggestion for 'frobnicate'"
# An existing file with a plain name is an IMAGE, not a command.
printf 'not an image' >"$WORK/image"
set +e
"$PIFLASH" image out.img >/dev/null 2>"$WORK/err"
set -e
! grep -q "unknown command" "$WORK/err" || fail "the existing file 'image' was taken for a command"
grep -q "image" "$WORK/err" || fail "no error about the file 'image'"
pass "an existing file named like a word is opened as IMAGE"
# A name with a dot or a slash is an image path, even when missing.
expect_fail 1 "worker" "$PIFLASH" worker.img out.img
! grep -q "unknown command" "$WORK/err" || fail "'worker.img' was taken for a command"

echo "cli: $CHECKS checks passed"
