#!/usr/bin/env bash
# The beta trade-off on dSprites: trains a beta-VAE for each beta and one beta-TCVAE, evaluates
# each (test NELBO, reconstruction, KL, active units, MIG), writes the table (Markdown and CSV),
# a traversal of every model (the best MIG's also as traversal-best.png) and a plot of MIG and
# reconstruction against beta.
#   bash Launch/beta_sweep.sh                        # the README's run (defaults below)
#   bash Launch/beta_sweep.sh --epochs 2 --out runs/sweep2
#   BETA_SWEEP_QUICK=1 bash Launch/beta_sweep.sh     # seconds: dsprites:2048, hidden 64, 2 betas
# Options (flag, or the environment variable; flags win):
#   --data D        BETA_SWEEP_DATA     dsprites or dsprites:N            (default dsprites)
#   --epochs N      BETA_SWEEP_EPOCHS                                     (default 3)
#   --arch A        BETA_SWEEP_ARCH     mlp or conv (disentanglement_lib's convolutions)  (default mlp)
#   --hidden H      BETA_SWEEP_HIDDEN   encoder widths, the decoder mirrors them (default 256,256; conv 256)
#   --latent N      BETA_SWEEP_LATENT                                     (default 10)
#   --batch-size N  BETA_SWEEP_BATCH                                      (default 128)
#   --lr R          BETA_SWEEP_LR                                         (default 0.001)
#   --seed N        BETA_SWEEP_SEED                                       (default 1)
#   --betas "B..."  BETA_SWEEP_BETAS    beta-VAE models                   (default "1 2 4 8 16")
#   --tc-beta B     BETA_SWEEP_TC_BETA  the beta-TCVAE's TC weight; 0: none (default 6)
#   --ranks N       BETA_SWEEP_RANKS    mpirun ranks; 1: one process      (default 1)
#   --threads N     BETA_SWEEP_THREADS  kernel threads per rank; 0: all   (default 0)
#   --out DIR       BETA_SWEEP_OUT      one folder per model, the table, the pictures (default runs/beta-sweep)
#   --docs          BETA_SWEEP_DOCS=1   also copy the table and pictures to docs/ and docs/images/
#                                       (beta-sweep*; with --arch conv beta-sweep-conv*)
#   BETA_SWEEP_PYTHON: a python with matplotlib (default .venv-sweep/bin/python, created with pip
#   when missing); BETA_SWEEP_PLOT=0 skips the plot.
# Resumable: a model whose folder holds a finished run (sweep-done, written after its training
# succeeded, with the same options) is not trained again; an interrupted one, or one trained for
# fewer epochs, continues with --resume up to --epochs (bit-identical to training it in one go).
# A failed training or eval stops the sweep: one line, exit code 1.
set -uo pipefail
cd "$(dirname "$0")/.."
. Launch/common.sh

die() { echo "beta-sweep: $*" >&2; exit 1; }

if [ "${BETA_SWEEP_QUICK:-0}" = 1 ]; then
  : "${BETA_SWEEP_DATA:=dsprites:2048}" "${BETA_SWEEP_EPOCHS:=1}" "${BETA_SWEEP_HIDDEN:=64}"
  : "${BETA_SWEEP_BETAS:=1 4}" "${BETA_SWEEP_BATCH:=64}" "${BETA_SWEEP_OUT:=runs/beta-sweep-quick}"
fi
data=${BETA_SWEEP_DATA:-dsprites}
epochs=${BETA_SWEEP_EPOCHS:-3}
arch=${BETA_SWEEP_ARCH:-mlp}
hidden=${BETA_SWEEP_HIDDEN:-}
latent=${BETA_SWEEP_LATENT:-10}
batch=${BETA_SWEEP_BATCH:-128}
lr=${BETA_SWEEP_LR:-0.001}
seed=${BETA_SWEEP_SEED:-1}
betas=${BETA_SWEEP_BETAS:-1 2 4 8 16}
tc_beta=${BETA_SWEEP_TC_BETA:-6}
ranks=${BETA_SWEEP_RANKS:-1}
threads=${BETA_SWEEP_THREADS:-0}
out=${BETA_SWEEP_OUT:-runs/beta-sweep}
docs=${BETA_SWEEP_DOCS:-0}
while [ $# -gt 0 ]; do
  case "$1" in
    --docs) docs=1; shift; continue ;;
    --data|--arch|--epochs|--hidden|--latent|--batch-size|--lr|--seed|--betas|--tc-beta|--ranks|--threads|--out)
      [ $# -ge 2 ] || die "$1 needs a value" ;;
    *) die "unknown option '$1' (see the top of Launch/beta_sweep.sh)" ;;
  esac
  case "$1" in
    --data) data=$2 ;; --arch) arch=$2 ;; --epochs) epochs=$2 ;; --hidden) hidden=$2 ;; --latent) latent=$2 ;;
    --batch-size) batch=$2 ;; --lr) lr=$2 ;; --seed) seed=$2 ;; --betas) betas=$2 ;;
    --tc-beta) tc_beta=$2 ;; --ranks) ranks=$2 ;; --threads) threads=$2 ;; --out) out=$2 ;;
  esac
  shift 2
done
case "$arch" in mlp) : "${hidden:=256,256}" ;; conv) : "${hidden:=256}" ;; *) die "--arch must be mlp or conv, got '$arch'" ;; esac
[[ "$epochs" =~ ^[1-9][0-9]*$ ]] || die "--epochs must be a positive integer, got '$epochs'"
[[ "$ranks" =~ ^[1-9][0-9]*$ ]] || die "--ranks must be a positive integer, got '$ranks'"
[[ "$tc_beta" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--tc-beta must be a number >= 0, got '$tc_beta'"
[ -n "$betas" ] || die "--betas is empty"
for b in $betas; do [[ "$b" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--betas: '$b' is not a number"; done

bin=${VAE_DIST:-$PWD/.build/release/vae-dist}
if [ ! -x "$bin" ]; then
  echo "beta-sweep: building release (swift build -c release)"
  swift build -c release > /dev/null || die "swift build -c release failed"
fi
export VAE_DIST_PROGRESS=0
mkdir -p "$out" || die "cannot create $out"

launch() {  # the vae-dist command on $ranks ranks
  if [ "$ranks" -gt 1 ]; then run_mpi "$ranks" "$bin" "$@"; else "$bin" "$@"; fi
}

arch_args=()  # nothing for the MLP: its runs' signatures stay as they were
[ "$arch" = conv ] && arch_args=(--arch conv)

# name:options for each model
models=()
for b in $betas; do models+=("beta-$b:--beta $b"); done
if [ "$tc_beta" != 0 ]; then models+=("tcvae-$tc_beta:--tc-beta $tc_beta"); fi

sweep_start=$(date +%s)
for model in "${models[@]}"; do
  name=${model%%:*}
  read -r -a regime <<< "${model#*:}"
  dir=$out/$name log=$out/$name.log
  # What the model is (not how long, nor how many threads or ranks trained it).
  args=(--data "$data" "${arch_args[@]}" --batch-size "$batch" --hidden "$hidden" --latent "$latent" --lr "$lr"
        --seed "$seed" --likelihood bernoulli "${regime[@]}" --out "$dir")
  signature="${args[*]}"
  trained=0  # epochs of a finished training in $dir
  if [ -f "$dir/sweep-done" ]; then
    [ "$(sed -n 1p "$dir/sweep-done")" = "$signature" ] \
      || die "$name: $dir holds a finished run with other options ($(sed -n 1p "$dir/sweep-done")); use another --out or delete it"
    trained=$(sed -n 's/^epochs //p' "$dir/sweep-done")
    [ "$trained" -le "$epochs" ] || die "$name: $dir holds a run of $trained epochs, more than --epochs $epochs"
  fi
  if [ "$trained" -eq "$epochs" ]; then
    echo "beta-sweep: $name: trained already ($epochs epochs, $dir/sweep-done)"
  else
    resume=()
    [ -f "$dir/checkpoints/latest.safetensors" ] && resume=(--resume)  # interrupted, or fewer epochs: continue
    echo "beta-sweep: $name: training (${resume[*]:+resumed, }log $log)"
    start=$(date +%s)
    launch train "${args[@]}" --epochs "$epochs" "${resume[@]}" --threads "$threads" --log-every 500 >> "$log" 2>&1
    rc=$?
    [ "$rc" -eq 0 ] || die "training $name failed (exit $rc): $(grep -v '^\s*$' "$log" | tail -1) (log: $log)"
    seconds=$(( $(date +%s) - start + $(cat "$dir/sweep-seconds" 2>/dev/null || echo 0) ))
    echo "$seconds" > "$dir/sweep-seconds"
    echo "beta-sweep: $name: $(grep '^epoch ' "$log" | tail -1) [$seconds s in all]"
    printf '%s\nepochs %s\n' "$signature" "$epochs" > "$dir/sweep-done"
  fi
  launch eval --checkpoint "$dir" --threads "$threads" > "$dir/eval.json" 2> "$dir/eval.err" \
    || die "eval of $name failed: $(tail -1 "$dir/eval.err")"
  launch traverse --checkpoint "$dir" --out "$dir/traversal.png" > /dev/null 2> "$dir/traverse.err" \
    || die "traverse of $name failed: $(tail -1 "$dir/traverse.err")"
done

# The table (Markdown and CSV) and the best model by MIG.
names=(); for model in "${models[@]}"; do names+=("${model%%:*}"); done
best=$(python3 - "$out" "$data" "$epochs" "$hidden" "$latent" "$batch" "$lr" "$ranks" "$arch" "${names[@]}" <<'PY'
import csv, json, math, os, sys
out, data, epochs, hidden, latent, batch, lr, ranks, arch, *names = sys.argv[1:]
factors = ["shape", "scale", "orientation", "position_x", "position_y"]
rows = []
for name in names:
    path = os.path.join(out, name, "eval.json")
    try:
        e = json.load(open(path))
    except (OSError, ValueError) as error:
        sys.exit(f"beta-sweep: {path}: {error}")
    if e.get("mig") is None:
        sys.exit(f"beta-sweep: {path} has no mig (is --data dsprites?)")
    seconds = open(os.path.join(out, name, "sweep-seconds")).read().strip() if os.path.exists(os.path.join(out, name, "sweep-seconds")) else ""
    tc = name.startswith("tcvae-")
    rows.append({
        "model": "beta-TCVAE" if tc else "beta-VAE",
        "beta": 1.0 if tc else float(name[len("beta-"):]),
        "tc_beta": float(name[len("tcvae-"):]) if tc else "",
        "test_nelbo": e["test_nelbo"], "test_recon": e["test_recon"], "test_kl": e["test_kl"],
        "active_units": e["active_units"], "mig": e["mig"],
        **{f"mig_{f}": e["mig_per_factor"][f] for f in factors},
        "train_seconds": seconds, "run": os.path.join(out, name),
    })
for row in rows:
    for key in ["test_nelbo", "test_recon", "test_kl", "mig"]:
        if not isinstance(row[key], (int, float)) or not math.isfinite(row[key]):
            sys.exit(f"beta-sweep: {row['run']}/eval.json: {key} is {row[key]}")
with open(os.path.join(out, "beta-sweep.csv"), "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
best = max(rows, key=lambda r: r["mig"])
g = lambda v: f"{v:g}"
with open(os.path.join(out, "beta-sweep.md"), "w") as f:
    network = (f"{4096}-{hidden.replace(',', '-')}-{latent}" if arch == "mlp"
               else f"conv 32,32,64,64-{hidden.replace(',', '-')}-{latent} (disentanglement_lib's)")
    f.write(f"dSprites ({data}), {epochs} epoch(s), {network}, bernoulli, "
            f"batch {batch}, Adam lr {lr}, {ranks} rank(s); test set measures from `vae-dist eval`.\n\n")
    f.write("| model | beta | test NELBO | recon | KL | active units | MIG | MIG shape | scale | orientation | x | y |\n")
    f.write("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
    for r in rows:
        model = f"beta-TCVAE (TC weight {g(r['tc_beta'])})" if r["model"] == "beta-TCVAE" else "beta-VAE"
        mig = f"**{r['mig']:.3f}**" if r is best else f"{r['mig']:.3f}"
        f.write(f"| {model} | {g(r['beta'])} | {r['test_nelbo']:.2f} | {r['test_recon']:.2f} | {r['test_kl']:.2f} | "
                f"{r['active_units']} | {mig} | " + " | ".join(f"{r['mig_' + k]:.3f}" for k in factors) + " |\n")
print(os.path.basename(best["run"]))
PY
) || exit 1
cp "$out/$best/traversal.png" "$out/traversal-best.png"
echo "beta-sweep: best MIG: $best (traversal: $out/traversal-best.png)"

# The plot: MIG (and per factor) and reconstruction against beta.
if [ "${BETA_SWEEP_PLOT:-1}" != 0 ]; then
  py=${BETA_SWEEP_PYTHON:-.venv-sweep/bin/python}
  if ! "$py" -c "import matplotlib" 2>/dev/null; then
    [ -n "${BETA_SWEEP_PYTHON:-}" ] && die "$py cannot import matplotlib"
    echo "beta-sweep: installing matplotlib into .venv-sweep (pip, once)"
    { python3 -m venv .venv-sweep && .venv-sweep/bin/pip install -q matplotlib numpy; } > "$out/pip.log" 2>&1 \
      || die "could not install matplotlib into .venv-sweep: $(tail -1 "$out/pip.log")"
  fi
  "$py" - "$out/beta-sweep.csv" "$out/beta-sweep.png" <<'PY' || die "the plot failed"
import csv, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
rows = list(csv.DictReader(open(sys.argv[1])))
vae = sorted((r for r in rows if r["model"] == "beta-VAE"), key=lambda r: float(r["beta"]))
tc = [r for r in rows if r["model"] == "beta-TCVAE"]
beta = [float(r["beta"]) for r in vae]
fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=90)
factors = ["shape", "scale", "orientation", "position_x", "position_y"]
for f in factors:
    left.plot(beta, [float(r["mig_" + f]) for r in vae], lw=0.8, alpha=0.6, marker=".", label=f)
left.plot(beta, [float(r["mig"]) for r in vae], "k-o", lw=2, label="MIG (mean)")
right.plot(beta, [float(r["test_recon"]) for r in vae], "k-o", lw=2, label="reconstruction")
right.plot(beta, [float(r["test_kl"]) for r in vae], "-s", color="tab:gray", label="KL")
for r in tc:
    x = float(r["tc_beta"])
    left.plot([x], [float(r["mig"])], "r*", ms=14, label=f"beta-TCVAE (TC weight {x:g}): MIG")
    right.plot([x], [float(r["test_recon"])], "r*", ms=14, label=f"beta-TCVAE (TC weight {x:g})")
    right.plot([x], [float(r["test_kl"])], "rs", ms=6)
for ax in (left, right):
    ax.set_xscale("log", base=2)
    ax.set_xticks(beta)
    ax.set_xticklabels([f"{b:g}" for b in beta])
    ax.set_xlabel("beta (beta-TCVAE: its TC weight)")
    ax.grid(alpha=0.3)
left.set_ylabel("MIG (test set)")
left.set_ylim(bottom=0)
right.set_ylabel("nats per image (test set)")
left.legend(fontsize=7)
right.legend(fontsize=7)
left.set_title("disentanglement", fontsize=10)
right.set_title("reconstruction and KL", fontsize=10)
fig.tight_layout()
fig.savefig(sys.argv[2])
PY
  echo "beta-sweep: plot: $out/beta-sweep.png"
fi

if [ "$docs" = 1 ]; then
  mkdir -p docs/images
  name=beta-sweep; [ "$arch" = conv ] && name=beta-sweep-conv
  cp "$out/beta-sweep.md" "docs/$name.md" && cp "$out/beta-sweep.csv" "docs/$name.csv" \
    && cp "$out/traversal-best.png" "docs/images/$name-traversal.png" \
    && { [ ! -f "$out/beta-sweep.png" ] || cp "$out/beta-sweep.png" "docs/images/$name.png"; } \
    || die "could not copy the results to docs/"
  echo "beta-sweep: copied to docs/$name.md, docs/$name.csv, docs/images/$name*.png"
fi
cat "$out/beta-sweep.md"
echo "beta-sweep: done in $(( $(date +%s) - sweep_start )) s: $out/beta-sweep.md, $out/beta-sweep.csv"
