#!/usr/bin/env bash
# The command line as people type it: --version, negative option values, a run
# folder wherever a checkpoint is read, image outputs that are PNG into a folder
# that exists, and an autoencoder's epoch line. Every bad input must give exactly
# the expected line on stderr and exit code 1.
set -uo pipefail
. "$(dirname "$0")/lib.sh" cli-usability
use_venv || abort "cannot set up .venv"  # $python: .venv with numpy and safetensors
export VAE_DIST_PROGRESS=0

# expect_error 'exact stderr line' command...: exit code 1 and that line alone on stderr.
expect_error() {
  local expected=$1; shift
  "$@" > "$tmp/o" 2> "$tmp/e"; local code=$?
  if [ "$code" -eq 1 ] && [ "$(cat "$tmp/e")" = "$expected" ]; then
    ok "exit 1: $expected"
  else
    bad "'$*' exit $code, stderr: $(head -3 "$tmp/e") (expected: $expected)"
  fi
}
# png FILE: a PNG file exists there
png() { [ "$(head -c 8 "$1" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ]; }

run="$tmp/run"
"$bin" train --data synthetic:600 --epochs 1 --batch-size 60 --latent 4 --out "$run" > "$tmp/vae.log" 2>&1 || bad "train: $(tail -1 "$tmp/vae.log")"
ck="$run/checkpoints/latest.safetensors"
[ -f "$ck" ] && ok "train wrote $ck" || bad "no checkpoint in $run"

# --version: the constant in the executable and the commit it was built from (Launch/setup.sh
# records it: this checkout's HEAD, "-dirty" with uncommitted changes; outside a git checkout,
# as in the mutation run's copy, VAE_DIST_BUILD_COMMIT), exit 0.
version=$(sed -n 's/^let vaeDistVersion = "\(.*\)"$/\1/p' Sources/vae-dist/VAEDist.swift)
head=$(git rev-parse HEAD 2>/dev/null || echo "${VAE_DIST_BUILD_COMMIT:-unknown}")
head=${head%-dirty}
out=$("$bin" --version 2>&1); code=$?
[ "$code" -eq 0 ] && [ -n "$version" ] && [[ "$out" =~ ^"$version (commit $head"(-dirty)?")"$ ]] && ok "--version prints $out" \
  || bad "--version: exit $code, printed '$out', source says '$version', HEAD is $head"

# Negative values reach the checks that explain them (not "Missing value for ...").
expect_error "vae-dist: error: --beta must be a finite number >= 0 (got -1.0)" "$bin" train --data synthetic:100 --beta -1 --out "$tmp/x"
expect_error "vae-dist: error: --lr must be a positive number (got -1.0)" "$bin" train --data synthetic:100 --lr -1 --out "$tmp/x"
expect_error "vae-dist: error: --lr must be a positive number (got -0.001)" "$bin" train --data synthetic:100 --lr -1e-3 --out "$tmp/x"
expect_error "vae-dist: error: --epochs must be 0 or more (got -1)" "$bin" train --data synthetic:100 --epochs -1 --out "$tmp/x"
expect_error "vae-dist: error: --latent must be a positive number of dimensions (got -3)" "$bin" train --data synthetic:100 --latent -3 --out "$tmp/x"
expect_error "vae-dist: error: --range must be a positive number (got -2.0)" "$bin" traverse --checkpoint "$ck" --range -2 --out "$tmp/t.png"
expect_error "vae-dist: error: --iw-samples must be 0 or more (got -5)" "$bin" eval --checkpoint "$ck" --iw-samples -5
# A flag still takes no number, and a missing value is still named.
expect_error "vae-dist: error: The option '--autoencoder' does not take any value, but '-1' was specified. (see vae-dist help)" "$bin" train --autoencoder -1
expect_error "vae-dist: error: Missing value for '--beta <beta>' (see vae-dist help)" "$bin" train --beta

# One way to name a checkpoint: a file or its run folder, for every command that reads one.
by_file=$("$bin" eval --checkpoint "$ck" 2>&1 | sed 's/"seconds": [^,]*,//')
by_folder=$("$bin" eval --checkpoint "$run" 2>&1 | sed 's/"seconds": [^,]*,//')
[ -n "$by_folder" ] && [ "$by_folder" = "$by_file" ] && ok "eval --checkpoint RUN_DIR: $by_folder" || bad "eval --checkpoint RUN_DIR: '$by_folder' vs file: '$by_file'"
"$bin" sample --checkpoint "$run" --count 4 --out "$tmp/s.png" > /dev/null 2>&1 && png "$tmp/s.png" && ok "sample --checkpoint RUN_DIR" || bad "sample --checkpoint RUN_DIR"
"$bin" reconstruct --checkpoint "$run" --count 4 --out "$tmp/r.png" > /dev/null 2>&1 && png "$tmp/r.png" && ok "reconstruct --checkpoint RUN_DIR" || bad "reconstruct --checkpoint RUN_DIR"
"$bin" interpolate --checkpoint "$run" --pairs 1 --out "$tmp/i.png" > /dev/null 2>&1 && png "$tmp/i.png" && ok "interpolate --checkpoint RUN_DIR" || bad "interpolate --checkpoint RUN_DIR"
"$bin" traverse --checkpoint "$run" --steps 3 --out "$tmp/t.png" > /dev/null 2>&1 && png "$tmp/t.png" && ok "traverse --checkpoint RUN_DIR" || bad "traverse --checkpoint RUN_DIR"
for form in "--checkpoint $run" "$run" "--checkpoint $ck" "$ck"; do
  # shellcheck disable=SC2086  # the form is two words or one
  first=$("$bin" inspect $form 2>&1 | head -1)
  case "$first" in "$ck: "*" tensors, "*) ok "inspect $form";; *) bad "inspect $form: $first";; esac
done
mkdir -p "$tmp/empty"
expect_error "vae-dist: error: --checkpoint $tmp/empty: a folder without a checkpoint: $tmp/empty/checkpoints/latest.safetensors not found (pass a run folder written by vae-dist train, or a .safetensors file)" \
  "$bin" eval --checkpoint "$tmp/empty"
expect_error "vae-dist: error: --checkpoint $tmp/empty: a folder without a checkpoint: $tmp/empty/checkpoints/latest.safetensors not found (pass a run folder written by vae-dist train, or a .safetensors file)" \
  "$bin" inspect --checkpoint "$tmp/empty"
expect_error "vae-dist: error: inspect takes one checkpoint, got --checkpoint $ck and $ck" "$bin" inspect --checkpoint "$ck" "$ck"

# Image outputs: PNG only, into a folder that exists; nothing is written otherwise.
# (The checkpoint is given as a file so these checks do not depend on the ones above.)
for command in sample reconstruct interpolate traverse latent-map manifold; do
  expect_error "vae-dist: error: --out $tmp/x.jpg: vae-dist writes PNG images only; give a file name ending in .png" \
    "$bin" "$command" --checkpoint "$ck" --out "$tmp/x.jpg"
done
[ ! -e "$tmp/x.jpg" ] && ok "no x.jpg written" || bad "x.jpg was written"
expect_error "vae-dist: error: --out $tmp/missing/dir/x.png: folder $tmp/missing/dir does not exist (create it first)" \
  "$bin" sample --checkpoint "$ck" --out "$tmp/missing/dir/x.png"
expect_error "vae-dist: error: --tensors $tmp/missing/z.safetensors: folder $tmp/missing does not exist (create it first)" \
  "$bin" sample --checkpoint "$ck" --out "$tmp/s.png" --tensors "$tmp/missing/z.safetensors"

# An autoencoder has no ELBO: its epoch line reports the reconstruction loss and says
# what it is; metrics.jsonl keeps the keys of a VAE run.
"$bin" train --data synthetic:600 --epochs 1 --batch-size 60 --latent 4 --autoencoder --out "$tmp/ae" > "$tmp/ae.log" 2>&1 || bad "train --autoencoder: $(tail -1 "$tmp/ae.log")"
line=$(grep '^epoch 1/1' "$tmp/ae.log")
if echo "$line" | grep -qE '^epoch 1/1  train_loss [0-9.]+  test_recon [0-9.]+ \(autoencoder: reconstruction loss only\)  [0-9]+ samples/s' \
   && ! echo "$line" | grep -qE 'nelbo|kl '; then
  ok "autoencoder line: $line"
else
  bad "autoencoder line: $line"
fi
line=$(grep '^epoch 1/1' "$tmp/vae.log")
echo "$line" | grep -qE '^epoch 1/1  train_loss [0-9.]+  test_nelbo [0-9.]+ \(recon [0-9.]+ \+ kl [0-9.]+\)  [0-9]+ samples/s' \
  && ok "VAE line: $line" || bad "VAE line: $line"
keys() { "$python" -c 'import json, sys; print(sorted(json.loads(open(sys.argv[1]).readline())))' "$1"; }
[ "$(keys "$tmp/ae/metrics.jsonl")" = "$(keys "$run/metrics.jsonl")" ] && ok "metrics.jsonl: same keys for both" \
  || bad "metrics.jsonl keys differ: $(keys "$tmp/ae/metrics.jsonl")"

# Near names: a mistyped subcommand or built-in data set is named with the likely one.
expect_error "vae-dist: error: unknown command 'trian'; did you mean 'train'? (commands: train, eval, sample, reconstruct, interpolate, traverse, latent-map, manifold, inspect, encode, bench; see vae-dist help)" \
  "$bin" trian --epochs 1
expect_error "vae-dist: error: synthtic: not found (did you mean --data synthetic?)" "$bin" train --data synthtic --out "$tmp/x"
expect_error "vae-dist: error: dsprite:1000: not found (did you mean --data dsprites:1000?)" "$bin" train --data dsprite:1000 --out "$tmp/x"

# More threads than cores: one warning line, and the run goes on. OMP_NUM_THREADS (and
# VAE_DIST_THREADS) set the threads when --threads is not given, as PyTorch users expect.
cores=$(nproc)
"$bin" train --data synthetic:600 --epochs 1 --batch-size 60 --latent 4 --threads $((cores * 32)) --out "$tmp/t64" > /dev/null 2> "$tmp/t64.err"; code=$?
[ "$code" -eq 0 ] && [ "$(cat "$tmp/t64.err")" = "warning: --threads $((cores * 32)) asks for more threads than the $cores core$([ "$cores" -gt 1 ] && echo s) this process may use; extra threads only wait for the others: use $cores or fewer" ] \
  && ok "--threads $((cores * 32)) on $cores cores: $(cat "$tmp/t64.err")" || bad "--threads $((cores * 32)): exit $code, $(cat "$tmp/t64.err")"
OMP_NUM_THREADS=1 "$bin" train --data synthetic:600 --epochs 1 --batch-size 60 --latent 4 --out "$tmp/omp" > "$tmp/omp.log" 2>&1
grep -q "x 1 thread," "$tmp/omp.log" && ok "OMP_NUM_THREADS=1: $(grep -o '[0-9]* rank[s]* ([a-z-]*) x 1 thread' "$tmp/omp.log")" || bad "OMP_NUM_THREADS=1: $(head -1 "$tmp/omp.log")"
VAE_DIST_THREADS=3 OMP_NUM_THREADS=1 "$bin" train --data synthetic:600 --epochs 1 --batch-size 60 --latent 4 --out "$tmp/vdt" > "$tmp/vdt.log" 2>&1
grep -q "x 3 threads," "$tmp/vdt.log" && ok "VAE_DIST_THREADS=3 wins over OMP_NUM_THREADS" || bad "VAE_DIST_THREADS=3: $(head -1 "$tmp/vdt.log")"

summary cli-usability
