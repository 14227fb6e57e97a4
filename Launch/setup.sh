#!/usr/bin/env bash
# Installs the Debian packages vae-dist needs (only those missing) and builds the
# release binary at .build/release/vae-dist.
set -euo pipefail
cd "$(dirname "$0")/.."
. Launch/common.sh

packages=(libopenmpi-dev openmpi-bin pkg-config zlib1g-dev dataset-fashion-mnist)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "setup: no swift on PATH; install a Swift 6 toolchain (https://swift.org/install)"; exit 1; }
echo "setup: building release (swift build -c release)"
swift build -c release 2>&1 | grep -E "error:|Build complete" || true
test -x .build/release/vae-dist || { echo "setup: build failed"; exit 1; }
