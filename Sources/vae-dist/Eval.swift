import ArgumentParser
import Foundation
import VAEData
import VAEModel
import VAETraining

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Evaluate a checkpoint on the test set; prints one JSON line.")
    @OptionGroup var source: CheckpointOption
    @Option(help: "Data folder (default: the checkpoint's).") var data: String?

    func run() throws {
        try reportingErrors {
            let checkpoint = try source.load()
            let model = checkpoint.makeModel()
            let test = try testImages(data, checkpoint: checkpoint, path: source.checkpoint)
            let workspace = VAEWorkspace(config: model.config, capacity: 500)
            let training = checkpoint.config.training
            let sums = evaluate(model: model, workspace: workspace, images: test, range: 0..<test.count,
                                binarize: training.binarize, seed: training.seed)
            let mean = sums.mean(beta: Double(model.config.beta))
            let fields = [("epoch", "\(checkpoint.epoch)"), ("test_count", "\(test.count)"),
                          ("test_loss", fmt(mean.loss)), ("test_recon", fmt(mean.recon)), ("test_kl", fmt(mean.kl)),
                          ("test_nelbo", fmt(mean.recon + mean.kl))]
            print("{" + fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}")
        }
    }
}

func fmt(_ v: Double) -> String { v.isFinite ? String(format: "%.6g", v) : "null" }
