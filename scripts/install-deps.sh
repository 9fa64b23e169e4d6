#!/bin/sh
# Install the Debian packages piflash needs to build and test.
# Idempotent: quiet and quick when everything is already there.
# Uses sudo only when not running as root.
#   scripts/install-deps.sh          what building and the unit/integration tests need
#   scripts/install-deps.sh --boot   that, plus what the boot suite needs (tests/boot)
set -eu

PACKAGES="
build-essential pkg-config meson ninja-build
libarchive-dev liblzma-dev libfdisk-dev libblkid-dev libext2fs-dev comerr-dev zlib1g-dev
libssl-dev libjson-c-dev libyaml-dev libcmocka-dev libcurl4-openssl-dev
dosfstools mtools e2fsprogs fdisk util-linux
gzip xz-utils zstd bzip2 zip unzip
clang-format jq
clang libclang-rt-14-dev
bmap-tools dmsetup time attr
openssh-client cloud-init python3 python3-yaml openssl
ansible-core
scdoc bash-completion
"

# The boot suite (meson test --suite boot, scripts/boot-test.sh) boots the images piflash
# writes in qemu. Its tools are a separate list, installed only for that suite: qemu-system-x86
# alone is a few hundred MB that builds and the other suites never use, and the boot suite is
# opt-in (it needs root and minutes of CPU).
BOOT_PACKAGES="
qemu-system-x86 debootstrap curl
"
if [ "${1:-}" = --boot ]; then
	PACKAGES="$PACKAGES $BOOT_PACKAGES"
fi

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing="$missing $p"
	fi
done

[ -z "$missing" ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi

echo "install-deps: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
