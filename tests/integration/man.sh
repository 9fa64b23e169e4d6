#!/bin/bash
# The man page (doc/piflash.1.scd, built into piflash.1 by scdoc) documents exactly the
# options the commands' --help list, every command, the exit codes and the environment
# variables the program reads.
. "$(dirname "$0")/lib.sh"

SCD="$SOURCE_ROOT/doc/piflash.1.scd"
MAN="$BUILD_ROOT/doc/piflash.1"
[ -r "$SCD" ] || fail "no man page source $SCD"

commands=$("$PIFLASH" --help | sed -nE '/^Commands:/,/^$/s/^  ([a-z]+) .*/\1/p')
[ "$(echo "$commands" | wc -w)" -ge 8 ] || fail "cannot read the commands from --help: $commands"

# Options of every --help (option lines: an option within the first 8 columns).
for c in main $commands; do
	if [ "$c" = main ]; then "$PIFLASH" --help; else "$PIFLASH" "$c" --help; fi >"$WORK/h"
	sed -nE 's/^ {1,7}(-[a-zA-Z] +)?--([a-z0-9-]+).*/--\2/p' "$WORK/h"
	sed -nE 's/^ {1,7}-([a-zA-Z])( .*)?$/-\1/p' "$WORK/h"
done | sort -u >"$WORK/help"
# Option lines of the man page: lines that start with *-, e.g. "*-q*, *--quiet*".
grep -E '^\*-' "$SCD" | grep -oE '\*--?[a-zA-Z0-9-]+\*' | tr -d '*' | sort -u >"$WORK/man"
[ "$(wc -l <"$WORK/man")" -gt 40 ] || fail "only $(wc -l <"$WORK/man") options found in $SCD"

missing=$(comm -23 "$WORK/help" "$WORK/man" | tr '\n' ' ')
extra=$(comm -13 "$WORK/help" "$WORK/man" | tr '\n' ' ')
[ -z "$missing" ] || fail "--help lists $missing but the man page does not document them"
[ -z "$extra" ] || fail "the man page documents $extra but no --help lists them"
pass "the man page documents the $(wc -l <"$WORK/man") options the helps list, no other"

for c in $commands; do
	grep -qE "^## piflash $c( |$)" "$SCD" || fail "no section for the command '$c'"
done
pass "a section for each command: $(echo $commands)"

for code in 0 1 2 3 4 130; do
	grep -qx "\*$code\*" "$SCD" || fail "exit code $code is not documented"
done
pass "exit codes 0 1 2 3 4 130 documented"

# Every variable the program reads from the environment.
vars=$(grep -rhoE 'getenv\("[A-Z_]+"\)|#define [A-Z_]+_ENV "[A-Z_]+"' "$SOURCE_ROOT/src" |
	grep -oE '"[A-Z_]+"' | tr -d '"' | sort -u)
[ -n "$vars" ] || fail "no getenv() found in src/"
for v in $vars; do
	sed -n '/^# ENVIRONMENT/,/^# FILES/p' "$SCD" | grep -qx "\*$v\*" ||
		fail "the environment variable $v is not under ENVIRONMENT"
done
pass "ENVIRONMENT has $(echo $vars)"

for s in NAME SYNOPSIS DESCRIPTION "EXIT STATUS" ENVIRONMENT FILES EXAMPLES; do
	grep -qx "# $s" "$SCD" || fail "no section $s"
done
pass "sections NAME SYNOPSIS DESCRIPTION EXIT STATUS ENVIRONMENT FILES EXAMPLES"

# The page as built: scdoc took the source, and every option is in the roff.
if [ -r "$MAN" ]; then
	grep -q '^\.TH "piflash" "1"' "$MAN" || fail "$MAN is not a man page"
	while read -r o; do
		grep -qF -- "\\fB$o\\fR" "$MAN" || fail "the built $MAN lacks $o"
	done <"$WORK/man"
	pass "the built piflash.1 has every option"
	if command -v man >/dev/null 2>&1; then
		MANWIDTH=80 man -l "$MAN" 2>"$WORK/man.err" | grep -q "prepare SD cards" ||
			fail "man -l $MAN does not render"
		[ ! -s "$WORK/man.err" ] || fail "man -l warns: $(cat "$WORK/man.err")"
		pass "man -l renders it without warnings"
	fi
else
	echo "note: $MAN not built (scdoc missing): checked the source only" >&2
fi
echo "man: $CHECKS checks passed"
