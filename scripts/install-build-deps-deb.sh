#!/bin/sh
# Install what building the Debian package needs: dpkg-dev and debhelper, then the
# Build-Depends of debian/control (apt-get build-dep reads them from the source tree), and
# lintian to check the result. Uses sudo only when not running as root.
#   scripts/install-build-deps-deb.sh && dpkg-buildpackage -b -us -uc && lintian ../piflash_*.changes
set -eu
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends dpkg-dev debhelper fakeroot lintian >/dev/null
$SUDO apt-get build-dep -y -qq ./ >/dev/null
