#!/usr/bin/env bash
# Run folders (docs/training.md#run-folders): without --out each training goes to a new numbered
# folder runs/NNNN and runs/latest is a symlink to the newest; --resume without --out continues
# runs/latest's target; a runs/latest that is a real folder (older versions) is left alone.
# The run record: OUT/run.json and the checkpoint's `run` key; `train --from RUN` repeats a run's
# options with overrides on top.
# Prints "N passed, M failed".
set -uo pipefail
. "$(dirname "$0")/lib.sh" runs
use_venv || abort "cannot set up .venv"  # $python: .venv with numpy and safetensors
export VAE_DIST_PROGRESS=0
small=(train --data synthetic:600 --epochs 1 --batch-size 64 --hidden 32 --latent 4)

echo "runs: two trainings without --out, then --resume without --out"
mkdir -p "$tmp/work" && cd "$tmp/work" || abort "no working folder"
"$bin" "${small[@]}" > first.log 2>&1 || bad "first run: $(tail -1 first.log)"
"$bin" "${small[@]}" > second.log 2>&1 || bad "second run: $(tail -1 second.log)"
[ -s runs/0001/checkpoints/latest.safetensors ] && [ -s runs/0002/checkpoints/latest.safetensors ] \
  && ok "two runs: runs/0001 and runs/0002 each hold a checkpoint" || bad "run folders: $(ls runs 2>&1 | tr '\n' ' ')"
[ -L runs/latest ] && [ "$(readlink runs/latest)" = 0002 ] && ok "runs/latest is a symlink to 0002" \
  || bad "runs/latest: $(ls -ld runs/latest 2>&1)"
grep -q "output runs/0002" second.log && ok "the second run names its folder: $(grep -o 'output runs/[0-9]*' second.log)" \
  || bad "the second run's output: $(head -1 second.log)"
# A step row past the checkpoint (as a crash after the row leaves): --resume drops it.
echo '{"kind": "step", "epoch": 9, "step": 99999, "loss": 1}' >> runs/0002/steps.jsonl
"$bin" train --resume --epochs 2 > resume.log 2>&1 || bad "--resume without --out: $(tail -1 resume.log)"
! grep -q 99999 runs/0002/steps.jsonl && grep -q '"epoch": 2' runs/0002/steps.jsonl \
  && ok "--resume drops steps.jsonl rows past the checkpoint and appends epoch 2's ($(wc -l < runs/0002/steps.jsonl) rows)" \
  || bad "steps.jsonl after --resume: $(tail -2 runs/0002/steps.jsonl)"
grep -q "^vae-dist: resumed from runs/0002/checkpoints/latest.safetensors" resume.log \
  && [ "$(wc -l < runs/0002/metrics.jsonl)" -eq 2 ] && [ "$(wc -l < runs/0001/metrics.jsonl)" -eq 1 ] && [ ! -e runs/0003 ] \
  && ok "--resume --epochs 2 without --out continued runs/0002 (2 epochs in its metrics.jsonl)" \
  || bad "--resume without --out: $(grep -E 'resumed|error' resume.log | head -2)"

echo "runs: under mpirun rank 0 picks the folder"
run_mpi 2 "$bin" "${small[@]}" > mpi.log 2>&1 || bad "mpirun: $(tail -2 mpi.log)"
[ -s runs/0003/checkpoints/latest.safetensors ] && [ "$(readlink runs/latest)" = 0003 ] && [ ! -e runs/0004 ] \
  && ok "2 ranks: one folder, runs/0003, runs/latest -> 0003" || bad "2 ranks: $(ls runs | tr '\n' ' ')"

echo "runs: a runs/latest folder of an older version is left alone"
mkdir -p "$tmp/old/runs/latest" && touch "$tmp/old/runs/latest/metrics.jsonl" && cd "$tmp/old" || abort "no old folder"
"$bin" "${small[@]}" > old.log 2>&1 || bad "run beside an old runs/latest: $(tail -1 old.log)"
[ -d runs/latest ] && [ ! -L runs/latest ] && [ -e runs/latest/metrics.jsonl ] && [ -s runs/0001/checkpoints/latest.safetensors ] \
  && grep -q "note: runs/latest is a folder" old.log && ok "old runs/latest kept, the run went to runs/0001: $(grep -o 'note: runs/latest.*' old.log)" \
  || bad "old runs/latest: $(ls -l runs | tr '\n' ' ') $(grep note old.log)"

echo "runs: the run record (run.json, the checkpoint's run key) on 2 ranks"
cd "$tmp" || abort "no tmp"
run_mpi 2 "$bin" train --data synthetic:600 --epochs 1 --batch-size 64 --hidden 32 --latent 4 --lr 0.002 --clip-grad-norm 3 --out "$tmp/A" > A.log 2>&1 \
  || bad "run A: $(tail -2 A.log)"
"$python" - "$tmp/A" "$("$bin" --version)" <<'PY' && ok "run.json and the checkpoint's run key: version, commit, command line, options, 2 ranks, threads, 2 hosts, ISA, start and end times" || bad "run record"
import json, re, sys
from safetensors import safe_open
run, version = sys.argv[1], sys.argv[2]
record = json.load(open(run + "/run.json"))
with safe_open(run + "/checkpoints/latest.safetensors", "np") as f:
    inner = json.loads(f.metadata()["run"])
for r in (record, inner):
    assert version == f"{r['version']} (commit {r['commit']})", (version, r["version"], r["commit"])
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", r["commit"]), r["commit"]  # Tests/test.sh builds through Launch/setup.sh
    assert "train --data synthetic:600" in r["command_line"] and "--lr 0.002" in r["command_line"], r["command_line"]
    assert r["ranks"] == 2 and len(r["hosts"]) == 2 and all(r["hosts"]) and r["threads"] >= 1 and r["isa"], r
    assert r["options"]["training"]["learningRate"] == 0.002 and r["options"]["model"]["hidden"] == [32], r["options"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["start_time"]), r["start_time"]
assert record["end_time"] >= record["start_time"] and "end_time" not in inner  # the checkpoint came before the end
PY
"$bin" inspect "$tmp/A" | grep -q '^  run = {.*"commit":' && ok "inspect prints the run record" || bad "inspect: no run record: $("$bin" inspect "$tmp/A" | head -3)"

echo "runs: train --from A --seed 2 --out B repeats every option of A but the seed"
"$bin" train --from "$tmp/A" --seed 2 --out "$tmp/B" > B.log 2>&1 || bad "--from: $(tail -2 B.log)"
"$python" - "$("$bin" inspect --json "$tmp/A")" "$("$bin" inspect --json "$tmp/B")" <<'PY' && ok "--from A --seed 2: B's config is A's but seed 2 and its --out (inspect --json)" || bad "--from configs differ"
import json, sys
a, b = (json.loads(json.loads(x)["metadata"]["config"]) for x in sys.argv[1:3])
assert b["training"]["seed"] == 2 and a["training"]["seed"] == 1, (a["training"]["seed"], b["training"]["seed"])
assert a["training"]["output"].endswith("/A") and b["training"]["output"].endswith("/B")
for c in (a, b):
    del c["training"]["seed"], c["training"]["output"]
assert a == b, {k: (a["training"][k], b["training"].get(k)) for k in a["training"] if a["training"][k] != b["training"].get(k)}
PY
! same "$tmp/A" "$tmp/B" && ok "--from starts from fresh parameters (B's differ from A's)" || bad "--from copied A's parameters"

summary runs
