#!/usr/bin/env bash
# One training per run folder (README "Reliability"), after Launch/setup.sh:
#   1. two trainings started together into one --out, 20 times: one trains, the other is refused
#      with one line naming the holder (OUT/.lock), and the first's checkpoint and metrics are
#      intact and its own;
#   2. --resume into a folder a training holds is refused; readers (inspect, eval, sample) work;
#   3. a lock left by a killed run is taken over with a note; a run that ends empties it;
#   4. the same under mpirun (rank 0 holds the lock).
# Runs are held before their first step (VAE_DIST_FAULT=hold:1:FILE) until the test releases
# them, so the second start always meets a live holder, on a CPU of any speed.
# Prints "lock: N passed, M failed".
set -uo pipefail
. "$(dirname "$0")/lib.sh" lock
use_venv || abort "cannot set up .venv"  # $python: .venv with numpy and safetensors
export VAE_DIST_PROGRESS=0
run=(train --data synthetic:2000 --hidden 32 --latent 4 --batch-size 100)

echo "lock: two trainings into one --out, 20 trials"
refused=0 intact=0
for trial in $(seq 20); do
  out=$tmp/c$trial release=$tmp/c$trial.release
  VAE_DIST_FAULT=hold:1:$release "$bin" "${run[@]}" --epochs 2 --seed 1 --out "$out" > "$tmp/a.log" 2>&1 & a=$!
  VAE_DIST_FAULT=hold:1:$release "$bin" "${run[@]}" --epochs 2 --seed 2 --out "$out" > "$tmp/b.log" 2>&1 & b=$!
  # The refused one ends; the other holds before step 1 until released.
  for _ in $(seq 1200); do kill -0 "$a" 2>/dev/null && kill -0 "$b" 2>/dev/null || break; sleep 0.05; done
  touch "$release"
  wait "$a"; ca=$?; wait "$b"; cb=$?
  if [ "$ca" -eq 0 ] && [ "$cb" -eq 1 ]; then winner=1 loser=$tmp/b.log
  elif [ "$ca" -eq 1 ] && [ "$cb" -eq 0 ]; then winner=2 loser=$tmp/a.log
  else echo "  trial $trial: exit codes $ca and $cb"; continue; fi
  [ "$(wc -l < "$loser")" -eq 1 ] && grep -q "^vae-dist: error: $out is in use by another training: pid [0-9]* on host .* holds $out/.lock; wait for it to end, or choose another --out$" "$loser" \
    && refused=$((refused + 1)) || echo "  trial $trial: refusal: $(cat "$loser")"
  seed=$(meta "$out/checkpoints/latest.safetensors" config | "$python" -c 'import json, sys; print(json.load(sys.stdin)["training"]["seed"])' 2>/dev/null)
  epochs=$("$python" -c 'import json, sys; print(",".join(str(json.loads(l)["epoch"]) for l in open(sys.argv[1])))' "$out/metrics.jsonl" 2>/dev/null)
  [ "$seed" = "$winner" ] && [ "$epochs" = "1,2" ] && [ ! -s "$out/.lock" ] && intact=$((intact + 1)) \
    || echo "  trial $trial: checkpoint seed '$seed' (winner $winner), metrics epochs '$epochs', lock '$(cat "$out/.lock")'"
done
[ "$refused" -eq 20 ] && ok "the second training was refused in $refused of 20 trials, naming the holder: $(cat "$loser")" || bad "refused in $refused of 20 trials"
[ "$intact" -eq 20 ] && ok "the first's checkpoint and metrics intact and its own in $intact of 20 (seed, epochs 1,2; lock emptied at the end)" || bad "intact in $intact of 20"

echo "lock: --resume into a held folder; readers"
"$bin" "${run[@]}" --epochs 1 --out "$tmp/r" > /dev/null 2>&1
VAE_DIST_FAULT=hold:21:$tmp/r.release "$bin" "${run[@]}" --epochs 2 --resume --out "$tmp/r" > "$tmp/r.log" 2>&1 & pid=$!
held "$tmp/r.log" 21 "$pid"
out=$("$bin" train --resume --out "$tmp/r" 2>&1); code=$?
[ "$code" -eq 1 ] && grep -q "is in use by another training: pid $pid on host" <<< "$out" && ok "--resume while held: exit 1, $out" || bad "--resume while held: exit $code, $out"
"$bin" inspect "$tmp/r/checkpoints/latest.safetensors" > /dev/null 2>&1 && "$bin" eval --checkpoint "$tmp/r/checkpoints/latest.safetensors" > /dev/null 2>&1 \
  && "$bin" sample --checkpoint "$tmp/r/checkpoints/latest.safetensors" --out "$tmp/r.png" > /dev/null 2>&1 \
  && ok "inspect, eval and sample read the held run's checkpoint (readers take no lock)" || bad "a reader failed while the run was held"
touch "$tmp/r.release"; wait "$pid"; code=$?
[ "$code" -eq 0 ] && [ "$(meta "$tmp/r/checkpoints/latest.safetensors" epoch)" = 2 ] && ok "the holder then finished epoch 2" || bad "the holder: exit $code, $(tail -1 "$tmp/r.log")"

echo "lock: a lock left by a killed run"
VAE_DIST_FAULT=hold:1 "$bin" "${run[@]}" --epochs 1 --out "$tmp/k" > "$tmp/k.log" 2>&1 & pid=$!
held "$tmp/k.log" 1 "$pid"
kill -9 "$pid"; wait "$pid" 2>/dev/null
grep -q "^pid $pid on host " "$tmp/k/.lock" && ok "kill -9 left its record: $(cat "$tmp/k/.lock")" || bad "no record left: '$(cat "$tmp/k/.lock")'"
"$bin" "${run[@]}" --epochs 1 --out "$tmp/k" > "$tmp/k2.log" 2>&1; code=$?
[ "$code" -eq 0 ] && grep -q "^vae-dist: note: took over $tmp/k/.lock from pid $pid on host .*, which ended without releasing it$" "$tmp/k2.log" && [ ! -s "$tmp/k/.lock" ] \
  && ok "the next run took it over: $(grep 'took over' "$tmp/k2.log")" || bad "take-over: exit $code, $(grep -v '^step' "$tmp/k2.log" | head -3)"

echo "lock: under mpirun"
mpi_setup 2
VAE_DIST_FAULT=hold:1:$tmp/m.release mpirun -n 2 "${MPIRUN_FLAGS[@]}" "$bin" "${run[@]}" --epochs 1 --out "$tmp/m" > "$tmp/m.log" 2>&1 & pid=$!
held "$tmp/m.log" 1 "$pid"
out=$(run_mpi 2 "$bin" "${run[@]}" --epochs 1 --out "$tmp/m" 2>&1); code=$?
touch "$tmp/m.release"; wait "$pid"; mcode=$?
[ "$code" -ne 0 ] && grep -q "error: $tmp/m is in use by another training" <<< "$out" && [ "$mcode" -eq 0 ] \
  && ok "2 ranks into a folder 2 ranks hold: refused ($(grep -o "error: $tmp/m is in use[^;]*" <<< "$out" | head -1)); the holder finished" \
  || bad "under mpirun: exit $code ($out), holder exit $mcode"

summary lock
