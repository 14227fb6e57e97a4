import ArgumentParser
import Foundation
import VAEData
import VAEDistributed
import VAEModel
import VAETraining

// Every option is optional here: nil means "not given". The defaults live in
// TrainingOptions() and ModelConfig() (the help shows them from there); GivenOptions merges
// what was given over them, or over the checkpoint's configuration with --resume.
private let defaults = TrainingOptions()
private let modelDefaults = ModelConfig()

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a VAE (data-parallel when launched by mpirun or srun).",
        discussion: """
            Writes OUT/metrics.jsonl, OUT/checkpoints/, OUT/samples/ and OUT/reconstructions/.

            --resume continues the run in --out from its checkpoint: `train --resume --out DIR --epochs N` \
            needs no other option (the model, the data and the rest come from the checkpoint), on any \
            rank count. Options given again may differ only for \(resumeOptions(.mayChange)); \
            \(resumeOptions(.mustAgree)) must match the checkpoint. --data may name another folder of \
            the same images (compared by count, shape and hash); other images need --allow-other-data.
            """)

    @Option(help: "Folder of IDX files, FILE.npy, FILE.npz (x_train, y_train, x_test, y_test), FILE.safetensors (images, labels, test_images, test_labels), 'synthetic' / 'synthetic:N' for the built-in shapes dataset, or 'dsprites' / 'dsprites:N' for dSprites generated in code (default: \(defaults.data)); see docs/data.md.")
    var data: String?
    @Option(name: .customLong("test-data"), help: "The test set of an array --data: a .npy, .npz or .safetensors file (its test split, else all its images) or a folder of IDX files (default: the data's test split, or the held-out --test-fraction).")
    var testData: String?
    @Option(name: .customLong("test-fraction"), help: "Fraction of data without a test split held out as the test set, the same subset for a --seed on any rank count (default: \(defaults.testFraction)).")
    var testFraction: Double?
    @Option(help: "How a 4-d array holds its channels when its shape does not tell: nhwc ([N, H, W, C]) or nchw ([N, C, H, W]).")
    var layout: String?
    @Option(help: "Epochs to train in total; a resumed run continues up to this number (default: \(defaults.epochs), or the checkpoint's).")
    var epochs: Int?
    @Option(name: .customLong("batch-size"), help: "Global batch size, split evenly over ranks (default: \(defaults.batchSize)).")
    var batchSize: Int?
    @Option(help: "Hidden layer widths of the encoder, comma-separated; the decoder mirrors them (default: \(modelDefaults.hidden.map(String.init).joined(separator: ","))).")
    var hidden: String?
    @Option(help: "Latent dimensions (default: \(modelDefaults.latent)).")
    var latent: Int?
    @Option(help: "Adam learning rate (default: \(defaults.learningRate)).")
    var lr: Float?
    @Option(help: "Decoder likelihood: bernoulli or gaussian (default: \(modelDefaults.likelihood.rawValue)).")
    var likelihood: String?
    @Option(help: "Weight of the KL term; beta-VAE, 1 is the ELBO (default: \(modelDefaults.beta)).")
    var beta: Float?
    @Flag(help: "Train a plain autoencoder (z = mu, no KL) for comparison.")
    var autoencoder = false
    @Flag(help: "Use binary pixels drawn from Bernoulli(pixel / 255) instead of intensities.")
    var binarize = false
    @Option(help: "Random seed: initialization, shuffling, noise (default: \(defaults.seed)).")
    var seed: UInt64?
    @Option(help: "Output folder (default: \(defaults.output)).")
    var out: String?
    @Flag(help: "Continue the run in --out from OUT/checkpoints/latest.safetensors, with its options (see above).")
    var resume = false
    @Flag(name: .customLong("allow-other-data"), help: "With --resume: continue on --data whose images differ from those the checkpoint was trained on.")
    var allowOtherData = false
    @Flag(help: "Start over in an OUT that holds checkpoints of an earlier run, deleting them.")
    var overwrite = false
    @Option(name: .customLong("checkpoint-every"), help: "Write a checkpoint every N epochs and after the last (default: \(defaults.checkpointEvery)).")
    var checkpointEvery: Int?
    @Option(name: .customLong("keep-checkpoints"), help: "Epoch checkpoints to keep besides latest.safetensors (default: \(defaults.keepCheckpoints)).")
    var keepCheckpoints: Int?
    @Option(name: .customLong("max-bad-steps"), help: "Stop after this many consecutive steps with non-finite loss or gradients, each skipped (default: \(defaults.maxBadSteps)).")
    var maxBadSteps: Int?
    @Option(name: .customLong("check-every"), help: "Steps between checks that all ranks hold identical parameters; 0: never (default: \(defaults.checkEvery)).")
    var checkEvery: Int?
    @Flag(help: "Reduce gradients in a fixed order so 1, 2 and 4 ranks give bit-identical results (batch split into \(TrainingOptions.deterministicGroups) fixed groups).")
    var deterministic = false
    @Flag(name: .customLong("shard-optimizer"), inversion: .prefixedNo,
          help: "ZeRO stage 1: each rank runs Adam on 1/N of the parameters, reduce-scatter then allgather (default: off, or the checkpoint's).")
    var shardOptimizer: Bool?
    @Option(name: .customLong("bucket-mb"), help: "Gradient buckets allreduced during backward, in MB; 0: one allreduce after backward (default: \(defaults.bucketMB)).")
    var bucketMB: Double?
    @Option(name: .customLong("lr-schedule"), help: "Learning rate over the run: constant, or cosine decay to 0 over the steps after the warm-up (default: \(defaults.lrSchedule.rawValue)).")
    var lrSchedule: String?
    @Option(name: .customLong("warmup-steps"), help: "Steps of linear learning-rate warm-up from lr/N to lr (default: \(defaults.warmupSteps)).")
    var warmupSteps: Int?
    @Option(name: .customLong("clip-grad-norm"), help: "Clip the global gradient norm over all ranks to this value, as torch.nn.utils.clip_grad_norm_; 0: off (default: \(defaults.clipGradNorm)).")
    var clipGradNorm: Double?
    @Option(name: .customLong("log-every"), help: "A progress line every N optimizer steps where there is no progress bar (mpirun, a log file); 0: none (default: \(defaults.logEvery)).")
    var logEvery: Int?
    @Option(help: "Kernel threads per rank; 0: the cores this process may use divided among the ranks on this node. Never changes a bit of the result (default: \(defaults.threads)).")
    var threads: Int?
    @Option(name: .customLong("kl-warmup"), help: "KL warm-up: beta rises linearly from 0 at step 0 to --beta at this optimizer step; 0: off (default: \(defaults.klWarmup)).")
    var klWarmup: Int?
    @Option(help: "Controlled capacity (Burgess et al. 2018): loss = recon + gamma |KL - C|, the target C rising linearly from 0 to this many nats over --capacity-steps; 0: off (default: \(defaults.capacity)).")
    var capacity: Double?
    @Option(name: .customLong("capacity-steps"), help: "Optimizer steps over which --capacity's target rises from 0 to C.")
    var capacitySteps: Int?
    @Option(help: "Weight of |KL - C| with --capacity (default: \(defaults.gamma)).")
    var gamma: Double?
    @Option(name: .customLong("free-bits"), help: "Free bits (Kingma et al. 2016): nats per latent dimension; a dimension whose global-batch mean KL is under this costs this much and gets no KL gradient; 0: off (default: \(defaults.freeBits)).")
    var freeBits: Double?
    @Option(name: .customLong("tc-beta"), help: "beta-TCVAE (Chen et al. 2018): the KL split into mutual information, total correlation (weighted by this) and dimension-wise KL, estimated over the global batch (default: off).")
    var tcBeta: Double?
    @Option(help: "Stall watchdog: seconds a collective may wait for the other ranks; then the ranks that can still talk name the missing ones and the job ends (exit 1; the last checkpoint stays resumable). A warning comes at half of it; 0: off (default: \(Int(defaults.timeout))).")
    var timeout: Double?
    @Option(help: "Micro-batches per optimizer step: each rank's slice of --batch-size runs in this many parts whose gradients add up before one reduction, for batches larger than fit in memory (default: \(defaults.accumulate)).")
    var accumulate: Int?

    /// The options given on the command line, typed; nil where not given. A flag given is on.
    func given() throws -> GivenOptions {
        var g = GivenOptions()
        g.hidden = try hidden.map(parseHidden)
        g.latent = latent
        g.likelihood = try likelihood.map(parseLikelihood)
        g.beta = beta
        g.autoencoder = autoencoder ? true : nil
        g.data = data
        g.epochs = epochs
        g.batchSize = batchSize
        g.learningRate = lr
        g.seed = seed
        g.binarize = binarize ? true : nil
        g.output = out
        g.checkpointEvery = checkpointEvery
        g.keepCheckpoints = keepCheckpoints
        g.maxBadSteps = maxBadSteps
        g.checkEvery = checkEvery
        g.deterministic = deterministic ? true : nil
        g.shardOptimizer = shardOptimizer
        g.bucketMB = bucketMB
        g.lrSchedule = try lrSchedule.map { text in
            guard let schedule = LearningRateSchedule(rawValue: text) else {
                throw TrainingError.option("--lr-schedule '\(text)': expected \(LearningRateSchedule.allCases.map(\.rawValue).joined(separator: " or "))")
            }
            return schedule
        }
        g.warmupSteps = warmupSteps
        g.clipGradNorm = clipGradNorm
        g.logEvery = logEvery
        g.threads = threads
        g.klWarmup = klWarmup
        g.capacity = capacity
        g.capacitySteps = capacitySteps
        g.gamma = gamma
        g.freeBits = freeBits
        g.tcBeta = tcBeta
        g.timeout = timeout
        g.accumulate = accumulate
        g.testData = testData
        g.testFraction = testFraction
        g.layout = try layout.map(parseLayout)
        return g
    }

    func run() throws {
        try reportingErrors {
            let given = try given()
            // Checked before a checkpoint is read, so a bad value is named as typed.
            try given.newRun().model.validate()
            Interruption.install()
            let communicator = try makeCommunicator()
            Fatal.communicator = communicator
            let trainer = try Trainer(given: given, resume: resume, overwrite: overwrite, allowOtherData: allowOtherData,
                                      communicator: communicator) { line in
                Console.out(line + "\n")
            }
            try trainer.run()
            try communicator.barrier()
            communicator.finalize()
        }
    }
}

/// "--epochs, --lr, ..." for the options with this resume rule.
private func resumeOptions(_ rule: GivenOptions.ResumeRule) -> String {
    GivenOptions.resumeRules.filter { $0.value == rule }.map(\.key).joined(separator: ", ")
}

/// "400" or "512,256": positive layer widths.
func parseHidden(_ hidden: String) throws -> [Int] {
    let widths = hidden.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard !widths.isEmpty, widths.allSatisfy({ ($0 ?? 0) > 0 }) else {
        throw ModelConfigError.invalid("--hidden '\(hidden)': expected positive layer widths separated by commas, such as 400 or 512,256")
    }
    return widths.map { $0! }
}

func parseLayout(_ layout: String) throws -> ArrayLayout {
    guard let value = ArrayLayout(rawValue: layout) else { throw TrainingError.option("--layout '\(layout)': expected nhwc or nchw") }
    return value
}

func parseLikelihood(_ likelihood: String) throws -> Likelihood {
    guard let kind = Likelihood(rawValue: likelihood) else {
        throw ModelConfigError.invalid("--likelihood '\(likelihood)': expected bernoulli or gaussian")
    }
    return kind
}

/// Builds and validates the model options shared by the commands.
func modelConfig(hidden: String, latent: Int, likelihood: String, beta: Float, autoencoder: Bool) throws -> ModelConfig {
    let config = ModelConfig(hidden: try parseHidden(hidden), latent: latent, likelihood: try parseLikelihood(likelihood),
                             beta: beta, autoencoder: autoencoder)
    try config.validate()
    return config
}

/// Runs a command body; any error becomes one line and exit code 1 (MPI_Abort under MPI).
func reportingErrors(_ body: () throws -> Void) throws {
    do { try body() } catch let error as CommunicatorError where error.isStall {
        // The stall watchdog printed its line on every rank that can still talk.
        Fatal.abortAfterStall()
    } catch {
        Fatal.exit("\(error)")
    }
}
