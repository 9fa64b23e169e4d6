#!/bin/bash
# `meson install` with DESTDIR puts the program, the man page and both shell completions
# where Debian looks for them.
. "$(dirname "$0")/lib.sh"
need meson

command -v scdoc >/dev/null 2>&1 || skip "scdoc is not installed: the man page is not built"
DEST="$WORK/dest"
DESTDIR="$DEST" meson install -C "$BUILD_ROOT" --no-rebuild --quiet >"$WORK/out" 2>&1 || {
	cat "$WORK/out" >&2
	fail "meson install failed"
}
prefix=$(meson introspect --buildoptions "$BUILD_ROOT" | jq -r '.[] | select(.name == "prefix") | .value')
bin=$(find "$DEST" -path "*/bin/piflash" -type f)
man=$(find "$DEST" -path "*/man1/piflash.1*" -type f)
bash_c=$(find "$DEST" -path "*/bash-completion/completions/piflash" -type f)
zsh_c=$(find "$DEST" -path "*/zsh/vendor-completions/_piflash" -type f)
[ -n "$bin" ] || fail "no bin/piflash under $DEST: $(cd "$DEST" && find . -type f)"
[ -x "$bin" ] || fail "$bin is not executable"
[ -n "$man" ] || fail "no man1/piflash.1 under $DEST"
[ -n "$bash_c" ] || fail "no bash-completion/completions/piflash under $DEST"
[ -n "$zsh_c" ] || fail "no zsh/vendor-completions/_piflash under $DEST"
for f in "$bin" "$man" "$bash_c" "$zsh_c"; do
	case "$f" in
	"$DEST$prefix"/*) ;;
	*) fail "$f is outside the prefix $prefix" ;;
	esac
done
pass "installed under $prefix: ${bin#$DEST}, ${man#$DEST}, ${bash_c#$DEST}, ${zsh_c#$DEST}"
"$bin" --version | grep -q '^piflash ' || fail "the installed program does not run"
pass "the installed program runs"
