#!/usr/bin/env bash
# Pastes the README and the docs: every fenced block tagged bash, sh or python in README.md, then
# in docs/*.md and docs/experiments/*.md (each file's blocks in order), runs
# in one temporary folder that stands for the repository folder (Launch/, python/ and .build/ are
# links to this repository's), as a user pasting them into one terminal would: exported
# variables (PATH after the install step) carry over from block to block, and each block
# starts in that folder. Shell blocks run with `set -eo pipefail`, so any failing command
# fails the block. Untagged fences are output and are not run.
#
# Markers, a comment line inside a block:
#   # readme-test: skip (REASON)   not run (long training runs); listed by name in the output
#   # readme-test: needs torch     run only where .venv-torch (or TORCH_PYTHON) imports torch;
#                                  python blocks that import torch are treated the same way
# Python blocks run with .venv's Python (torch blocks with .venv-torch's), each with this
# checkout's python/ package (vae_dist) installed editable (use_venv, use_package).
# PATH starts without any vae-dist on it, as on a fresh machine: the README's install block
# must make the command callable. runs/latest is a fresh one-epoch Fashion-MNIST run that
# stands in for the (skipped) training blocks.
# Each block is named by its file and line (README.md:42, docs/commands.md:30).
#   bash Tests/integration/readme_test.sh     -> readme: N passed, M failed, K skipped
set -uo pipefail
. "$(dirname "$0")/lib.sh" readme
use_venv || abort "cannot set up .venv"  # python blocks: .venv (numpy, safetensors, vae_dist)
venv_python=$python
data=/usr/share/datasets/fashion-mnist
skipped=0
[ -d "$data" ] || { echo "readme: no $data (bash Launch/setup.sh installs it)"; echo "readme: 0 passed, 1 failed, 0 skipped"; exit 1; }

torch_python=""
for candidate in "${TORCH_PYTHON:-}" "$repo/.venv-torch/bin/python"; do
  [ -n "$candidate" ] && "$candidate" -c "import torch, numpy, safetensors" 2>/dev/null && { torch_python=$candidate; break; }
done
[ -n "$torch_python" ] && { use_package "$torch_python" || abort "cannot install ./python (vae_dist) for $torch_python"; }

home=$tmp/repository
mkdir -p "$home/runs"
ln -s "$repo/Launch" "$home/Launch"
ln -s "$repo/python" "$home/python"
ln -s "$repo/.build" "$home/.build"
[ -d "$repo/Tests" ] && ln -s "$repo/Tests" "$home/Tests"
ln -s "$repo/.venv" "$home/.venv"
[ -n "$torch_python" ] && [ -d "$repo/.venv-torch" ] && ln -s "$repo/.venv-torch" "$home/.venv-torch"

echo "readme: runs/latest: training one epoch on Fashion-MNIST (stands in for the skipped training blocks)"
if ! VAE_DIST_PROGRESS=0 "$bin" train --epochs 1 --out "$home/runs/latest" > "$tmp/fixture.log" 2>&1; then
  echo "readme: training runs/latest failed: $(tail -1 "$tmp/fixture.log")"; echo "readme: 0 passed, 1 failed, 0 skipped"; exit 1
fi

# PATH without any folder that holds a vae-dist.
clean_path=""
IFS=: read -ra dirs <<< "$PATH"
for d in "${dirs[@]}"; do
  [ -n "$d" ] && [ ! -e "$d/vae-dist" ] && clean_path=${clean_path:+$clean_path:}$d
done
printf 'export PATH=%q\nexport VAE_DIST_PROGRESS=0\n' "$clean_path" > "$tmp/env.sh"

# Blocks: README.md, then docs/*.md and docs/experiments/*.md -> $tmp/blocks/NNN.{bash,python}
# with FILE:LINE in NNN.line. README comes first: its install block puts vae-dist on PATH.
docs=(README.md docs/*.md docs/experiments/*.md)
mkdir "$tmp/blocks"
awk -v out="$tmp/blocks" '
  FNR == 1 { inside = 0; other = 0 }
  /^```/ {
    if (inside) { inside = 0; close(file); next }
    if (other) { other = 0; next }
    lang = substr($0, 4); sub(/[ \t].*/, "", lang)
    if (lang == "bash" || lang == "sh" || lang == "python") {
      n++; inside = 1; kind = (lang == "python") ? "python" : "bash"
      file = sprintf("%s/%03d.%s", out, n, kind)
      printf "%s:%d\n", FILENAME, FNR > sprintf("%s/%03d.line", out, n); close(sprintf("%s/%03d.line", out, n))
      printf "" > file
    } else { other = 1 }
    next
  }
  inside { print > file }
' "${docs[@]}"

name_of() {  # the block's first command line, shortened
  grep -v -E '^[[:space:]]*(#|$)' "$1" | head -1 | sed -E 's/[[:space:]]+#.*$//; s/[[:space:]]+/ /g' | cut -c1-70
}

for block in "$tmp"/blocks/*.bash "$tmp"/blocks/*.python; do
  [ -e "$block" ] || continue
  echo "$block"
done | sort > "$tmp/order"

count=0
while IFS= read -r block; do
  count=$((count + 1))
  id=${block%.*}
  where=$(cat "$id.line")
  label="$where: $(name_of "$block")"
  kind=${block##*.}
  reason=$(sed -n 's/^[[:space:]]*# readme-test: skip (\(.*\)).*/\1/p' "$block" | head -1)
  if [ -n "$reason" ]; then
    echo "  skip: $label ($reason)"; skipped=$((skipped + 1)); continue
  fi
  needs_torch=0
  grep -q '# readme-test: needs torch' "$block" && needs_torch=1
  [ "$kind" = python ] && grep -qE '^[[:space:]]*(import torch|from torch|import .*torch|from vae_dist.torch_model)' "$block" && needs_torch=1
  if [ "$needs_torch" -eq 1 ] && [ -z "$torch_python" ]; then
    echo "  skip: $label (torch not importable: no .venv-torch with torch here)"; skipped=$((skipped + 1)); continue
  fi
  python=$venv_python; [ "$needs_torch" -eq 1 ] && python=$torch_python
  code=0
  if [ "$kind" = python ]; then
    (cd "$home" && . "$tmp/env.sh" && timeout 600 "$python" "$block") > "$tmp/out" 2>&1 || code=$?
  else
    (cd "$home" && timeout 600 bash -c 'set -eo pipefail; . "$1"; cd "$2"; . "$3"; export -p > "$1.next"' _ \
      "$tmp/env.sh" "$home" "$block") > "$tmp/out" 2>&1 || code=$?
    # Exported variables carry over to the next block (minus the shell's own).
    [ "$code" -eq 0 ] && grep -v -E '^declare -x (PWD|OLDPWD|SHLVL)=' "$tmp/env.sh.next" > "$tmp/env.sh"
  fi
  if [ "$code" -eq 0 ]; then ok "$label"
  else bad "$label: exit $code: $(tail -3 "$tmp/out" | tr '\n' ' ' | cut -c1-300)"; fi
done < "$tmp/order"
[ "$count" -gt 0 ] || bad "README.md and docs/ have no bash, sh or python block"

# The install step that links vae-dist into PREFIX/bin.
if out=$(PREFIX="$tmp/prefix" bash Launch/setup.sh --install 2>&1) && "$tmp/prefix/bin/vae-dist" --help > /dev/null 2>&1; then
  ok "PREFIX=DIR bash Launch/setup.sh --install: DIR/bin/vae-dist runs"
else bad "setup.sh --install: $(tail -1 <<< "$out")"; fi

echo "readme: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
