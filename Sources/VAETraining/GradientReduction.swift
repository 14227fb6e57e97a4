import VAEDistributed
import VAEKernels
import VAEModel

// How each rank's gradient of its slice of the global batch becomes one identical update on
// every rank (docs/ARCHITECTURE.md, "Reduction strategies"). One strategy is chosen at start:
//
//   AllreduceReduction      the sum over ranks by MPI_Allreduce: in buckets started during
//                           backward as soon as their layers are final (overlapped, as PyTorch
//                           DDP and Horovod do), or as one call after backward;
//   ShardedReduction        ZeRO stage 1: reduce-scatter, each rank runs Adam on its 1/N of the
//                           parameters and moments, allgather of the parameters;
//   DeterministicReduction  --deterministic: 4 fixed groups summed in one fixed tree, so 1, 2 and
//                           4 ranks are bit-identical (optionally with the sharded update).
//
// A step calls computeGradients once per micro-batch (--accumulate; the gradients add up
// locally and only the last one may start reductions), reduce (always, so started requests
// complete on every rank), then, unless the step is skipped, updates `updateRange` and calls
// shareParameters.

/// This rank's share of a step, one micro-batch at a time: its inputs and noise, and the model
/// that runs them. With --accumulate N the buffers and the workspace hold 1/N of the rank's slice.
final class LocalBatch {
    let model: VAE
    let workspace: VAEWorkspace
    let x: UnsafeMutablePointer<Float>    // [capacity, D]
    let eps: UnsafeMutablePointer<Float>  // [capacity, latent]
    /// The largest micro-batch of this rank's slice.
    let capacity: Int
    /// d(mean loss over the global batch) / d(one example's loss) = 1 / global batch
    /// (the whole optimizer step's batch, whatever its micro-batches).
    let lossScale: Float

    init(model: VAE, capacity: Int, globalBatchSize: Int) {
        self.model = model
        self.capacity = capacity
        lossScale = 1 / Float(globalBatchSize)
        workspace = VAEWorkspace(config: model.config, capacity: capacity)
        x = allocateAligned(capacity * model.config.inputDimension)
        eps = allocateAligned(capacity * model.config.latent)
    }

    deinit {
        x.deallocate()
        eps.deallocate()
    }

    /// Forward and backward on rows row ..< row + count, accumulating their gradient into
    /// `gradients`; returns their loss sums.
    func forwardBackward(row: Int, count: Int, into gradients: UnsafeMutablePointer<Float>,
                         observer: (any BackwardObserver)? = nil) -> (recon: Double, kl: Double) {
        let xs = x + row * model.config.inputDimension, es = eps + row * model.config.latent
        model.forward(workspace, x: xs, eps: es, batch: count, lossScale: lossScale, gradients: gradients)
        model.backward(workspace, x: xs, eps: es, batch: count, lossScale: lossScale, gradients: gradients, observer: observer)
        var recon = 0.0, kl = 0.0
        for r in 0..<count {
            recon += Double(workspace.recon[r])
            kl += Double(workspace.kl[r])
        }
        return (recon, kl)
    }
}

/// The local half of a step: loss sums and whether this rank's loss and gradient are finite
/// (summed over the step's micro-batches).
struct LocalResult {
    var recon = 0.0
    var kl = 0.0
    var finite = true
}

protocol GradientReduction: AnyObject {
    /// For the start-up line: "overlapped allreduce in 4 buckets" and the like.
    var name: String { get }
    var model: VAE { get }
    /// Forward and backward of micro-batch `micro` of `count` (its `rows` rows loaded in `batch`),
    /// its gradient added to model.gradients (zeroed at micro-batch 0) and its loss sums to
    /// `result`; the last micro-batch may start reductions and decides `result.finite`.
    func computeGradients(_ batch: LocalBatch, rows: Int, micro: Int, of count: Int, into result: inout LocalResult) throws
    /// Completes the reduction: model.gradients[updateRange] hold the global-batch gradient.
    func reduce() throws
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
}

extension GradientReduction {
    var reducedGradients: UnsafeMutablePointer<Float> { model.gradients + updateRange.lowerBound }
    func shareParameters() throws {}
    func shareOptimizerState(_ optimizer: AdamOptimizer) throws {}
    /// Strategies that leave every rank the whole reduced gradient compute it locally.
    func squaredGradientNorm() throws -> Double { sumOfSquares(model.gradients, count: model.parameterCount) }
}

/// Builds the strategy the options ask for.
func makeGradientReduction(options: TrainingOptions, model: VAE, communicator: any Communicator) -> any GradientReduction {
    if options.deterministic {
        return DeterministicReduction(model: model, communicator: communicator, sharded: options.shardOptimizer)
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
        return buckets.isEmpty ? "allreduce after backward" : "allreduce overlapped with backward in \(buckets.count) buckets"
    }

    var updateRange: Range<Int> { 0..<model.parameterCount }

    func computeGradients(_ batch: LocalBatch, rows: Int, micro: Int, of count: Int, into result: inout LocalResult) throws {
        if micro == 0 {
            started = 0
            finite = true
            model.zeroGradients()
        }
        // Buckets start only during the last micro-batch's backward: the gradient is then whole.
        let last = micro == count - 1
        let (recon, kl) = batch.forwardBackward(row: 0, count: rows, into: model.gradients,
                                                observer: buckets.isEmpty || !last ? nil : self)
        result.recon += recon
        result.kl += kl
        if let failure { self.failure = nil; throw failure }
        guard last else { return }
        if buckets.isEmpty { finite = allFinite(model.gradients, count: model.parameterCount) }
        result.finite = finite && result.recon.isFinite && result.kl.isFinite
    }

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
    let starts = (layout.encoder.map(\.weight) + [layout.head.weight] + layout.decoder.map(\.weight) + [layout.output.weight])
        .sorted(by: >)
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

    func computeGradients(_ batch: LocalBatch, rows: Int, micro: Int, of count: Int, into result: inout LocalResult) throws {
        if micro == 0 { model.zeroGradients() }
        let (recon, kl) = batch.forwardBackward(row: 0, count: rows, into: model.gradients)
        result.recon += recon
        result.kl += kl
        guard micro == count - 1 else { return }
        result.finite = result.recon.isFinite && result.kl.isFinite && allFinite(model.gradients, count: model.parameterCount)
    }

    func reduce() throws {
        try communicator.reduceScatterSum(model.gradients, shards: shards, into: shard)
    }

    func shareParameters() throws { try communicator.allgatherInPlace(model.parameters, shards: shards) }

    func shareOptimizerState(_ optimizer: AdamOptimizer) throws {
        try communicator.allgatherInPlace(optimizer.firstMoment, shards: shards)
        try communicator.allgatherInPlace(optimizer.secondMoment, shards: shards)
    }

    /// Each rank holds only its block of the reduced gradient: sum the blocks' squared norms.
    func squaredGradientNorm() throws -> Double {
        var total = sumOfSquares(shard, count: updateRange.count)
        try communicator.allreduceSum(&total, count: 1)
        return total
    }
}
