import VAECheckpoint
import VAEData
import VAEDistributed
import VAEKernels
import VAEModel

// How each rank's gradient of its slice of the global batch becomes one identical update on
// every rank (docs/ARCHITECTURE.md, "Reduction strategies"). One strategy is chosen at start:
//
//   SharedMemoryReduction   every rank on one node: the ranks add up each other's gradients in
//                           an MPI-3 shared-memory window (sharded or not), no messages;
//   AllreduceReduction      the sum over ranks by MPI_Allreduce: in buckets started during
//                           backward as soon as their layers are final (overlapped, as PyTorch
//                           DDP and Horovod do), or as one call after backward;
//   ShardedReduction        ZeRO stage 1: reduce-scatter, each rank runs Adam on its 1/N of the
//                           parameters and moments, allgather of the parameters;
//   CompressedReduction     --grad-compression bf16|fp16: 16-bit blocks all-to-all, summed in
//                           fp32, 16-bit allgather (CompressedReduction.swift);
//   DeterministicReduction  --deterministic: 4 fixed groups summed in one fixed tree, so 1, 2 and
//                           4 ranks are bit-identical (optionally with the sharded update).
//
// A step runs forward and backward into the buffers the strategy gives (`gradientTarget`; the
// gradients of its micro-batches add up locally and only the last one's backward may start
// reductions), then `finishLocalGradient`, `reduceForUpdate` (always, so started requests
// complete on every rank; `reduce`, except that the sharded shared-memory sum leaves its last
// sums to the update), and, unless the step is skipped, `update` (Adam on `updateRange`) and
// shareParameters.

/// This rank's share of a step, one micro-batch at a time: its inputs and noise, and the model
/// that runs them. With --accumulate N the buffers and the workspaces hold 1/N of the rank's slice.
final class LocalBatch {
    let model: VAE
    /// One workspace per group computed alone: the whole micro-batch is one group, or under
    /// --deterministic each of its fixed groups is one. Every group's activations live until its
    /// backward, so the regimes that need the global batch see every group's latents first.
    let workspaces: [VAEWorkspace]
    let x: UnsafeMutablePointer<Float>    // [capacity, D]
    let eps: UnsafeMutablePointer<Float>  // [capacity, latent]
    /// The largest micro-batch of this rank's slice.
    let capacity: Int
    /// The rows of the micro-batch loaded now (at most `capacity`), set before its forward.
    var rows: Int
    /// d(mean loss over the global batch) / d(one example's loss) = 1 / global batch
    /// (the whole optimizer step's batch, whatever its micro-batches).
    let lossScale: Float
    /// The training regime's latent objective (LossRegime.swift); nil: recon + beta * KL.
    let objective: LatentObjective?
    /// The optimizer step this batch trains (the regimes' ramps), set before its forward.
    var step = 0
    /// Regimes over the global batch: this rank's (mu | logvar | z) [rows, 3 latent] and every
    /// rank's [global batch, 3 latent] in global example order.
    private let localLatents: UnsafeMutablePointer<Float>?
    private let globalLatents: UnsafeMutablePointer<Float>?
    /// The global index of this rank's first example (rank * rows: such regimes need equal slices).
    private let firstGlobalRow: Int

    init(model: VAE, capacity: Int, globalBatchSize: Int, groups: Int = 1, rank: Int = 0, objective: LatentObjective? = nil) {
        precondition(groups >= 1 && capacity % groups == 0, "\(capacity) rows do not split into \(groups) groups")
        self.model = model
        self.capacity = capacity
        rows = capacity
        self.objective = objective
        lossScale = 1 / Float(globalBatchSize)
        workspaces = (0..<groups).map { _ in VAEWorkspace(config: model.config, capacity: capacity / groups) }
        x = allocateAligned(capacity * model.config.inputDimension)
        eps = allocateAligned(capacity * model.config.latent)
        let global = objective?.regime.needsGlobalBatch == true
        localLatents = global ? allocateAligned(capacity * 3 * model.config.latent) : nil
        globalLatents = global ? allocateAligned(globalBatchSize * 3 * model.config.latent) : nil
        firstGlobalRow = rank * capacity
    }

    deinit {
        x.deallocate()
        eps.deallocate()
        localLatents?.deallocate()
        globalLatents?.deallocate()
    }

    /// The groups of a micro-batch, each computed alone: 1, or under --deterministic the fixed
    /// groups it holds.
    var groups: Int { workspaces.count }
    var groupRows: Int { rows / workspaces.count }

    /// Forward of group `g` of the micro-batch, seeding its backward (the gaussian likelihood's
    /// output log-variance gradient goes into `target`); returns its loss sums. A target that
    /// does not accumulate is written over, so nothing needs zeroing first.
    func forward(group g: Int, into target: GradientTarget) -> LocalLossSums {
        let row = g * groupRows, workspace = workspaces[g]
        model.forward(workspace, x: x + row * model.config.inputDimension, eps: eps + row * model.config.latent,
                      batch: groupRows, lossScale: lossScale, gradients: target.gradients, accumulate: target.accumulate)
        var sums = LocalLossSums()
        for r in 0..<groupRows {
            sums.recon += Double(workspace.recon[r])
            sums.kl += Double(workspace.kl[r])
        }
        return sums
    }

    /// After every group's forward of the micro-batch, before any backward: the regime's latent
    /// gradient for this step. Regimes over the global batch allgather every rank's latents (a
    /// collective); they need the rank's whole slice in one micro-batch (`validateRegime`).
    func prepareObjective(communicator: any Communicator) throws {
        guard let objective else { return }
        guard let localLatents, let globalLatents else {
            objective.prepare(step: step, latents: nil)
            return
        }
        guard rows * communicator.size == objective.globalBatch else {  // validateRegime refuses it first
            throw TrainingError.training("\(objective.regime.name) needs every rank's whole slice of the global batch in one micro-batch (--accumulate 1)")
        }
        let l = model.config.latent
        for g in 0..<groups {
            let workspace = workspaces[g]
            for r in 0..<groupRows {
                let row = localLatents + (g * groupRows + r) * 3 * l
                row.update(from: workspace.heads + r * 2 * l, count: 2 * l)
                (row + 2 * l).update(from: workspace.z + r * l, count: l)
            }
        }
        try communicator.allgather(localLatents, count: rows * 3 * l, into: globalLatents)
        objective.prepare(step: step, latents: globalLatents)
    }

    /// Backward of group `g` into `target`, after its `forward` (into the same target) and
    /// `prepareObjective`.
    func backward(group g: Int, into target: GradientTarget, observer: (any BackwardObserver)? = nil) {
        let row = g * groupRows
        model.backward(workspaces[g], x: x + row * model.config.inputDimension, eps: eps + row * model.config.latent,
                       batch: groupRows, lossScale: lossScale, gradients: target.gradients,
                       latent: objective?.gradient(rows: firstGlobalRow + row), observer: observer, accumulate: target.accumulate)
    }

    /// What this rank adds to the step's reduced regime sums, after its last micro-batch
    /// (`localKL`: its examples' KL summed over all of them): a regime over the global batch
    /// computed them whole on every rank, so rank 0 alone contributes them.
    func regimeShare(rank: Int, localKL: Double) -> RegimeSums {
        guard let objective, !(objective.regime.needsGlobalBatch && rank != 0) else { return RegimeSums() }
        return objective.sums(localKL: localKL)
    }
}

/// Loss sums of a group, a micro-batch or this rank's slice of a step, nats.
struct LocalLossSums {
    var recon = 0.0
    var kl = 0.0

    static func += (sums: inout LocalLossSums, other: LocalLossSums) {
        sums.recon += other.recon
        sums.kl += other.kl
    }

    var isFinite: Bool { recon.isFinite && kl.isFinite }
}

/// Where a group's forward and backward write its gradient, and how: `accumulate` adds into
/// `gradients` (backward's `+=`), false writes over them.
struct GradientTarget {
    let gradients: UnsafeMutablePointer<Float>
    let accumulate: Bool
}

protocol GradientReduction: AnyObject {
    /// For the start-up line: "overlapped allreduce in 4 buckets" and the like.
    var name: String { get }
    var model: VAE { get }
    var communicator: any Communicator { get }
    /// Where backward of this step's group `group` writes (groups are counted over the step's
    /// micro-batches: micro-batch m holds groups m * groups ..< (m + 1) * groups). By default the
    /// strategy's `localGradient`, written over by group 0 and added into by the others.
    func gradientTarget(group: Int) -> GradientTarget
    /// The observer of a micro-batch's backward: a strategy that overlaps its reduction with
    /// backward starts it during the last micro-batch (the gradient is then whole). Default nil.
    func backwardObserver(lastMicroBatch: Bool) -> (any BackwardObserver)?
    /// After the step's last backward: `localGradient` holds this rank's gradient of its slice
    /// (the deterministic strategy sums its groups here); throws what failed in a reduction
    /// started during backward.
    func finishLocalGradient() throws
    /// This rank's gradient of its slice before `reduce` (model.gradients, or the rank's shared slot).
    var localGradient: UnsafeMutablePointer<Float> { get }
    /// After `finishLocalGradient`, before `reduce` replaces it with the sum: whether this rank's
    /// gradient is finite (by default `localGradientIsAllFinite`).
    func localGradientIsFinite() -> Bool
    /// Completes the reduction: `reducedGradients` holds the global-batch gradient of `updateRange`.
    func reduce() throws
    /// The training step's reduce: as `reduce`, except that a strategy may leave the last sum to
    /// `update` (made while it updates each piece; `squaredGradientNorm` makes it first).
    /// Default: `reduce`.
    func reduceForUpdate() throws
    /// After `reduceForUpdate` (and any clipping): Adam on `updateRange` with the global-batch
    /// gradient. Default: `optimizer.update` on `reducedGradients`.
    func update(_ optimizer: AdamOptimizer)
    /// The parameters and Adam moments this rank updates.
    var updateRange: Range<Int> { get }
    /// After `reduce`: the global-batch gradient of `updateRange`.
    var reducedGradients: UnsafeMutablePointer<Float> { get }
    /// After the update: every rank holds every parameter again.
    func shareParameters() throws
    /// Before a checkpoint: every rank holds every Adam moment.
    func shareOptimizerState(_ optimizer: AdamOptimizer) throws
    /// After `reduce`: the squared norm of the whole global-batch gradient, the same on every rank.
    func squaredGradientNorm() throws -> Double
    /// After `squaredGradientNorm`: multiplies the gradient Adam reads (`reducedGradients`) by
    /// `coefficient` (clipping).
    func scaleGradients(by coefficient: Float)
}

extension GradientReduction {
    func gradientTarget(group: Int) -> GradientTarget { GradientTarget(gradients: localGradient, accumulate: group > 0) }
    func backwardObserver(lastMicroBatch: Bool) -> (any BackwardObserver)? { nil }
    func finishLocalGradient() throws {}
    var localGradient: UnsafeMutablePointer<Float> { model.gradients }
    func localGradientIsFinite() -> Bool { localGradientIsAllFinite() }
    /// The finiteness check of this rank's whole gradient.
    func localGradientIsAllFinite() -> Bool { model.threads.allFinite(localGradient, count: model.parameterCount) }

    func reduceForUpdate() throws { try reduce() }
    func update(_ optimizer: AdamOptimizer) { optimizer.update(model, range: updateRange, gradients: reducedGradients) }

    var reducedGradients: UnsafeMutablePointer<Float> { model.gradients + updateRange.lowerBound }
    func scaleGradients(by coefficient: Float) { vectorScale(reducedGradients, by: coefficient, count: updateRange.count) }
    func shareParameters() throws {}
    func shareOptimizerState(_ optimizer: AdamOptimizer) throws {}
    /// Allreduce strategies leave every rank the whole reduced gradient and compute it locally, as
    /// the sum of each rank's shard's sum of squares in rank order: the sums and the order the
    /// sharded optimizer uses, so clipping gives the same bits sharded or not (on one rank count;
    /// --deterministic sums the whole buffer instead, the same on any rank count).
    func squaredGradientNorm() throws -> Double { blockwiseSquaredNorm(model.gradients) }

    /// The squared norm of a whole reduced gradient: each rank's block's sum of squares (the
    /// blocks of Shards(total: parameterCount, ranks: size), without allocating one), added in
    /// rank order.
    func blockwiseSquaredNorm(_ gradient: UnsafePointer<Float>) -> Double {
        var total = 0.0
        for r in 0..<communicator.size {
            let range = shardRange(count: model.parameterCount, rank: r, worldSize: communicator.size)
            total += sumOfSquares(gradient + range.lowerBound, count: range.count)
        }
        return total
    }

    /// A sharded optimizer's moments, each rank's block to every rank (before a checkpoint).
    func gatherMoments(_ optimizer: AdamOptimizer, shards: Shards) throws {
        try communicator.allgatherInPlace(optimizer.firstMoment, shards: shards)
        try communicator.allgatherInPlace(optimizer.secondMoment, shards: shards)
    }
}

/// Builds the strategy the options ask for: with every rank on one node (and `sharedMemory`),
/// the sum over shared memory; across nodes with several ranks on a node, the hierarchical sum
/// (shared memory, then the node sums across nodes); one rank per node, MPI's collectives.
/// `shardOnOneNode` (--shard-optimizer not given on a new run): the shared-memory sum shards Adam
/// too (the same bits; each rank then sums and updates 1/N instead of every rank repeating Adam
/// on all of it); elsewhere it changes nothing.
func makeGradientReduction(options: TrainingOptions, model: VAE, communicator: any Communicator,
                           sharedMemory: Bool = true, shardOnOneNode: Bool = false) throws -> any GradientReduction {
    if options.deterministic {
        return DeterministicReduction(model: model, communicator: communicator, sharded: options.shardOptimizer)
    }
    if sharedMemory, let shared = try SharedMemoryReduction(model: model, communicator: communicator,
                                                            sharded: options.shardOptimizer || shardOnOneNode) {
        return shared
    }
    if sharedMemory, !options.shardOptimizer,
       let hierarchical = try HierarchicalReduction(model: model, communicator: communicator, compression: options.gradCompression) {
        return hierarchical
    }
    if options.gradCompression != .none && communicator.size > 1 {
        return CompressedReduction(model: model, communicator: communicator, compression: options.gradCompression,
                                   sharded: options.shardOptimizer)
    }
    if options.shardOptimizer && communicator.size > 1 {
        return ShardedReduction(model: model, communicator: communicator)
    }
    return AllreduceReduction(model: model, communicator: communicator,
                              bucketFloats: Int(options.bucketMB * 1_048_576 / 4))
}

// MARK: Allreduce, overlapped in buckets

final class AllreduceReduction: GradientReduction, BackwardObserver {
    let communicator: any Communicator
    let model: VAE
    /// Contiguous ranges of the gradient buffer in the order backward finishes them (from the
    /// end of the buffer to its start); empty when reducing in one call after backward.
    let buckets: [Range<Int>]
    private var started = 0
    private var finite = true
    private var failure: (any Error)?

    init(model: VAE, communicator: any Communicator, bucketFloats: Int) {
        self.model = model
        self.communicator = communicator
        buckets = communicator.size > 1 ? gradientBuckets(model.layout, bucketFloats: bucketFloats) : []
    }

    var name: String {
        if communicator.size == 1 { return "none (one rank)" }
        let algorithm = communicator.allreduceAlgorithm.map { " (\($0))" } ?? ""
        if buckets.isEmpty { return "allreduce after backward" + algorithm }
        return "allreduce overlapped with backward in \(buckets.count) buckets" + algorithm + ", \(communicator.overlapProgress)"
    }

    var updateRange: Range<Int> { 0..<model.parameterCount }

    /// Buckets start only during the last micro-batch's backward: the gradient is then whole.
    func backwardObserver(lastMicroBatch: Bool) -> (any BackwardObserver)? {
        guard lastMicroBatch && !buckets.isEmpty else { return nil }
        started = 0
        finite = true
        return self
    }

    func finishLocalGradient() throws {
        if let failure { self.failure = nil; throw failure }
    }

    /// Each bucket was checked as it started (`start`); without buckets, the whole gradient.
    func localGradientIsFinite() -> Bool { buckets.isEmpty ? localGradientIsAllFinite() : finite }

    func gradientsFinal(from offset: Int) {
        while started < buckets.count && buckets[started].lowerBound >= offset {
            start(buckets[started])
        }
        do { try communicator.progressReductions() } catch { failure = error }
    }

    private func start(_ bucket: Range<Int>) {
        // This rank's values are checked before the sum replaces them.
        finite = finite && allFinite(model.gradients + bucket.lowerBound, count: bucket.count)
        do { try communicator.startAllreduceSum(model.gradients + bucket.lowerBound, count: bucket.count) } catch { failure = error }
        started += 1
    }

    func reduce() throws {
        if communicator.size == 1 { return }
        if buckets.isEmpty {
            try communicator.allreduceSum(model.gradients, count: model.parameterCount)
        } else {
            while started < buckets.count { start(buckets[started]) }
            if let failure { self.failure = nil; throw failure }
            try communicator.finishReductions()
        }
    }
}

/// The buckets of the flat gradient buffer in the order backward finishes them (from its end
/// to its start), cut at layer starts once a bucket holds `bucketFloats`; empty (one reduction
/// after backward) when bucketFloats is 0 or the whole buffer.
public func gradientBuckets(_ layout: ParameterLayout, bucketFloats: Int) -> [Range<Int>] {
    guard bucketFloats > 0, bucketFloats < layout.count else { return [] }
    let starts = layout.layerStarts.reversed()
    var buckets: [Range<Int>] = []
    var end = layout.count
    for start in starts where end - start >= bucketFloats || start == 0 {
        buckets.append(start..<end)
        end = start
    }
    return buckets
}

// MARK: Sharded optimizer (ZeRO stage 1)

final class ShardedReduction: GradientReduction {
    let communicator: any Communicator
    let model: VAE
    let shards: Shards
    let shard: UnsafeMutablePointer<Float>  // this rank's block of the summed gradient
    /// Adam reads the reduced block where reduce-scatter left it (no copy back into the model's buffer).
    var reducedGradients: UnsafeMutablePointer<Float> { shard }

    init(model: VAE, communicator: any Communicator) {
        self.model = model
        self.communicator = communicator
        shards = Shards(total: model.parameterCount, ranks: communicator.size)
        shard = allocateAligned(Int(shards.counts[communicator.rank]))
    }

    deinit { shard.deallocate() }

    var name: String { "sharded optimizer (reduce-scatter, Adam on 1/\(communicator.size) of the parameters, allgather)" }
    var updateRange: Range<Int> { shards.range(communicator.rank) }

    func reduce() throws {
        try communicator.reduceScatterSum(model.gradients, shards: shards, into: shard)
    }

    func shareParameters() throws { try communicator.allgatherInPlace(model.parameters, shards: shards) }

    func shareOptimizerState(_ optimizer: AdamOptimizer) throws { try gatherMoments(optimizer, shards: shards) }

    /// Each rank holds only its block of the reduced gradient: each rank's shard's sum of squares,
    /// exchanged (one nonzero term per slot: the sum is exact) and added in rank order, as the
    /// unsharded strategies add them.
    func squaredGradientNorm() throws -> Double {
        try withUnsafeTemporaryAllocation(of: Double.self, capacity: communicator.size) { partials throws(CommunicatorError) in
            partials.initialize(repeating: 0)
            partials[communicator.rank] = sumOfSquares(shard, count: updateRange.count)
            try communicator.allreduceSum(partials.baseAddress!, count: partials.count)
            var total = 0.0
            for p in partials { total += p }
            return total
        }
    }
}
