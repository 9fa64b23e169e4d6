#!/bin/bash
# Template injection: no value from an inventory column, --set or the image may change the
# structure of a file piflash renders. Variables piflash sets cannot be set by the operator
# (a multi-line `ssh_pwauth` once added a `runcmd:` to user-data), and only values piflash
# built itself are inserted unescaped, whatever template asks for it.
. "$(dirname "$0")/lib.sh"

need sfdisk jq mkfs.vfat mke2fs mcopy mtype debugfs
[ -x "$PIFLASH" ] || skip "'$PIFLASH' is not built"

IMG=$WORK/hypriot.img
build_image hypriot "$IMG"
ssh-keygen -q -t ed25519 -N '' -C op@test -f "$WORK/op" >/dev/null

# Every name piflash sets is refused from --set, raw or quoted, bool or string (hostname and
# user are settings: --set validates them as such).
for var in ssh_pwauth lock_passwd keys_toml sudo groups instance_id hostname user SSH_PWAUTH; do
	expect_fail 1 "template variable '$var'.*piflash sets itself|--set: $var: .*not allowed" \
		"$PIFLASH" plan --node worker3 --ssh-key "$WORK/op.pub" \
		--set "$var=true"$'\n'"runcmd: [touch /pwned]" "$IMG"
done

# The same from an inventory column, and nothing is written.
cat >"$WORK/cluster.csv" <<CSV
hostname,ssh_key,sudo
worker3,op.pub,"ALL=(ALL) NOPASSWD:ALL
runcmd: [touch /pwned]"
CSV
cp "$WORK/op.pub" "$WORK/op.pub.bak"
expect_fail 1 "template variable 'sudo'.*piflash sets itself" \
	"$PIFLASH" --inventory "$WORK/cluster.csv" --node worker3 "$IMG" "$WORK/out.img"
[ ! -e "$WORK/out.img" ] || fail "an output was written for a refused row"

# A template of the operator's may not insert an operator's value unescaped either.
mkdir "$WORK/tpl"
printf '#cloud-config\nhostname: {{hostname}}\nextra: {{{role}}}\n' >"$WORK/tpl/user-data.yaml"
expect_fail 1 "user-data.yaml:3: 'role' is inserted unescaped" \
	"$PIFLASH" plan --node worker3 --ssh-key "$WORK/op.pub" --template-dir "$WORK/tpl" \
	--set role=$'x\nruncmd: [touch /pwned]' "$IMG"

# Escaped, the same value stays one string: the document keeps its keys.
printf '#cloud-config\nhostname: {{hostname}}\nextra: {{role}}\n' >"$WORK/tpl/user-data.yaml"
"$PIFLASH" --node worker3 --ssh-key "$WORK/op.pub" --template-dir "$WORK/tpl" \
	--set role=$'x\nruncmd: [touch /pwned]' "$IMG" "$WORK/ok.img" >/dev/null 2>"$WORK/err" ||
	{ cat "$WORK/err" >&2; fail "an escaped operator value was refused"; }
mtype -i "$WORK/ok.img@@$(part_offset "$WORK/ok.img" 1)" ::/user-data >"$WORK/ud"
python3 - "$WORK/ud" <<'PY' || fail "the value changed the rendered user-data's keys"
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
# The image's own runcmd is kept (the seed is edited); nothing of the value became a key.
assert d["runcmd"] == ["systemctl restart avahi-daemon"], d
assert d["extra"] == "x\nruncmd: [touch /pwned]", d["extra"]
PY
pass "an operator's value stays one YAML string"

finish
