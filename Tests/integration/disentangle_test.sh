#!/usr/bin/env bash
# dSprites and the latent measures end to end (release build):
#   a short run on dsprites:N writes kl_per_dimension, active_units, mig, mig_per_factor to
#   metrics.jsonl; `eval` prints them; `encode` writes mu, logvar, labels, factors; the numpy block of docs/commands.md
#   recomputes MIG from that file to 1e-6 of `eval`; 1 and 2 ranks print the same
#   measures and encode the same bytes; bad options get one error line.
#   bash Tests/integration/disentangle_test.sh   -> disentangle: N passed, M failed
set -uo pipefail
. "$(dirname "$0")/lib.sh" disentangle
export VAE_DIST_PROGRESS=0
use_venv || abort "cannot set up .venv"  # $python: .venv with numpy and safetensors

if ! "$bin" train --data dsprites:6000 --epochs 1 --batch-size 100 --hidden 128 --latent 6 --threads 1 \
     --out "$tmp/run" > "$tmp/train.log" 2>&1; then
  abort "training failed: $(tail -1 "$tmp/train.log")"
fi

# metrics.jsonl: the measures of the test set, every epoch.
if out=$("$python" - "$tmp/run/metrics.jsonl" 2>&1 <<'PY'
import json, sys
line = json.loads(open(sys.argv[1]).readline())
assert len(line["kl_per_dimension"]) == 6 and all(k >= 0 for k in line["kl_per_dimension"]), line
assert 0 <= line["active_units"] <= 6 and 0 <= line["mig"] <= 1, line
assert list(line["mig_per_factor"]) == ["shape", "scale", "orientation", "position_x", "position_y"], line
print(f"metrics.jsonl: mig {line['mig']}, {line['active_units']} active units, kl_per_dimension {line['kl_per_dimension']}")
PY
); then ok "$out"; else bad "metrics.jsonl lacks the latent measures: $(tail -1 <<< "$out")"; fi

# eval on 1 and 2 ranks: the same measures.
"$bin" eval --checkpoint "$tmp/run" --threads 1 > "$tmp/eval1.json" 2> "$tmp/eval1.err" || bad "eval failed: $(cat "$tmp/eval1.err")"
run_mpi 2 "$bin" eval --checkpoint "$tmp/run" --threads 1 > "$tmp/eval2.json" 2> "$tmp/eval2.err" || bad "eval on 2 ranks failed: $(tail -2 "$tmp/eval2.err")"
if out=$("$python" - "$tmp/eval1.json" "$tmp/eval2.json" 2>&1 <<'PY'
import json, sys
one, two = (json.loads(open(p).read()) for p in sys.argv[1:3])
keys = ["kl_per_dimension", "active_units", "mig", "mig_per_factor"]
missing = [k for k in keys if k not in one]
assert not missing, f"eval lacks {missing}: {one}"
assert one["world_size"] == 1 and two["world_size"] == 2
differ = [k for k in keys if one[k] != two[k]]
assert not differ, f"1 and 2 ranks differ in {differ}: {[(one[k], two[k]) for k in differ]}"
print(f"eval: mig {one['mig']}, active units {one['active_units']}, identical on 1 and 2 ranks ({', '.join(keys)})")
PY
); then ok "$out"; else bad "$(tail -1 <<< "$out")"; fi

# encode: the file's tensors, and 1 vs 2 ranks byte for byte.
"$bin" encode --checkpoint "$tmp/run" --out "$tmp/codes.safetensors" --threads 1 > /dev/null 2> "$tmp/enc.err" || bad "encode failed: $(cat "$tmp/enc.err")"
run_mpi 2 "$bin" encode --checkpoint "$tmp/run" --out "$tmp/codes2.safetensors" --threads 1 > /dev/null 2> "$tmp/enc2.err" \
  || bad "encode on 2 ranks failed: $(tail -2 "$tmp/enc2.err")"
if cmp -s "$tmp/codes.safetensors" "$tmp/codes2.safetensors"; then ok "encode: 1 and 2 ranks write identical files"
else bad "encode: 1 and 2 ranks write different files"; fi
if out=$("$python" - "$tmp/codes.safetensors" 2>&1 <<'PY'
import json, sys
import numpy as np
from safetensors import safe_open
with safe_open(sys.argv[1], "np") as f:
    t = {k: f.get_tensor(k) for k in f.keys()}
    names = json.loads(f.metadata()["factor_names"])
assert t["mu"].shape == (600, 6) and t["mu"].dtype == np.float32 and t["logvar"].shape == (600, 6), {k: v.shape for k, v in t.items()}
assert t["labels"].dtype == np.int64 and t["factors"].shape == (600, 5) and names[0] == "shape"
assert (t["labels"] == t["factors"][:, 0]).all(), "labels are the shape factor"
assert len(np.unique(t["factors"][:, 2])) > 30, "orientation values"
print(f"encode: mu, logvar [600, 6] F32, labels [600] I64, factors [600, 5] {names}")
PY
); then ok "$out"; else bad "encode output: $(tail -1 <<< "$out")"; fi

# The numpy block of docs/commands.md (marked '# mig-numpy') recomputes MIG from the file.
awk '/^```python/ { inside = 1; block = ""; next } /^```/ { if (inside && block ~ /# mig-numpy/) printf "%s", block; inside = 0; next }
     inside { block = block $0 "\n" }' docs/commands.md > "$tmp/mig.py"
if [ ! -s "$tmp/mig.py" ]; then bad "docs/commands.md has no python block marked # mig-numpy"
elif (cd "$tmp" && "$python" mig.py > mig.out 2> mig.err); then
  if out=$("$python" - "$tmp/eval1.json" "$tmp/mig.out" 2>&1 <<'PY'
import ast, json, sys
ev = json.loads(open(sys.argv[1]).read())
text = open(sys.argv[2]).read().split(" ", 2)
mig, per_factor = float(text[1]), ast.literal_eval(text[2].strip())
assert abs(mig - ev["mig"]) <= 1e-6, f"numpy mig {mig} vs eval {ev['mig']}"
worst = max(abs(per_factor[k] - v) for k, v in ev["mig_per_factor"].items())
assert worst <= 1e-6, f"per factor: numpy {per_factor} vs eval {ev['mig_per_factor']}"
print(f"docs/commands.md numpy MIG {mig:.7f} = eval {ev['mig']} (per factor within {worst:.1e})")
PY
  ); then ok "$out"; else bad "$(tail -1 <<< "$out")"; fi
else bad "docs/commands.md numpy block failed: $(tail -2 "$tmp/mig.err")"; fi

# metrics.jsonl under mpirun: --deterministic gives 1 and 2 ranks the same parameters, so the
# measures gathered from the ranks' test shards must be the same numbers.
small=(train --data dsprites:2000 --epochs 1 --batch-size 100 --hidden 64 --latent 5 --threads 1 --deterministic)
"$bin" "${small[@]}" --out "$tmp/d1" > /dev/null 2>&1 || bad "deterministic training on 1 rank failed"
run_mpi 2 "$bin" "${small[@]}" --out "$tmp/d2" > /dev/null 2>&1 || bad "deterministic training on 2 ranks failed"
if out=$("$python" - "$tmp/d1/metrics.jsonl" "$tmp/d2/metrics.jsonl" 2>&1 <<'PY'
import json, sys
one, two = (json.loads(open(p).readline()) for p in sys.argv[1:3])
keys = ["kl_per_dimension", "active_units", "mig", "mig_per_factor"]
assert two["world_size"] == 2 and all(k in one for k in keys), (one, two)
differ = [k for k in keys if one[k] != two[k]]
assert not differ, f"metrics.jsonl on 1 and 2 ranks differ in {differ}: {[(one[k], two[k]) for k in differ]}"
print(f"metrics.jsonl, --deterministic: 1 and 2 ranks report the same measures (mig {one['mig']})")
PY
); then ok "$out"; else bad "$(tail -1 <<< "$out")"; fi

# Fashion-MNIST-like data without factors: labels only, no MIG.
"$bin" train --data synthetic:512 --epochs 1 --batch-size 64 --hidden 32 --latent 3 --out "$tmp/syn" > /dev/null 2>&1 || bad "synthetic training failed"
"$bin" eval --checkpoint "$tmp/syn" > "$tmp/syn.json" 2>&1
if grep -q '"active_units"' "$tmp/syn.json" && ! grep -q '"mig"' "$tmp/syn.json"; then ok "eval without discrete factors: kl_per_dimension and active_units, no mig"
else bad "eval on synthetic: $(cat "$tmp/syn.json")"; fi

# Bad input: one error line, exit code 1.
check_error() {  # EXPECTED-TEXT COMMAND...
  local expected=$1; shift
  local err code=0
  err=$("$@" 2>&1 >/dev/null) || code=$?
  if [ "$code" -eq 1 ] && [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] && [[ "$err" == *"$expected"* ]]; then ok "error: $err"
  else bad "expected one line with '$expected' and exit 1, got exit $code: $err"; fi
}
check_error "--split 'validation': expected test or train" "$bin" encode --checkpoint "$tmp/run" --split validation --out "$tmp/x.safetensors"
check_error "give a name ending in .safetensors" "$bin" encode --checkpoint "$tmp/run" --out "$tmp/x.npy"
check_error "folder $tmp/nope does not exist" "$bin" encode --checkpoint "$tmp/run" --out "$tmp/nope/x.safetensors"
check_error "expected dsprites:N with N a count from 2 to 737280" "$bin" train --data dsprites:1 --out "$tmp/bad"
check_error "expects 64x64 images but synthetic has 28x28" "$bin" encode --checkpoint "$tmp/run" --data synthetic --out "$tmp/x.safetensors"

summary disentangle
