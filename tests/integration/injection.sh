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

# The operator's variables are named var_*, so none can be a name piflash sets: every such
# name is refused from --set, raw or quoted, bool or string, as an unknown setting (hostname
# and user are settings: --set validates them as such).
for var in ssh_pwauth lock_passwd keys_toml sudo groups instance_id SSH_PWAUTH; do
	expect_fail 2 "^piflash: --set: unknown setting '$var'" \
		"$PIFLASH" plan --node worker3 --ssh-key "$WORK/op.pub" \
		--set "$var=true"$'\n'"runcmd: [touch /pwned]" "$IMG"
done
for var in hostname user; do
	expect_fail 1 "--set $var: (hostname|user name) " \
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
expect_fail 1 "cluster.csv:1:18: unknown column 'sudo'" \
	"$PIFLASH" --inventory "$WORK/cluster.csv" --node worker3 "$IMG" "$WORK/out.img"
[ ! -e "$WORK/out.img" ] || fail "an output was written for a refused row"

# A template of the operator's may not insert an operator's value unescaped either.
mkdir "$WORK/tpl"
printf '#cloud-config\nhostname: {{hostname}}\nextra: {{{var_role}}}\n' >"$WORK/tpl/user-data.yaml"
expect_fail 1 "user-data.yaml:3: 'var_role' is inserted unescaped" \
	"$PIFLASH" plan --node worker3 --ssh-key "$WORK/op.pub" --template-dir "$WORK/tpl" \
	--set var_role=$'x\nruncmd: [touch /pwned]' "$IMG"

# Escaped, the same value stays one string: the document keeps its keys.
printf '#cloud-config\nhostname: {{hostname}}\nextra: {{var_role}}\n' >"$WORK/tpl/user-data.yaml"
"$PIFLASH" --node worker3 --ssh-key "$WORK/op.pub" --template-dir "$WORK/tpl" \
	--set var_role=$'x\nruncmd: [touch /pwned]' "$IMG" "$WORK/ok.img" >/dev/null 2>"$WORK/err" ||
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

# A user name from the image (cloud.cfg, the seed) that the node's rules refuse is never used:
# such a name once reached inventory.ini and added [all:vars] with a ProxyCommand.
EVIL=$WORK/evil.img
cp "$IMG" "$EVIL"
printf 'system_info:\n  default_user:\n    name: "pirate\\n[all:vars]\\nansible_ssh_common_args=-o ProxyCommand=touch /tmp/pwned"\n' \
	>"$WORK/99-evil.cfg"
debugfs -w -R "mkdir /etc/cloud/cloud.cfg.d" "$EVIL?offset=$(part_offset "$EVIL" 2)" >/dev/null 2>&1 || true
debugfs -w -R "write $WORK/99-evil.cfg /etc/cloud/cloud.cfg.d/99-evil.cfg" \
	"$EVIL?offset=$(part_offset "$EVIL" 2)" >/dev/null 2>&1
printf '#cloud-config\nusers:\n  - name: "x\\n[all:vars]"\n' >"$WORK/evil-ud"
MTOOLS_SKIP_CHECK=1 mcopy -o -i "$EVIL@@$(part_offset "$EVIL" 1)" "$WORK/evil-ud" ::/user-data
ext_clean "$EVIL" "$(part_offset "$EVIL" 2)"
"$PIFLASH" inspect --json "$EVIL" >"$WORK/evil.json" || fail "inspect failed on the hostile names"
# The hostile names are skipped: the valid default user of /etc/cloud/cloud.cfg stays.
assert_eq "hostile image names: the image's valid default user" pirate \
	"$(jq -r '.flavor.default_user // "null"' "$WORK/evil.json")"
jq -r '.flavor.evidence[]' "$WORK/evil.json" | grep -q 'default_user.name is not a valid user name, ignoring' ||
	fail "no evidence that the hostile default_user was ignored"
grep -q 'all:vars' <(jq -r '.flavor.cloud_init_config.users[]?, .flavor.cloud_init_config.default_user // empty, .flavor.default_user // empty' "$WORK/evil.json") &&
	fail "a hostile user name from the image is listed as a user"
pass "hostile image names are not used"
"$PIFLASH" plan --json --node worker3 --ssh-key "$WORK/op.pub" "$EVIL" >"$WORK/evil-plan.json" ||
	fail "plan failed on an image with hostile names"
assert_eq "hostile image names: the plan's user" pirate "$(jq -r .user "$WORK/evil-plan.json")"

finish
