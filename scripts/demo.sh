#!/bin/sh
# The newcomer's first command: installs the dependencies, builds piflash, makes a small
# HypriotOS-layout demo image with scripts/mkimage.sh and runs piflash on it, saying what
# it does at each step.
set -eu

cd "$(dirname "$0")/.."
DEMO=${DEMO_DIR:-demo}

echo "==> Installing dependencies (Debian packages)"
scripts/install-deps.sh

echo "==> Building piflash into build/"
[ -f build/build.ninja ] || meson setup build >/dev/null
meson compile -C build >/dev/null

mkdir -p "$DEMO"
echo "==> Making a HypriotOS-layout demo image: $DEMO/hypriot.img"
scripts/mkimage.sh hypriot "$DEMO/hypriot.img"
xz -T0 -1 -k -f "$DEMO/hypriot.img"

echo "==> piflash inspect $DEMO/hypriot.img.xz  (decompressed once into the cache)"
build/piflash inspect "$DEMO/hypriot.img.xz"
