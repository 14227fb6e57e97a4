import Foundation
import VAEData
import VAEDistributed
import VAEKernelDispatch
import VAEKernels
import VAEModel
import VAETraining
import VAECheckpoint
import VAEAnalysis
import VAEOutputs

// `vae-dist bench`: the core's FMA peak for the kernels in use, GFLOP/s of every GEMM the
// model runs, and samples/s of the whole training step with its time split, each also as
// a fraction of that peak. Timings are the median of repeats (the peak: the best).

/// Floating-point operations of one training example, forward and backward: the GEMMs of
/// a step (`trainingGEMMShapes`) divided by the batch. The elementwise work is left out
/// (under 1% of it). 3.28 MFLOP for 784-400-20.
public func trainingFlopsPerExample(config: ModelConfig) -> Double {
    trainingGEMMShapes(config: config, batch: 1).reduce(0) { $0 + $1.flops }
}

/// GFLOP/s of `kernels.fmaPeakLoop`: the best of repeats filling about `budget` seconds.
public func measureFMAPeak(_ kernels: any KernelSet = Kernels.active, budget: Double = 0.3) -> Double {
    var iterations = 1 << 16
    var best = 0.0
    let start = now()
    while now() - start < budget {
        let t = now()
        let r = kernels.fmaPeakLoop(iterations: iterations, seed: 0.25)
        let seconds = now() - t
        precondition(r.checksum.isFinite)
        if seconds < 0.005 { iterations *= 2; continue }
        best = max(best, r.flops / seconds / 1e9)
    }
    return best
}

public struct GEMMResult: Sendable {
    public var shape: GEMMShape
    /// The median and the fastest time of one call.
    public var seconds: Double, fastest: Double
    public var gflops: Double { shape.flops / seconds / 1e9 }
    public var fastestGFLOPS: Double { shape.flops / fastest / 1e9 }
}

/// Median (and fastest) time of one call of `shape` over repeats filling about `budget` seconds.
public func benchmarkGEMM(_ shape: GEMMShape, budget: Double = 0.25, kernels: any KernelSet = Kernels.active) -> GEMMResult {
    let workspace = GEMMWorkspace()
    let (m, n, k) = (shape.m, shape.n, shape.k)
    let a = allocateAligned(m * k), b = allocateAligned(k * n), c = allocateAligned(m * n)
    defer { a.deallocate(); b.deallocate(); c.deallocate() }
    for i in 0..<(m * k) { a[i] = Float(i % 7) * 0.1 }
    for i in 0..<(k * n) { b[i] = Float(i % 5) * 0.1 }
    func once() { kernels.run(shape, c: c, a: a, b: b, workspace: workspace) }
    once()
    let t0 = now(); once(); let single = max(now() - t0, 1e-7)
    let inner = max(1, Int(0.01 / single))
    var times: [Double] = []
    let start = now()
    while now() - start < budget || times.count < 5 {
        let t = now()
        for _ in 0..<inner { once() }
        times.append((now() - t) / Double(inner))
    }
    return GEMMResult(shape: shape, seconds: median(times), fastest: times.min()!)
}

public struct StepBenchmark: Sendable {
    public var batch: Int
    public var threads: Int
    public var samplesPerSecond: Double
    /// Of the step's time: the batch, forward and backward; Adam.
    public var computeFraction: Double, optimizerFraction: Double
    /// The median step, and the fastest (the least disturbed by other work on the machine).
    public var stepSeconds: Double, fastestStepSeconds: Double
    /// Against the first thread count measured: the median over rounds of (its round's time /
    /// this round's time), each pair of rounds back to back (nil for the first count).
    public var speedup: Double?
}

/// A single-process trainer on synthetic data for the benchmarks, with `threads` kernel threads.
func benchmarkTrainer(config: ModelConfig, batch: Int, threads: Int) throws -> Trainer {
    var options = TrainingOptions()
    options.batchSize = batch
    // The conv model is measured on dSprites' 64 x 64 images, the MLP on 28 x 28.
    let examples = max(batch * 8, 1024)
    options.data = config.architecture == .conv ? "dsprites:\(examples)" : "synthetic:\(examples)"
    options.epochs = 1
    options.threads = threads
    options.output = (NSTemporaryDirectory() as NSString).appendingPathComponent("vae-dist-bench-\(getpid())-\(threads)")
    // Removed once the trainer exists: steps and evaluations write nothing there.
    defer { try? FileManager.default.removeItem(atPath: options.output) }
    return try Trainer(options: options, model: config, resume: false, overwrite: true,
                       communicator: SingleProcessCommunicator()) { _ in }
}

/// Samples/s of real single-process training steps (`Trainer.step`: the batch and its noise
/// loaded, forward, backward, the finiteness check, Adam) on synthetic data, with the time
/// split, at each of `threadCounts` kernel threads. The thread counts take turns in rounds of
/// `stepsPerRound` steps, so that a machine shared with other work slows them alike and the
/// speedup compares steps that ran seconds apart, not minutes.
public func benchmarkTrainingSteps(config: ModelConfig, batch: Int, threadCounts: [Int], rounds: Int = 20,
                                   stepsPerRound: Int = 10) throws -> [StepBenchmark] {
    let trainers = try threadCounts.map { try benchmarkTrainer(config: config, batch: batch, threads: $0) }
    let plans = trainers.map { EpochPlan(exampleCount: $0.dataset.train.count, globalBatchSize: batch, rank: 0, worldSize: 1,
                                         generator: $0.generator, epoch: 1) }
    var times = [StepTimes](repeating: StepTimes(), count: trainers.count)
    var stepTimes = [[Double]](repeating: [], count: trainers.count)
    var roundTimes = [[Double]](repeating: [], count: trainers.count)
    var next = [Int](repeating: 0, count: trainers.count)
    for (i, trainer) in trainers.enumerated() {  // warm-up, not timed
        for _ in 0..<10 { _ = try trainer.step(next[i] % plans[i].steps, of: plans[i], epoch: 1, times: &times[i]); next[i] += 1 }
        times[i] = StepTimes()
    }
    for round in 0..<rounds {
        // Every other round in reverse order: no count always runs right after another.
        for i in round % 2 == 0 ? Array(trainers.indices) : trainers.indices.reversed() {
            let trainer = trainers[i]
            let roundStart = now()
            for _ in 0..<stepsPerRound {
                let t = now()
                _ = try trainer.step(next[i] % plans[i].steps, of: plans[i], epoch: 1, times: &times[i])
                stepTimes[i].append(now() - t)
                next[i] += 1
            }
            roundTimes[i].append(now() - roundStart)
        }
    }
    return trainers.indices.map { i in
        // The median step: on a shared machine a few steps stalled by other work would move a mean.
        let stepSeconds = median(stepTimes[i])
        let total = times[i].compute + times[i].communication + times[i].optimizer
        let speedup = i == 0 ? nil : median(zip(roundTimes[0], roundTimes[i]).map { $0 / $1 })
        return StepBenchmark(batch: batch, threads: threadCounts[i], samplesPerSecond: Double(batch) / stepSeconds,
                             computeFraction: times[i].compute / total, optimizerFraction: times[i].optimizer / total,
                             stepSeconds: stepSeconds, fastestStepSeconds: stepTimes[i].min()!, speedup: speedup)
    }
}

/// The middle value (the mean of the two middle ones for an even count).
func median(_ values: [Double]) -> Double {
    let sorted = values.sorted(), half = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[half] : (sorted[half - 1] + sorted[half]) / 2
}

/// Floating-point operations of evaluating one example: the forward pass's GEMMs (the
/// `A*B^T` shapes of `trainingGEMMShapes`). 1.30 MFLOP for 784-400-20.
public func evaluationFlopsPerExample(config: ModelConfig) -> Double {
    trainingGEMMShapes(config: config, batch: 1).filter { $0.form == .nt }.reduce(0) { $0 + $1.flops }
}

public struct EvaluationBenchmark: Sendable {
    public var threads: Int
    public var examples: Int
    /// The median and the fastest of the repeats, seconds for `examples` test images.
    public var seconds: Double, fastestSeconds: Double
    /// The evaluation's share of an epoch of `trainingExamples` examples: the median over
    /// repeats of (evaluation time / (trainingExamples x the adjacent steps' time per example)).
    public var trainingExamples: Int, epochFraction: Double
}

/// The end-of-epoch evaluation as training runs it (`Trainer.evaluateTestSet`: the test
/// NELBO, the posteriors and the measures computed from them) on `examples` synthetic test
/// images with `threads` kernel threads. Each repeat is followed by about as long of training
/// steps at `batch`, which give its share of an epoch (Fashion-MNIST's sizes by default).
public func benchmarkEvaluation(config: ModelConfig, batch: Int, threads: Int = 1, examples: Int = 10_000,
                                trainingExamples: Int = 60_000, repeats: Int = 7) throws -> EvaluationBenchmark {
    let trainer = try benchmarkTrainer(config: config, batch: batch, threads: threads)
    let plan = EpochPlan(exampleCount: trainer.dataset.train.count, globalBatchSize: batch, rank: 0, worldSize: 1,
                         generator: trainer.generator, epoch: 1)
    let test = Synthetic.generate(trainCount: 0, testCount: examples, seed: Synthetic.defaultSeed).test
    var stepTimes = StepTimes()
    var next = 0
    func train(seconds: Double) throws -> Double {  // seconds per training example
        let start = now()
        var examples = 0
        repeat {
            _ = try trainer.step(next % plan.steps, of: plan, epoch: 1, times: &stepTimes)
            next += 1
            examples += batch
        } while now() - start < seconds
        return (now() - start) / Double(examples)
    }
    _ = try trainer.evaluateTestSet(test)  // warm-up, not timed
    var perExample = try train(seconds: 0.05)
    var times: [Double] = [], fractions: [Double] = []
    for _ in 0..<repeats {
        let t = now()
        _ = try trainer.evaluateTestSet(test)
        let seconds = now() - t
        let after = try train(seconds: seconds)
        times.append(seconds)
        fractions.append(seconds / (Double(trainingExamples) * (perExample + after) / 2))
        perExample = after
    }
    return EvaluationBenchmark(threads: threads, examples: examples, seconds: median(times), fastestSeconds: times.min()!,
                               trainingExamples: trainingExamples, epochFraction: median(fractions))
}

public struct DistributedStepBenchmark: Sendable {
    /// The gradient reduction measured (its start-up name).
    public var strategy: String
    public var samplesPerSecond: Double
    /// Milliseconds per step: forward and backward (with the batch), the communication the step
    /// waited for, the optimizer.
    public var computeMS: Double, communicationMS: Double, optimizerMS: Double
}

/// Real training steps (Trainer.step on synthetic data, per-rank batch `batch`) with the
/// gradient reduction `options` choose, on every rank of `communicator`: what `vae-dist bench`
/// reports under mpirun. Every rank must call it with the same arguments.
public func benchmarkDistributedStep(config: ModelConfig, batch: Int, options base: TrainingOptions, sharedMemory: Bool = true,
                                     communicator: any Communicator, steps: Int = 100) throws -> DistributedStepBenchmark {
    var options = base
    options.batchSize = batch * communicator.size
    options.data = "synthetic:\(max(options.batchSize * 4, 1024))"
    options.epochs = 1
    var id = [Int64(getpid())]  // rank 0's: every rank must name the same --out
    try communicator.broadcast(&id, root: 0)
    let folder = (NSTemporaryDirectory() as NSString).appendingPathComponent("vae-dist-bench-\(id[0])")
    options.output = folder
    defer { if communicator.isRoot { try? FileManager.default.removeItem(atPath: folder) } }
    let trainer = try Trainer(options: options, model: config, resume: false, overwrite: true, sharedMemory: sharedMemory,
                              communicator: communicator) { _ in }
    let plan = EpochPlan(exampleCount: trainer.dataset.train.count, globalBatchSize: options.batchSize, rank: communicator.rank,
                         worldSize: communicator.size, generator: trainer.generator, epoch: 1)
    var times = StepTimes()
    for s in 0..<10 { _ = try trainer.step(s % plan.steps, of: plan, epoch: 1, times: &times) }
    try communicator.barrier()
    times = StepTimes()
    let start = now()
    for s in 0..<steps { _ = try trainer.step(s % plan.steps, of: plan, epoch: 1, times: &times) }
    let seconds = now() - start
    // Rank 0's view; the step ends in a collective, so every rank's time is about the same.
    return DistributedStepBenchmark(strategy: trainer.reductionName,
                                    samplesPerSecond: Double(steps * options.batchSize) / seconds,
                                    computeMS: 1000 * times.compute / Double(steps),
                                    communicationMS: 1000 * times.communication / Double(steps),
                                    optimizerMS: 1000 * times.optimizer / Double(steps))
}

/// The collectives a gradient reduction makes, timed alone (`vae-dist bench --allreduce`).
public enum Collective: String, Sendable, CaseIterable {
    /// `MPI_Allreduce` in place: `--bucket-mb 0` (Open MPI's tuned component picks the algorithm).
    case allreduce
    /// `MPI_Iallreduce` in place, then wait: the overlapped buckets (Open MPI's libnbc).
    case iallreduce
    /// `MPI_Reduce_scatter` then `MPI_Allgatherv` in place: `--shard-optimizer`.
    case reduceScatterAllgather = "reduce_scatter_allgather"
}

public struct CollectiveTiming: Sendable {
    public var collective: Collective
    public var bytes: Int
    public var repeats: Int
    /// Seconds of one call on rank 0, each call started right after a barrier: the median and
    /// the fastest of the repeats.
    public var median: Double, fastest: Double
}

/// Times `collective` on `floatCount` floats on every rank of `communicator` (every rank must
/// call it with the same arguments): repeats filling about `budget` seconds with their barriers
/// (rank 0's count, broadcast), 9 to 1000, each after a barrier so that no rank's lateness is counted.
public func benchmarkCollective(_ collective: Collective, floatCount: Int, communicator: any Communicator,
                                budget: Double = 0.4) throws -> CollectiveTiming {
    let buffer = allocateAligned(floatCount), block = allocateAligned(floatCount)
    defer { buffer.deallocate(); block.deallocate() }
    for i in 0..<floatCount { buffer[i] = Float(i % 13) * 0.01 }
    let shards = Shards(total: floatCount, ranks: communicator.size)
    func once() throws {
        switch collective {
        case .allreduce: try communicator.allreduceSum(buffer, count: floatCount)
        case .iallreduce:
            try communicator.startAllreduceSum(buffer, count: floatCount)
            try communicator.finishReductions()
        case .reduceScatterAllgather:
            try communicator.reduceScatterSum(buffer, shards: shards, into: block)
            (buffer + shards.range(communicator.rank).lowerBound).update(from: block, count: shards.range(communicator.rank).count)
            try communicator.allgatherInPlace(buffer, shards: shards)
        }
        // Sums of sums grow; keep the values small and finite.
        if buffer[0] > 1e30 { for i in 0..<floatCount { buffer[i] = Float(i % 13) * 0.01 } }
    }
    try communicator.barrier()
    try once()
    // The repeat count from one barrier and call (a barrier over TCP on a loaded machine can cost
    // more than a small message's collective).
    let t0 = now(); try communicator.barrier(); try once(); let first = now() - t0
    var repeats = [Int64(min(1000, max(9, Int(budget / max(first, 1e-6)))))]
    try communicator.broadcast(&repeats, root: 0)
    var times: [Double] = []
    times.reserveCapacity(Int(repeats[0]))
    for _ in 0..<repeats[0] {
        try communicator.barrier()
        let t = now()
        try once()
        times.append(now() - t)
    }
    return CollectiveTiming(collective: collective, bytes: floatCount * MemoryLayout<Float>.stride, repeats: times.count,
                            median: median(times), fastest: times.min()!)
}

/// One of a conv layer's three GEMM-like passes, timed as training runs it: im2col or col2im
/// included.
public struct ConvPassResult: Sendable {
    public var layer: String
    /// forward, input gradient, weight gradient
    public var pass: String
    public var flops: Double
    /// Kernel threads, and the median and the fastest time of one call.
    public var threads: Int, seconds: Double, fastest: Double
    /// The first thread count's time over this one's, the median of calls that ran side by
    /// side (nil for the first count).
    public var speedup: Double?
    public var gflops: Double { flops / seconds / 1e9 }
}

/// Each convolution's and transposed convolution's forward, input gradient and weight gradient
/// at `batch` examples on each of `threadCounts` kernel threads, through the layer functions
/// training calls. The counts take turns call by call (every other round in reverse order), so
/// that other work on a shared machine slows them alike; each count's results follow the pass's
/// first count's.
public func benchmarkConvPasses(config: ModelConfig, batch: Int, threadCounts: [Int] = [1], budget: Double = 0.2) -> [ConvPassResult] {
    let layout = ParameterLayout(config)
    let pools = threadCounts.map { KernelThreads(threads: $0) }, ws = GEMMWorkspace()
    let parameters = allocateAligned(layout.count), gradients = allocateAligned(layout.count)
    defer { parameters.deallocate(); gradients.deallocate() }
    for i in 0..<layout.count { parameters[i] = Float(i % 7) * 0.01 - 0.03 }
    var results: [ConvPassResult] = []
    func time(_ layer: String, _ pass: String, flops: Double, _ body: (KernelThreads) -> Void) {
        for threads in pools { body(threads) }
        var times = [[Double]](repeating: [], count: pools.count)
        let start = now()
        var round = 0
        while now() - start < budget * Double(pools.count) || round < 5 {
            for i in round % 2 == 0 ? Array(pools.indices) : pools.indices.reversed() {
                let t = now(); body(pools[i]); times[i].append(now() - t)
            }
            round += 1
        }
        for i in pools.indices {
            results.append(ConvPassResult(layer: layer, pass: pass, flops: flops, threads: threadCounts[i], seconds: median(times[i]),
                                          fastest: times[i].min()!,
                                          speedup: i == 0 ? nil : median(zip(times[0], times[i]).map { $0 / $1 })))
        }
    }
    let views = layout.convEncoder.enumerated().map { ("encoder.conv.\($0.offset)", $0.element, false) }
        + layout.convDecoder.enumerated().map { ("decoder.deconv.\($0.offset)", $0.element, true) }
    for (name, view, transposed) in views {
        let g = view.geometry, rows = batch * g.positions
        let flops = 2 * Double(rows) * Double(g.patch) * Double(view.channels)
        let image = allocateAligned(batch * g.imageSize), dimage = allocateAligned(batch * g.imageSize)
        let maps = allocateAligned(rows * view.channels), dmaps = allocateAligned(rows * view.channels)
        let cols = allocateAligned(rows * g.patch)
        defer { for p in [image, dimage, maps, dmaps, cols] { p.deallocate() } }
        for i in 0..<(batch * g.imageSize) { image[i] = Float(i % 5) * 0.1 }
        for i in 0..<(rows * view.channels) { maps[i] = Float(i % 3) * 0.1 }
        if transposed {
            time(name, "forward", flops: flops) { threads in
                transposedConvolutionForward(view, input: maps, out: dimage, parameters: parameters, batch: batch,
                                             relu: true, threads: threads, workspace: ws)
            }
            time(name, "input gradient", flops: flops) { threads in
                transposedConvolutionInputGradient(view, dout: image, dcols: cols, dinput: dmaps, parameters: parameters,
                                                   batch: batch, threads: threads, workspace: ws)
            }
            time(name, "weight gradient", flops: flops) { threads in
                transposedConvolutionWeightGradient(view, dout: image, dcols: cols, input: maps, gradients: gradients, batch: batch,
                                                    accumulate: false, threads: threads, workspace: ws)
            }
        } else {
            time(name, "forward", flops: flops) { threads in
                convolutionForward(view, image: image, out: dmaps, cols: cols, parameters: parameters, batch: batch, relu: true,
                                   threads: threads, workspace: ws)
            }
            time(name, "input gradient", flops: flops) { threads in
                convolutionInputGradient(view, dout: maps, dimage: dimage, parameters: parameters, batch: batch,
                                         threads: threads, workspace: ws)
            }
            time(name, "weight gradient", flops: flops) { threads in
                convolutionWeightGradient(view, dout: maps, image: image, cols: cols, gradients: gradients, batch: batch, accumulate: false,
                                          threads: threads, workspace: ws)
            }
        }
    }
    return results
}
