import ArgumentParser
import Foundation
import VAEModel
import VAETraining

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure GEMM GFLOP/s per layer shape and training-step samples/s on this machine (one process).")
    @Option(help: "Per-rank batch sizes to measure, comma-separated.") var batches = "64,128"
    @Option(help: "Hidden widths of the model measured.") var hidden = "400"
    @Option(help: "Latent dimensions of the model measured.") var latent = 20
    @Flag(help: "JSON lines only.") var json = false

    func run() throws {
        try reportingErrors {
            let config = try modelConfig(hidden: hidden, latent: latent, likelihood: "bernoulli", beta: 1, autoencoder: false)
            let sizes = batches.split(separator: ",").compactMap { Int($0) }.filter { $0 > 0 }
            guard !sizes.isEmpty else { throw TrainingError.option("--batches: expected positive numbers such as 64,128") }
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
                let s = benchmarkTrainingStep(config: config, batch: batch)
                if json {
                    print(jsonObject([("kind", "\"step\""), ("batch", "\(batch)"), ("samples_per_second", jsonNumber(s.samplesPerSecond)),
                                      ("step_seconds", jsonNumber(s.stepSeconds)), ("compute_fraction", jsonNumber(s.computeFraction)),
                                      ("optimizer_fraction", jsonNumber(s.optimizerFraction)), ("data_fraction", jsonNumber(s.dataFraction))]))
                } else {
                    print(String(format: "training step, batch %d: %.0f samples/s (%.2f ms/step: compute %.0f%%, optimizer %.0f%%, data %.0f%%)",
                                 batch, s.samplesPerSecond, s.stepSeconds * 1e3, s.computeFraction * 100,
                                 s.optimizerFraction * 100, s.dataFraction * 100))
                }
            }
        }
    }
}
