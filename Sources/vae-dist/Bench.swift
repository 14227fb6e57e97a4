import ArgumentParser
import Foundation
import VAEKernels
import VAEModel
import VAETraining

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure GEMM GFLOP/s per layer shape and training-step samples/s on this machine (one process).")
    @Option(help: "Per-rank batch sizes to measure, comma-separated.") var batches = "64,128"
    @Option(help: "Hidden widths of the model measured.") var hidden = "400"
    @Option(help: "Latent dimensions of the model measured.") var latent = 20
    @Option(help: "Kernel thread counts at which to measure the training step, comma-separated (default: 1 up to the cores this process may use).")
    var threads: String?
    @Flag(help: "JSON lines only.") var json = false

    func run() throws {
        try reportingErrors {
            let config = try modelConfig(hidden: hidden, latent: latent, likelihood: "bernoulli", beta: 1, autoencoder: false)
            let sizes = batches.split(separator: ",").compactMap { Int($0) }.filter { $0 > 0 }
            guard !sizes.isEmpty else { throw TrainingError.option("--batches: expected positive numbers such as 64,128") }
            let counts = try threadCounts()
            if !json { print("GEMM                                      GFLOP/s   time") }
            for batch in sizes {
                for shape in trainingGEMMShapes(config: config, batch: batch) {
                    let r = benchmarkGEMM(shape)
                    if json {
                        print(jsonObject([("kind", "\"gemm\""), ("layer", "\"\(shape.layer)\""), ("form", "\"\(shape.form.rawValue)\""),
                                          ("m", "\(shape.m)"), ("n", "\(shape.n)"), ("k", "\(shape.k)"), ("batch", "\(batch)"),
                                          ("gflops", jsonNumber(r.gflops)), ("seconds", jsonNumber(r.seconds))]))
                    } else {
                        print(shape.description.padding(toLength: 40, withPad: " ", startingAt: 0)
                              + String(format: "%9.1f  %7.1f us", r.gflops, r.seconds * 1e6))
                    }
                }
            }
            for batch in sizes {
                var single: Double?
                for count in counts {
                    let s = benchmarkTrainingStep(config: config, batch: batch, threads: count)
                    if count == 1 { single = s.samplesPerSecond }
                    printStep(s, speedup: count == 1 ? nil : single.map { s.samplesPerSecond / $0 })
                }
            }
        }
    }

    func printStep(_ s: StepBenchmark, speedup: Double?) {
        if json {
            print(jsonObject([("kind", "\"step\""), ("batch", "\(s.batch)"), ("threads", "\(s.threads)"),
                              ("samples_per_second", jsonNumber(s.samplesPerSecond)),
                              ("speedup_vs_1_thread", speedup.map(jsonNumber) ?? "null"),
                              ("step_seconds", jsonNumber(s.stepSeconds)), ("compute_fraction", jsonNumber(s.computeFraction)),
                              ("optimizer_fraction", jsonNumber(s.optimizerFraction)), ("data_fraction", jsonNumber(s.dataFraction))]))
        } else {
            let versus = speedup.map { String(format: " (%.2fx 1 thread)", $0) } ?? ""
            print(String(format: "training step, batch %d, %d thread%@: %.0f samples/s%@ (%.2f ms/step: compute %.0f%%, optimizer %.0f%%, data %.0f%%)",
                         s.batch, s.threads, s.threads == 1 ? "" : "s", s.samplesPerSecond, versus,
                         s.stepSeconds * 1e3, s.computeFraction * 100, s.optimizerFraction * 100, s.dataFraction * 100))
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
}
