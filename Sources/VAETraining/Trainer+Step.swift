import VAEData
import VAEDistributed
import VAEKernels
import VAEOutputs

// One training step, as it reads in llm.c: load the batch, forward and backward (the gradient
// reduction may start on the way), reduce, update. The loop around it (Trainer.trainEpoch)
// handles skips, stops, checks and progress.

/// What every rank contributes to a step's small allreduce, summed over ranks as one unit:
/// every rank then skips, stops and logs the same step alike.
public struct StepControl {
    /// Ranks whose loss or gradient was not finite (the step is skipped everywhere).
    var nonFiniteRanks = 0.0
    /// Ranks that received a stop signal (Interruption.stopSignals; every rank stops after this step).
    var stopRequests = 0.0
    /// Loss sums over the global batch, nats.
    var recon = 0.0
    var kl = 0.0
    /// The training regime's KL-side loss and beta-TCVAE's parts (LossRegime.swift), summed:
    /// four Doubles, reduced with the rest as raw Doubles.
    var regime = RegimeSums()

    mutating func allreduce(_ communicator: any Communicator) throws(CommunicatorError) {
        try withUnsafeMutableBytes(of: &self) { raw throws(CommunicatorError) in
            try communicator.allreduceSum(raw.baseAddress!.assumingMemoryBound(to: Double.self),
                                          count: MemoryLayout<StepControl>.stride / MemoryLayout<Double>.stride)
        }
    }
}

/// Seconds spent per part of the step, summed over an epoch's steps. Communication is what
/// the step waited for (exposed), not what ran hidden behind backward.
public struct StepTimes {
    public var compute = 0.0
    public var communication = 0.0
    public var optimizer = 0.0
    public var steps = 0

    public init() {}
}

extension Trainer {
    /// Global batch `s` of `plan`: returns the step's reduced control block. Updates the
    /// parameters unless some rank's loss or gradient was not finite.
    @discardableResult
    public func step(_ s: Int, of plan: EpochPlan, epoch e: Int, times: inout StepTimes) throws -> StepControl {
        faults.beforeStep(optimizer.step + 1, log: log)
        let t0 = now()
        communicator.phase = CollectivePhase(.step, step: optimizer.step + 1)
        attemptedSteps += 1
        batch.step = optimizer.step
        // This rank's slice of the global batch in --accumulate micro-batches, their gradients
        // added up in the buffers the reduction gives; a micro-batch is one group, or under
        // --deterministic its fixed groups, each computed alone.
        let indices = plan.localIndices(step: s), microBatches = options.microBatches
        var local = LocalLossSums()
        for m in 0..<microBatches {
            try loadMicroBatch(m, of: microBatches, indices: indices, epoch: e)
            let groups = (m * batch.groups)..<((m + 1) * batch.groups)
            for g in groups {
                local += batch.forward(group: g - groups.lowerBound, into: reduction.gradientTarget(group: g))
            }
            try batch.prepareObjective(communicator: communicator)
            let observer = reduction.backwardObserver(lastMicroBatch: m == microBatches - 1)
            for g in groups {
                batch.backward(group: g - groups.lowerBound, into: reduction.gradientTarget(group: g), observer: observer)
            }
        }
        try reduction.finishLocalGradient()
        let finite = local.isFinite && reduction.localGradientIsFinite()
        let regime = batch.regimeShare(rank: communicator.rank, localKL: local.kl)
        let t1 = now()

        // Reduce the gradients and the control block.
        try reduction.reduceForUpdate()
        var control = StepControl(nonFiniteRanks: finite ? 0 : 1, stopRequests: Interruption.pending != 0 ? 1 : 0,
                                  recon: local.recon, kl: local.kl, regime: regime)
        try control.allreduce(communicator)
        let t2 = now()

        // Clip and update this rank's parameters (all, or its shard), then share them.
        var t3 = t2, t4 = t2
        if control.nonFiniteRanks == 0 {
            try clipGradients()
            optimizer.hyper.learningRate = learningRate(step: optimizer.step, totalSteps: plan.steps * options.epochs,
                                                        base: options.learningRate, schedule: options.lrSchedule,
                                                        warmupSteps: options.warmupSteps)
            reduction.update(optimizer)
            t3 = now()
            try reduction.shareParameters()
            t4 = now()
        }
        times.compute += t1 - t0
        times.communication += (t2 - t1) + (t4 - t3)
        times.optimizer += t3 - t2
        times.steps += 1
        return control
    }

    /// Loads micro-batch `m` of `count` of this rank's slice `indices` into `batch`: its inputs
    /// and noise, keyed by the example. The fault hooks act on the step's first micro-batch.
    func loadMicroBatch(_ m: Int, of count: Int, indices: ArraySlice<Int32>, epoch e: Int) throws {
        let range = microBatchRange(count: indices.count, index: m, of: count)
        let micro = indices[(indices.startIndex + range.lowerBound)..<(indices.startIndex + range.upperBound)]
        micro.withUnsafeBufferPointer {
            loadBatch(batch.x, noise: BatchNoise(eps: batch.eps, latent: modelConfig.latent, stream: .reparameterization, epoch: e),
                      from: dataset.train, indices: $0, rows: $0.count, binarize: options.binarize,
                      generator: generator, epoch: e, threads: model.threads)
        }
        if m == 0 {
            if faults.active("error", rank: communicator.rank, step: attemptedSteps) {
                throw TrainingError.training("injected fault (VAE_DIST_FAULT) at step \(attemptedSteps)")
            }
            if faults.active("nan", rank: communicator.rank, step: attemptedSteps) { batch.x[0] = .nan }
        }
        batch.rows = micro.count
    }

    /// torch.nn.utils.clip_grad_norm_ over the global-batch gradient of all ranks (--clip-grad-norm).
    func clipGradients() throws {
        guard options.clipGradNorm > 0 else { return }
        let norm = try reduction.squaredGradientNorm().squareRoot()
        lastGradNorm = Double(norm)
        let coefficient = clipCoefficient(norm: norm, maxNorm: options.clipGradNorm)
        if coefficient < 1 { reduction.scaleGradients(by: coefficient) }
    }
}

/// Micro-batch `index` of `microBatches` of a rank's slice of `count` examples: contiguous,
/// sizes differing by at most one, the larger ones first (micro-batch 0 is the largest).
func microBatchRange(count: Int, index: Int, of microBatches: Int) -> Range<Int> {
    let base = count / microBatches, extra = count % microBatches
    let start = index * base + min(index, extra)
    return start ..< start + base + (index < extra ? 1 : 0)
}
