import Foundation
import VAEAnalysis
import VAEKernels

/// One line of metrics.jsonl: nats per example, averaged over the epoch / test set.
public struct EpochMetrics: Sendable {
    public var epoch = 0
    public var step = 0
    public var trainLoss = 0.0, trainRecon = 0.0, trainKL = 0.0
    public var testLoss = 0.0, testRecon = 0.0, testKL = 0.0
    public var epochSeconds = 0.0, evalSeconds = 0.0, imageSeconds = 0.0
    public var samplesPerSecond = 0.0
    public var computeSeconds = 0.0, communicationSeconds = 0.0, optimizerSeconds = 0.0
    /// Steps run in this epoch by this process (a resumed epoch runs fewer).
    public var steps = 0
    /// The learning rate of the epoch's last step (--lr-schedule, --warmup-steps).
    public var learningRate = 0.0
    public var worldSize = 1
    public var peakMemoryMB = 0.0
    /// The test means' aggregate posterior against the prior (AggregatePosterior.swift).
    public var aggregateKL = 0.0, posteriorStdMean = 0.0
    /// The training regime's own numbers (beta-TCVAE: train_mi, train_tc, train_dwkl), per example.
    public var regimeTerms: [(String, Double)] = []
    /// KL per dimension, active units, MIG of the test set (LatentMeasures.swift).
    public var latent: LatentMeasures?

    public init() {}

    public var trainNELBO: Double { trainRecon + trainKL }
    func perStep(_ seconds: Double) -> Double { steps > 0 ? 1000 * seconds / Double(steps) : 0 }
    public var testNELBO: Double { testRecon + testKL }

    /// The line's (key, JSON number) pairs in their fixed order; TensorBoard gets each as a scalar.
    public var fields: [(String, String)] {
        let n = jsonNumber
        return [
            ("epoch", "\(epoch)"), ("step", "\(step)"),
            ("train_loss", n(trainLoss)), ("train_recon", n(trainRecon)), ("train_kl", n(trainKL)), ("train_nelbo", n(trainNELBO)),
            ("test_loss", n(testLoss)), ("test_recon", n(testRecon)), ("test_kl", n(testKL)), ("test_nelbo", n(testNELBO)),
            ("epoch_seconds", n(epochSeconds)), ("eval_seconds", n(evalSeconds)), ("image_seconds", n(imageSeconds)),
            ("samples_per_second", n(samplesPerSecond)),
            ("compute_seconds", n(computeSeconds)), ("communication_seconds", n(communicationSeconds)),
            ("optimizer_seconds", n(optimizerSeconds)),
            // Per step: compute, the communication the step waited for, and the optimizer.
            ("compute_ms_per_step", n(perStep(computeSeconds))), ("communication_ms_per_step", n(perStep(communicationSeconds))),
            ("optimizer_ms_per_step", n(perStep(optimizerSeconds))), ("learning_rate", n(learningRate)),
            ("world_size", "\(worldSize)"), ("peak_memory_mb", n(peakMemoryMB)),
            ("aggregate_kl", n(aggregateKL)), ("posterior_std_mean", n(posteriorStdMean)),
        ] + regimeTerms.map { ($0.0, n($0.1)) }
    }

    /// A JSON object with a fixed key order.
    public var jsonLine: String { jsonObject(fields + (latent?.jsonFields ?? [])) }
}

/// A JSON number with 6 significant digits; non-finite values become null.
public func jsonNumber(_ v: Double) -> String { v.isFinite ? String(format: "%.6g", v) : "null" }

/// A one-line JSON object from (key, already-encoded value) pairs, in the given order.
public func jsonObject(_ fields: [(String, String)]) -> String {
    "{" + fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}"
}

/// Seconds on a monotonic clock (VAEKernels.monotonicSeconds).
@inline(__always)
public func now() -> Double { monotonicSeconds() }

/// Peak resident memory of this process in MB (getrusage; Linux reports KiB).
public func peakMemoryMB() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_maxrss) / 1024
}

extension LatentMeasures {
    /// (key, JSON value) pairs for `eval` and metrics.jsonl.
    public var jsonFields: [(String, String)] {
        var fields = [("kl_per_dimension", "[" + klPerDimension.map(jsonNumber).joined(separator: ", ") + "]"),
                      ("active_units", "\(activeUnits)")]
        if let mig, let migPerFactor {
            fields.append(("mig", jsonNumber(mig)))
            let perFactor = zip(factorNames, migPerFactor).map { "\"\($0.0)\": \($0.1.map(jsonNumber) ?? "null")" }
            fields.append(("mig_per_factor", "{" + perFactor.joined(separator: ", ") + "}"))
        }
        return fields
    }
}

/// One row of steps.jsonl (`"kind": "step"`): the numbers of one optimizer step, nats per example
/// of its global batch. metrics.jsonl's epoch rows are unchanged; tools read both.
public struct StepMetrics: Sendable {
    public var epoch = 0
    /// The global optimizer step (as TensorBoard's x axis and metrics.jsonl's `step`).
    public var step = 0
    public var loss = 0.0, recon = 0.0, kl = 0.0
    public var learningRate = 0.0
    public var samplesPerSecond = 0.0
    /// The global gradient norm before clipping, where --clip-grad-norm computes it.
    public var gradNorm: Double?

    public init() {}

    var numbers: [(String, Double)] {
        [("loss", loss), ("recon", recon), ("kl", kl), ("lr", learningRate), ("samples_per_second", samplesPerSecond)]
            + (gradNorm.map { [("grad_norm", $0)] } ?? [])
    }

    public var jsonLine: String {
        jsonObject([("kind", "\"step\""), ("epoch", "\(epoch)"), ("step", "\(step)")] + numbers.map { ($0.0, jsonNumber($0.1)) })
    }

    /// TensorBoard scalars step/loss, step/recon, step/kl, step/lr, step/samples_per_second, step/grad_norm.
    /// As steps.jsonl prints them (6 significant digits), so the two agree.
    public var scalars: [(tag: String, value: Double)] { numbers.map { ("step/" + $0.0, Double(jsonNumber($0.1)) ?? .nan) } }
}

/// "1:05" or "2:03:04" for a number of seconds ("?" when unknown).
public func clockTime(_ seconds: Double) -> String {
    guard seconds.isFinite, seconds >= 0 else { return "?" }
    let s = Int(seconds.rounded())
    return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
}
