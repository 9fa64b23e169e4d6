#!/bin/bash
# boot-test.sh VARIANT — write node worker3 into VARIANT's image with piflash, boot the result
# in qemu and check that the booted node is worker3: its name, static address, route and DNS,
# the key in the right user's authorized_keys with the right modes and owners, sshd running,
# its own machine-id and SSH host keys, cloud-init done with the instance-id piflash wrote,
# and no failed unit. The image comes from scripts/boot-images.sh (cached).
#
# Environment: PIFLASH (the program, as meson sets it), PIFLASH_BOOT_CACHE (image cache),
# PIFLASH_BOOT_TIMEOUT (seconds for one boot, default 900), PIFLASH_BOOT_KEEP=1 (keep the
# work directory), PIFLASH_BOOT_EXTRA_ARGS (words added to piflash's command line — only for
# checking the harness by hand, e.g. "--flavor hypriot"; the meson tests never set it).
# Exit 0 when every check passes, 1 on a mismatch (with the serial logs' tails), 77 to skip.
set -euo pipefail

export LC_ALL=C.UTF-8 TZ=UTC
PATH=$PATH:/usr/sbin:/sbin
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${SOURCE_ROOT:=$(cd "$HERE/../.." && pwd)}"
: "${BUILD_ROOT:=$SOURCE_ROOT/build}"
: "${PIFLASH:=$BUILD_ROOT/piflash}"
TIMEOUT=${PIFLASH_BOOT_TIMEOUT:-900}

# What piflash is asked to give the node. The qemu network hands out other values by DHCP
# (address from .100, router .2, DNS .3), so a node that fell back to DHCP fails the checks.
NODE=worker3
IP=192.168.50.13/24
GATEWAY=192.168.50.1
DNS=192.168.50.1

VARIANT=${1:-}
CHECKS=0
FAILS=0

# skip REASON: exit 77, which meson reports as SKIP.
skip() {
	echo "SKIP: boot-$VARIANT: $*" >&2
	exit 77
}

# die MSG: a harness error (not a check): exit 1.
die() {
	echo "FAIL: boot-$VARIANT: $*" >&2
	exit 1
}

# check WHAT EXPECTED ACTUAL: one "ok"/"not ok" line; a mismatch is remembered.
check() {
	CHECKS=$((CHECKS + 1))
	if [ "$2" = "$3" ]; then
		echo "ok $CHECKS - $1"
	else
		echo "not ok $CHECKS - $1: expected '$2', got '$3'"
		FAILS=$((FAILS + 1))
	fi
}

# field KEY: the values of KEY in the report, one a line, sorted.
field() {
	sed -n "s/^$1=//p" "$WORK/report" | sort
}

# fact KEY: the value of KEY in the variant's facts file.
fact() {
	sed -n "s/^$1=//p" "$FACTS" | head -n 1
}

# joined: standard input's lines joined by spaces.
joined() {
	paste -sd' ' -
}

# logs_tail: the end of both serial logs, for a failure message.
logs_tail() {
	echo "--- boot-$VARIANT: console (ttyS0), last 60 lines" >&2
	tail -n 60 "$WORK/console.log" 2>/dev/null | tr -d '\r' >&2 || true
	echo "--- boot-$VARIANT: report (ttyS1)" >&2
	tr -d '\r' <"$WORK/ttyS1.log" >&2 2>/dev/null || true
}

# preflight: skip when this machine cannot run the test.
preflight() {
	[ -n "$VARIANT" ] || die "usage: boot-test.sh VARIANT"
	[ "$(id -u)" -eq 0 ] || skip "needs root (debootstrap, chroot, image ownership)"
	local t
	for t in qemu-system-x86_64 debootstrap zstd curl mcopy mtype mkfs.vfat mkfs.ext4 sfdisk jq \
		ssh-keygen timeout; do
		command -v "$t" >/dev/null 2>&1 || skip "'$t' is not installed (scripts/install-deps.sh --boot)"
	done
	[ -x "$PIFLASH" ] || die "PIFLASH '$PIFLASH' is not an executable"
}

# part_offset IMAGE N: byte offset of partition N, from sfdisk (not from piflash).
part_offset() {
	sfdisk -J "$1" | jq -r --argjson n "$2" \
		'.partitiontable | (.sectorsize // 512) * .partitions[$n - 1].start'
}

# boot IMAGE: boot IMAGE in qemu (TCG, user network restricted to the guest and qemu), the
# console on ttyS0 to console.log, the report on ttyS1 to ttyS1.log; a hard timeout.
boot() {
	local rc=0
	timeout --kill-after=15 "$TIMEOUT" qemu-system-x86_64 \
		-machine pc -accel tcg -m 1024 -smp 1 \
		-kernel "$IMAGES/vmlinuz" -initrd "$IMAGES/initrd.img" \
		-append "root=/dev/vda2 rw console=ttyS0 net.ifnames=0 panic=-1 systemd.show_status=1" \
		-drive "file=$1,format=raw,if=virtio" \
		-nic user,model=virtio-net-pci,restrict=on,net=192.168.50.0/24,host=192.168.50.2,dns=192.168.50.3,dhcpstart=192.168.50.100 \
		-display none -no-reboot -monitor none \
		-serial "file:$WORK/console.log" -serial "file:$WORK/ttyS1.log" \
		>"$WORK/qemu.log" 2>&1 || rc=$?
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		echo "# boot-$VARIANT: qemu timed out after ${TIMEOUT}s" >&2
	elif [ "$rc" -ne 0 ]; then
		cat "$WORK/qemu.log" >&2
		die "qemu exited $rc"
	fi
}

# check_network: the static address, route and DNS piflash was given, and nothing else.
check_network() {
	check "eth0 has exactly $IP" "$IP" "$(field ADDR | joined)"
	check "one default route, via $GATEWAY on eth0" "default via $GATEWAY dev eth0" \
		"$(field ROUTE | sed 's/ proto [a-z]*//; s/ metric [0-9]*//; s/ onlink//; s/ *$//' | joined)"
	local dns
	if [ "$(field RESOLV_NS | joined)" = 127.0.0.53 ]; then
		# systemd-resolved's stub: the servers are resolved's, per link and global.
		dns=$(field RESOLVED_DNS | sed 's/^[^:]*:[[:space:]]*//' | tr ' ' '\n' | sed '/^$/d' |
			sort -u | joined)
	else
		dns=$(field RESOLV_NS | sort -u | joined)
	fi
	check "DNS servers in effect: $DNS" "$DNS" "$dns"
}

# check_user: the key reached the expected user, with the modes and owners sshd insists on.
check_user() {
	local user ids key_fp
	user=$(fact USER)
	ids=$(field USER_IDS)
	if [ "$ids" = missing ] || [ -z "$ids" ]; then
		check "user $user exists" "exists" "missing"
		return
	fi
	check "~$user/.ssh is 0700, owned by $user ($ids)" "700 $user $ids" \
		"$(field SSH_DIR | awk '{print $1, $2, $4, $5}')"
	check "~$user/.ssh/authorized_keys is 0600, owned by $user ($ids)" "600 $user $ids" \
		"$(field AUTH_KEYS | awk '{print $1, $2, $4, $5}')"
	key_fp=$(ssh-keygen -lf "$WORK/K.pub" | awk '{print $2}')
	check "the node key ($key_fp) is in ~$user/.ssh/authorized_keys" yes \
		"$(field AUTH_KEY_FP | grep -qxF "$key_fp" && echo yes || echo no)"
}

# check_identity: sshd runs, and the node has its own machine-id and host keys.
check_identity() {
	check "ssh.service is active" active "$(field SSH_ACTIVE)"
	local mid baked
	mid=$(field MACHINE_ID)
	baked=$(fact MACHINE_ID)
	check "machine-id is set and not the baked $baked" yes \
		"$([ -n "$mid" ] && [ "$mid" != "$baked" ] && echo yes || echo "no ($mid)")"
	local keys shared
	keys=$(field HOSTKEY)
	shared=$(comm -12 <(echo "$keys") <(sed -n 's/^HOSTKEY=//p' "$FACTS" | sort))
	check "SSH host keys exist and none is a baked one" "yes" \
		"$([ -n "$keys" ] && [ -z "$shared" ] && echo yes || echo "no (keys: $(echo "$keys" | joined); baked among them: $(echo "$shared" | joined))")"
}

# check_cloud_init: where cloud-init runs, it finished from piflash's seed; elsewhere it stays
# as the image had it (absent or disabled).
check_cloud_init() {
	case $(fact CLOUD_INIT) in
	no)
		check "cloud-init stays absent" absent "$(field CLOUD_INIT)"
		return
		;;
	disabled)
		check "cloud-init stays disabled" disabled "$(field CLOUD_INIT)"
		return
		;;
	esac
	check "cloud-init runs" runs "$(field CLOUD_INIT)"
	check "cloud-init status: done" "status: done" "$(field CI_STATUS | grep '^status:' || true)"
	check "cloud-init used the NoCloud seed" yes \
		"$(field CI_STATUS | grep -q 'DataSourceNoCloud' && echo yes ||
			echo "no ($(field CI_STATUS | grep -v '^status' | joined))")"
	check "instance-id is the one in OUT.img's meta-data ($SEED_IID)" "$SEED_IID" \
		"$(field CI_INSTANCE_ID)"
	check "the seed's instance-id is new (image: $(fact INSTANCE_ID))" yes \
		"$([ -n "$SEED_IID" ] && [ "$SEED_IID" != "$(fact INSTANCE_ID)" ] && echo yes || echo no)"
	local keep
	keep=$(fact KEEP_META)
	if [ -n "$keep" ]; then
		check "meta-data keeps '$keep'" yes \
			"$(grep -qxF "$keep" "$WORK/meta-data" && echo yes || echo no)"
	fi
	if [ -n "$(fact RUNCMD)" ]; then
		check "the image's runcmd ran ($(fact RUNCMD))" present "$(field RUNCMD_FILE)"
	fi
}

# main VARIANT: build, write, boot, check.
main() {
	preflight
	local rc=0 t0 t1 t2
	t0=$(date +%s)
	IMAGES=$("$SOURCE_ROOT/scripts/boot-images.sh" build "$VARIANT") || rc=$?
	[ "$rc" -eq 77 ] && skip "the Debian archive cannot be reached and no root filesystem is cached"
	[ "$rc" -eq 0 ] || die "scripts/boot-images.sh build $VARIANT failed ($rc)"
	BASE="$IMAGES/$VARIANT.img"
	FACTS="$IMAGES/$VARIANT.facts"

	WORK=$(mktemp -d "${TMPDIR:-/tmp}/piflash-boot-$VARIANT.XXXXXX")
	if [ "${PIFLASH_BOOT_KEEP:-0}" = 1 ]; then
		echo "# work directory kept: $WORK"
	else
		trap 'rm -rf "$WORK"' EXIT
	fi
	export XDG_CACHE_HOME="$WORK/cache"
	ssh-keygen -q -t ed25519 -N '' -C "boot-test@$VARIANT" -f "$WORK/K"

	local -a extra=()
	# shellcheck disable=SC2206 # words, by design (see the header)
	[ -n "${PIFLASH_BOOT_EXTRA_ARGS:-}" ] && extra=(${PIFLASH_BOOT_EXTRA_ARGS})
	if ! "$PIFLASH" "${extra[@]}" --node "$NODE" --ssh-key "$WORK/K.pub" --ip "$IP" \
		--gateway "$GATEWAY" --dns "$DNS" "$BASE" "$WORK/OUT.img" >"$WORK/piflash.log" 2>&1; then
		cat "$WORK/piflash.log" >&2
		die "piflash failed on $VARIANT"
	fi
	sed 's/^/# piflash: /' "$WORK/piflash.log"

	SEED_IID=
	if [ "$(fact CLOUD_INIT)" = yes ]; then
		local off
		off=$(part_offset "$WORK/OUT.img" 1)
		mtype -i "$WORK/OUT.img@@$off" ::/meta-data >"$WORK/meta-data" 2>/dev/null ||
			: >"$WORK/meta-data"
		SEED_IID=$(sed -n 's/^instance-id:[[:space:]]*//p' "$WORK/meta-data" | tr -d '\r"'"'" |
			head -n 1)
	fi

	t1=$(date +%s)
	boot "$WORK/OUT.img"
	t2=$(date +%s)
	echo "# boot-$VARIANT: image+piflash $((t1 - t0))s, boot $((t2 - t1))s"

	tr -d '\r' <"$WORK/ttyS1.log" | sed -n '/^BOOT-REPORT-BEGIN$/,/^BOOT-REPORT-END$/p' \
		>"$WORK/report"
	if ! grep -qx BOOT-REPORT-END "$WORK/report"; then
		logs_tail
		die "no boot report on ttyS1 (the node did not finish booting within ${TIMEOUT}s)"
	fi
	check "boot completed: system state running" running "$(field SYSTEM_STATE)"
	check "hostname" "$NODE" "$(field HOSTNAME)"
	check_network
	check_user
	check_identity
	check_cloud_init
	check "no failed unit" "" "$(field FAILED | joined)"

	if [ "$FAILS" -gt 0 ]; then
		logs_tail
		echo "--- boot-$VARIANT: piflash said" >&2
		cat "$WORK/piflash.log" >&2
		echo "FAIL: boot-$VARIANT: $FAILS of $CHECKS checks failed" >&2
		exit 1
	fi
	echo "# boot-$VARIANT: all $CHECKS checks passed"
}

main
