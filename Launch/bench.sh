#!/usr/bin/env bash
# Performance, measured side by side in one run (these machines are noisy: read ratios):
#   1. every GEMM shape of the default model: vae-dist's kernel vs OpenBLAS sgemm through
#      numpy, one thread each (OPENBLAS_CORETYPE/L2_SIZE unset for numpy, as the env notes say);
#   2. training throughput against the PyTorch reference VAE (Launch/compare.sh with
#      Launch/torch_vae.py): 1 rank vs 1 thread, 2 ranks vs 2 threads, BENCH_EPOCHS epochs
#      (default 3) per side and round. PyTorch is installed into .venv-torch (pip, from PyPI)
#      when missing. Skip with BENCH_TORCH=0.
set -euo pipefail
cd "$(dirname "$0")/.."
bash Launch/setup.sh > /dev/null
. Launch/common.sh
bin=.build/release/vae-dist
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
use_venv  # numpy (OpenBLAS) in .venv

echo "== GEMM: vae-dist vs OpenBLAS (numpy), 1 thread, same shapes, same run"
"$bin" bench --json --batches 64,128 > "$tmp/ours.jsonl"
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 "$python" - "$tmp/ours.jsonl" <<'PY'
import json, sys, time
import numpy as np
rows = [json.loads(l) for l in open(sys.argv[1])]
def blas(form, m, n, k):
    rng = np.random.default_rng(0)
    if form == "A*B^T": a, b = rng.random((m, k), np.float32), rng.random((n, k), np.float32); f = lambda: a @ b.T
    elif form == "A*B": a, b = rng.random((m, k), np.float32), rng.random((k, n), np.float32); f = lambda: a @ b
    else: a, b = rng.random((k, m), np.float32), rng.random((k, n), np.float32); f = lambda: a.T @ b
    f(); times = []; start = time.perf_counter()
    while time.perf_counter() - start < 0.25 or len(times) < 5:
        t = time.perf_counter(); [f() for _ in range(5)]; times.append((time.perf_counter() - t) / 5)
    times.sort()
    return 2 * m * n * k / times[len(times) // 2] / 1e9, 2 * m * n * k / times[0] / 1e9
# GFLOP/s of the median call and of the fastest (the least disturbed by other work on a shared machine).
print(f"{'layer':14} {'form':6} {'m x n x k':>15} {'vae-dist':>9} {'OpenBLAS':>9} {'ratio':>6}"
      f" {'fastest':>9} {'OpenBLAS':>9} {'ratio':>6}")
worst = 9.9
for r in rows:
    if r["kind"] != "gemm": continue
    theirs, theirs_fastest = blas(r["form"], r["m"], r["n"], r["k"])
    worst = min(worst, r["gflops"] / theirs)
    print(f"{r['layer']:14} {r['form']:6} {r['m']:>5}x{r['n']}x{r['k']:<5} {r['gflops']:9.1f} {theirs:9.1f} {r['gflops'] / theirs:6.2f}"
          f" {r['fastest_gflops']:9.1f} {theirs_fastest:9.1f} {r['fastest_gflops'] / theirs_fastest:6.2f}")
for r in rows:
    if r["kind"] == "step":
        print(f"training step, batch {r['batch']}, {r['threads']} thread(s): {r['samples_per_second']:.0f} samples/s, median "
              f"{1e3 * r['step_seconds']:.2f} ms, fastest {1e3 * r['fastest_step_seconds']:.2f} ms "
              f"(batch, forward and backward {100 * r['compute_fraction']:.0f}%, optimizer {100 * r['optimizer_fraction']:.0f}%)"
              + (f", {r['speedup']:.2f}x {r['speedup_vs_threads']} thread(s)" if r["speedup"] else ""))
    if r["kind"] == "evaluation":
        print(f"evaluation of {r['examples']} test images, {r['threads']} thread(s): {1e3 * r['seconds']:.1f} ms, "
              f"{100 * r['epoch_fraction']:.1f}% of an epoch of {r['epoch_examples']} examples at batch {r['epoch_batch']}")
print(f"lowest GEMM ratio vae-dist/OpenBLAS: {worst:.2f}")
PY

[ "${BENCH_TORCH:-1}" = 0 ] && exit 0
echo "== Training throughput vs PyTorch (Launch/compare.sh, Fashion-MNIST, 784-400-20, batch 128)"
py=.venv-torch/bin/python
if ! "$py" -c "import torch, numpy" 2>/dev/null; then
  echo "bench: installing PyTorch into .venv-torch (once; a large download)"
  python3 -m venv .venv-torch && "$py" -m pip install -q torch numpy safetensors
fi
for ranks in 1 2; do PYTHON=$py bash Launch/compare.sh "$bin" /usr/share/datasets/fashion-mnist "$ranks" "${BENCH_EPOCHS:-3}"; done
