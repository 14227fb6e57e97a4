import ArgumentParser
import Foundation
import VAEDistributed
import VAEModel
import VAETraining

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a VAE (data-parallel when launched by mpirun or srun).",
        discussion: "Writes OUT/metrics.jsonl, OUT/checkpoints/, OUT/samples/ and OUT/reconstructions/.")

    @Option(help: "Folder of IDX files, or 'synthetic' / 'synthetic:N' for the built-in shapes dataset.")
    var data = "/usr/share/datasets/fashion-mnist"
    @Option(help: "Epochs to train in total (a resumed run continues up to this number).")
    var epochs = 10
    @Option(name: .customLong("batch-size"), help: "Global batch size, split evenly over ranks.")
    var batchSize = 128
    @Option(help: "Hidden layer widths of the encoder, comma-separated (the decoder mirrors them).")
    var hidden = "400"
    @Option(help: "Latent dimensions.")
    var latent = 20
    @Option(help: "Adam learning rate.")
    var lr: Float = 1e-3
    @Option(help: "Decoder likelihood: bernoulli or gaussian.")
    var likelihood = "bernoulli"
    @Option(help: "Weight of the KL term (beta-VAE; 1 is the ELBO).")
    var beta: Float = 1
    @Flag(help: "Train a plain autoencoder (z = mu, no KL) for comparison.")
    var autoencoder = false
    @Flag(help: "Use binary pixels drawn from Bernoulli(pixel / 255) instead of intensities.")
    var binarize = false
    @Option(help: "Random seed (initialization, shuffling, noise).")
    var seed: UInt64 = 1
    @Option(help: "Output folder.")
    var out = "runs/latest"
    @Flag(help: "Continue from OUT/checkpoints/latest.safetensors.")
    var resume = false
    @Flag(help: "Start over in an OUT that holds checkpoints of an earlier run, deleting them.")
    var overwrite = false
    @Option(name: .customLong("checkpoint-every"), help: "Write a checkpoint every N epochs (and after the last).")
    var checkpointEvery = 1
    @Option(name: .customLong("keep-checkpoints"), help: "Epoch checkpoints to keep besides latest.safetensors.")
    var keepCheckpoints = 3
    @Option(name: .customLong("max-bad-steps"), help: "Stop after this many consecutive steps with non-finite loss or gradients (each is skipped).")
    var maxBadSteps = 10
    @Option(name: .customLong("check-every"), help: "Steps between checks that all ranks hold identical parameters (0: never).")
    var checkEvery = 100
    @Flag(help: "Reduce gradients in a fixed order so 1, 2 and 4 ranks give bit-identical results (batch split into 4 fixed groups).")
    var deterministic = false
    @Flag(name: .customLong("shard-optimizer"), help: "ZeRO stage 1: each rank runs Adam on 1/N of the parameters (reduce-scatter, then allgather).")
    var shardOptimizer = false
    @Option(name: .customLong("bucket-mb"), help: "Gradient buckets allreduced during backward, in MB (0: one allreduce after backward).")
    var bucketMB = 1.0
    @Option(help: "Kernel threads per rank (0: the cores this process may use divided among the ranks on this node). Never changes a bit of the result.")
    var threads = 0

    func run() throws {
        try reportingErrors {
            let model = try modelConfig(hidden: hidden, latent: latent, likelihood: likelihood, beta: beta, autoencoder: autoencoder)
            var options = TrainingOptions()
            options.data = data
            options.epochs = epochs
            options.batchSize = batchSize
            options.learningRate = lr
            options.seed = seed
            options.binarize = binarize
            options.output = out
            options.checkpointEvery = checkpointEvery
            options.keepCheckpoints = keepCheckpoints
            options.maxBadSteps = maxBadSteps
            options.checkEvery = checkEvery
            options.deterministic = deterministic
            options.shardOptimizer = shardOptimizer
            options.bucketMB = bucketMB
            options.threads = threads
            Interruption.install()
            let communicator = try makeCommunicator()
            Fatal.communicator = communicator
            let trainer = try Trainer(options: options, model: model, resume: resume, overwrite: overwrite,
                                      communicator: communicator) { line in
                print(line)
                fflush(nil)
            }
            try trainer.run()
            try communicator.barrier()
            communicator.finalize()
        }
    }
}

/// Builds and validates the model options shared by the commands.
func modelConfig(hidden: String, latent: Int, likelihood: String, beta: Float, autoencoder: Bool) throws -> ModelConfig {
    let widths = hidden.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard !widths.isEmpty, widths.allSatisfy({ ($0 ?? 0) > 0 }) else {
        throw ModelConfigError.invalid("--hidden '\(hidden)': expected positive layer widths separated by commas, such as 400 or 512,256")
    }
    guard let kind = Likelihood(rawValue: likelihood) else {
        throw ModelConfigError.invalid("--likelihood '\(likelihood)': expected bernoulli or gaussian")
    }
    let config = ModelConfig(hidden: widths.map { $0! }, latent: latent, likelihood: kind, beta: beta, autoencoder: autoencoder)
    try config.validate()
    return config
}

/// Runs a command body; any error becomes one line and exit code 1 (MPI_Abort under MPI).
func reportingErrors(_ body: () throws -> Void) throws {
    do { try body() } catch {
        Fatal.exit("\(error)")
    }
}
