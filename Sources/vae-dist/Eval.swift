import ArgumentParser
import Foundation
import VAEAnalysis
import VAEData
import VAEDistributed
import VAEKernels
import VAEModel
import VAEOutputs
import VAETraining

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a checkpoint on the test set; prints one JSON line (sharded over ranks under mpirun).",
        discussion: """
            test_nelbo uses one z per example (the training metric). With --iw-samples K it also \
            prints test_iw_nll, the importance-weighted estimate of -log p(x) (K = 5000 is the \
            standard; K decodes per example, so it takes K times longer). kl_per_dimension is each \
            latent dimension's mean KL, active_units counts dimensions with Var_x(mu) > 0.01, and \
            mig / mig_per_factor (data with discrete factors, such as dsprites) is the Mutual \
            Information Gap of the first 10,000 test images, as disentanglement_lib computes it.
            """)
    @OptionGroup var source: CheckpointOption
    @Option(help: "Data folder (default: the checkpoint's).") var data: String?
    @Option(name: .customLong("iw-samples"), help: "Importance samples K for the log p(x) estimate (0: skip).")
    var iwSamples = 0
    @Option(help: "Evaluate only the first N test images.") var limit: Int?
    @OptionGroup var threads: ThreadsOption

    func run() throws {
        try reportingErrors {
            guard iwSamples >= 0 else { throw TrainingError.option("--iw-samples must be 0 or more (got \(iwSamples))") }
            if let limit, limit < 1 { throw TrainingError.option("--limit must be at least 1 (got \(limit))") }
            _ = try threads.validated()
            let communicator = try startEvaluationCommunicator()
            let (checkpoint, path) = try source.load(isRoot: communicator.isRoot)
            let model = checkpoint.makeModel()
            model.threads = try threads.kernelThreads()
            let test = try testImages(data, checkpoint: checkpoint, path: path)
            let count = min(limit ?? test.count, test.count)
            let range = shardRange(count: count, rank: communicator.rank, worldSize: communicator.size)
            let workspace = VAEWorkspace(config: model.config, capacity: evaluationBatch(for: model.config))
            let training = checkpoint.config.training
            let start = now()
            let (totals, posterior) = try evaluateDistributed(model: model, workspace: workspace, images: test, count: count,
                                                              binarize: training.binarize, seed: training.seed,
                                                              communicator: communicator)
            var sums: [Double] = [totals.recon, totals.kl, totals.count, 0]
            if iwSamples > 0 {
                sums[3] = importanceWeightedLogLikelihood(model: model, workspace: workspace, images: test, range: range,
                                                          samples: iwSamples, binarize: training.binarize, seed: training.seed)
                try sums.withUnsafeMutableBufferPointer { p throws(CommunicatorError) in
                    try communicator.allreduceSum(p.baseAddress! + 3, count: 1)
                }
            }
            let aggregate = AggregatePosterior(posterior, autoencoder: model.config.autoencoder)
            let mean = LossSums(recon: sums[0], kl: sums[1], count: sums[2]).mean(beta: Double(model.config.beta))
            let measures = LatentMeasures(posterior, data: test, autoencoder: model.config.autoencoder)
            // A metric that is NaN or infinite means the parameters are broken (a checkpoint of an
            // older vae-dist holds no checksums): an error, never a JSON null with exit code 0.
            var metrics = [("test_loss", mean.loss), ("test_recon", mean.recon), ("test_kl", mean.kl),
                           ("aggregate_kl", aggregate.klToPrior), ("posterior_std_mean", aggregate.posteriorStdMean)]
            if iwSamples > 0 { metrics.append(("test_iw_nll", -sums[3] / sums[2])) }
            metrics += measures.klPerDimension.enumerated().map { ("kl_per_dimension[\($0.offset)]", $0.element) }
            if let broken = metrics.first(where: { !$0.1.isFinite }) {
                throw TrainingError.checkpoint(path: path, reason: "evaluation gives \(broken.0) = \(broken.1): the parameters are not usable")
            }
            var fields = [("epoch", "\(checkpoint.epoch)"), ("test_count", "\(count)"),
                          ("test_loss", jsonNumber(mean.loss)), ("test_recon", jsonNumber(mean.recon)), ("test_kl", jsonNumber(mean.kl)),
                          ("test_nelbo", jsonNumber(mean.recon + mean.kl))]
            if iwSamples > 0 {
                fields += [("test_iw_nll", jsonNumber(-sums[3] / sums[2])), ("iw_samples", "\(iwSamples)")]
            }
            fields += [("aggregate_kl", jsonNumber(aggregate.klToPrior)), ("posterior_std_mean", jsonNumber(aggregate.posteriorStdMean))]
            // KL per dimension, active units and (with discrete factors) MIG, from the same posteriors.
            fields += measures.jsonFields
            fields += [("seconds", jsonNumber(now() - start)), ("world_size", "\(communicator.size)")]
            if communicator.isRoot {
                print(jsonObject(fields))
            }
            communicator.finalize()
        }
    }
}
