#!/bin/bash
# Shell completion: the bash completion, sourced with bash-completion, completes commands,
# each command's own options (read from its --help), option values, hostnames of the
# inventory and PART:/path inside an image; the zsh completion parses.
. "$(dirname "$0")/lib.sh"

BASH_COMPLETION=/usr/share/bash-completion/bash_completion
[ -r "$BASH_COMPLETION" ] ||
	skip "bash-completion is not installed ($BASH_COMPLETION): apt-get install bash-completion"

mkdir -p "$WORK/bin"
ln -s "$PIFLASH" "$WORK/bin/piflash"
export PATH="$WORK/bin:$PATH"
IMG="$WORK/hypriot.img"
"$MKIMAGE" hypriot "$IMG" >/dev/null
printf 'hostname,ip\nworker1,10.0.0.11/24\nworker2,10.0.0.12/24\nmaster,10.0.0.10/24\n' \
	>"$WORK/cluster.csv"
: >"$WORK/k.pub"
cd "$WORK"

# complete WORD...: the candidates bash offers for the last word, one per line, sorted.
complete() {
	bash --norc --noprofile -c '
		. "$1"
		. "$2"
		shift 2
		COMP_WORDS=("$@")
		COMP_CWORD=$(($# - 1))
		COMP_LINE="$*"
		COMP_POINT=${#COMP_LINE}
		COMPREPLY=()
		_piflash
		printf "%s\n" "${COMPREPLY[@]}"
	' completion "$BASH_COMPLETION" "$SOURCE_ROOT/completions/piflash.bash" "$@" | sort -u
}

# has WHAT EXPECTED WORD...: EXPECTED is among the candidates.
has() {
	what=$1
	want=$2
	shift 2
	got=$(complete "$@")
	grep -qxF -- "$want" <<<"$got" || fail "$what: '$want' not offered for '$*' (got: $(echo $got))"
	pass "$what: '$*' offers '$want'"
}

# lacks WHAT UNWANTED WORD...
lacks() {
	what=$1
	bad=$2
	shift 2
	got=$(complete "$@")
	! grep -qxF -- "$bad" <<<"$got" || fail "$what: '$bad' offered for '$*'"
	pass "$what: '$*' does not offer '$bad'"
}

has "a command" inspect piflash ins
has "a command" devices piflash dev
has "a main-job option" --no-verify piflash --no-v
has "a node option of the main job" --ssh-key piflash --ssh
has "a card option" --on-error piflash --on
has "the global --version" --version piflash --vers
has "an option of batch" --shard piflash batch --sh
lacks "batch's options" --node piflash batch --no
has "batch's options" --no-cache piflash batch --no
has "an option of devices" --json piflash devices --
lacks "devices' options" --node piflash devices --
has "ls -l" -l piflash ls -
has "--progress values" json piflash --progress ""
has "--format values" img.zst piflash batch --format img.
has "--flavor values" rpios-trixie piflash plan --flavor rpios-t
has "hostnames of --inventory" worker2 piflash --inventory cluster.csv --node work
lacks "hostnames of --inventory" master piflash --inventory cluster.csv --node work
has "the cache command's argument" clean piflash cache ""
has "an image file" hypriot.img piflash inspect hyp
has "the partitions of an image" "HypriotOS:/" piflash cat hypriot.img ""
has "the partitions of an image" "2:/" piflash cat hypriot.img ""
# Readline replaces the text after the last ':' or '=', so that is what is offered.
has "a directory inside an image" "/etc/" piflash ls hypriot.img root:/e
has "a file inside an image" "/user-data" piflash cat hypriot.img HypriotOS:/user
lacks "a file of another partition" "/etc/" piflash cat hypriot.img HypriotOS:/
has "--add's destination inside the image" "/etc/" piflash hypriot.img --add k.pub=root:/e
has "--add's local file" k.pub piflash --add k.p
# The value of an option is not a positional: after '--node worker1 IMAGE', the TARGET.
has "verify's TARGET after an option's value" hypriot.img \
	piflash verify --node worker1 hypriot.img ""
lacks "commands after an option" inspect piflash --node worker1 ins

if command -v zsh >/dev/null 2>&1; then
	zsh -n "$SOURCE_ROOT/completions/_piflash" || fail "the zsh completion does not parse"
	pass "the zsh completion parses"
fi
echo "completion: $CHECKS checks passed"
