#!/usr/bin/env bash
# The kernel dispatch in the release binary: the AVX-512 instantiation is really there
# (zmm FMAs), nothing outside it uses AVX-512 registers (so the AVX2 path can never run
# an AVX-512 instruction), the hot kernels call no fmaf, and the ISA chosen at start is
# the one this CPU's /proc/cpuinfo allows. VAE_DIST_ISA forces the lower path.
# `vae-dist bench` names that ISA and reports the step at each thread count and the evaluation.
set -uo pipefail
. "$(dirname "$0")/lib.sh" isa
export VAE_DIST_PROGRESS=0
command -v objdump >/dev/null || abort "objdump missing (apt-get install binutils)"

echo "isa: machine code of $bin"
objdump -d --no-show-raw-insn "$bin" > "$tmp/dis"
zmm=$(grep -c 'vfmadd.*zmm' "$tmp/dis")
[ "$zmm" -gt 0 ] && ok "$zmm zmm FMA instructions (AVX-512 kernels present)" || bad "no zmm FMA: the AVX-512 kernels were not compiled for AVX-512"
ymm=$(grep -c 'vfmadd.*ymm' "$tmp/dis")
[ "$ymm" -gt 0 ] && ok "$ymm ymm FMA instructions (AVX2 kernels)" || bad "no ymm FMA in the binary"

# Per function: AVX-512-only operands (zmm, ymm/xmm 16-31, opmask registers, embedded broadcasts).
awk '/^[0-9a-f]+ <.*>:$/ { f = $2 }
     /%zmm|%[xy]mm(1[6-9]|2[0-9]|3[01])\>|%k[0-7]\>|\{1to/ { n[f]++ }
     END { for (k in n) print n[k], k }' "$tmp/dis" > "$tmp/evex"
tagged=$(grep -c 'AVX512' "$tmp/evex")
stray=$(grep -v 'AVX512' "$tmp/evex")
[ -z "$stray" ] && [ "$tagged" -gt 0 ] && ok "AVX-512 registers only in the $tagged AVX512-tagged kernel functions" \
  || bad "AVX-512 registers outside the AVX-512 instantiation: $(echo "$stray" | head -3 | cut -c1-150)"
# The AVX-512 target's object files: every function they define carries the AVX512 tag in its
# name. A shared name (a specialization the AVX2 code also emits) could let the linker keep the
# AVX-512 copy for both, and the AVX2 path would then run AVX-512 instructions.
objects=$(ls .build/release/VAEKernelsAVX512.build/*.o 2>/dev/null)
if [ -n "$objects" ]; then
  code=$(nm --defined-only $objects | awk '$2 ~ /^[TtWw]$/ { print $3 }')
  untagged=$(echo "$code" | grep -v AVX512)
  [ -n "$code" ] && [ -z "$untagged" ] && ok "the AVX-512 target defines $(echo "$code" | wc -l) functions, all AVX512-tagged" \
    || bad "the AVX-512 target defines functions without the AVX512 tag: $(echo "$untagged" | head -3)"
else
  bad "no object files in .build/release/VAEKernelsAVX512.build"
fi
gemm512=$(awk '/^[0-9a-f]+ <.*(gemm|microKernel).*AVX512.*>:$/ { p = 1; next } /^[0-9a-f]+ <.*>:$/ { p = 0 } p && /vfmadd.*zmm/ { c++ } END { print c + 0 }' "$tmp/dis")
[ "$gemm512" -ge 24 ] && ok "AVX-512 GEMM: $gemm512 zmm FMAs (the 12x32 tile is 24 per step)" || bad "AVX-512 GEMM has $gemm512 zmm FMAs, expected >= 24"
# The 12x16 ymm tile: 24 ymm FMAs per step in its AVX512YMM specialization, on ymm16-31 too (EVEX).
tall=$(awk '/^[0-9a-f]+ <.*microKernel12x16.*AVX512.*YMM.*>:$/ { p = 1; next } /^[0-9a-f]+ <.*>:$/ { p = 0 } p && /vfmadd.*ymm/ { c++ } END { print c + 0 }' "$tmp/dis")
[ "$tall" -ge 24 ] && ok "AVX-512VL 12x16 tile: $tall ymm FMAs in its AVX512YMM instantiation" || bad "the 12x16 ymm tile has $tall ymm FMAs, expected >= 24"

# Hot kernels: every function of an ISA instantiation; fmaf calls mean a missing -march.
hot=$(awk '/^[0-9a-f]+ <.*>:$/ { p = ($2 ~ /AVX2|AVX512/) } p && /call.*fmaf/ { c++ } END { print c + 0 }' "$tmp/dis")
[ "$hot" -eq 0 ] && ok "no fmaf calls in the AVX2 and AVX-512 kernels" || bad "$hot fmaf calls in the kernels"

echo "isa: the kernels chosen at start (timed on the run's GEMMs, cached per CPU model)"
expected=avx2; expected_name="AVX2+FMA"; isas="avx2"
if grep -qw avx512f /proc/cpuinfo && grep -qw avx512bw /proc/cpuinfo && grep -qw avx512dq /proc/cpuinfo \
   && grep -qw avx512vl /proc/cpuinfo && grep -qw avx512cd /proc/cpuinfo; then
  expected=avx512; expected_name="AVX-512"; isas="avx2 avx512 avx512ymm"
fi
export XDG_CACHE_HOME="$tmp/cache"
"$bin" train --data synthetic:600 --epochs 1 --batch-size 60 --latent 4 --out "$tmp/run" > "$tmp/train.log" 2>&1
line=$(grep '^vae-dist: training' "$tmp/train.log")
if [ "$expected" = avx2 ]; then
  [[ "$line" == *"kernels AVX2+FMA 6x16 ymm (the only kernels this CPU runs)"* ]] && ok "train start-up line: ...${line##*output $tmp/run, }" \
    || bad "train start-up line does not name the only kernels, AVX2: $line"
else
  [[ "$line" == *"kernels AVX"*"(measured: "*" ms/step vs "*" ms; cached in $XDG_CACHE_HOME/vae-dist/kernels.json)"* ]] \
    && [ -s "$XDG_CACHE_HOME/vae-dist/kernels.json" ] && ok "train start-up line: ...${line##*output $tmp/run, }" \
    || bad "train start-up line does not say the kernels were measured and cached: $line"
  "$bin" train --data synthetic:600 --epochs 1 --batch-size 60 --latent 4 --out "$tmp/run" --overwrite > "$tmp/train2.log" 2>&1
  again=$(grep '^vae-dist: training' "$tmp/train2.log")
  [[ "$again" == *"(measured earlier: "*"; from $XDG_CACHE_HOME/vae-dist/kernels.json)"* ]] \
    && ok "second start: the cached choice: ...${again##*kernels }" || bad "second start did not use the cache: $again"
  out=$(XDG_CACHE_HOME=/proc/none "$bin" train --data synthetic:600 --epochs 1 --batch-size 60 --latent 4 --out "$tmp/run" --overwrite 2>&1); code=$?
  line3=$(echo "$out" | grep '^vae-dist: training')
  [ "$code" -eq 0 ] && [[ "$line3" == *"(measured: "*" ms)"* ]] && ! echo "$out" | grep -qi "cache.*error\|warning" \
    && ok "unwritable cache: measured again, silently: ...${line3##*kernels }" || bad "unwritable cache: exit $code: $line3"
fi
# Bit for bit: every kernel set trains to the same parameters (each output element is one FMA
# chain over the same K blocks, whatever the tile), so the choice changes speed only.
for isa in $isas; do
  VAE_DIST_ISA=$isa "$bin" train --data synthetic:600 --epochs 1 --batch-size 60 --latent 4 --threads 2 --out "$tmp/bits-$isa" > "$tmp/bits-$isa.log" 2>&1 \
    || bad "VAE_DIST_ISA=$isa train failed: $(tail -2 "$tmp/bits-$isa.log")"
done
if [ "$isas" != avx2 ]; then
  same=1
  for isa in $isas; do
    python3 - "$tmp/bits-avx2/checkpoints/latest.safetensors" "$tmp/bits-$isa/checkpoints/latest.safetensors" <<'PY' || same=0
import json, struct, sys
def tensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    body = raw[8 + n:]
    return {k: body[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in header.items() if k != "__metadata__"}
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
assert a.keys() == b.keys() and len(a) > 0 and all(a[k] == b[k] for k in a), [k for k in a if a.get(k) != b.get(k)][:3]
PY
  done
  [ "$same" = 1 ] && ok "VAE_DIST_ISA=$(echo $isas | tr ' ' '|'): bit-identical parameters and Adam moments after an epoch" \
    || bad "the kernel sets trained to different bits"
fi
"$bin" bench --batches 4,8 --threads 1,2 --json > "$tmp/bench.jsonl" 2>&1
peak=$(head -1 "$tmp/bench.jsonl")
# The step at each thread count (the speedup paired round by round against the first count)
# and the evaluation's share of an epoch, paired with the training steps between its repeats.
python3 - "$tmp/bench.jsonl" <<'PY' && ok "bench: steps at 1 and 2 threads, speedups, evaluation: $(grep '"evaluation"' "$tmp/bench.jsonl" | tail -1 | cut -c1-150)" \
  || bad "bench's step or evaluation lines: $(tail -3 "$tmp/bench.jsonl")"
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
steps = {(r["batch"], r["threads"]): r for r in rows if r["kind"] == "step"}
evals = {r["threads"]: r for r in rows if r["kind"] == "evaluation"}
assert sorted(steps) == [(4, 1), (4, 2), (8, 1), (8, 2)], sorted(steps)
for (batch, threads), r in steps.items():
    assert r["fastest_step_seconds"] <= r["step_seconds"], r
    assert abs(r["samples_per_second"] * r["step_seconds"] - batch) < 1e-3 * batch, r
    assert (r["speedup"] is None) == (threads == 1), r
    assert threads == 1 or (0.2 < r["speedup"] < 4 and r["speedup_vs_threads"] == 1), r
assert sorted(evals) == [1, 2], sorted(evals)
for threads, r in evals.items():
    assert r["examples"] == 10000 and r["epoch_examples"] == 60000 and r["epoch_batch"] == 8, r
    assert 0 < r["fastest_seconds"] <= r["seconds"], r
    assert abs(r["gflops"] - 10000 * 1.3024e6 / r["seconds"] / 1e9) < 1e-3 * r["gflops"], r
    # Its share of an epoch: near the evaluation time over 60,000 examples at the step rate.
    ratio = r["epoch_fraction"] / (r["seconds"] / (60000 / steps[(8, threads)]["samples_per_second"]))
    assert 0.25 < ratio < 4, (ratio, r)
PY
# Every kernel set this CPU runs timed on the step's GEMMs, the chosen one among them.
python3 - "$tmp/bench.jsonl" "$isas" <<'PY' && ok "bench: every kernel set's step: $(grep '"kernels"' "$tmp/bench.jsonl" | cut -c1-110 | tr '\n' ' ')" \
  || bad "bench's kernel lines: $(grep '"kernels"\|"peak"' "$tmp/bench.jsonl")"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
peak = next(r for r in rows if r["kind"] == "peak")
paths = {r["isa"]: r for r in rows if r["kind"] == "kernels"}
assert sorted(paths) == sorted(sys.argv[2].split()), sorted(paths)
assert [i for i, r in paths.items() if r["chosen"]] == [peak["isa"]], (peak, paths)
assert all(r["gemm_seconds_per_step"] > 0 and r["versus_fastest"] >= 1 and r["batch"] == 8 for r in paths.values()), paths
assert peak["isa_name"].split()[0] in peak["choice"], peak
# The process computes with flush-to-zero and denormals-are-zero (FloatEnvironment.swift).
assert peak["flush_denormals"] is True, peak
PY
if [ "$expected" = avx2 ]; then
  out=$(VAE_DIST_ISA=avx512 "$bin" bench --batches 4 2>&1); code=$?
  [ "$code" -eq 1 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] && [[ "$out" == *"VAE_DIST_ISA=avx512"* ]] \
    && ok "no AVX-512 here: VAE_DIST_ISA=avx512 refused, exit 1: $out" || bad "VAE_DIST_ISA=avx512 on an AVX2 CPU: exit $code: $out"
fi
out=$(VAE_DIST_ISA=avx2 "$bin" train --data synthetic:600 --epochs 1 --batch-size 60 --latent 4 --out "$tmp/run2" 2>&1 | grep '^vae-dist: training')
[[ "$out" == *"kernels AVX2+FMA"* ]] && ok "VAE_DIST_ISA=avx2 forces the AVX2 kernels" || bad "VAE_DIST_ISA=avx2: $out"
out=$(VAE_DIST_ISA=sse "$bin" inspect nothing 2>&1); code=$?
[ "$code" -eq 1 ] && [[ "$out" == "vae-dist: error: VAE_DIST_ISA=sse: expected auto, avx2, avx512 or avx512ymm" ]] \
  && ok "bad VAE_DIST_ISA: one line, exit 1" || bad "VAE_DIST_ISA=sse: exit $code: $out"

# A CPU without AVX2: everything but the start-up check is compiled for x86-64-v3, so without
# that check the first vector instruction would end the process with SIGILL. qemu-user emulates
# an older CPU (Westmere: SSE4.2, no AVX) and a Haswell (AVX2 + FMA) for the same binary.
if [ "$(uname -m)" = x86_64 ]; then
  if command -v qemu-x86_64 >/dev/null; then
    out=$(qemu-x86_64 -cpu Westmere "$bin" train --data synthetic:600 --epochs 1 2>&1); code=$?
    [ "$code" -eq 1 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] && [[ "$out" == "vae-dist: error: this CPU lacks AVX2, which this build requires"* ]] \
      && ok "a CPU without AVX2 (qemu -cpu Westmere): one line, exit 1: $out" || bad "qemu -cpu Westmere: exit $code: $(echo "$out" | head -3)"
    out=$(qemu-x86_64 -cpu Haswell "$bin" --version 2>/dev/null); code=$?
    [ "$code" -eq 0 ] && [ -n "$out" ] && ok "an AVX2 CPU (qemu -cpu Haswell) passes the start-up check: --version $out" \
      || bad "qemu -cpu Haswell: --version exit $code"
  else
    bad "qemu-x86_64 missing (apt-get install qemu-user): the check for CPUs without AVX2 did not run"
  fi
fi
summary isa
