#!/usr/bin/env bash
# Installs the Debian packages vae-dist needs (only those missing) and builds the
# release binary at .build/release/vae-dist.
#   bash Launch/setup.sh              then, from the repository: export PATH="$PWD/.build/release:$PATH"
#   bash Launch/setup.sh --install    also links vae-dist into PREFIX/bin (PREFIX: /usr/local)
set -euo pipefail
install=0
case "${1:-}" in
  "") ;;
  --install) install=1 ;;
  *) echo "setup: unknown argument '$1' (usage: bash Launch/setup.sh [--install])"; exit 1 ;;
esac
# The repository, also when this script is reached through a symlinked Launch/ folder.
cd "$(dirname "$(readlink -f "$0")")/.."
. Launch/common.sh

packages=(libopenmpi-dev openmpi-bin pkg-config zlib1g-dev libpng-dev libjpeg62-turbo-dev dataset-fashion-mnist)
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
# The commit the binary is built from (`vae-dist --version`, run.json), "-dirty" with changes;
# rewritten only when it changes, and build_info.c touched so the build picks it up.
# Outside a git checkout (the mutation run's copy): VAE_DIST_BUILD_COMMIT, if set.
commit=${VAE_DIST_BUILD_COMMIT:-unknown}
if git rev-parse HEAD > /dev/null 2>&1; then
  commit=$(git rev-parse HEAD)
  [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && commit="$commit-dirty"
fi
header=Sources/_VAEBuildInfo/build_commit.h
line="#define VAE_DIST_COMMIT \"$commit\""
if [ "$(cat "$header" 2>/dev/null)" != "$line" ]; then
  echo "$line" > "$header"; touch Sources/_VAEBuildInfo/build_info.c
fi
echo "setup: building release (swift build -c release)"
# The build's own exit status decides (an older binary left in .build proves nothing).
log=$(mktemp)
if ! swift build -c release > "$log" 2>&1; then
  grep -E "error:" "$log" | head -20; rm -f "$log"
  echo "setup: build failed (swift build -c release)"; exit 1
fi
grep -E "Build complete" "$log"; rm -f "$log"

if [ "$install" -eq 1 ]; then
  bindir=${PREFIX:-/usr/local}/bin
  mkdir -p "$bindir" 2>/dev/null || true
  if [ -w "$bindir" ] && ln -sfn "$PWD/.build/release/vae-dist" "$bindir/vae-dist"; then
    echo "setup: $bindir/vae-dist -> $PWD/.build/release/vae-dist"
    case ":$PATH:" in *":$bindir:"*) ;; *) echo "setup: $bindir is not on PATH: export PATH=\"$bindir:\$PATH\"" ;; esac
  else
    echo "setup: cannot write $bindir; use PREFIX=\$HOME/.local bash Launch/setup.sh --install, or in this shell: export PATH=\"$PWD/.build/release:\$PATH\""
    exit 1
  fi
fi
