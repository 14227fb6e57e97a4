#!/usr/bin/env bash
# Threads inside a rank never change a bit of the result (after Launch/setup.sh):
#   1. one epoch of synthetic:4096 on --threads 1, 2 and 3: checkpoints equal at tolerance 0;
#   2. hybrid: mpirun -n 2 --threads 2 equals mpirun -n 2 --threads 1 at tolerance 0;
#   3. the start-up line names the threads per rank, and the default is 1 thread per rank
#      when 4 ranks share this machine's cores;
#   4. a bad --threads is one clear line and exit code 1;
#   5. vae-dist eval prints the same losses on 1 and 3 threads.
# Prints "threads: N passed, M failed".
set -uo pipefail
. "$(dirname "$0")/lib.sh" threads
use_venv || abort "cannot set up .venv"  # $python: .venv with numpy and safetensors
export VAE_DIST_PROGRESS=0
args=(train --data synthetic:4096 --epochs 1 --batch-size 128 --seed 3)

echo "threads: --threads 1, 2 and 3 after one epoch, tolerance 0"
for t in 1 2 3; do
  "$bin" "${args[@]}" --threads "$t" --out "$tmp/t$t" > "$tmp/t$t.log" 2>&1 || bad "--threads $t failed: $(tail -1 "$tmp/t$t.log")"
  grep -q "^vae-dist: training .* 1 rank (.*) x $t thread" "$tmp/t$t.log" \
    && ok "--threads $t: the start-up line says $t thread(s) per rank" || bad "--threads $t: start-up line: $(head -1 "$tmp/t$t.log")"
done
for t in 2 3; do
  out=$(compare "$tmp/t1" "$tmp/t$t" 0) && ok "--threads $t vs 1: $(echo "$out" | cut -d'(' -f1)" || bad "--threads $t vs 1: $out"
done

# vae-dist eval: the same losses on 1 and 3 threads (everything but the timing).
losses() { "$bin" eval --checkpoint "$tmp/t1/checkpoints/latest.safetensors" --threads "$1" | sed 's/"seconds": [^,]*, //'; }
a=$(losses 1); b=$(losses 3)
[ -n "$a" ] && [ "$a" = "$b" ] && ok "eval --threads 3 prints the same losses as --threads 1" || bad "eval: '$a' vs '$b'"

echo "threads: hybrid, mpirun -n 2 with 2 threads per rank"
run_mpi 2 --bind-to none "$bin" "${args[@]}" --threads 1 --out "$tmp/n2t1" > "$tmp/n2t1.log" 2>&1 || bad "-n 2 --threads 1: $(tail -2 "$tmp/n2t1.log")"
run_mpi 2 --bind-to none "$bin" "${args[@]}" --threads 2 --out "$tmp/n2t2" > "$tmp/n2t2.log" 2>&1 || bad "-n 2 --threads 2: $(tail -2 "$tmp/n2t2.log")"
grep -q "2 ranks (mpi) x 2 threads" "$tmp/n2t2.log" && ok "-n 2 --threads 2: start-up line says 2 ranks x 2 threads" \
  || bad "-n 2 --threads 2: start-up line: $(grep '^vae-dist: training' "$tmp/n2t2.log")"
out=$(compare "$tmp/n2t1" "$tmp/n2t2" 0) && ok "-n 2: --threads 2 vs 1: $(echo "$out" | cut -d'(' -f1)" || bad "-n 2: --threads 2 vs 1: $out"

echo "threads: the default divides the cores among the ranks on the node"
cores=$(nproc)
"$bin" train --data synthetic:512 --epochs 0 --out "$tmp/d1" > "$tmp/d1.log" 2>&1
grep -q "1 rank (.*) x $cores thread" "$tmp/d1.log" && ok "alone: $cores thread(s), one per core" || bad "alone: $(head -1 "$tmp/d1.log")"
run_mpi 4 --bind-to none "$bin" train --data synthetic:512 --epochs 0 --out "$tmp/d4" > "$tmp/d4.log" 2>&1
expected=$(( cores / 4 > 0 ? cores / 4 : 1 ))
grep -q "4 ranks (mpi) x $expected thread" "$tmp/d4.log" && ok "mpirun -n 4: $expected thread(s) per rank on $cores cores" \
  || bad "mpirun -n 4: $(grep '^vae-dist: training' "$tmp/d4.log")"

# Bound by mpirun, a rank's affinity mask is its own share of the cores: used whole, not divided
# again by the ranks on the node (2 ranks, each bound to all $cores cores: $cores threads each).
if [ "$cores" -ge 2 ]; then
  run_mpi 2 --oversubscribe --map-by slot:PE=$cores --bind-to core:overload-allowed "$bin" train --data synthetic:512 --epochs 0 --out "$tmp/b1" > "$tmp/b1.log" 2>&1
  grep -q "2 ranks (mpi) x $cores thread" "$tmp/b1.log" && ok "mpirun -n 2 --map-by slot:PE=$cores (bound): $cores threads per rank" \
    || bad "mpirun -n 2 --map-by slot:PE=$cores: $(grep '^vae-dist: training' "$tmp/b1.log" || tail -2 "$tmp/b1.log")"
  run_mpi 2 --bind-to core "$bin" train --data synthetic:512 --epochs 0 --out "$tmp/b2" > "$tmp/b2.log" 2>&1
  grep -q "2 ranks (mpi) x 1 thread" "$tmp/b2.log" && ok "mpirun -n 2 --bind-to core: 1 thread per rank" \
    || bad "mpirun -n 2 --bind-to core: $(grep '^vae-dist: training' "$tmp/b2.log" || tail -2 "$tmp/b2.log")"
fi

echo "threads: bad values"
for v in -1 100000 two; do
  if out=$("$bin" train --data synthetic:512 --epochs 1 --threads "$v" --out "$tmp/bad" 2>&1); then
    bad "--threads $v was accepted"
  else
    [ "$(echo "$out" | grep -c .)" -le 2 ] && echo "$out" | grep -q -- "--threads" && ok "--threads $v: $(echo "$out" | head -1)" \
      || bad "--threads $v: $out"
  fi
done

summary threads
