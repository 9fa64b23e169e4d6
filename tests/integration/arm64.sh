#!/bin/bash
# piflash built for arm64 (scripts/build-arm64.sh: Debian's cross toolchain) and run under
# qemu-user gives the same answers and the same bytes as the native build: inspect, plan and
# the main job to an image file, with SOURCE_DATE_EPOCH and an instance-id seed so the
# output is reproducible. Slow (a cross build, then qemu): in suite 'slow', left out of a
# plain `meson test`; run it with `meson test --suite slow`.
. "$(dirname "$0")/lib.sh"
need sfdisk jq xz cmp file ssh-keygen
command -v qemu-aarch64-static >/dev/null 2>&1 ||
	skip "qemu-aarch64-static is not installed (apt-get install qemu-user-static)"
"$SOURCE_ROOT/scripts/build-arm64.sh" --check 2>"$WORK/check" ||
	skip "the arm64 cross toolchain is not installed: $(cat "$WORK/check") (scripts/build-arm64.sh OUTDIR installs it)"
[ -x "$PIFLASH" ] || skip "'$PIFLASH' is not built"
export SOURCE_DATE_EPOCH=1700000000 PIFLASH_INSTANCE_ID_SEED=arm64-test-seed

# Kept in the build tree so that a second run only relinks what changed.
OUT=$BUILD_ROOT/arm64-cross
nice "$SOURCE_ROOT/scripts/build-arm64.sh" "$OUT" >"$WORK/build.out" 2>&1 || {
	cat "$WORK/build.out" >&2
	fail "scripts/build-arm64.sh failed"
}
ARM=$OUT/piflash
file "$ARM" | grep -q 'ARM aarch64' || fail "$ARM is not an aarch64 program: $(file "$ARM")"
pass "scripts/build-arm64.sh built an aarch64 piflash"
# The loader and libc are those of libc6:arm64 (multiarch, installed with the :arm64
# packages), found at their usual paths. Not `-L /usr/aarch64-linux-gnu`: that mixes the
# cross toolchain's libc (libc6-arm64-cross) with the multiarch libraries, and the program
# then hung in its first pthread_create()d stream (seen with qemu 7.2, Debian 12).
arm() {
	XDG_CACHE_HOME=$WORK/cache-arm64 qemu-aarch64-static "$ARM" "$@"
}
amd() {
	XDG_CACHE_HOME=$WORK/cache-amd64 "$PIFLASH" "$@"
}
assert_eq "runs under qemu-user" "$("$PIFLASH" --version)" "$(arm --version)"

IMG=$WORK/hypriot.img
build_image hypriot "$IMG" --size 128 --fill 2
xz -0 -T1 -c "$IMG" >"$WORK/hypriot.img.xz"
ssh-keygen -q -t ed25519 -N '' -C ops -f "$WORK/ops"
NODE=(--node worker3 --ip 10.0.0.13/24 --gateway 10.0.0.1 --dns 10.0.0.1 --ssh-key "$WORK/ops.pub")

for tool in amd arm; do
	$tool inspect --json "$WORK/hypriot.img.xz" | jq -S 'del(.source.cache)' >"$WORK/inspect.$tool"
	$tool inspect "$WORK/hypriot.img.xz" | grep -v '^Cache:' >"$WORK/inspect-text.$tool"
	$tool plan --json "${NODE[@]}" "$WORK/hypriot.img.xz" >"$WORK/plan.$tool"
	$tool -q "${NODE[@]}" --host-keys "$WORK/hypriot.img.xz" "$WORK/out.$tool.img"
	$tool ls -l "$WORK/out.$tool.img" root:/etc >"$WORK/ls.$tool"
done
for what in inspect inspect-text plan ls; do
	cmp "$WORK/$what.amd" "$WORK/$what.arm" || {
		diff "$WORK/$what.amd" "$WORK/$what.arm" | head -20 >&2
		fail "$what: the arm64 build's output differs from the amd64 build's"
	}
	pass "$what: arm64 = amd64"
done
cmp "$WORK/out.amd.img" "$WORK/out.arm.img" || fail "the images written differ"
pass "main job: the arm64 build's image = the amd64 build's, byte for byte (cmp)"
arm verify -q "${NODE[@]}" --host-keys "$WORK/hypriot.img.xz" "$WORK/out.amd.img" ||
	fail "the arm64 build does not verify the amd64 build's image"
pass "arm64 verify accepts the amd64 image"
finish
