import Foundation
import VAECheckpoint
import VAEDistributed
import VAEKernels
import VAEModel

// The training regimes researchers use with beta, each replacing the beta * KL term of the
// loss (mean over the global batch of B examples; KL_j the analytic KL of latent dimension j):
//
//   plain           beta * KL                                              (the default)
//   --kl-warmup N   beta * w_t * KL,  w_t = min(1, t / N)                  (t: the global step)
//   --capacity C --capacity-steps N --gamma G (Burgess et al. 2018)
//                   G * |mean_b KL_b - C_t|,  C_t = C * min(1, t / N)
//   --free-bits L (Kingma et al. 2016, IAF)
//                   beta * w_t * sum_j max(L, mean_b KL_bj): dimension j gets no gradient while
//                   its batch mean is at or under L nats
//   --tc-beta T (Chen et al. 2018, beta-TCVAE)
//                   mean_b (mi_b + T tc_b + dwkl_b), minibatch-weighted sampling over the
//                   global batch (VAEKernels/TotalCorrelation.swift)
//
// The batch means are over the GLOBAL batch, so capacity, free bits and beta-TCVAE need every
// rank's (mu | logvar | z) before backward: one allgather of B * 3 * latent floats, after which
// every rank computes the same Double statistics in global example order (the same bits on 1, 2
// and 4 ranks) and keeps the rows of its own examples for backward (`LatentObjective`).
// Reported train_kl stays the analytic KL; train_loss is the objective above plus recon.

/// The regime of a run, from its options; `validate` refuses combinations that have no meaning.
public struct LossRegime: Sendable, Equatable {
    public var beta: Double
    public var klWarmup = 0
    public var capacity = 0.0, capacitySteps = 0, gamma = 1000.0
    public var freeBits = 0.0
    public var tcBeta: Double?
    /// N of beta-TCVAE's log(N M): the training set's size.
    public var datasetSize = 1

    public init(beta: Double, klWarmup: Int = 0, capacity: Double = 0, capacitySteps: Int = 0, gamma: Double = 1000,
                freeBits: Double = 0, tcBeta: Double? = nil, datasetSize: Int = 1) {
        self.beta = beta
        self.klWarmup = klWarmup
        self.capacity = capacity
        self.capacitySteps = capacitySteps
        self.gamma = gamma
        self.freeBits = freeBits
        self.tcBeta = tcBeta
        self.datasetSize = datasetSize
    }

    public init(options: TrainingOptions, model: ModelConfig, datasetSize: Int) {
        self.init(beta: Double(model.beta), klWarmup: options.klWarmup, capacity: options.capacity,
                  capacitySteps: options.capacitySteps, gamma: options.gamma, freeBits: options.freeBits,
                  tcBeta: options.tcBeta, datasetSize: datasetSize)
    }

    /// recon + beta * KL, computed as ever (no per-step latent gradient).
    public var isPlain: Bool { klWarmup == 0 && capacity == 0 && freeBits == 0 && tcBeta == nil }
    /// Needs the global batch's latents before backward (one allgather per step).
    public var needsGlobalBatch: Bool { capacity > 0 || freeBits > 0 || tcBeta != nil }

    /// For the start-up line.
    public var name: String {
        var parts: [String] = []
        if klWarmup > 0 { parts.append("KL warm-up over \(klWarmup) steps") }
        if capacity > 0 { parts.append("capacity \(capacity) nats over \(capacitySteps) steps, gamma \(gamma)") }
        if freeBits > 0 { parts.append("free bits \(freeBits) nats per dimension") }
        if let tcBeta { parts.append("beta-TCVAE, total correlation weight \(tcBeta)") }
        return parts.joined(separator: ", ")
    }
}

extension TrainingOptions {
    /// The regime options on their own and with the model (one error line naming the option).
    public func validateRegime(model: ModelConfig, worldSize: Int) throws(TrainingError) {
        func positiveOrOff(_ value: Double, _ option: String) throws(TrainingError) {
            if !value.isFinite || value < 0 { throw .option("\(option) must be a finite number >= 0 (0: off) (got \(value))") }
        }
        if klWarmup < 0 { throw .option("--kl-warmup must be 0 (off) or a number of steps (got \(klWarmup))") }
        try positiveOrOff(capacity, "--capacity")
        try positiveOrOff(freeBits, "--free-bits")
        if capacitySteps < 0 { throw .option("--capacity-steps must be a positive number of steps (got \(capacitySteps))") }
        if !gamma.isFinite || gamma <= 0 { throw .option("--gamma must be a positive number (got \(gamma))") }
        if let tcBeta, !tcBeta.isFinite || tcBeta < 0 { throw .option("--tc-beta must be a finite number >= 0 (got \(tcBeta))") }
        if capacity > 0 && capacitySteps == 0 {
            throw .option("--capacity \(capacity) needs --capacity-steps N: the optimizer steps over which the KL target rises from 0 to \(capacity) nats")
        }
        if capacity == 0 && capacitySteps > 0 { throw .option("--capacity-steps applies to --capacity C only") }
        if capacity == 0 && gamma != TrainingOptions().gamma { throw .option("--gamma weighs |KL - C| of --capacity C: give --capacity too") }
        let chosen = [(capacity > 0, "--capacity"), (freeBits > 0, "--free-bits"), (tcBeta != nil, "--tc-beta")].filter(\.0).map(\.1)
        if chosen.count > 1 { throw .option("\(chosen.joined(separator: " and ")) each replace the KL term: choose one") }
        let any = klWarmup > 0 || !chosen.isEmpty
        if any && model.autoencoder {
            let option = klWarmup > 0 ? "--kl-warmup" : chosen[0]
            throw .option("\(option) shapes the KL term, and --autoencoder has none: leave one of them out")
        }
        if let option = chosen.first, option != "--free-bits", model.beta != 1 {
            throw .option("\(option) replaces beta * KL (--beta \(model.beta)): leave --beta at 1"
                          + (option == "--tc-beta" ? " and weigh the total correlation with --tc-beta" : " and weigh |KL - C| with --gamma"))
        }
        if klWarmup > 0, let option = chosen.first, option != "--free-bits" {
            throw .option("--kl-warmup ramps beta, which \(option) does not use" + (option == "--capacity" ? " (its target C already rises over --capacity-steps)" : ""))
        }
        if let option = chosen.first, microBatches > 1 {
            throw .option("\(option) needs the latents of the whole global batch before any backward, and --accumulate \(microBatches) runs each micro-batch's backward before the next one's forward: leave --accumulate at 1 with \(option) (--kl-warmup alone works with it)")
        }
        if let option = chosen.first, batchSize % worldSize != 0 {
            throw .option("\(option) gathers every rank's latents of the global batch: --batch-size \(batchSize) must be divisible by the \(worldSize) ranks")
        }
    }
}

/// What a step's regime adds to the reported sums (global batch, nats, summed over examples).
public struct RegimeSums: Sendable, Equatable {
    /// The KL-side term of the loss (train_loss = recon + this, per example).
    public var penalty = 0.0
    /// beta-TCVAE's parts (0 otherwise).
    public var mi = 0.0, tc = 0.0, dwkl = 0.0
    public init() {}
}

/// The per-step latent gradient of a regime: the KL's weight per dimension and the coupled
/// terms' gradient for every row of the global batch, computed from the batch's gathered
/// latents [B, 3 latent] = (mu | logvar | z) in one fixed order.
public final class LatentObjective {
    public let regime: LossRegime
    public let latent: Int, globalBatch: Int
    let lossScale: Float
    /// [latent] lossScale * d(loss)/d(KL_j of one example).
    public let klScales: UnsafeMutablePointer<Float>
    /// [globalBatch, 3 latent] lossScale * d(loss)/d(mu | logvar | z) (beta-TCVAE only).
    public let coupled: UnsafeMutablePointer<Float>?
    let terms: UnsafeMutablePointer<Double>?  // [globalBatch, 3] (mi, tc, dwkl)
    let mean: UnsafeMutablePointer<Double>    // [latent] the global batch's mean KL per dimension
    let tcWorkspace: TotalCorrelationWorkspace?
    /// The regime's part of the global batch's loss sums, set by `prepare` (regimes over the
    /// global batch; the warm-up alone: `sums(localKL:)`).
    public private(set) var sums = RegimeSums()
    /// beta * w_t of the step: the warm-up alone weighs the analytic KL by it.
    private var klWeight = 0.0

    public init(regime: LossRegime, latent: Int, globalBatch: Int) {
        self.regime = regime
        self.latent = latent
        self.globalBatch = globalBatch
        lossScale = 1 / Float(globalBatch)
        klScales = .allocate(capacity: latent)
        mean = .allocate(capacity: latent)
        let tc = regime.tcBeta != nil
        coupled = tc ? .allocate(capacity: globalBatch * 3 * latent) : nil
        terms = tc ? .allocate(capacity: globalBatch * 3) : nil
        tcWorkspace = tc ? TotalCorrelationWorkspace(capacity: globalBatch, latent: latent) : nil
    }

    deinit {
        klScales.deallocate()
        mean.deallocate()
        coupled?.deallocate()
        terms?.deallocate()
    }

    /// Sets the gradient and sums of optimizer step `step` (0-based). `latents` [globalBatch,
    /// 3 latent] is needed when `regime.needsGlobalBatch`; the warm-up alone needs no statistics
    /// (its gradient depends on the step only, so each --accumulate micro-batch may prepare it).
    public func prepare(step: Int, latents: UnsafePointer<Float>?) {
        let l = latent, b = globalBatch
        let warm = Double(klWarmupFactor(step: step, warmupSteps: regime.klWarmup))
        sums = RegimeSums()
        guard regime.needsGlobalBatch, let latents else {
            klWeight = regime.beta * warm
            let weight = Float(klWeight)
            for j in 0..<l { klScales[j] = lossScale * weight }
            return
        }
        if let tcBeta = regime.tcBeta, let coupled, let terms, let tcWorkspace {
            // The MWS terms replace the analytic KL entirely.
            for j in 0..<l { klScales[j] = 0 }
            totalCorrelationForwardBackward(terms: terms, gradient: coupled, latents: latents, rows: b, latent: l,
                                            datasetSize: regime.datasetSize, weights: TotalCorrelationWeights(beta: tcBeta),
                                            scale: Double(lossScale), workspace: tcWorkspace)
            for i in 0..<b {
                sums.mi += terms[i * 3]
                sums.tc += terms[i * 3 + 1]
                sums.dwkl += terms[i * 3 + 2]
            }
            sums.penalty = sums.mi + tcBeta * sums.tc + sums.dwkl
            return
        }
        // The global batch's mean KL per dimension, summed in example order.
        mean.update(repeating: 0, count: l)
        for i in 0..<b {
            let mu = latents + i * 3 * l, logvar = mu + l
            for j in 0..<l {
                mean[j] += klTerm(mu: Double(mu[j]), logvar: Double(logvar[j]))
            }
        }
        for j in 0..<l { mean[j] /= Double(b) }
        if regime.freeBits > 0 {
            let weight = regime.beta * warm
            var penalty = 0.0
            for j in 0..<l {
                penalty += max(regime.freeBits, mean[j])
                klScales[j] = mean[j] > regime.freeBits ? lossScale * Float(weight) : 0
            }
            sums.penalty = Double(b) * weight * penalty
        } else {
            let target = capacityTarget(step: step, capacity: regime.capacity, capacitySteps: regime.capacitySteps)
            var total = 0.0
            for j in 0..<l { total += mean[j] }
            let excess = total - target
            let sign: Double = excess > 0 ? 1 : (excess < 0 ? -1 : 0)
            for j in 0..<l { klScales[j] = lossScale * Float(regime.gamma * sign) }
            sums.penalty = Double(b) * regime.gamma * abs(excess)
        }
    }

    /// The regime's sums for examples whose analytic KL sums to `localKL`, after `prepare`: a
    /// regime over the global batch has them from the gathered batch; the warm-up alone weighs
    /// the KL (summed over a step's micro-batches first, so their count changes no bit).
    public func sums(localKL: Double) -> RegimeSums {
        guard !regime.needsGlobalBatch else { return sums }
        var warmup = RegimeSums()
        warmup.penalty = klWeight * localKL
        return warmup
    }

    /// The latent gradient of rows `rows` of the global batch.
    func gradient(rows start: Int) -> LatentGradient {
        LatentGradient(klScales: klScales, coupled: coupled.map { UnsafePointer($0 + start * 3 * latent) })
    }
}

/// The gradient of the mean loss over `batch` examples under `regime` at optimizer step `step`,
/// on one process, written over `model.gradients`: the forward, the regime's latent
/// objective over the whole batch and the backward, as a training step computes them. Returns
/// the regime's sums and the batch's recon and analytic-KL sums. (Tests check it against
/// finite differences.)
public func regimeGradient(model: VAE, x: UnsafePointer<Float>, eps: UnsafePointer<Float>, batch: Int,
                           regime: LossRegime, step: Int) -> (recon: Double, kl: Double, sums: RegimeSums) {
    let local = LocalBatch(model: model, capacity: batch, globalBatchSize: batch,
                           objective: regime.isPlain ? nil : LatentObjective(regime: regime, latent: model.config.latent, globalBatch: batch))
    local.x.update(from: x, count: batch * model.config.inputDimension)
    local.eps.update(from: eps, count: batch * model.config.latent)
    local.step = step
    let target = GradientTarget(gradients: model.gradients, accumulate: false)
    let sums = local.forward(group: 0, into: target)
    try! local.prepareObjective(communicator: SingleProcessCommunicator())
    local.backward(group: 0, into: target)
    return (sums.recon, sums.kl, local.regimeShare(rank: 0, localKL: sums.kl))
}
