#!/usr/bin/env bash
# Mutation test of the test suite: each mutant below is one deliberate bug (a sign, a dropped
# term, a skipped step, a wrong seed, a resume that ignores its checkpoint, a rank that writes,
# a reduction that averages twice, a build error...). Each is applied alone to a clean copy of
# this working tree, and `bash Launch/test.sh` must then fail. A mutant that the suite lets
# through is a hole in the tests.
#
#   bash Launch/mutation_test.sh              every mutant (about an hour on 2 cores)
#   bash Launch/mutation_test.sh NAME...      only those
#   bash Launch/mutation_test.sh --list       names and what each breaks
#   bash Launch/mutation_test.sh --check      only that every mutation applies (test.sh runs it)
#
# The copy lives in $VAE_DIST_MUTATION_DIR (default /tmp/vae-dist-mutants) and keeps its .build
# between mutants, so each one rebuilds only what it touched. test.sh runs with
# VAE_DIST_TEST_FAIL_FAST=1 (it stops at the first red suite). The unmutated copy must pass
# first (skip that with VAE_DIST_MUTATION_BASELINE=0). Prints one line per mutant and
# "mutation: N passed, M failed", where passed means caught.
set -uo pipefail
cd "$(dirname "$0")/.."
. Launch/common.sh

# One mutant per block: "mutant NAME FILE WHAT", then "- TEXT" (exactly one occurrence in FILE)
# and "+ TEXT" (its replacement; "+" alone deletes the line's text), and optionally "first SUITE":
# the Launch/ suite expected to catch it, which test.sh then runs first (only to save time: every
# suite still runs until one fails). A leading '!' on FILE removes .build before the run (a fresh
# clone's build).
read -r -d '' MUTANTS <<'EOF'
mutant kl-sign Sources/VAEKernels/KLDivergence.swift the closed-form KL with +log sigma^2
- acc += m * m + exp(lv) - lv - 1
+ acc += m * m + exp(lv) + lv - 1
mutant kl-gradient Sources/VAEKernels/KLDivergence.swift dKL/dlogvar 10% too large
- dlogvar[i] += scale * 0.5 * (exp(logvar[i]) - 1)
+ dlogvar[i] += scale * 0.55 * (exp(logvar[i]) - 1)
mutant reparameterization-without-sigma Sources/VAEKernels/Reparameterization.swift z = mu + eps
- z[r * latent + j] = mu[i] + exp(0.5 * logvar[i]) * eps[r * latent + j]
+ z[r * latent + j] = mu[i] + eps[r * latent + j]
mutant reparameterization-gradient Sources/VAEKernels/Reparameterization.swift dz/dlogvar without eps
- dlogvar[i] += dz[k] * eps[k] * 0.5 * exp(0.5 * logvar[i])
+ dlogvar[i] += dz[k] * 0.5 * exp(0.5 * logvar[i])
mutant adam-without-bias-correction Sources/VAEKernels/Adam.swift Adam's first-moment bias correction dropped
- let stepSize = hyper.learningRate / (1 - Float(pow(Double(b1), Double(step))))
+ let stepSize = hyper.learningRate
mutant chain-rule-local-batch Sources/VAETraining/GradientReduction.swift dloss = 1 / local batch instead of 1 / global batch
- lossScale = 1 / Float(globalBatchSize)
+ lossScale = 1 / Float(rows)
first mpi_test
mutant no-gradient-allreduce Sources/VAETraining/GradientReduction.swift the overlapped buckets are never reduced
- do { try communicator.startAllreduceSum(model.gradients + bucket.lowerBound, count: bucket.count) } catch { failure = error }
+ _ = bucket
first mpi_test
mutant average-twice Sources/VAETraining/GradientReduction.swift the summed gradient divided by the rank count again
- try communicator.finishReductions()
+ try communicator.finishReductions(); for i in 0..<model.parameterCount { model.gradients[i] /= Float(communicator.size) }
first mpi_test
mutant bucket-started-early Sources/VAETraining/GradientReduction.swift every bucket reduced before backward finished it
- while started < buckets.count && buckets[started].lowerBound >= offset {
+ while started < buckets.count && buckets[started].lowerBound >= 0 {
first mpi_test
mutant sharded-no-allgather Sources/VAETraining/GradientReduction.swift the sharded optimizer never shares the updated parameters
- func shareParameters() throws { try communicator.allgatherInPlace(model.parameters, shards: shards) }
+ func shareParameters() throws {}
first mpi_test
mutant sharded-moments-not-gathered Sources/VAETraining/GradientReduction.swift checkpoints of the sharded optimizer hold rank 0's moments only
- try communicator.allgatherInPlace(optimizer.firstMoment, shards: shards)
+ _ = optimizer.firstMoment
first mpi_test
mutant clip-norm-of-own-shard Sources/VAETraining/GradientReduction.swift the sharded optimizer clips by its own block's norm
- partials[communicator.rank] = sumOfSquares(shard, count: updateRange.count)
+ return sumOfSquares(shard, count: updateRange.count)
first mpi_test
mutant shm-sum-drops-a-slot Sources/VAETraining/SharedMemoryReduction.swift the shared-memory sum leaves out the third rank's gradient and beyond
- for s in slots.dropFirst(2) { vectorAdd(out, out, s + start, count: n) }
+ for s in slots.dropFirst(3) { vectorAdd(out, out, s + start, count: n) }
mutant shm-clip-in-place Sources/VAETraining/SharedMemoryReduction.swift clipping scales the shared result in place while other ranks read it for the norm
- scaled = true
+ vectorScale(result + range.lowerBound, by: coefficient, count: range.count)
first mpi_test
mutant shm-sharded-partial-copy Sources/VAETraining/SharedMemoryReduction.swift with the sharded optimizer over shared memory a rank copies only the lower ranks' parameter blocks
- for r in 0..<communicator.size where r != communicator.rank {
+ for r in 0..<communicator.size where r < communicator.rank {
first mpi_test
mutant bce-log-of-wrong-product Sources/VAEKernels/Likelihood.swift the Bernoulli loss multiplies exp(-|l|) instead of 1 + exp(-|l|) before the log
- product *= onePlus
+ product *= e
mutant skipped-step Sources/VAETraining/Trainer+Step.swift every 7th optimizer step skipped on every rank
- optimizer.update(model, range: reduction.updateRange, gradients: reduction.reducedGradients)
+ if attemptedSteps % 7 != 0 { optimizer.update(model, range: reduction.updateRange, gradients: reduction.reducedGradients) }
mutant noise-keyed-by-row Sources/VAEData/Batches.swift eps keyed by the row in the local batch, not the example
- stream: noise.stream, epoch: noise.epoch, index: index)
+ stream: noise.stream, epoch: noise.epoch, index: row)
first mpi_test
mutant no-initial-broadcast Sources/VAETraining/Trainer.swift rank 0's parameters never broadcast
- try communicator.broadcast(UnsafeMutableRawPointer(model.parameters), byteCount: model.parameterCount * 4, root: 0)
+ _ = model.parameters
first mpi_test
mutant resume-ignores-checkpoint Sources/VAETraining/Trainer.swift --resume loads the checkpoint but trains from scratch
- if let checkpoint {
+ if let checkpoint, checkpoint.epoch < 0 {
mutant resume-at-epoch-start Sources/VAETraining/Trainer.swift a mid-epoch checkpoint resumes at the epoch's first step
- let firstStep = resumeState.epochStep
+ let firstStep = 0
first fault_test
mutant every-rank-writes Sources/VAETraining/Trainer.swift every rank prepares the output folder
- if communicator.isRoot { try prepareOutput(resume: resume, overwrite: overwrite) }
+ try prepareOutput(resume: resume, overwrite: overwrite)
first mpi_test
mutant rank-reads-checkpoint Sources/VAETraining/Trainer+Start.swift every rank reads the resumed checkpoint from --out itself (needs a shared file system)
- if !communicator.isRoot { bytes = [UInt8](repeating: 0, count: Int(length[0])) }
+ if !communicator.isRoot { bytes = try Safetensors.readBytes(path: path) }
first multihost_test
mutant stop-request-ignored Sources/VAETraining/Trainer+Step.swift SIGINT/SIGTERM never reach the step's control block
- stopRequests: Interruption.pending != 0 ? 1 : 0,
+ stopRequests: 0,
first fault_test
mutant non-finite-applied Sources/VAETraining/Trainer+Step.swift a NaN gradient is applied instead of skipped
- StepControl(nonFiniteRanks: local.finite ? 0 : 1,
+ StepControl(nonFiniteRanks: 0,
first fault_test
mutant allocation-per-step Sources/VAETraining/Trainer+Step.swift one 64-byte aligned allocation per step
- attemptedSteps += 1
+ attemptedSteps += 1; allocateAligned(16).deallocate()
first cli_test
mutant deterministic-tree-order Sources/VAETraining/DeterministicReduction.swift one rank sums its 4 groups as ((g0+g1)+g2)+g3
- vectorAdd(groupGradients[2], groupGradients[2], groupGradients[3], count: p)
+ vectorAdd(groupGradients[0], groupGradients[0], groupGradients[2], count: p); groupGradients[2].update(from: groupGradients[3], count: p)
first mpi_test
mutant drift-check-blind Sources/VAETraining/Trainer+Reduction.swift the parameter agreement check never finds a difference
- let differing = (1..<size).filter { sums[$0] != sums[0] }
+ let differing = (1..<size).filter { _ in sums.isEmpty }
first fault_test
mutant binarize-ignored Sources/VAEData/Batches.swift --binarize keeps the intensities
- guard binarize else { return }
+ if binarize || !binarize { return }
mutant iw-without-log-k Sources/VAEAnalysis/ImportanceWeighted.swift the IW estimate without - log K
- total += maximum + log(sum) - log(Double(samples))
+ total += maximum + log(sum)
mutant iw-without-eps-squared Sources/VAEAnalysis/ImportanceWeighted.swift log q(z|x) without its -eps^2/2 term
- logRatio += -0.5 * zj * zj + 0.5 * Double(logvar[j]) + 0.5 * e * e
+ logRatio += -0.5 * zj * zj + 0.5 * Double(logvar[j]) + 0 * e
mutant black-reconstructions Sources/VAEAnalysis/Generation.swift reconstruction grids show black tiles
- out += recon[(start * d)..<(end * d)]
+ out += [Float](repeating: 0, count: (end - start) * d)
first cli_test
mutant constant-interpolation Sources/VAEAnalysis/Generation.swift every interpolation step decodes the first end point
- let t = steps == 1 ? 0 : Float(s) / Float(steps - 1)
+ let t: Float = s < 0 ? 1 : 0
first cli_test
mutant constant-traversal Sources/VAEAnalysis/Generation.swift traversal rows never move their dimension
- z[j] = range.lowerBound + (range.upperBound - range.lowerBound) * Float(s) / Float(max(steps - 1, 1))
+ _ = (z, s)
first cli_test
mutant resume-options-unchecked Sources/VAETraining/GivenOptions.swift --resume lets a must-agree option (--latent ...) change
- case .mayChange, .sameImages:
+ case .mayChange, .sameImages, .mustAgree:
first resume_test
mutant data-count-only Sources/VAETraining/GivenOptions.swift --resume compares only the image count, not the pixels' hash
- if stored.sameImages(as: current) { return nil }
+ if stored.count == current.count { return nil }
first resume_test
mutant fingerprint-lane-dropped Sources/VAEData/Fingerprint.swift the fingerprint ignores every fourth pixel byte
- let tail = [h0, h1, h2, h3, UInt64(n)]
+ let tail = [h0, h1, h2, h2, UInt64(n)]
mutant safetensors-tensor-order Sources/VAESafetensors/Safetensors.swift tensor bytes written in reverse order (offsets still valid)
- for t in tensors { out.append(contentsOf: t.bytes) }
+ for t in tensors.reversed() { out.append(contentsOf: t.bytes) }
mutant safetensors-header-unaligned Sources/VAESafetensors/Safetensors.swift the JSON header padded to 4 bytes instead of 8
- while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }
+ while headerBytes.count % 4 != 0 { headerBytes.append(0x20) }
mutant mig-top-only Sources/VAEAnalysis/LatentMeasures.swift MIG without the gap: the largest information over the entropy
- perFactor.append(entropy > 0 ? (information[0] - second) / entropy : nil)
+ perFactor.append(entropy > 0 ? information[0] / entropy : nil)
mutant mig-bin-edges Sources/VAEAnalysis/LatentMeasures.swift a code on a bin edge falls in the bin below (np.digitize counts edges <= c)
- for edge in edges where edge <= c { below += 1 }
+ for edge in edges where edge < c { below += 1 }; below = max(below, 1)
mutant dsprites-orientation-endpoint Sources/VAEData/DSprites.swift orientations as the published linspace(0, 2 pi, 40): the last repeats the first
- static func orientation(_ k: Int) -> Float { Float(2 * Double.pi * Double(k) / 40) }
+ static func orientation(_ k: Int) -> Float { Float(2 * Double.pi * Double(k) / 39) }
mutant packed-bit-order Sources/VAEData/Batches.swift packed pixels unpacked most significant bit first
- private let bitsToUnits: [Float] = (0..<2048).map { Float(($0 >> 3) >> ($0 & 7) & 1) }
+ private let bitsToUnits: [Float] = (0..<2048).map { Float(($0 >> 3) >> (7 - $0 & 7) & 1) }
mutant no-cpu-check Sources/_VAEKernelShims/shims.c the start-up check lets a CPU without AVX2 run into SIGILL
- if (fma && avx && avx2 && ymmSaved) return;
+ return;
first isa_test
mutant gemm-transpose-swapped-rows Sources/VAEKernels/GEMM.swift the 8x8 register transpose of a packed W^T stores two rows swapped
- (d + 4 * ldd).storeBytes(of: r1, as: V.self)
+ (d + 4 * ldd).storeBytes(of: r2, as: V.self)
mutant gemm-tail-tiles-share-rows Sources/VAEKernels/GEMM.swift the second 4-row tail tile reads the first one's rows
- microKernel4x16(ISA.self, kc: kc, a: packedA + (ir - fullRows) * kc, b: panelB,
+ microKernel4x16(ISA.self, kc: kc, a: packedA, b: panelB,
mutant column-split-row-stride Sources/VAEModel/Linear.swift a wide layer's block of output columns written with its own width as the row stride
- Kernels.active.gemm(o, ldc: outFeatures, inp + block.rows.lowerBound * inFeatures, lda: inFeatures, transposeA: false,
+ Kernels.active.gemm(o, ldc: n, inp + block.rows.lowerBound * inFeatures, lda: inFeatures, transposeA: false,
mutant leftover-rows-not-offset Sources/VAEModel/Linear.swift a thread's rows of the left-over panels of dinp read the first rows of dout
- w.dout + first * w.outFeatures, lda: w.outFeatures, transposeA: false,
+ w.dout, lda: w.outFeatures, transposeA: false,
mutant leftover-panels-dropped Sources/VAEKernels/BlockSplit.swift the panels left over after the threads' equal shares are never computed
- if let block = split.leftover(part: chunk) { work.run(block, thread: thread) }
+
mutant finite-check-half-block Sources/VAEKernels/Checks.swift each thread checks only the first half of its block for NaN
- if !allFinite(p + range.lowerBound, count: range.count) { flags[thread] = false }
+ if !allFinite(p + range.lowerBound, count: range.count / 2) { flags[thread] = false }
mutant threads-bound-divided-again Sources/VAETraining/Threads.swift a rank bound by mpirun divides its own cores again
- if environment["OMPI_MCA_orte_bound_at_launch"] == "1" { return availableCores() }
+
first threads_test
mutant tc-local-batch Sources/VAETraining/GradientReduction.swift beta-TCVAE, free bits and capacity see only this rank's examples (each rank's latents repeated, no allgather)
- try communicator.allgather(localLatents, count: rows * 3 * l, into: globalLatents)
+ for k in 0..<(objective.globalBatch / rows) { (globalLatents + k * rows * 3 * l).update(from: localLatents, count: rows * 3 * l) }
first regimes_test
mutant free-bits-half-batch Sources/VAETraining/LossRegime.swift free bits and capacity take the KL mean over the first half of the batch (each example twice)
- let mu = latents + i * 3 * l, logvar = mu + l
+ let mu = latents + (i / 2) * 3 * l, logvar = mu + l
mutant kl-warmup-off-by-one Sources/VAETraining/Schedule.swift the KL warm-up starts at 1/N instead of 0
- warmupSteps > 0 && step < warmupSteps ? Float(step) / Float(warmupSteps) : 1
+ warmupSteps > 0 && step < warmupSteps ? Float(step + 1) / Float(warmupSteps) : 1
mutant capacity-one-sided Sources/VAETraining/LossRegime.swift |KL - C| pushes the KL down only (no gradient under C)
- let sign: Double = excess > 0 ? 1 : (excess < 0 ? -1 : 0)
+ let sign: Double = excess > 0 ? 1 : 0
mutant tc-marginal-gradient Sources/VAEKernels/TotalCorrelation.swift beta-TCVAE's gradient misses the product of marginals' softmax weights
- let g = jointWeight + cMarginal * ws.density[j * l + d] * ws.marginal[d]
+ let g = jointWeight
mutant watchdog-never-fires Sources/VAEDistributed/StallWatchdog.swift the stall watchdog's deadline never passes (a stopped rank hangs the job)
- if waited >= timeout { return .expire }
+ if waited >= timeout && timeout < 0 { return .expire }
first watchdog_test
mutant watchdog-armed-after-start-up Sources/VAETraining/Trainer.swift the collectives before the options are agreed (the checkpoint's broadcast on --resume) wait without a deadline
- try communicator.armWatchdog(timeout: given.timeout ?? TrainingOptions().timeout)
+
first watchdog_test
mutant watchdog-names-wrong-rank Sources/VAEDistributed/StallWatchdog.swift a stall names the ranks that answered, not the silent ones
- let silent = zip(peers, answers).filter { $0.1 == nil }.map(\.0)
+ let silent = zip(peers, answers).filter { $0.1 != nil }.map(\.0)
first watchdog_test
mutant overwrite-keeps-stale-bias Sources/VAEModel/Linear.swift the first micro-batch adds the bias gradient to the last step's instead of writing it over
- if !accumulate { (dbias + o).update(repeating: 0, count: features.count) }
+
mutant overwrite-keeps-stale-logvar Sources/VAEModel/VAE.swift the gaussian likelihood's output log-variance gradient keeps the last step's
- if let lv, lossScale != nil, !accumulate { (gradients + lv).update(repeating: 0, count: config.inputDimension) }
+
mutant accumulate-drops-micro-batch Sources/VAETraining/GradientReduction.swift the sharded optimizer keeps only the last micro-batch's gradient
- accumulate: micro > 0, communicator: communicator)
+ accumulate: false, communicator: communicator)
first accumulate_test
mutant accumulate-repeats-first-micro-batch Sources/VAETraining/Trainer+Step.swift every micro-batch loads the first one's examples (the others are dropped)
- let part = shardRange(count: indices.count, rank: m, worldSize: parts)
+ let part = shardRange(count: indices.count, rank: 0, worldSize: parts)
first accumulate_test
mutant accumulate-with-global-regime Sources/VAETraining/LossRegime.swift --free-bits/--capacity/--tc-beta accepted with --accumulate N > 1 (a trap, not an error line)
- if let option = chosen.first, accumulate > 1 {
+ if let option = chosen.first, accumulate > 1, option == "" {
first accumulate_test
mutant eval-heads-offset Sources/VAEAnalysis/Evaluation.swift the evaluation's posteriors: every batch overwrites the first rows
- (heads + (start - range.lowerBound) * 2 * l).update(from: workspace.heads, count: batch * 2 * l)
+ heads.update(from: workspace.heads, count: batch * 2 * l)
mutant build-error Sources/VAETraining/GradientReduction.swift a syntax error, with the previous build present
- lossScale = 1 / Float(globalBatchSize)
+ lossScale = 1 / Float(globalBatchSize) +
mutant test-build-error Tests/VAEDistTests/Tolerance.swift only the tests fail to compile
- func randomFloats(_ count: Int, seed: UInt64, scale: Float = 1) -> [Float] {
+ func randomFloats(_ count: Int, seed: UInt64, scale: Float = 1) -> [Float] { undefinedName
mutant build-error-fresh-clone !Sources/VAEModel/VAE.swift a syntax error, with no earlier build
- public let layout: ParameterLayout
+ public let layout: ParameterLayout = =
mutant aggregate-kl-without-logdet Sources/VAEAnalysis/AggregatePosterior.swift aggregate_kl without the -log det C term
- let logDet = lambda.reduce(0.0) { $0 + log(max($1, Self.varianceFloor)) }
+ let logDet = 0.0
mutant gathered-means-out-of-order Sources/VAEAnalysis/AggregatePosterior.swift the gathered test means interleaved across ranks instead of in rank order
- let base = (r * rowsPerRank + i) * row
+ let base = (i * size + r) * row
first latent_test
mutant manifold-upside-down Sources/VAEOutputs/LatentSpace.swift the manifold's rows ascend in z2 from the top
- let a = q[column], b = q[steps - 1 - row]
+ let a = q[column], b = q[row]
mutant beta-sweep-worst-traversal Launch/beta_sweep.sh the sweep draws the traversal of the lowest MIG
- best = max(rows, key=lambda r: r["mig"])
+ best = min(rows, key=lambda r: r["mig"])
first beta_sweep_test
mutant beta-sweep-ignores-failure Launch/beta_sweep.sh a failed training goes on to the next step
- rc=$?
+ rc=0
first beta_sweep_test
mutant sighup-kills Sources/VAETraining/Interruption.swift SIGHUP (a closed terminal) kills training at once
- public static let stopSignals = [SIGINT, SIGTERM, SIGHUP, SIGUSR1]
+ public static let stopSignals = [SIGINT, SIGTERM, SIGUSR1]
first fault_test
mutant sigpipe-kills Sources/VAETraining/Interruption.swift a closed standard output (train | head -1) kills training
- signal(SIGPIPE, SIG_IGN)
+ signal(SIGPIPE, SIG_DFL)
first fault_test
mutant run-folder-unlocked Sources/VAETraining/Trainer.swift rank 0 never locks the run folder
- if communicator.isRoot, let lock = try RunLock.acquire(folder: merged.training.output, create: !resume) {
+ if communicator.rank < 0, let lock = try RunLock.acquire(folder: merged.training.output, create: !resume) {
first lock_test
mutant lock-record-kept Sources/VAETraining/RunLock.swift a run that ends leaves its record in the lock file
- writeRecord("")
+ _ = 0
first lock_test
EOF

names=() files=() whats=() olds=() news=() firsts=()
while IFS= read -r line; do
  case "$line" in
    "mutant "*) read -r _ name file what <<< "$line"; names+=("$name"); files+=("$file"); whats+=("$what"); firsts+=("") ;;
    "first "*) firsts[${#firsts[@]}-1]=${line#first } ;;
    "- "*) olds+=("${line#- }") ;;
    "+ "*) news+=("${line#+ }") ;;
    "+") news+=("") ;;
  esac
done <<< "$MUTANTS"

if [ "${1:-}" = "--list" ]; then
  for i in "${!names[@]}"; do printf '%-34s %s\n' "${names[$i]}" "${whats[$i]}"; done
  exit 0
fi
# --check: only that every mutation still applies to the source (Launch/test.sh runs this, so a
# refactor that moves the mutated code also updates this list).
if [ "${1:-}" = "--check" ]; then
  stale=0
  for i in "${!names[@]}"; do
    file=${files[$i]#!}
    found=$(python3 -c 'import sys; print(open(sys.argv[1]).read().count(sys.argv[2]))' "$file" "${olds[$i]}" 2>/dev/null || echo 0)
    [ "$found" = 1 ] || { echo "mutation: ${names[$i]}: its text occurs $found times in $file (expected once)"; stale=1; }
  done
  [ "$stale" -eq 0 ] && echo "mutation: all ${#names[@]} mutants apply to the source"
  exit "$stale"
fi
selected=("$@")
wanted() { [ ${#selected[@]} -eq 0 ] && return 0; local s; for s in "${selected[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

work=${VAE_DIST_MUTATION_DIR:-/tmp/vae-dist-mutants}
copy=$work/src pristine=$work/pristine
# The copy is this working tree (committed or not), minus build products; a pristine second
# copy restores each mutated file.
rm -rf "$pristine"; mkdir -p "$copy" "$pristine"
git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$pristine"
(cd "$pristine" && tar -cf - .) | tar -xf - -C "$copy"
echo "mutation: working copy $copy ($(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ', with uncommitted changes'))"

run_suite() {  # LOG [MUTANT [FIRST-SUITE]]: test.sh in the copy, fail-fast; returns its exit status
  (cd "$copy" && VAE_DIST_TEST_FAIL_FAST=1 VAE_DIST_MUTANT=${2:-} VAE_DIST_TEST_FIRST=${3:-} timeout 1800 bash Launch/test.sh) > "$1" 2>&1
}
first_red() {  # LOG: the first line that says what failed (not an ok line that quotes an error)
  grep -E "FAILED|✘|error:" "$1" | grep -v "^ *ok:" | head -1 | sed 's/^ *//' | cut -c1-200
}

if [ "${VAE_DIST_MUTATION_BASELINE:-1}" = 1 ]; then
  if run_suite "$work/baseline.log"; then
    echo "  ok: the unmutated copy passes Launch/test.sh"
  else
    echo "mutation: the unmutated copy fails Launch/test.sh ($(first_red "$work/baseline.log")); see $work/baseline.log"
    echo "mutation: 0 passed, 1 failed"
    exit 1
  fi
fi

for i in "${!names[@]}"; do
  name=${names[$i]} file=${files[$i]}
  wanted "$name" || continue
  fresh=0
  [ "${file:0:1}" = "!" ] && { fresh=1; file=${file:1}; }
  if ! python3 - "$copy/$file" "${olds[$i]}" "${news[$i]}" <<'PY'
import sys
path, old, new = sys.argv[1:4]
text = open(path).read()
if text.count(old) != 1:
    sys.exit(f"found {text.count(old)} times, expected once")
open(path, "w").write(text.replace(old, new))
PY
  then
    bad "$name: the mutation does not apply to $file (update Launch/mutation_test.sh)"
    continue
  fi
  [ "$fresh" -eq 1 ] && rm -rf "$copy/.build"
  start=$(date +%s)
  if run_suite "$work/$name.log" "$name" "${firsts[$i]}"; then
    bad "$name ($file: ${whats[$i]}): Launch/test.sh still passes"
  else
    ok "$name caught in $(( $(date +%s) - start ))s: $(first_red "$work/$name.log")"
  fi
  cp "$pristine/$file" "$copy/$file"  # restore
done
summary mutation
