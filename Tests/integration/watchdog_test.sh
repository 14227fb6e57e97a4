#!/usr/bin/env bash
# The stall watchdog (--timeout; README "Stalled ranks"), after Launch/setup.sh:
#   1. bad --timeout values: one clear error line, exit 1;
#   2. SIGSTOP on one rank (as a stuck NFS read or a paused VM would stop it) of 2 and of 4
#      ranks, and on rank 0: with --timeout 6 the job ends within 16 s of the stop, non-zero,
#      every live rank prints one line naming the stopped rank and the step, rank 0 (or, when
#      rank 0 is stopped, the others) warned at half the timeout; the last checkpoint is valid
#      and --resume finishes the run from it;
#   3. --resume with rank 0 stuck reading the checkpoint (VAE_DIST_FAULT=stall-read): rank 1 names rank 0
#      within the timeout (the deadline holds from the first collective);
#   4. --timeout 0: a stopped rank leaves the others waiting (no deadline), and waiting does
#      not burn a core (the poll sleeps).
# Every mpirun runs under `timeout`, and a trap continues and kills what this suite started
# (found by a marker in their environment), so nothing is left stopped.
set -uo pipefail
. "$(dirname "$0")/lib.sh" watchdog
use_venv || abort "cannot set up .venv"  # $python: .venv with numpy and safetensors
# The ranks of this suite carry this marker in their environment (mpirun passes it on).
export VAE_DIST_WATCHDOG_TEST=$tmp
export VAE_DIST_PROGRESS=0
# pids_of RANK: this suite's vae-dist processes of that MPI rank.
pids_of() {
  local p
  for p in $(pgrep -f "$bin train" 2>/dev/null); do
    tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "VAE_DIST_WATCHDOG_TEST=$tmp" || continue
    tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1" && echo "$p"
  done
}
# kill_ours: continues and kills every process this suite started that is still there.
kill_ours() {
  local r p
  for r in 0 1 2 3; do for p in $(pids_of "$r"); do kill -CONT "$p" 2>/dev/null; kill -9 "$p" 2>/dev/null; done; done
}
at_exit kill_ours

small=(train --data synthetic:6000 --hidden 128 --latent 8 --batch-size 100 --seed 5)
timeout_s=6

echo "watchdog: bad --timeout values"
for value in -1 nan inf; do
  out=$("$bin" "${small[@]}" --epochs 1 --timeout "$value" --out "$tmp/bad" 2>&1); code=$?
  [ "$code" -eq 1 ] && [ "$(wc -l <<< "$out")" -eq 1 ] && grep -q -- "--timeout must be 0" <<< "$out" \
    && ok "--timeout $value: exit 1: $out" || bad "--timeout $value: exit $code: $out"
done

# stall NP RANK NAME: trains on NP ranks (60 steps an epoch, a checkpoint each epoch), stops RANK
# with SIGSTOP once the progress lines pass step 70 (so epoch 1's checkpoint exists), and checks
# the job's end, its lines, the checkpoint, and a --resume to 4 epochs (240 steps).
stall() {
  local np=$1 stopped=$2 name=$3 out=$tmp/$3 log=$tmp/$3.log
  mpi_setup "$np"
  timeout -k 5 $((timeout_s + 30)) mpirun -n "$np" "${MPIRUN_FLAGS[@]}" "$bin" "${small[@]}" --epochs 40 --log-every 10 --timeout "$timeout_s" \
    --out "$out" > "$log" 2>&1 &
  local pid=$!
  if ! reached_step "$log" 70 "$pid"; then bad "$name: the run ended before step 70: $(tail -2 "$log")"; return; fi
  local target
  target=$(pids_of "$stopped")
  if [ -z "$target" ]; then bad "$name: no process of rank $stopped found"; kill "$pid"; return; fi
  kill -STOP $target
  local stopped_at last code took
  stopped_at=$(date +%s.%N)
  last=$(sed -n 's/^step \([0-9]*\) .*/\1/p' "$log" | tail -1)
  wait "$pid"; code=$?
  took=$(awk -v a="$stopped_at" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  kill_ours  # the stopped rank, should the job have left it
  # The job's end: non-zero (MPI_Abort), within timeout + 10 s of the stop, not by `timeout`.
  if [ "$code" -ne 0 ] && [ "$code" -ne 124 ] && [ "$code" -ne 137 ] && awk -v t="$took" -v l="$((timeout_s + 10))" 'BEGIN { exit !(t <= l) }'; then
    ok "$name: rank $stopped stopped after step $last; the job ended ${took}s later with exit $code"
  else
    bad "$name: exit $code ${took}s after the stop (limit $((timeout_s + 10))s; 124 or 137: still running after $((timeout_s + 30)) s): $(grep -v '^step' "$log" | tail -3)"
  fi
  # One error line per live rank, each naming the stopped rank and a step at or after the last
  # logged: "in step N", or "in the evaluation after step N" when the stop lands at an epoch's end
  # (the steps are fast: 50 of them pass between seeing step 70 and the stop).
  local live=() r lines=0 wrong=0 step="[0-9]*" where="step [0-9]*"
  for ((r = 0; r < np; r++)); do [ "$r" -ne "$stopped" ] && live+=("$r"); done
  for r in "${live[@]}"; do
    local line
    line=$(grep -E "^vae-dist: rank $r: error: stall in (step|the evaluation after step) [0-9]*: rank $stopped has not arrived after $timeout_s s" "$log" | head -1)
    if [ -n "$line" ]; then
      lines=$((lines + 1))
      where=$(sed -n 's/.*stall in \(step [0-9]*\|the evaluation after step [0-9]*\):.*/\1/p' <<< "$line")
      step=${where##* }
      [ "$step" -ge "$last" ] || wrong=$((wrong + 1))
    fi
  done
  if [ "$lines" -eq "${#live[@]}" ] && [ "$wrong" -eq 0 ]; then
    ok "$name: every live rank (${live[*]}) named rank $stopped in $where: $(grep -m1 "error: stall" "$log" | cut -c1-170)..."
  else
    bad "$name: $lines of ${#live[@]} live ranks named rank $stopped ($wrong at a step before $last): $(grep -E 'error|warning' "$log" | head -4)"
  fi
  local speaker=0; [ "$stopped" -eq 0 ] && speaker=${live[0]}
  grep -q "^vae-dist: rank $speaker: warning: stall in $where: waited 3.0 s for rank $stopped " "$log" \
    && ok "$name: warning at half the timeout: $(grep -m1 "rank $speaker: warning" "$log")" \
    || bad "$name: no warning from rank $speaker at $((timeout_s / 2)) s: $(grep warning "$log" | head -2)"
  # The last checkpoint is whole and resumable: --resume finishes 4 epochs from it.
  local ck=$out/checkpoints/latest.safetensors at ran
  if ! valid "$ck"; then bad "$name: latest.safetensors is not a valid checkpoint"; return; fi
  local ck_step
  ck_step=$(meta "$ck" step)
  run_mpi "$np" timeout 300 "$bin" "${small[@]}" --epochs 4 --out "$out" --resume > "$log.resume" 2>&1; code=$?
  at=$(resumed_at "$log.resume"); ran=$(ran_steps "$log.resume")
  if [ "$code" -eq 0 ] && [ -n "$at" ] && [ "$at" = "$ck_step" ] && [ "$at" -ge 60 ] && [ "$((at + ran))" -eq 240 ]; then
    ok "$name: checkpoint intact (step $ck_step); --resume continued at global step $at and ran the other $ran of 240 steps"
  else
    bad "$name: resume: exit $code, resumed at '$at' (checkpoint step '$ck_step'), ran '$ran': $(tail -1 "$log.resume")"
  fi
}

echo "watchdog: SIGSTOP on one rank, --timeout $timeout_s"
stall 2 1 "2 ranks, rank 1 stopped"
stall 4 2 "4 ranks, rank 2 stopped"
stall 2 0 "2 ranks, rank 0 stopped"

echo "watchdog: --resume while rank 0 cannot read the checkpoint"
# Rank 0's checkpoint read hangs (VAE_DIST_FAULT=stall-read: a hung filesystem) while rank 1
# waits in the checkpoint's broadcast: the deadline holds from the first collective.
mpi_setup 2
"$bin" "${small[@]}" --epochs 1 --out "$tmp/hung" > "$tmp/hung.first.log" 2>&1
start=$(date +%s)
VAE_DIST_FAULT=stall-read:120 timeout -k 5 $((timeout_s + 30)) mpirun -n 2 "${MPIRUN_FLAGS[@]}" "$bin" "${small[@]}" --epochs 2 --resume --timeout "$timeout_s" \
  --out "$tmp/hung" > "$tmp/hung.log" 2>&1
code=$?; took=$(( $(date +%s) - start ))
line=$(grep "rank 1: error: stall in start-up: rank 0 has not arrived" "$tmp/hung.log" | head -1)
if [ "$code" -ne 0 ] && [ "$code" -ne 124 ] && [ "$code" -ne 137 ] && [ "$took" -le $((timeout_s + 12)) ] && [ -n "$line" ]; then
  ok "rank 0 stuck reading the checkpoint: the job ended ${took}s after start, exit $code: ${line:0:160}"
else
  bad "rank 0 stuck reading the checkpoint: exit $code after ${took}s: $(tail -3 "$tmp/hung.log")"
fi
kill_ours

echo "watchdog: --timeout 0 (off)"
mpi_setup 2
timeout -k 5 60 mpirun -n 2 "${MPIRUN_FLAGS[@]}" "$bin" "${small[@]}" --epochs 40 --log-every 10 --timeout 0 --out "$tmp/off" > "$tmp/off.log" 2>&1 &
pid=$!
if reached_step "$tmp/off.log" 30 "$pid"; then
  target=$(pids_of 1); waiting=$(pids_of 0)
  kill -STOP $target
  sleep 1
  # Rank 0's CPU time over 3 s of waiting (clock ticks from /proc/PID/stat, utime + stime).
  ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
  before=$(ticks "$waiting"); sleep 3; after=$(ticks "$waiting")
  hz=$(getconf CLK_TCK)
  busy=$(awk -v a="$before" -v b="$after" -v hz="$hz" 'BEGIN { printf "%.0f", 100 * (b - a) / hz / 3 }')
  if kill -0 "$pid" 2>/dev/null && ! grep -q "stall" "$tmp/off.log"; then
    ok "--timeout 0: rank 1 stopped, the job still waits after 4 s, no stall line"
  else
    bad "--timeout 0: the job ended or reported a stall: $(grep -v '^step' "$tmp/off.log" | tail -2)"
  fi
  [ "$busy" -le 30 ] && ok "waiting rank 0 used ${busy}% of a core over 3 s (the poll sleeps)" || bad "waiting rank 0 used ${busy}% of a core"
  kill -CONT $target
  kill -TERM "$pid"; wait "$pid" 2>/dev/null
  kill_ours
else
  bad "--timeout 0: the run ended before step 30: $(tail -2 "$tmp/off.log")"
fi

summary watchdog
