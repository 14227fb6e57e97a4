#!/usr/bin/env bash
# Ranks on different hosts, for real on one machine: every "host" is a network namespace with its
# own address (198.18.S.x, Launch/netns.sh) joined to the others by veth links, and Open MPI starts
# its daemons there from a hostfile (ip netns exec instead of ssh), talking TCP only (btl tcp,self:
# no shared memory between hosts). The runs go through Launch/launch.sh, the script users run, with
# Launch/hostfile.example's lines pointed at the namespaces. Checks:
#   1. 2 ranks on 2 hosts and 4 ranks on 2 hosts with --deterministic: parameters bit-identical to
#      one process, and the gradients crossed the veth links (their byte counters);
#   2. only rank 0's host writes --out: every other host sees its own empty folder at the --out
#      path (a bind mount in a private mount namespace), so a file written there by a rank on
#      another host would land in that host's folder; it must stay empty. Those ranks also
#      resume without seeing the checkpoint (rank 0 broadcasts it);
#   3. --resume across host counts: 2 hosts x 1 rank -> 2 hosts x 2 ranks -> 1 host x 1 rank,
#      each run reporting where it resumed and how many steps it ran, ending bit-identical to an
#      uninterrupted single process;
#   4. Launch/slurm.sbatch: bash -n, and run with srun standing in for Slurm (srun -> mpirun over the
#      same hosts) so its paths and launcher are exercised;
#   5. with --timeout (stall watchdog): one host's link taken down mid-run ends the job within
#      timeout + 10 s, rank 0 naming the unreachable rank, and --resume then continues the run
#      (mpirun, on a launch node whose TCP gives up after 2 retransmissions: with Linux's default it
#      waits about 15 minutes for the unreachable daemon after the abort).
# Skips with one line where network namespaces cannot be made (not root, no ip, no unshare).
set -uo pipefail
. "$(dirname "$0")/lib.sh" multihost
. Launch/netns.sh
use_venv || abort "cannot set up .venv"  # $python: .venv with numpy and safetensors
why=$(netns_unavailable)
if [ -n "$why" ]; then echo "multihost: skipped: network namespaces cannot be made here: $why"; exit 0; fi

at_exit netns_down
trap 'exit 130' INT TERM
export VAE_DIST_PROGRESS=0
netns_up 2 || abort "FAILED: could not set up the namespaces"
netns_env
h1=${NETNS_HOSTS[0]} h2=${NETNS_HOSTS[1]}
# Launch/hostfile.example with its two nodes pointed at the namespaces and K slots each.
hostfile() { sed -e '/^#/d' -e "s/^node1 /$h1 /" -e "s/^node2 /$h2 /" -e "s/slots=[0-9]*/slots=$1/" Launch/hostfile.example > "$tmp/hosts$1"; echo "$tmp/hosts$1"; }
hosts1=$(hostfile 1) hosts2=$(hostfile 2)
grep -q "^$h1 slots=1" "$hosts1" && grep -q "^$h2 slots=1" "$hosts1" || bad "Launch/hostfile.example no longer has node1/node2 lines: $(cat "$hosts1")"
head -1 "$hosts1" > "$tmp/onehost"

# Every host but the first sees its own folder at $tmp/runs (NETNS_VIEWS/hI).
export NETNS_PRIVATE_DIR=$tmp/runs
mkdir -p "$tmp/runs"
args=(train --data synthetic:4096 --batch-size 128 --seed 5 --deterministic --threads 1)
ckpt() { echo "$tmp/runs/$1/checkpoints/latest.safetensors"; }
link_bytes() { cat "/sys/class/net/${NETNS_NAMES[1]}/statistics/rx_bytes"; }
view_files() { find "$NETNS_VIEWS" -mindepth 2 | sed "s|$NETNS_VIEWS/||" | head -3 | tr '\n' ' '; }

echo "multihost: 2 hosts ($h1, $h2), TCP over veth links; one process as the reference"
for e in 1 2 3; do
  "$bin" "${args[@]}" --epochs $e --out "$tmp/ref$e" > "$tmp/ref$e.log" 2>&1 || bad "single process, $e epochs: $(tail -1 "$tmp/ref$e.log")"
done

run() {  # NAME HOSTFILE NP EPOCHS [extra]: one run through Launch/launch.sh
  local name=$1 hosts=$2 np=$3 epochs=$4; shift 4
  bash Launch/launch.sh --hostfile "$hosts" -n "$np" "${args[@]}" --epochs "$epochs" --out "$tmp/runs/$name" "$@" > "$tmp/$name.log" 2>&1
}
for np in 2 4; do
  hosts=$hosts1; [ "$np" -eq 4 ] && hosts=$hosts2
  before=$(link_bytes)
  if run "h2n$np" "$hosts" "$np" 1; then
    sent=$(( $(link_bytes) - before ))
    grep -q "$np ranks (mpi)" "$tmp/h2n$np.log" || bad "2 hosts, $np ranks: start-up line says $(grep -o '[0-9]* ranks* ([a-z-]*)' "$tmp/h2n$np.log")"
    out=$(compare "$tmp/ref1/checkpoints/latest.safetensors" "$(ckpt "h2n$np")" 0) \
      && ok "2 hosts x $((np / 2)) ranks, --deterministic: bit-identical to one process ($(echo "$out" | cut -d'(' -f1 | sed 's/ *$//'))" \
      || bad "2 hosts x $((np / 2)) ranks: $out"
    # 32 steps x 2.6 MB of gradients must have crossed host 2's link (the ranks do not share memory).
    [ "$sent" -gt $((32 * 2611296)) ] && ok "host 2's link carried $((sent / 1000000)) MB during the run" \
      || bad "host 2's link carried only $sent bytes: the ranks did not talk over it"
  else
    bad "2 hosts x $((np / 2)) ranks failed: $(grep -m2 -iE 'error|fail' "$tmp/h2n$np.log" | tr '\n' ' ')"
  fi
done
# Without --deterministic, the default across hosts: 2 hosts x 2 ranks sum on each host through
# shared memory, then the host sums cross the link (hierarchical); each element is then
# (a0 + a1) + (b0 + b1), the order --deterministic uses on 4 ranks, so the parameters are the
# one process's --deterministic bits. 2 hosts x 1 rank: the overlapped allreduce (Rabenseifner).
plain=()
for a in "${args[@]}"; do [ "$a" = --deterministic ] || plain+=("$a"); done
before=$(link_bytes)
if bash Launch/launch.sh --hostfile "$hosts2" -n 4 "${plain[@]}" --epochs 1 --out "$tmp/runs/h2plain" > "$tmp/h2plain.log" 2>&1 \
   && grep -q "gradient reduction: hierarchical after backward: sum over shared memory on each node (2 ranks here), then allreduce of the node sums across 2 nodes" "$tmp/h2plain.log" \
   && out=$(compare "$tmp/ref1/checkpoints/latest.safetensors" "$(ckpt h2plain)" 0); then
  sent=$(( $(link_bytes) - before ))
  ok "2 hosts x 2 ranks without --deterministic: $(sed -n 's/^vae-dist: gradient reduction: //p' "$tmp/h2plain.log"); bit-identical to one process with --deterministic"
  # One node sum per step into host 2 (32 steps x 2.6 MB), not one per rank.
  [ "$sent" -gt $((32 * 2611296)) ] && [ "$sent" -lt $((32 * 2611296 * 5 / 4)) ] && ok "hierarchical: host 2's link carried $((sent / 1000000)) MB in 32 steps: one gradient per host and step" \
    || bad "hierarchical: host 2's link carried $sent bytes in 32 steps (one gradient per step: $((32 * 2611296)))"
else bad "2 hosts x 2 ranks without --deterministic: $(grep -h 'reduction\|error' "$tmp/h2plain.log" | head -2 | tr '\n' ' ') ${out:-}"; fi
if bash Launch/launch.sh --hostfile "$hosts1" -n 2 "${plain[@]}" --epochs 1 --out "$tmp/runs/h1plain" > "$tmp/h1plain.log" 2>&1 \
   && grep -q "gradient reduction: allreduce overlapped with backward in [2-9] buckets (Rabenseifner)" "$tmp/h1plain.log" \
   && out=$(compare "$tmp/ref1/checkpoints/latest.safetensors" "$(ckpt h1plain)" 1e-4); then
  ok "2 hosts x 1 rank without --deterministic: $(sed -n 's/^vae-dist: gradient reduction: //p' "$tmp/h1plain.log"); $(echo "$out" | cut -d'(' -f1 | sed 's/ *$//')"
else bad "2 hosts x 1 rank without --deterministic: $(grep -h 'reduction\|error' "$tmp/h1plain.log" | head -2 | tr '\n' ' ') ${out:-}"; fi
n0=$(find "$tmp/runs/h2n2" -type f | wc -l)
if [ "$n0" -gt 0 ] && [ -z "$(view_files)" ]; then ok "only rank 0's host wrote: $n0 files under --out, no file or folder from the ranks on host 2"
else bad "files written on host 2: $(view_files) (rank 0's host: $n0)"; fi

echo "multihost: --resume across host counts (2 hosts x 1 -> 2 hosts x 2 -> 1 host x 1)"
cp -r "$tmp/runs/h2n2" "$tmp/runs/res"
resumed() {  # LOG GLOBAL_STEP STEPS
  grep -q "^vae-dist: resumed from .* at global step $2 " "$1" && grep -q "^vae-dist: this process ran $3 steps" "$1"
}
said() { grep -aE '^vae-dist: (resumed|this process ran)' "$1" | sed "s|$tmp/||g" | tr '\n' ' '; }
if run res "$hosts2" 4 2 --resume && resumed "$tmp/res.log" 32 32; then ok "4 ranks on 2 hosts resumed the 2-rank checkpoint: $(said "$tmp/res.log")"
else bad "resume on 2 hosts x 2 ranks: $(said "$tmp/res.log") $(grep -m1 -i error "$tmp/res.log")"; fi
mv "$tmp/res.log" "$tmp/res2.log"
if run res "$tmp/onehost" 1 3 --resume && resumed "$tmp/res.log" 64 32; then ok "1 rank on 1 host resumed the 4-rank checkpoint: $(said "$tmp/res.log")"
else bad "resume on 1 host: $(said "$tmp/res.log") $(grep -m1 -i error "$tmp/res.log")"; fi
out=$(compare "$tmp/ref3/checkpoints/latest.safetensors" "$(ckpt res)" 0) \
  && ok "after 3 epochs on 2, 4 and 1 ranks: bit-identical to 3 uninterrupted epochs in one process" || bad "resumed run vs uninterrupted: $out"
[ -z "$(view_files)" ] && ok "host 2 wrote nothing while resuming (its ranks never saw the checkpoint)" || bad "files written on host 2: $(view_files)"

echo "multihost: vae-dist bench --allreduce over the links; launcher errors"
if bash Launch/launch.sh --hostfile "$hosts1" -n 2 bench --allreduce --sizes 4096,2611296 --json > "$tmp/bench.json" 2>&1 \
   && "$python" - "$tmp/bench.json" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
ops = ["allreduce", "iallreduce", "reduce_scatter_allgather"]
assert [(l["bytes"], l["operation"]) for l in lines] == [(b, o) for b in (4096, 2611296) for o in ops], lines
for l in lines:
    assert l["ranks"] == 2 and 0 < l["fastest_seconds"] <= l["seconds"] < 5 and l["repeats"] >= 9, l
PY
then ok "bench --allreduce on 2 hosts: $(grep -m1 '"bytes": 2611296' "$tmp/bench.json" | grep -o '"seconds": [0-9.e-]*')"
else bad "bench --allreduce on 2 hosts: $(tail -2 "$tmp/bench.json" | tr '\n' ' ')"; fi
out=$("$bin" bench --allreduce 2>&1); code=$?
[ "$code" -eq 1 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] && echo "$out" | grep -q "run it under mpirun" \
  && ok "bench --allreduce without mpirun: exit 1, $out" || bad "bench --allreduce without mpirun: exit $code: $out"
out=$(env -u SLURM_JOB_ID bash Launch/launch.sh train 2>&1); code=$?
[ "$code" -eq 1 ] && echo "$out" | grep -q "^launch: no --hostfile and not inside a Slurm allocation" && ok "launch.sh without hosts: exit 1, one line" || bad "launch.sh without hosts: exit $code: $out"
out=$(bash Launch/launch.sh --hostfile "$tmp/missing" train 2>&1); code=$?
[ "$code" -eq 1 ] && [ "$out" = "launch: --hostfile $tmp/missing: no such readable file" ] && ok "launch.sh with a missing hostfile: exit 1, one line" || bad "missing hostfile: exit $code: $out"

echo "multihost: Launch/slurm.sbatch"
if out=$(bash -n Launch/slurm.sbatch 2>&1); then ok "bash -n Launch/slurm.sbatch"; else bad "bash -n Launch/slurm.sbatch: $out"; fi
# srun stands in for Slurm: the sbatch script runs as Slurm would run it (SLURM_* set, in the submit
# folder) and its srun --mpi=pmix line becomes mpirun over the two hosts' 4 slots.
mkdir -p "$tmp/fake-slurm/bin" "$tmp/runs/submit"
cat > "$tmp/fake-slurm/bin/srun" <<EOF
#!/usr/bin/env bash
echo "srun \$*" >> "$tmp/fake-slurm/srun.args"
[ "\$1" = --mpi=pmix ] || { echo "srun: expected --mpi=pmix first" >&2; exit 1; }
shift
for v in \${!SLURM_*}; do unset "\$v"; done   # else mpirun would look for a real allocation
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
exec mpirun --hostfile "$hosts2" -n 4 "\$@"
EOF
chmod +x "$tmp/fake-slurm/bin/srun"
ln -s "$PWD/Launch" "$tmp/runs/submit/Launch"
ln -s "$PWD/.build" "$tmp/runs/submit/.build"
(cd "$tmp/runs/submit" && PATH=$tmp/fake-slurm/bin:$PATH SLURM_JOB_ID=4242 SLURM_SUBMIT_DIR=$tmp/runs/submit \
  bash "$PWD/Launch/slurm.sbatch" --data synthetic:1024 --epochs 1 --threads 1) > "$tmp/slurm.log" 2>&1
if [ -s "$tmp/runs/submit/runs/slurm-4242/checkpoints/latest.safetensors" ] && grep -q "4 ranks (mpi)" "$tmp/slurm.log"; then
  ok "slurm.sbatch ran $(head -1 "$tmp/fake-slurm/srun.args" | sed "s|$PWD/||") on 4 ranks into runs/slurm-4242"
else
  bad "slurm.sbatch: $(tail -2 "$tmp/slurm.log" | tr '\n' ' ')"
fi

echo "multihost: a host's link goes down mid-run"
help=$("$bin" train --help 2>&1)
if [[ "$help" == *--timeout* ]]; then
  # 2 hosts x 1 rank, 32 steps per epoch; host 2's link goes down once epoch 1's checkpoint is written.
  timeout_s=5
  # After the watchdog's MPI_Abort, mpirun tells every daemon to stop and waits for them: the message
  # to host 2's daemon is never acknowledged, and mpirun learns the daemon is gone only when its TCP
  # gives up retransmitting (about 15 minutes with Linux's default net.ipv4.tcp_retries2 = 15). So
  # mpirun runs on a launch node of its own (a namespace, 198.18.S.10) with tcp_retries2 = 2.
  netns_launch 2 bash Launch/launch.sh --hostfile "$hosts1" -n 2 "${args[@]}" --epochs 40 --out "$tmp/runs/stall" \
    --timeout "$timeout_s" --log-every 8 > "$tmp/stall.log" 2>&1 &
  launcher=$!
  for _ in $(seq 600); do grep -q "^epoch 1/40" "$tmp/stall.log" 2>/dev/null && break; sleep 0.1; done
  netns_link 2 down
  down=$(date +%s.%N)
  for _ in $(seq $(( (timeout_s + 20) * 10 ))); do kill -0 "$launcher" 2>/dev/null || break; sleep 0.1; done
  took=$(awk -v a="$down" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  if kill -0 "$launcher" 2>/dev/null; then
    bad "job still running ${took}s after host 2's link went down (--timeout $timeout_s): $(grep -a -m1 'stall in' "$tmp/stall.log")"
    kill -TERM "$launcher" 2>/dev/null; sleep 2; kill -9 "$launcher" 2>/dev/null
  else
    wait "$launcher"; code=$?
    # Rank 0 (host 1, still reachable) must name rank 1 as the one that has not arrived.
    line=$(grep -a -m1 -E "stall in .*rank 1 has not arrived" "$tmp/stall.log")
    if [ "$code" -ne 0 ] && [ -n "$line" ] && awk -v t="$took" -v m="$timeout_s" 'BEGIN { exit !(t < m + 10) }'; then
      ok "link down: job ended ${took}s later (--timeout $timeout_s), exit $code: $(echo "$line" | cut -c1-160)"
    else
      bad "link down: ${took}s, exit $code, message: ${line:-none} ($(grep -av '^step\|^epoch' "$tmp/stall.log" | head -3 | tr '\n' ' '))"
    fi
  fi
  { ip netns pids "${NETNS_NAMES[1]}" | xargs -r kill -9; } 2>/dev/null
  netns_link 2 up
  epoch=$("$bin" inspect --json "$(ckpt stall)" 2>/dev/null | "$python" -c 'import json, sys; print(json.load(sys.stdin)["metadata"]["epoch"])' 2>/dev/null)
  cp -r "$tmp/runs/stall" "$tmp/runs/stall2"
  if [ -n "$epoch" ] && run stall2 "$hosts1" 2 $((epoch + 1)) --resume && resumed "$tmp/stall2.log" $((epoch * 32)) 32; then
    ok "with the link back, --resume on 2 hosts continued: $(said "$tmp/stall2.log")"
  else
    bad "resume after the link came back (checkpoint epoch '${epoch}'): $(said "$tmp/stall2.log") $(tail -1 "$tmp/stall2.log")"
  fi
else
  bad "vae-dist train has no --timeout (the stall watchdog): the link-down check cannot run"
fi

summary multihost
