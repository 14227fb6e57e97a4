import ArgumentParser
import Foundation
import VAEBenchmark
import VAECheckpoint
import VAEDistributed
import VAEKernelDispatch
import VAEKernels
import VAEModel
import VAEOutputs
import VAETraining

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the FMA peak, GEMM GFLOP/s per layer shape, training-step samples/s and the end-of-epoch evaluation's time on this machine (one process).")
    @Option(help: "Per-rank batch sizes to measure, comma-separated.") var batches = "64,128"
    @Option(help: "The model measured: mlp (784-400-20 by default) or conv (disentanglement_lib's on 64x64 dSprites images: --conv-channels 32,32,64,64, --hidden 256, --latent 10 by default).")
    var arch = "mlp"
    @Option(help: "Hidden widths of the model measured (default: 400, or 256 for conv).") var hidden: String?
    @Option(help: "Latent dimensions of the model measured (default: 20, or 10 for conv).") var latent: Int?
    @Option(help: "--arch conv: the convolutions' output channels (default: 32,32,64,64).") var convChannels: String?
    @Option(help: "Kernel thread counts at which to measure the training step, the evaluation and (--arch conv) each conv layer's passes, comma-separated (default: 1 up to the cores this process may use); the counts take turns in rounds of 10 steps (passes: call by call).")
    var threads: String?
    @Flag(help: "JSON lines only.") var json = false
    @Flag(help: "Under mpirun: time the collectives of the gradient reductions (allreduce, iallreduce, reduce-scatter + allgather) alone, per message size.")
    var allreduce = false
    @Flag(help: "With --allreduce: instead of timing, check every reduction (the collectives on 0 to 65,537 floats, the training strategies on small models) against a Double reference on every rank; exit 1 if one fails.")
    var check = false
    @Option(help: "Message sizes in bytes for --allreduce, comma-separated (default: 4096 to 4194304 by powers of 2, and the default model's gradient).")
    var sizes: String?
    @Option(help: "Under mpirun: the stall watchdog's --timeout of the measured steps (0: off, to measure its cost).")
    var timeout = TrainingOptions().timeout

    func run() throws {
        try reportingErrors {
            // Under mpirun: the training step with every gradient reduction, on every rank.
            if launchedByMPI() {
                try allreduce ? (check ? checkReductions() : benchCollectives()) : benchDistributed()
                return
            }
            if check && !allreduce { throw TrainingError.option("--check goes with --allreduce (mpirun -n 3 vae-dist bench --allreduce --check)") }
            if allreduce { throw TrainingError.option("--allreduce measures collectives between ranks: run it under mpirun (mpirun -n 2 vae-dist bench --allreduce)") }
            let config = try benchConfig()
            let sizes = batches.split(separator: ",").compactMap { Int($0) }.filter { $0 > 0 }
            guard !sizes.isEmpty else { throw TrainingError.option("--batches: expected positive numbers such as 64,128") }
            let counts = try threadCounts()
            // The kernels are chosen on the step at the default batch (or the last measured).
            let choiceBatch = sizes.contains(TrainingOptions().batchSize) ? TrainingOptions().batchSize : sizes.last!
            Kernels.prepare(KernelWorkload(name: "\(describe(config)) x \(choiceBatch) rows",
                                           shapes: trainingGEMMShapes(config: config, batch: choiceBatch)))
            let isa = Kernels.choice.isa
            let peak = measureFMAPeak()
            let flopsPerExample = trainingFlopsPerExample(config: config)
            printKernelSets(config: config, batch: choiceBatch, isa: isa, peak: peak)
            printGEMMs(config: config, sizes: sizes, isa: isa, peak: peak)
            if config.architecture == .conv { for batch in sizes { printConvPasses(config: config, batch: batch, counts: counts, peak: peak) } }
            for batch in sizes {
                for s in try benchmarkTrainingSteps(config: config, batch: batch, threadCounts: counts) {
                    printStep(s, isa: isa, peak: peak, flopsPerExample: flopsPerExample, first: counts[0])
                }
            }
            // The evaluation's share of an epoch at the default batch size (or the last measured).
            let epochBatch = sizes.contains(TrainingOptions().batchSize) ? TrainingOptions().batchSize : sizes.last!
            for count in counts where config.architecture == .mlp {
                printEvaluation(try benchmarkEvaluation(config: config, batch: epochBatch, threads: count),
                                isa: isa, peak: peak, config: config, epochBatch: epochBatch)
            }
        }
    }

    /// Every kernel set this CPU runs, timed again here on the same GEMMs (alternating, 0.5 s).
    func printKernelSets(config: ModelConfig, batch choiceBatch: Int, isa: KernelISA, peak: Double) {
        let candidates = KernelISA.preferenceOrder.filter { $0.runs(on: Kernels.hostFeatures) }
        let paths = Kernels.measure(candidates, on: KernelWorkload(name: "bench", shapes: trainingGEMMShapes(config: config, batch: choiceBatch)),
                                   budget: 0.5)
        let fastest = paths.values.min() ?? 1
        if json {
            print(jsonObject([("kind", "\"peak\""), ("isa", "\"\(isa.rawValue)\""), ("isa_name", "\"\(isa)\""),
                              ("choice", "\"\(Kernels.choice.description.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\""))\""),
                              ("peak_gflops", jsonNumber(peak)), ("cpu_features", "\"\(Kernels.hostFeatures)\""),
                              ("flush_denormals", flushesDenormals() ? "true" : "false")]))
            for candidate in candidates {
                print(jsonObject([("kind", "\"kernels\""), ("isa", "\"\(candidate.rawValue)\""), ("isa_name", "\"\(candidate)\""),
                                  ("batch", "\(choiceBatch)"), ("chosen", candidate == isa ? "true" : "false"),
                                  ("gemm_seconds_per_step", jsonNumber(paths[candidate]!)),
                                  ("versus_fastest", jsonNumber(paths[candidate]! / fastest))]))
            }
        } else {
            print("vae-dist bench: kernels \(Kernels.choice), FMA peak of one core "
                  + String(format: "%.1f GFLOP/s (16 independent FMA chains)", peak)
                  + (flushesDenormals() ? ", denormals flushed to zero (FTZ, DAZ)" : ", denormals computed (no FTZ/DAZ)"))
            print("GEMMs of one step at batch \(choiceBatch), one thread, each kernel set this CPU runs (alternating): "
                  + candidates.map { "\($0) " + String(format: "%.2f ms (%.2fx the fastest)", paths[$0]! * 1e3, paths[$0]! / fastest)
                                     + ($0 == isa ? " [chosen]" : "") }.joined(separator: ", "))
            print("GEMM                                      GFLOP/s  of peak      time")
        }
    }

    /// Each GEMM of the training step: GFLOP/s and the share of the FMA peak.
    func printGEMMs(config: ModelConfig, sizes: [Int], isa: KernelISA, peak: Double) {
        for batch in sizes {
            for shape in trainingGEMMShapes(config: config, batch: batch) {
                let r = benchmarkGEMM(shape)
                if json {
                    print(jsonObject([("kind", "\"gemm\""), ("isa", "\"\(isa.rawValue)\""), ("layer", "\"\(shape.layer)\""),
                                      ("form", "\"\(shape.form.rawValue)\""), ("m", "\(shape.m)"), ("n", "\(shape.n)"),
                                      ("k", "\(shape.k)"), ("batch", "\(batch)"), ("gflops", jsonNumber(r.gflops)),
                                      ("peak_fraction", jsonNumber(r.gflops / peak)), ("seconds", jsonNumber(r.seconds)),
                                      ("fastest_seconds", jsonNumber(r.fastest)), ("fastest_gflops", jsonNumber(r.fastestGFLOPS))]))
                } else {
                    print(shape.description.padding(toLength: 40, withPad: " ", startingAt: 0)
                          + String(format: "%9.1f  %6.0f%%  %7.1f us", r.gflops, 100 * r.gflops / peak, r.seconds * 1e6))
                }
            }
        }
    }

    func printStep(_ s: StepBenchmark, isa: KernelISA, peak: Double, flopsPerExample: Double, first: Int) {
        let speedup = s.speedup
        let gflops = s.samplesPerSecond * flopsPerExample / 1e9
        if json {
            print(jsonObject([("kind", "\"step\""), ("isa", "\"\(isa.rawValue)\""), ("batch", "\(s.batch)"), ("threads", "\(s.threads)"),
                              ("samples_per_second", jsonNumber(s.samplesPerSecond)),
                              ("speedup_vs_threads", speedup == nil ? "null" : "\(first)"), ("speedup", speedup.map(jsonNumber) ?? "null"),
                              ("flops_per_example", jsonNumber(flopsPerExample)), ("gflops", jsonNumber(gflops)),
                              ("peak_fraction", jsonNumber(gflops / peak / Double(s.threads))),
                              ("step_seconds", jsonNumber(s.stepSeconds)), ("fastest_step_seconds", jsonNumber(s.fastestStepSeconds)), ("compute_fraction", jsonNumber(s.computeFraction)),
                              ("optimizer_fraction", jsonNumber(s.optimizerFraction))]))
        } else {
            let versus = speedup.map { String(format: ", %.2fx %d thread%@ (rounds taking turns)", $0, first, first == 1 ? "" : "s") } ?? ""
            print(String(format: "training step, batch %d, %d thread%@: %.0f samples/s x %.2f MFLOP = %.1f GFLOP/s, %.0f%% of the peak of %@%@ "
                         + "(median step %.2f ms, fastest %.2f ms; batch, forward and backward %.0f%%, optimizer %.0f%%)",
                         s.batch, s.threads, s.threads == 1 ? "" : "s", s.samplesPerSecond, flopsPerExample / 1e6, gflops,
                         100 * gflops / peak / Double(s.threads), (s.threads == 1 ? "one core" : "\(s.threads) cores") as NSString, versus,
                         s.stepSeconds * 1e3, s.fastestStepSeconds * 1e3, s.computeFraction * 100, s.optimizerFraction * 100))
        }
    }

    /// The end-of-epoch evaluation of 10,000 test images, and its share of an epoch of
    /// Fashion-MNIST's 60,000 training images at the step rate measured between its repeats.
    func printEvaluation(_ e: EvaluationBenchmark, isa: KernelISA, peak: Double, config: ModelConfig, epochBatch: Int) {
        let gflops = Double(e.examples) * evaluationFlopsPerExample(config: config) / e.seconds / 1e9
        if json {
            print(jsonObject([("kind", "\"evaluation\""), ("isa", "\"\(isa.rawValue)\""), ("threads", "\(e.threads)"),
                              ("examples", "\(e.examples)"), ("seconds", jsonNumber(e.seconds)),
                              ("fastest_seconds", jsonNumber(e.fastestSeconds)), ("gflops", jsonNumber(gflops)),
                              ("peak_fraction", jsonNumber(gflops / peak / Double(e.threads))),
                              ("epoch_batch", "\(epochBatch)"), ("epoch_examples", "\(e.trainingExamples)"),
                              ("epoch_fraction", jsonNumber(e.epochFraction))]))
        } else {
            print(String(format: "evaluation, %d test images, %d thread%@: %.1f ms (fastest %.1f ms), %.1f GFLOP/s, %.0f%% of the peak of %@; "
                         + "%.1f%% of an epoch of %d examples at batch %d",
                         e.examples, e.threads, e.threads == 1 ? "" : "s", e.seconds * 1e3, e.fastestSeconds * 1e3, gflops,
                         100 * gflops / peak / Double(e.threads), (e.threads == 1 ? "one core" : "\(e.threads) cores") as NSString,
                         100 * e.epochFraction, e.trainingExamples, epochBatch))
        }
    }

    /// The model measured: --arch, --hidden, --latent, --conv-channels.
    func benchConfig() throws -> ModelConfig {
        let architecture = try parseArchitecture(arch)
        guard architecture == .conv else {
            if convChannels != nil { throw TrainingError.option("--conv-channels applies to --arch conv") }
            return try modelConfig(hidden: hidden ?? "400", latent: latent ?? 20, likelihood: "bernoulli", beta: 1, autoencoder: false)
        }
        var config = ModelConfig(imageHeight: 64, imageWidth: 64,
                                 hidden: try hidden.map(parseHidden) ?? ModelConfig.defaultConvHidden, latent: latent ?? 10)
        config.architecture = .conv
        if let convChannels { config.convChannels = try parseWidths(convChannels, option: "--conv-channels", example: "32,32,64,64") }
        try config.validate()
        return config
    }

    /// Each conv layer's three passes at `batch` examples on each of `counts` threads (GFLOP/s,
    /// share of the peak of the cores used; beside the first count, each other's speedup).
    func printConvPasses(config: ModelConfig, batch: Int, counts: [Int], peak: Double) {
        let results = benchmarkConvPasses(config: config, batch: batch, threadCounts: counts)
        let cores = { (n: Int) in n == 1 ? "1 thread" : "\(n) threads" }
        if !json {
            print("conv layer pass (batch \(batch), \(cores(counts[0])), im2col/col2im included)".padding(toLength: 62, withPad: " ", startingAt: 0)
                  + "GFLOP/s  of peak        time" + counts.dropFirst().map { "  | \(cores($0).padding(toLength: 13, withPad: " ", startingAt: 0))      time  speedup" }.joined())
        }
        var line = ""
        for (i, r) in results.enumerated() {  // each pass's counts in the order given
            let fraction = r.gflops / peak / Double(r.threads)
            if json {
                print(jsonObject([("kind", "\"conv_pass\""), ("layer", "\"\(r.layer)\""), ("pass", "\"\(r.pass)\""), ("batch", "\(batch)"),
                                  ("threads", "\(r.threads)"), ("gflops", jsonNumber(r.gflops)), ("peak_fraction", jsonNumber(fraction)),
                                  ("seconds", jsonNumber(r.seconds)), ("fastest_seconds", jsonNumber(r.fastest)),
                                  ("speedup", r.speedup.map(jsonNumber) ?? "null")]))
                continue
            }
            if i % counts.count == 0 {
                line = "\(r.layer) \(r.pass)".padding(toLength: 62, withPad: " ", startingAt: 0)
                    + String(format: "%7.1f  %6.0f%%  %7.2f ms", r.gflops, 100 * fraction, r.seconds * 1e3)
            } else {
                line += String(format: "  | %4.0f%% of peak %6.2f ms  %5.2fx", 100 * fraction, r.seconds * 1e3, r.speedup ?? 0)
            }
            if i % counts.count == counts.count - 1 { print(line) }
        }
    }

    /// --threads as numbers; by default 1 up to the cores this process may use.
    func threadCounts() throws -> [Int] {
        guard let threads else { return Array(1...availableCores()) }
        let counts = threads.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !counts.isEmpty, counts.allSatisfy({ ($0 ?? 0) > 0 && $0! <= 1024 }) else {
            throw TrainingError.option("--threads '\(threads)': expected thread counts between 1 and 1024 separated by commas, such as 1,2")
        }
        return counts.map { $0! }
    }

    /// `mpirun -n N vae-dist bench`: samples/s of the real step on N ranks with each gradient
    /// reduction, and where a step's time goes (compute, exposed communication, optimizer).
    func benchDistributed() throws {
        let communicator = try makeCommunicator()
        Fatal.communicator = communicator
        let config = try benchConfig()
        let sizes = batches.split(separator: ",").compactMap { Int($0) }.filter { $0 > 0 }
        guard !sizes.isEmpty else { throw TrainingError.option("--batches: expected positive numbers such as 64,128") }
        let say: (String) -> Void = communicator.isRoot ? { print($0); fflush(nil) } : { _ in }
        Kernels.prepare(KernelWorkload(name: "\(describe(config)) x \(sizes[0]) rows", shapes: trainingGEMMShapes(config: config, batch: sizes[0])))
        if !json { say("vae-dist bench: \(communicator.size) ranks, kernels \(Kernels.choice); per-rank batch, strategy, samples/s, ms per step") }
        // --threads: one count for every rank (default: the automatic split of TrainingOptions).
        let rankThreads = try threads.map { _ in try threadCounts() }
        if let rankThreads, rankThreads.count != 1 { throw TrainingError.option("--threads under mpirun: one thread count per rank, such as --threads 1") }
        // MPI's collectives, then (ranks on one node) the sum over shared memory, unsharded and
        // sharded; training uses the sharded one there by default.
        var strategies: [(String, TrainingOptions, Bool)] = []
        for (name, bucketMB, sharded, shared, compression) in [
            ("overlapped", 1.0, false, false, GradientCompression.none), ("after-backward", 0.0, false, false, .none),
            ("bf16", 0.0, false, false, .bf16), ("sharded", 1.0, true, false, .none), ("shared-memory", 1.0, false, true, .none),
            ("shared-memory-sharded", 1.0, true, true, .none)] {
            var o = TrainingOptions()
            o.threads = rankThreads?[0] ?? 0
            o.bucketMB = bucketMB
            o.shardOptimizer = sharded
            o.gradCompression = compression
            o.timeout = timeout
            strategies.append((name, o, shared))
        }
        for batch in sizes {
            for (name, options, shared) in strategies {
                let r = try benchmarkDistributedStep(config: config, batch: batch, options: options, sharedMemory: shared,
                                                     communicator: communicator)
                if json {
                    say(jsonObject([("kind", "\"distributed_step\""), ("ranks", "\(communicator.size)"), ("batch_per_rank", "\(batch)"),
                                    ("strategy", "\"\(name)\""), ("reduction", "\"\(r.strategy)\""),
                                    ("samples_per_second", jsonNumber(r.samplesPerSecond)),
                                    ("compute_ms_per_step", jsonNumber(r.computeMS)), ("communication_ms_per_step", jsonNumber(r.communicationMS)),
                                    ("optimizer_ms_per_step", jsonNumber(r.optimizerMS))]))
                } else {
                    say(String(format: "batch %4d  %@ %8.0f samples/s  compute %6.2f ms  exposed communication %6.2f ms  optimizer %5.2f ms  (%@)",
                               batch, name.padding(toLength: 22, withPad: " ", startingAt: 0) as NSString, r.samplesPerSecond, r.computeMS, r.communicationMS, r.optimizerMS, r.strategy as NSString))
                }
            }
        }
        try communicator.barrier()
        communicator.finalize()
    }

    /// `mpirun -n N vae-dist bench --allreduce --check`: every reduction against a Double
    /// reference (ReductionCheck.swift); one line per case on rank 0, exit 1 if any failed on any rank.
    func checkReductions() throws {
        let communicator = try makeCommunicator()
        Fatal.communicator = communicator
        try communicator.armWatchdog(timeout: timeout)
        let say: (String) -> Void = communicator.isRoot ? { print($0); fflush(nil) } : { _ in }
        say("vae-dist bench --allreduce --check: \(communicator.size) ranks; each result against the Double sum of every rank's values (error / allowed rounding, the worst element), and the same bits on every rank")
        var failed = 0
        for result in try checkCollectives(communicator: communicator) + checkStrategies(communicator: communicator) {
            // Every rank's verdict: rank 0 reports the worst.
            let (fewestPassing, _) = try communicator.allreduceMinMax(result.passed ? 1 : 0)
            let (_, worst) = try communicator.allreduceMinMax(UInt64(min(result.worstRatio, 1e12) * 1e6))
            let ok = fewestPassing == 1
            if !ok { failed += 1 }
            say((ok ? "  ok      " : "  FAILED  ") + "\(result.name) (\(result.count) floats): error \(String(format: "%.3g", Double(worst) / 1e6)) of the allowed"
                + (result.sameOnEveryRank ? "" : ", NOT the same bits on every rank"))
        }
        try communicator.barrier()
        communicator.finalize()
        if failed > 0 { throw TrainingError.training("bench --allreduce --check: \(failed) reduction(s) failed on \(communicator.size) ranks") }
        say("vae-dist bench --allreduce --check: all passed on \(communicator.size) ranks")
    }

    /// `mpirun -n N vae-dist bench --allreduce`: the median time of each collective per message size.
    func benchCollectives() throws {
        let communicator = try makeCommunicator()
        Fatal.communicator = communicator
        let byteCounts: [Int]
        if let sizes {
            let parsed = sizes.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !parsed.isEmpty, parsed.allSatisfy({ ($0 ?? 0) >= 4 && $0! <= 1 << 30 }) else {
                throw TrainingError.option("--sizes '\(sizes)': expected byte counts between 4 and 1073741824 separated by commas, such as 4096,65536")
            }
            byteCounts = parsed.map { $0! }
        } else {
            let gradient = ParameterLayout(try benchConfig()).count * 4
            byteCounts = ((12...22).map { 1 << $0 } + [gradient]).sorted()
        }
        let say: (String) -> Void = communicator.isRoot ? { print($0); fflush(nil) } : { _ in }
        if !json { say("vae-dist bench --allreduce: \(communicator.size) ranks; median (fastest) of repeats, each after a barrier") }
        // Warm-up, not reported: over TCP the first calls after start-up took 12-16 ms even for
        // 4 KB (connections being set up), then 40-70 us.
        for collective in Collective.allCases {
            _ = try benchmarkCollective(collective, floatCount: 1024, communicator: communicator, budget: 0.3)
        }
        for bytes in byteCounts {
            for collective in Collective.allCases {
                let t = try benchmarkCollective(collective, floatCount: max(1, bytes / 4), communicator: communicator)
                if json {
                    say(jsonObject([("kind", "\"collective\""), ("operation", "\"\(collective.rawValue)\""), ("ranks", "\(communicator.size)"),
                                    ("bytes", "\(t.bytes)"), ("seconds", jsonNumber(t.median)), ("fastest_seconds", jsonNumber(t.fastest)),
                                    ("repeats", "\(t.repeats)")]))
                } else {
                    say(String(format: "%10d bytes  %@ %9.1f us  (fastest %9.1f us, %d repeats)  %7.2f GB/s", t.bytes,
                               collective.rawValue.padding(toLength: 25, withPad: " ", startingAt: 0) as NSString,
                               t.median * 1e6, t.fastest * 1e6, t.repeats, Double(t.bytes) / t.median / 1e9))
                }
            }
        }
        try communicator.barrier()
        communicator.finalize()
    }
}
