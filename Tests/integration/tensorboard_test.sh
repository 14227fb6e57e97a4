#!/usr/bin/env bash
# TensorBoard reads what vae-dist writes: the tensorboard Python package (in .venv at the
# repository root, created on first use) loads the event files of short runs, and every
# metrics.jsonl field must be there as a scalar with the same value per epoch, and the
# epoch's image grids as PNGs (Tests/integration/tools/tensorboard_check.py). Also: a resume after a crash
# between an epoch's events and its checkpoint, 2 MPI ranks (rank 0 alone writes), a run
# that starts over, and a write failure; step rows (steps.jsonl, step/* scalars) with an ETA.
set -uo pipefail
. "$(dirname "$0")/lib.sh" tensorboard
# The reader: PyPI's tensorboard in the repository's .venv (installed on first use).
use_venv tensorboard pillow:PIL || abort "pip install tensorboard failed"

small=(train --data synthetic:512 --batch-size 64 --hidden 64 --latent 8)
export VAE_DIST_PROGRESS=0

# check RUN_DIR EVENT_FILES LABEL: runs the Python reader and counts its OK/BAD lines.
check() {
  local out
  out=$("$python" "$tools/tensorboard_check.py" "$1" "$2" 2>&1)
  if ! grep -qE '^(OK|BAD) ' <<< "$out"; then bad "$3: the reader failed: $(tail -3 <<< "$out")"; return; fi
  while IFS= read -r line; do
    case "$line" in
      "OK "*) ok "$3: ${line#OK }" ;;
      "BAD "*) bad "$3: ${line#BAD }" ;;
    esac
  done <<< "$out"
}

echo "tensorboard: 2 epochs, 1 rank"
"$bin" "${small[@]}" --epochs 2 --out "$tmp/runs/one" > "$tmp/one.log" 2>&1 || bad "training failed: $(tail -1 "$tmp/one.log")"
check "$tmp/runs/one" 1 "1 rank"

echo "tensorboard: resume after a crash between epoch 2's events and its checkpoint"
# Stand-in for that crash: the checkpoint of epoch 2 never happened, so latest is epoch 1.
cp -r "$tmp/runs/one" "$tmp/runs/resumed"
ck="$tmp/runs/resumed/checkpoints"
rm "$ck/latest.safetensors" "$ck/epoch-0002.safetensors" && cp "$ck/epoch-0001.safetensors" "$ck/latest.safetensors"
sleep 1  # a new second: the resumed run's file sorts after the first one, as it would in real use
"$bin" "${small[@]}" --epochs 3 --resume --out "$tmp/runs/resumed" > "$tmp/resumed.log" 2>&1 \
  || bad "resume failed: $(tail -1 "$tmp/resumed.log")"
# Two files, epoch 2 logged twice: TensorBoard must show it once (SessionLog START), steps 8, 16, 24.
check "$tmp/runs/resumed" 2 "resumed"

echo "tensorboard: 2 MPI ranks"
run_mpi 2 "$bin" "${small[@]}" --epochs 2 --out "$tmp/runs/mpi" > "$tmp/mpi.log" 2>&1 || bad "mpirun failed: $(tail -1 "$tmp/mpi.log")"
grep -q '"world_size": 2' "$tmp/runs/mpi/metrics.jsonl" 2>/dev/null && ok "2 ranks: metrics.jsonl says world_size 2" || bad "2 ranks: no world_size 2 in metrics.jsonl"
check "$tmp/runs/mpi" 1 "2 ranks"

echo "tensorboard: step rows (steps.jsonl and step/* scalars) of a Fashion-MNIST epoch on 2 ranks"
# No --log-every: the default gives a row about every 10 s, at least 25 an epoch.
run_mpi 2 "$bin" train --data /usr/share/datasets/fashion-mnist --epochs 1 --hidden 64 --latent 8 --out "$tmp/runs/fm" > "$tmp/fm.log" 2>&1 \
  || bad "Fashion-MNIST on 2 ranks failed: $(tail -2 "$tmp/fm.log")"
out=$("$python" "$tools/tensorboard_check.py" --steps "$tmp/runs/fm" 20 2>&1)
grep -qE '^(OK|BAD) ' <<< "$out" || bad "steps: the reader failed: $(tail -3 <<< "$out")"
while IFS= read -r line; do
  case "$line" in "OK "*) ok "Fashion-MNIST, 2 ranks: ${line#OK }" ;; "BAD "*) bad "Fashion-MNIST, 2 ranks: ${line#BAD }" ;; esac
done <<< "$out"
line=$(grep -m1 '^step .* elapsed [0-9:]*  ETA [0-9:]*$' "$tmp/fm.log")
[ -n "$line" ] && ok "log lines show elapsed time and the run's ETA: $line" || bad "no ETA in the log lines: $(grep -m1 '^step' "$tmp/fm.log")"
# metrics.jsonl keeps epoch rows only.
! grep -q '"kind"' "$tmp/runs/fm/metrics.jsonl" && ok "metrics.jsonl holds epoch rows only" || bad "step rows in metrics.jsonl"

echo "tensorboard: starting over and a failed write"
"$bin" "${small[@]}" --epochs 1 --overwrite --out "$tmp/runs/resumed" > "$tmp/over.log" 2>&1 || bad "--overwrite failed: $(tail -1 "$tmp/over.log")"
check "$tmp/runs/resumed" 1 "--overwrite (the earlier run's event files are gone)"
# A file size limit between the larger PNG file and the event file of the same 1-epoch run
# (which holds both images): the PNGs are written, the epoch's event record is not.
png=$(stat -c %s "$tmp/runs/resumed/samples/epoch-0001.png" "$tmp/runs/resumed/reconstructions/epoch-0001.png" | sort -n | tail -1)
events=$(cat "$tmp/runs/resumed"/events.out.tfevents.* | wc -c)
( ulimit -f $(((png + events) / 2 / 1024)); exec "$bin" "${small[@]}" --epochs 1 --out "$tmp/full" ) > /dev/null 2> "$tmp/full.err"; code=$?
if [ "$code" -eq 1 ] && [ "$(wc -l < "$tmp/full.err")" -eq 1 ] && grep -q "events.out.tfevents.*write failed" "$tmp/full.err"; then
  ok "write failure: exit 1, one line: $(cat "$tmp/full.err")"
else
  bad "write failure: exit $code, $(cat "$tmp/full.err")"
fi
# The failed record is cut off again: the file ends on its 2 whole first records.
out=$("$python" "$tools/tensorboard_check.py" --records "$tmp/full"/events.out.tfevents.* 2>&1)
[ "$out" = "OK 2 whole records" ] && ok "write failure: the event file still ends on a whole record (${out#OK })" \
  || bad "write failure: the event file after it: $out"
summary tensorboard
