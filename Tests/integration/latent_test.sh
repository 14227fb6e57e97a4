#!/usr/bin/env bash
# The latent space, seen and measured: `latent-map` and `manifold` on 1 rank and under
# mpirun -n 2 (same pictures), their errors, and aggregate_kl / posterior_std_mean in eval and
# metrics.jsonl. Tiny synthetic runs (3 shapes = 3 labels). Prints "N passed, M failed".
set -uo pipefail
. "$(dirname "$0")/lib.sh" latent
use_venv || abort "cannot set up .venv"  # $python: .venv with numpy and safetensors
export VAE_DIST_PROGRESS=0
check() { "$python" "$tools/check_latent.py" "$@"; }
grid() { "$python" "$tools/check_grids.py" "$@"; }
train() { local out=$1; shift; "$bin" train --data synthetic:600 --epochs 1 --batch-size 50 --out "$tmp/$out" "$@" > "$tmp/$out.log" 2>&1 \
  || bad "train $out: $(tail -1 "$tmp/$out.log")"; }
train l2 --latent 2
train l4 --latent 4
train ae --latent 2 --autoencoder
train l1 --latent 1

echo "latent: 1 rank"
"$bin" latent-map --checkpoint "$tmp/l2" --out "$tmp/map2.png" > "$tmp/map2.log" 2>&1 && out=$(check map "$tmp/map2.png" "latent dimensions" 3) \
  && ok "latent-map, latent 2: $out" || bad "latent-map, latent 2: $out $(tail -1 "$tmp/map2.log")"
"$bin" latent-map --checkpoint "$tmp/l4" --out "$tmp/map4.png" > "$tmp/map4.log" 2>&1 && out=$(check map "$tmp/map4.png" "principal components" 3) \
  && ok "latent-map, latent 4: $out" || bad "latent-map, latent 4: $out $(tail -1 "$tmp/map4.log")"
grep -q "top 2 principal components" "$tmp/map4.log" && ok "latent-map prints its caption" || bad "latent-map caption: $(cat "$tmp/map4.log")"
# 28x28 tiles, 2 px padding, scale 2: 7 columns and rows are (30*7+2)*2 = 424 px.
for ck in l2 l4; do
  "$bin" manifold --checkpoint "$tmp/$ck" --steps 7 --out "$tmp/man-$ck.png" > "$tmp/man-$ck.log" 2>&1 && out=$(grid size "$tmp/man-$ck.png" 424 424) \
    && ok "manifold, $ck: a 7x7 grid, $(sed 's/.*: z from/z from/' "$tmp/man-$ck.log")" || bad "manifold, $ck: $out $(tail -1 "$tmp/man-$ck.log")"
done

# Images without labels: the map is drawn in one color, without a legend.
"$python" - "$tmp/nolabels" <<'PY'
import gzip, os, struct, sys
os.makedirs(sys.argv[1])
for name, n in (("train", 20), ("t10k", 30)):
    pixels = bytes((i * 37 + j * 11) % 256 for i in range(n) for j in range(784))
    open(os.path.join(sys.argv[1], f"{name}-images-idx3-ubyte"), "wb").write(struct.pack(">IIII", 0x803, n, 28, 28) + pixels)
PY
"$bin" latent-map --checkpoint "$tmp/l2" --data "$tmp/nolabels" --out "$tmp/plain.png" > "$tmp/plain.log" 2>&1 \
  && out=$(check map "$tmp/plain.png" "latent dimensions" 0) && ok "latent-map without labels: $out" || bad "latent-map without labels: $out $(tail -1 "$tmp/plain.log")"

"$bin" latent-map --checkpoint "$tmp/l4" --data "$tmp/nolabels" --out "$tmp/plain4.png" > /dev/null 2>&1 || bad "latent-map l4 on unlabeled data"
# The principal-component plane against numpy: the top two eigenvectors of the means' covariance.
if out=$("$python" - "$tmp/l4/checkpoints/latest.safetensors" "$tmp/nolabels/t10k-images-idx3-ubyte" "$tmp/plain4.png" <<'PY'
import json, struct, sys
import numpy as np
sys.path.insert(0, "Tests/integration/tools")
from check_latent import read_png
blob = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", blob[:8])[0]
header = json.loads(blob[8:8 + n])
def tensor(name):
    a, b = header[name]["data_offsets"]
    return np.frombuffer(blob[8 + n + a:8 + n + b], dtype=np.float32).reshape(header[name]["shape"]).astype(np.float64)
x = np.frombuffer(open(sys.argv[2], "rb").read(), np.uint8, offset=16).reshape(-1, 784) / 255.0
h = np.maximum(x @ tensor("encoder.0.weight").T + tensor("encoder.0.bias"), 0)
mu = h @ tensor("encoder.mu.weight").T + tensor("encoder.mu.bias")
values, vectors = np.linalg.eigh(np.cov(mu.T, bias=True))
top = vectors[:, ::-1][:, :2].T
plane = np.array(json.loads(read_png(sys.argv[3])[1]["vae-dist:plane"]))
cosines = np.abs((plane * top).sum(1))
assert plane.shape == (2, 4) and (cosines > 1 - 1e-6).all(), (plane, top)
print(f"|cos| with numpy's top 2 eigenvectors: {cosines[0]:.8f}, {cosines[1]:.8f}")
PY
); then ok "latent-map, latent 4: the plane is numpy's top two eigenvectors ($out)"; else bad "latent-map plane against numpy: $out"; fi
echo "latent: aggregate posterior in eval and metrics.jsonl"
# numpy as the reference: the encoder run from the checkpoint's tensors on the same images, the
# moments of the means, log det C from numpy's eigenvalues (the same 1e-6 floor).
for ck in l4 ae; do
  ev=$("$bin" eval --checkpoint "$tmp/$ck" --data "$tmp/nolabels" 2>&1)
  if out=$("$python" - "$tmp/$ck/checkpoints/latest.safetensors" "$tmp/nolabels/t10k-images-idx3-ubyte" "$ev" "$ck" <<'PY'
import json, struct, sys
import numpy as np
blob = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", blob[:8])[0]
header = json.loads(blob[8:8 + n])
def tensor(name):
    a, b = header[name]["data_offsets"]
    return np.frombuffer(blob[8 + n + a:8 + n + b], dtype=np.float32).reshape(header[name]["shape"]).astype(np.float64)
x = np.frombuffer(open(sys.argv[2], "rb").read(), np.uint8, offset=16).reshape(-1, 784) / 255.0
h, k = x, 0
while f"encoder.{k}.weight" in header:
    h = np.maximum(h @ tensor(f"encoder.{k}.weight").T + tensor(f"encoder.{k}.bias"), 0); k += 1
mu = h @ tensor("encoder.mu.weight").T + tensor("encoder.mu.bias")
logvar = h @ tensor("encoder.logvar.weight").T + tensor("encoder.logvar.bias")
d = mu.shape[1]
m, c = mu.mean(0), np.cov(mu.T, bias=True)
kl = 0.5 * (np.trace(c) + m @ m - d - np.log(np.maximum(np.linalg.eigvalsh(c), 1e-6)).sum())
std = 0.0 if sys.argv[4] == "ae" else np.exp(0.5 * logvar).mean()
got = json.loads(sys.argv[3])
assert abs(got["aggregate_kl"] - kl) <= 1e-4 * abs(kl) + 1e-5, (got["aggregate_kl"], kl)
assert abs(got["posterior_std_mean"] - std) <= 1e-4 * std + 1e-6, (got["posterior_std_mean"], std)
print(f"aggregate_kl {got['aggregate_kl']} vs numpy {kl:.6g}, posterior_std_mean {got['posterior_std_mean']} vs numpy {std:.6g}")
PY
  ); then ok "eval $ck equals numpy: $out"; else bad "eval $ck against numpy: $out / $ev"; fi
done
if "$python" - "$tmp" <<'PY'
import json, sys
for run in ("l2", "l4", "ae"):
    line = json.loads(open(f"{sys.argv[1]}/{run}/metrics.jsonl").readline())
    assert line["aggregate_kl"] >= 0 and line["posterior_std_mean"] >= 0, (run, line)
    if run == "ae":
        assert line["posterior_std_mean"] == 0, line
    else:
        assert line["posterior_std_mean"] > 0, line
PY
then ok "metrics.jsonl: aggregate_kl >= 0; posterior_std_mean > 0 for the VAEs, 0 for the autoencoder"; else bad "metrics.jsonl lacks the aggregate posterior"; fi
e1=$("$bin" eval --checkpoint "$tmp/l4" 2>&1)
"$python" -c 'import json,sys; m=json.loads(sys.argv[1]); assert m["aggregate_kl"] > 0 and m["posterior_std_mean"] > 0, m' "$e1" \
  && ok "eval reports aggregate_kl and posterior_std_mean" || bad "eval: $e1"

echo "latent: mpirun -n 2 (the means gathered; rank 0 writes)"
e2=$(run_mpi 2 "$bin" eval --checkpoint "$tmp/l4" 2>&1 | grep '^{')
"$python" -c '
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for k in ("aggregate_kl", "posterior_std_mean"):
    assert abs(a[k] - b[k]) <= 1e-4 * abs(a[k]) + 1e-6, (k, a[k], b[k])
print("aggregate_kl %g (1 rank) vs %g (2 ranks)" % (a["aggregate_kl"], b["aggregate_kl"]))' "$e1" "$e2" > "$tmp/cmp" 2>&1 \
  && ok "eval on 2 ranks: $(cat "$tmp/cmp")" || bad "eval on 2 ranks: $(tail -1 "$tmp/cmp") / $e2"
for ck in l2 l4; do
  run_mpi 2 "$bin" latent-map --checkpoint "$tmp/$ck" --out "$tmp/map-mpi-$ck.png" > "$tmp/mpi-$ck.log" 2>&1 || bad "mpirun latent-map $ck: $(tail -2 "$tmp/mpi-$ck.log")"
  n=$(grep -c "wrote the latent map" "$tmp/mpi-$ck.log")
  [ "$n" = 1 ] && ok "mpirun latent-map $ck: one rank reports writing" || bad "mpirun latent-map $ck: $n ranks report writing"
  src=$([ $ck = l2 ] && echo map2 || echo map4)
  out=$(check same "$tmp/$src.png" "$tmp/map-mpi-$ck.png") && ok "mpirun latent-map $ck equals 1 rank: $out" || bad "mpirun latent-map $ck: $out"
done
run_mpi 2 "$bin" manifold --checkpoint "$tmp/l4" --steps 7 --out "$tmp/man-mpi.png" > "$tmp/man-mpi.log" 2>&1 \
  && cmp -s "$tmp/man-mpi.png" "$tmp/man-l4.png" && ok "mpirun manifold (latent 4, gathered principal directions) is the 1-rank picture" \
  || bad "mpirun manifold: $(tail -2 "$tmp/man-mpi.log")"

echo "latent: errors and help"
expect_error() {  # expect_error WHAT PATTERN COMMAND...: exit 1, one stderr line matching PATTERN
  local what=$1 pattern=$2; shift 2
  "$@" > "$tmp/out" 2> "$tmp/err"; local code=$?
  if [ $code = 1 ] && [ "$(wc -l < "$tmp/err")" = 1 ] && grep -q "$pattern" "$tmp/err"; then ok "$what: $(cat "$tmp/err")"
  else bad "$what: exit $code, stderr: $(head -3 "$tmp/err")"; fi
}
expect_error "latent-map, latent 1" "needs at least 2" "$bin" latent-map --checkpoint "$tmp/l1" --out "$tmp/x.png"
expect_error "manifold, latent 1" "needs at least 2" "$bin" manifold --checkpoint "$tmp/l1" --out "$tmp/x.png"
expect_error "manifold --steps 1" "steps must be" "$bin" manifold --checkpoint "$tmp/l2" --steps 1 --out "$tmp/x.png"
expect_error "latent-map --out x.jpg" "PNG images only" "$bin" latent-map --checkpoint "$tmp/l2" --out "$tmp/x.jpg"
expect_error "latent-map, missing checkpoint" "nope.safetensors" "$bin" latent-map --checkpoint "$tmp/nope.safetensors" --out "$tmp/x.png"
expect_error "latent-map --limit 0" "limit" "$bin" latent-map --checkpoint "$tmp/l2" --limit 0 --out "$tmp/x.png"
for command in latent-map manifold; do
  "$bin" $command --help | grep -q "principal" && ok "$command --help" || bad "$command --help"
done
summary latent
