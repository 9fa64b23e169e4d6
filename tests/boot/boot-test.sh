#!/bin/bash
# boot-test.sh VARIANT — write node worker3 into VARIANT's image with piflash, boot the result
# in qemu and check that the booted node is worker3: its name, static address, route and DNS,
# the same network service in charge, the key in the right user's authorized_keys with the
# right modes and owners, sshd running, its own machine-id and SSH host keys, cloud-init done
# with the instance-id piflash wrote, and no failed unit. The image comes from
# scripts/boot-images.sh (cached).
#
# boot-test.sh --base VARIANT — boot the image as built, without piflash (qemu -snapshot), and
# check that its mechanism works on its own: DHCP from qemu through the intended service, the
# baked hostname, machine-id and instance-id in use, cloud-init done from the seed, sshd on or
# off as the image says. This proves each variant is a working configuration; it is not one of
# the meson tests.
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

# What piflash is asked to give the node. qemu's DHCP server, restricted (restrict=on), hands
# out an address from .100 and neither a router nor a DNS server; its own addresses are .2 and
# .3. So a node that fell back to DHCP fails the address, route and DNS checks.
NODE=worker3
IP=192.168.50.13/24
GATEWAY=192.168.50.1
DNS=192.168.50.1

MODE=node
if [ "${1:-}" = --base ]; then
	MODE=base
	shift
fi
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
		-drive "file=$1,format=raw,if=virtio" "${SNAPSHOT[@]}" \
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
	local want_route=""
	[ -n "$GATEWAY" ] && want_route="default via $GATEWAY dev eth0"
	check "default route: ${want_route:-none}" "$want_route" \
		"$(field ROUTE | awk '{
			via = "?"; dev = "?"
			for (i = 1; i < NF; i++) {
				if ($i == "via") via = $(i + 1)
				if ($i == "dev") dev = $(i + 1)
			}
			print "default via " via " dev " dev
		}' | joined)"
	local dns
	if [ "$(field RESOLV_NS | joined)" = 127.0.0.53 ]; then
		# systemd-resolved's stub: the servers are resolved's, per link and global.
		dns=$(field RESOLVED_DNS | sed 's/^[^:]*:[[:space:]]*//' | tr ' ' '\n' | sed '/^$/d' |
			sort -u | joined)
	else
		dns=$(field RESOLV_NS | sort -u | joined)
	fi
	check "DNS servers in effect: ${DNS:-none}" "$DNS" "$dns"
	local net unit state active=""
	net=$(fact NET)
	while read -r unit state; do
		[ "$state" = active ] && active="$active${active:+ }$unit"
	done < <(field UNIT_ACTIVE | grep -v '^systemd-resolved ')
	check "the network service in charge is $net alone" "$net" "$active"
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
	if [ "$MODE" = base ]; then
		check "user $user exists" exists exists
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
	local mid baked
	mid=$(field MACHINE_ID)
	baked=$(fact MACHINE_ID)
	if [ "$MODE" = base ]; then
		if [ "$(fact SSH)" = switch ]; then
			check "ssh.service stays off without the switch file" inactive "$(field SSH_ACTIVE)"
		else
			check "ssh.service is active" active "$(field SSH_ACTIVE)"
		fi
		check "the baked machine-id is used as it is" "$baked" "$mid"
		echo "# host keys after boot: $(field HOSTKEY | joined); baked: $(sed -n 's/^HOSTKEY=//p' "$FACTS" | sort | joined)"
		return
	fi
	check "ssh.service is active" active "$(field SSH_ACTIVE)"
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
	echo "# cloud-init: $(field CI_STATUS | grep 'DataSource' || true)"
	check "cloud-init used the NoCloud seed" yes \
		"$(field CI_STATUS | grep -q 'DataSourceNoCloud' && echo yes ||
			echo "no ($(field CI_STATUS | grep -v '^status' | joined))")"
	check "instance-id is the one in the seed's meta-data ($SEED_IID)" "$SEED_IID" \
		"$(field CI_INSTANCE_ID)"
	if [ -n "$(fact RUNCMD)" ]; then
		check "the image's runcmd ran ($(fact RUNCMD))" present "$(field RUNCMD_FILE)"
	fi
	local keep want
	keep=$(fact KEEP_META)
	case $keep in
	dsmode:*)
		# Judged by what cloud-init did, not by the file's spelling (quotes are fine).
		want=$(echo "${keep#dsmode:}" | tr -d ' ')
		check "cloud-init ran in dsmode $want, as the image's meta-data says" yes \
			"$(field CI_STATUS | grep -qF "[dsmode=$want]" && echo yes ||
				echo "no ($(field CI_STATUS | grep -o 'dsmode=[a-z]*'))")"
		;;
	esac
	if [ "$MODE" = base ]; then
		return
	fi
	check "the seed's instance-id is new (image: $(fact INSTANCE_ID))" yes \
		"$([ -n "$SEED_IID" ] && [ "$SEED_IID" != "$(fact INSTANCE_ID)" ] && echo yes || echo no)"
}

# write_node: piflash writes node worker3 into BASE as OUT.img.
write_node() {
	local -a extra=()
	# shellcheck disable=SC2206 # words, by design (see the header)
	[ -n "${PIFLASH_BOOT_EXTRA_ARGS:-}" ] && extra=(${PIFLASH_BOOT_EXTRA_ARGS})
	ssh-keygen -q -t ed25519 -N '' -C "boot-test@$VARIANT" -f "$WORK/K"
	if ! "$PIFLASH" "${extra[@]}" --node "$NODE" --ssh-key "$WORK/K.pub" --ip "$IP" \
		--gateway "$GATEWAY" --dns "$DNS" "$BASE" "$WORK/OUT.img" >"$WORK/piflash.log" 2>&1; then
		cat "$WORK/piflash.log" >&2
		die "piflash failed on $VARIANT"
	fi
	sed 's/^/# piflash: /' "$WORK/piflash.log"
}

# seed_instance_id IMAGE: the instance-id in the meta-data on IMAGE's FAT (read with mtools).
seed_instance_id() {
	local off
	off=$(part_offset "$1" 1)
	mtype -i "$1@@$off" ::/meta-data >"$WORK/meta-data" 2>/dev/null || : >"$WORK/meta-data"
	sed -n 's/^instance-id:[[:space:]]*//p' "$WORK/meta-data" | tr -d '\r"'"'" | head -n 1
}

# main: build, write (unless --base), boot, check.
main() {
	preflight
	local rc=0 t0 t1 t2 disk
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

	if [ "$MODE" = base ]; then
		# What qemu's DHCP server hands out — restricted, it offers no router and no DNS
		# server — and what the image bakes.
		NODE=$(fact HOSTNAME)
		IP=192.168.50.100/24
		GATEWAY=
		DNS=
		disk=$BASE
		SNAPSHOT=(-snapshot)
	else
		write_node
		disk="$WORK/OUT.img"
		SNAPSHOT=()
	fi
	SEED_IID=
	if [ "$(fact CLOUD_INIT)" = yes ]; then
		SEED_IID=$(seed_instance_id "$disk")
	fi

	t1=$(date +%s)
	boot "$disk"
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
		if [ -f "$WORK/piflash.log" ]; then
			echo "--- boot-$VARIANT: piflash said" >&2
			cat "$WORK/piflash.log" >&2
		fi
		echo "FAIL: boot-$VARIANT: $FAILS of $CHECKS checks failed" >&2
		exit 1
	fi
	echo "# boot-$VARIANT ($MODE): all $CHECKS checks passed"
}

main
