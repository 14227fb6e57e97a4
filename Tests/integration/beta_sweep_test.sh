#!/usr/bin/env bash
# Launch/beta_sweep.sh in its quick mode (dsprites:2048, hidden 64, 1 epoch, beta 1 and 4 and
# the beta-TCVAE; about 20 s): the table has the right columns and rows, its numbers parse and
# equal each model's `vae-dist eval`, the best-MIG traversal is the best model's, the plot is a
# PNG (matplotlib from the tests' .venv), a second run trains nothing, more epochs continue with
# --resume, and a failed training, bad options, a folder with other options or more epochs each
# give one error line and exit code 1.
#   bash Tests/integration/beta_sweep_test.sh   -> beta-sweep: N passed, M failed
set -uo pipefail
. "$(dirname "$0")/lib.sh" beta-sweep
export BETA_SWEEP_QUICK=1 BETA_SWEEP_THREADS=1
# The plot is drawn with the tests' .venv (matplotlib installed there on first use), so it is
# checked everywhere the suite runs, CI included.
use_venv matplotlib || abort "no .venv with matplotlib"
plot=1
export BETA_SWEEP_PLOT=$plot BETA_SWEEP_PYTHON=$python

if BETA_SWEEP_OUT=$tmp/sweep bash Launch/beta_sweep.sh > "$tmp/run1.log" 2>&1; then
  ok "quick sweep ran: $(tail -1 "$tmp/run1.log")"
else
  bad "quick sweep failed: $(tail -1 "$tmp/run1.log")"; one_error "fewer epochs than trained" "beta-1: .* holds a run of 2 epochs, more than --epochs 1" \
  env BETA_SWEEP_OUT="$tmp/sweep" BETA_SWEEP_BETAS=1 bash Launch/beta_sweep.sh
one_error "a bad --epochs" "--epochs must be a positive integer, got 'x'" bash Launch/beta_sweep.sh --epochs x

summary beta-sweep; exit 1
fi

if out=$("$python" - "$tmp/sweep" 2>&1 <<'PY'
import csv, json, math, os, sys
out = sys.argv[1]
header = ["model", "beta", "tc_beta", "test_nelbo", "test_recon", "test_kl", "active_units", "mig",
          "mig_shape", "mig_scale", "mig_orientation", "mig_position_x", "mig_position_y", "train_seconds", "run"]
rows = list(csv.DictReader(open(os.path.join(out, "beta-sweep.csv"))))
assert list(rows[0]) == header, f"columns {list(rows[0])}"
assert [(r["model"], r["beta"], r["tc_beta"]) for r in rows] == \
    [("beta-VAE", "1.0", ""), ("beta-VAE", "4.0", ""), ("beta-TCVAE", "1.0", "6.0")], [(r["model"], r["beta"]) for r in rows]
for r in rows:
    numbers = {k: float(r[k]) for k in header[3:14]}
    assert all(math.isfinite(v) for v in numbers.values()), r
    assert abs(numbers["test_nelbo"] - numbers["test_recon"] - numbers["test_kl"]) < 0.01, r
    assert 0 <= numbers["mig"] <= 1 and numbers["test_kl"] > 0, r
    assert r["active_units"].isdigit() and int(r["active_units"]) <= 10, r
    e = json.load(open(os.path.join(r["run"], "eval.json")))
    for k in ["test_nelbo", "test_recon", "test_kl", "mig", "active_units"]:
        assert float(r[k]) == float(e[k]), f"{r['run']}: table {k} {r[k]} against eval {e[k]}"
    for f in ["shape", "scale", "orientation", "position_x", "position_y"]:
        assert float(r["mig_" + f]) == float(e["mig_per_factor"][f]), (r, f)
lines = [l for l in open(os.path.join(out, "beta-sweep.md")) if l.startswith("| ")]
assert lines[0].startswith("| model | beta | test NELBO | recon | KL | active units | MIG |"), lines[0]
assert len(lines) == 2 + len(rows), lines
for line, r in zip(lines[2:], rows):
    cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
    assert [float(c) for c in cells[1:7]] == [round(float(r[k]), n) for k, n in
        [("beta", 9), ("test_nelbo", 2), ("test_recon", 2), ("test_kl", 2), ("active_units", 0), ("mig", 3)]], (cells, r)
best = max(rows, key=lambda r: float(r["mig"]))
assert open(os.path.join(out, "traversal-best.png"), "rb").read() == open(os.path.join(best["run"], "traversal.png"), "rb").read(), \
    "traversal-best.png is not the best model's traversal"
print(f"table: {len(rows)} rows, columns and numbers match each eval.json; best MIG {best['mig']} ({os.path.basename(best['run'])}) traversal")
PY
); then ok "$out"; else bad "table: $(tail -1 <<< "$out")"; fi

for png in "$tmp/sweep/traversal-best.png" $([ "$plot" = 1 ] && echo "$tmp/sweep/beta-sweep.png"); do
  if [ "$(head -c 8 "$png" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; then ok "$(basename "$png") is a PNG"
  else bad "$(basename "$png") is missing or not a PNG"; fi
done

# Resumable: a second run trains nothing and leaves the checkpoints as they were.
before=$(cat "$tmp"/sweep/*/checkpoints/latest.safetensors | cksum)
if BETA_SWEEP_OUT=$tmp/sweep BETA_SWEEP_PLOT=0 bash Launch/beta_sweep.sh > "$tmp/run2.log" 2>&1 \
   && [ "$(grep -c 'trained already' "$tmp/run2.log")" = 3 ] && ! grep -q ': training' "$tmp/run2.log" \
   && [ "$(cat "$tmp"/sweep/*/checkpoints/latest.safetensors | cksum)" = "$before" ]; then
  ok "a second run trains nothing: $(grep -c 'trained already' "$tmp/run2.log") models trained already, checkpoints unchanged"
else
  bad "second run: $(tail -3 "$tmp/run2.log" | tr '\n' ' ')"
fi

# More epochs continue a finished model with --resume (its metrics.jsonl gains epoch 2).
if BETA_SWEEP_OUT=$tmp/sweep BETA_SWEEP_PLOT=0 BETA_SWEEP_EPOCHS=2 BETA_SWEEP_BETAS=1 BETA_SWEEP_TC_BETA=0 \
     bash Launch/beta_sweep.sh > "$tmp/run3.log" 2>&1 && grep -q 'beta-1: training (resumed' "$tmp/run3.log" \
   && grep -q '"epoch": 2,' "$tmp/sweep/beta-1/metrics.jsonl" \
   && [[ "$(grep 'global step' "$tmp/sweep/beta-1.log" | tail -1)" =~ global\ step\ ([1-9][0-9]*)\ to\ ([0-9]+) ]] \
   && [ "${BASH_REMATCH[2]}" -eq $((2 * BASH_REMATCH[1])) ] \
   && grep -q '^epochs 2$' "$tmp/sweep/beta-1/sweep-done"; then
  ok "--epochs 2 continues the finished 1-epoch model (global steps ${BASH_REMATCH[1]} to ${BASH_REMATCH[2]})"
else
  bad "--epochs 2: $(tail -2 "$tmp/run3.log" | tr '\n' ' ')"
fi

# Failures: one line on stderr, exit code 1.
one_error() {  # DESCRIPTION PATTERN COMMAND...: exit 1, one stderr line matching PATTERN
  local what=$1 pattern=$2; shift 2
  "$@" > "$tmp/err.out" 2> "$tmp/err.txt"; local rc=$?
  if [ "$rc" -eq 1 ] && [ "$(wc -l < "$tmp/err.txt")" -eq 1 ] && grep -q -e "$pattern" "$tmp/err.txt"; then
    ok "$what: $(cat "$tmp/err.txt")"
  else
    bad "$what: exit $rc, stderr: $(head -c 400 "$tmp/err.txt")"
  fi
}
one_error "a failed training" "training beta-1 failed (exit 1): .*hidden" \
  env BETA_SWEEP_OUT="$tmp/bad" BETA_SWEEP_HIDDEN=abc bash Launch/beta_sweep.sh
one_error "an unknown option" "unknown option '--bogus'" bash Launch/beta_sweep.sh --bogus
one_error "a finished folder with other options" "beta-1: .* holds a finished run with other options" \
  env BETA_SWEEP_OUT="$tmp/sweep" BETA_SWEEP_LR=0.0005 bash Launch/beta_sweep.sh

one_error "fewer epochs than trained" "beta-1: .* holds a run of 2 epochs, more than --epochs 1" \
  env BETA_SWEEP_OUT="$tmp/sweep" BETA_SWEEP_BETAS=1 bash Launch/beta_sweep.sh
one_error "a bad --epochs" "--epochs must be a positive integer, got 'x'" bash Launch/beta_sweep.sh --epochs x

summary beta-sweep
