import VAECheckpoint
import VAEData
import VAEModel

// The options a command line gave (nil: not given) and the one place that turns them into a
// run's configuration:
//   a new run:  the given options over the defaults, TrainingOptions() and ModelConfig();
//   --resume:   the given options over the checkpoint's configuration. An option not given
//               keeps the checkpoint's value; one given must agree with it unless resume may
//               change it (`resumeRules`); a disagreement is one error naming the option and
//               both values.
// Which options resume may change, and why:
//   --epochs, --lr, --lr-schedule, --warmup-steps, --clip-grad-norm, --checkpoint-every,
//   --keep-checkpoints, --max-bad-steps, --check-every, --log-every, --out
//                how long, how fast and how carefully to go on, and where: a schedule, not the
//                model. A changed --lr is recorded in the next checkpoint.
//   --bucket-mb, --shard-optimizer, --threads, --accumulate   how the same gradient sum and the
//                same elementwise Adam update are computed; the mathematics is unchanged
//                (bit-identity with an uninterrupted run holds as far as the reduction's own
//                summation order allows). --accumulate cuts each rank's slice of the same batch
//                into micro-batches; a checkpoint's position counts optimizer steps, which it
//                does not change (with --deterministic the result is bit-identical for any count).
//   --timeout    how long a collective may wait for a stalled rank: not the mathematics.
//   --kl-warmup, --capacity-steps   how fast a ramp over the global step goes (like --warmup-steps);
//                the ramp continues from the resumed step, so a longer one lowers the weight or
//                target from the next step on.
//   --data       may name another folder that holds the same images (the fingerprint decides,
//                `checkResumeData`); other images need --allow-other-data.
// and which must agree:
//   --hidden, --latent, --likelihood, --beta, --autoencoder   the model and its loss;
//   --seed, --batch-size, --binarize   the epoch permutation, the noise, the steps of an epoch
//                and the pixels trained on;
//   --capacity, --gamma, --free-bits, --tc-beta   which objective is trained (like --beta): a
//                stretch under another objective is a different model, not a continuation;
//   --deterministic   it changes the summation tree and groups every batch in fixed groups:
//                a checkpoint that says deterministic promises parameters bit-identical on 1, 2
//                and 4 ranks, which a stretch trained otherwise would break silently.

/// Options as given on a command line; nil means not given.
public struct GivenOptions: Codable, Equatable, Sendable {
    // The model (ModelConfig); the image size always comes from the data.
    public var hidden: [Int]?
    public var latent: Int?
    public var likelihood: Likelihood?
    public var beta: Float?
    public var autoencoder: Bool?
    // Training (TrainingOptions).
    public var data: String?
    public var epochs: Int?
    public var batchSize: Int?
    public var learningRate: Float?
    public var seed: UInt64?
    public var binarize: Bool?
    public var output: String?
    public var checkpointEvery: Int?
    public var keepCheckpoints: Int?
    public var maxBadSteps: Int?
    public var checkEvery: Int?
    public var deterministic: Bool?
    public var shardOptimizer: Bool?
    public var bucketMB: Double?
    public var lrSchedule: LearningRateSchedule?
    public var warmupSteps: Int?
    public var clipGradNorm: Double?
    public var logEvery: Int?
    public var threads: Int?
    public var klWarmup: Int?
    public var capacity: Double?
    public var capacitySteps: Int?
    public var gamma: Double?
    public var freeBits: Double?
    public var tcBeta: Double?
    public var timeout: Double?
    /// --accumulate: micro-batches per optimizer step.
    public var microBatches: Int?
    /// The command line's name for `microBatches`.
    public var accumulate: Int? {
        get { microBatches }
        set { microBatches = newValue }
    }

    public init() {}

    /// Every option given, with these values (callers that hold complete options).
    public init(model: ModelConfig, options: TrainingOptions) {
        hidden = model.hidden
        latent = model.latent
        likelihood = model.likelihood
        beta = model.beta
        autoencoder = model.autoencoder
        data = options.data
        epochs = options.epochs
        batchSize = options.batchSize
        learningRate = options.learningRate
        seed = options.seed
        binarize = options.binarize
        output = options.output
        checkpointEvery = options.checkpointEvery
        keepCheckpoints = options.keepCheckpoints
        maxBadSteps = options.maxBadSteps
        checkEvery = options.checkEvery
        deterministic = options.deterministic
        shardOptimizer = options.shardOptimizer
        bucketMB = options.bucketMB
        lrSchedule = options.lrSchedule
        warmupSteps = options.warmupSteps
        clipGradNorm = options.clipGradNorm
        logEvery = options.logEvery
        threads = options.threads
        klWarmup = options.klWarmup
        capacity = options.capacity
        capacitySteps = options.capacitySteps
        gamma = options.gamma
        freeBits = options.freeBits
        tcBeta = options.tcBeta
        timeout = options.timeout
        microBatches = options.microBatches
    }

    public enum ResumeRule: Sendable {
        /// Given: replaces the checkpoint's value.
        case mayChange
        /// Given: must equal the checkpoint's value.
        case mustAgree
        /// Given: replaces the checkpoint's --data; the images are then compared (`checkResumeData`).
        case sameImages
    }

    /// What --resume does with each option given again (the header says why).
    public static let resumeRules: KeyValuePairs<String, ResumeRule> = [
        "--epochs": .mayChange, "--lr": .mayChange, "--out": .mayChange, "--checkpoint-every": .mayChange,
        "--keep-checkpoints": .mayChange, "--max-bad-steps": .mayChange, "--check-every": .mayChange,
        "--bucket-mb": .mayChange, "--shard-optimizer": .mayChange,
        "--lr-schedule": .mayChange, "--warmup-steps": .mayChange, "--clip-grad-norm": .mayChange, "--log-every": .mayChange,
        "--threads": .mayChange, "--kl-warmup": .mayChange, "--capacity-steps": .mayChange,
        "--timeout": .mayChange, "--accumulate": .mayChange,
        "--data": .sameImages,
        "--hidden": .mustAgree, "--latent": .mustAgree, "--likelihood": .mustAgree, "--beta": .mustAgree,
        "--autoencoder": .mustAgree, "--seed": .mustAgree, "--batch-size": .mustAgree, "--binarize": .mustAgree,
        "--deterministic": .mustAgree, "--capacity": .mustAgree, "--gamma": .mustAgree, "--free-bits": .mustAgree,
        "--tc-beta": .mustAgree,
    ]

    static func rule(_ option: String) -> ResumeRule {
        guard let rule = resumeRules.first(where: { $0.key == option })?.value else {
            preconditionFailure("\(option) has no resume rule")
        }
        return rule
    }

    /// A new run: the given options over the defaults.
    public func newRun() -> CheckpointConfig {
        var merge = Merge(checkpoint: nil)
        var config = CheckpointConfig(model: ModelConfig(), training: TrainingOptions())
        try! merge.apply(self, to: &config)  // without a checkpoint nothing is refused
        return config
    }

    /// --resume: the given options over `stored`, the configuration of the checkpoint at
    /// `path`. Returns the configuration and one "--lr 0.001 -> 0.0005" per changed option.
    public func resuming(_ stored: CheckpointConfig, checkpoint path: String) throws(TrainingError)
        -> (config: CheckpointConfig, changes: [String]) {
        var merge = Merge(checkpoint: path)
        var config = stored
        try merge.apply(self, to: &config)
        return (config, merge.changes)
    }
}

/// Applies given options to a configuration, option by option, under their resume rules.
private struct Merge {
    /// The checkpoint resumed from; nil for a new run (every option may then be set).
    let checkpoint: String?
    var changes: [String] = []

    mutating func apply(_ given: GivenOptions, to config: inout CheckpointConfig) throws(TrainingError) {
        let widths = { (hidden: [Int]) in hidden.map(String.init).joined(separator: ",") }
        try set("--hidden", given.hidden, &config.model.hidden, show: widths)
        try set("--latent", given.latent, &config.model.latent)
        try set("--likelihood", given.likelihood, &config.model.likelihood, show: \.rawValue)
        try set("--beta", given.beta, &config.model.beta)
        try set("--autoencoder", given.autoencoder, &config.model.autoencoder, show: onOff)
        try set("--data", given.data, &config.training.data)
        try set("--epochs", given.epochs, &config.training.epochs)
        try set("--batch-size", given.batchSize, &config.training.batchSize)
        try set("--lr", given.learningRate, &config.training.learningRate)
        try set("--seed", given.seed, &config.training.seed)
        try set("--binarize", given.binarize, &config.training.binarize, show: onOff)
        try set("--out", given.output, &config.training.output)
        try set("--checkpoint-every", given.checkpointEvery, &config.training.checkpointEvery)
        try set("--keep-checkpoints", given.keepCheckpoints, &config.training.keepCheckpoints)
        try set("--max-bad-steps", given.maxBadSteps, &config.training.maxBadSteps)
        try set("--check-every", given.checkEvery, &config.training.checkEvery)
        try set("--deterministic", given.deterministic, &config.training.deterministic, show: onOff)
        try set("--shard-optimizer", given.shardOptimizer, &config.training.shardOptimizer, show: onOff)
        try set("--bucket-mb", given.bucketMB, &config.training.bucketMB)
        try set("--lr-schedule", given.lrSchedule, &config.training.lrSchedule, show: \.rawValue)
        try set("--warmup-steps", given.warmupSteps, &config.training.warmupSteps)
        try set("--clip-grad-norm", given.clipGradNorm, &config.training.clipGradNorm)
        try set("--log-every", given.logEvery, &config.training.logEvery)
        try set("--threads", given.threads, &config.training.threads)
        try set("--kl-warmup", given.klWarmup, &config.training.klWarmup)
        try set("--capacity", given.capacity, &config.training.capacity)
        try set("--capacity-steps", given.capacitySteps, &config.training.capacitySteps)
        try set("--gamma", given.gamma, &config.training.gamma)
        try set("--free-bits", given.freeBits, &config.training.freeBits)
        try set("--tc-beta", given.tcBeta.map { Optional($0) }, &config.training.tcBeta, show: { $0.map { "\($0)" } ?? "off" })
        try set("--timeout", given.timeout, &config.training.timeout)
        try set("--accumulate", given.microBatches, &config.training.microBatches)
    }

    mutating func set<T: Equatable>(_ option: String, _ given: T?, _ value: inout T,
                                    show: (T) -> String = { "\($0)" }) throws(TrainingError) {
        guard let given, given != value else { return }
        guard let checkpoint else {
            value = given
            return
        }
        switch GivenOptions.rule(option) {
        case .mayChange, .sameImages:
            changes.append("\(option) \(show(value)) -> \(show(given))")
            value = given
        case .mustAgree:
            throw .option("\(option) cannot change on resume: \(checkpoint) was trained with \(option) \(show(value)), "
                          + "this run gives \(option) \(show(given)) (leave \(option) out to continue with \(show(value)), "
                          + "or start a new run with another --out)")
        }
    }
}

private func onOff(_ flag: Bool) -> String { flag ? "on" : "off" }

/// --resume on `current` data (`spec`, the resolved --data) of a checkpoint that recorded
/// `stored` (nil: written before vae-dist recorded data) and was trained with --data
/// `storedSpec`. Other images are refused unless `allowOtherData`. Returns a line for the log
/// when there is something to say.
public func checkResumeData(stored: DataFingerprint?, storedSpec: String, current: DataFingerprint, spec: String,
                            allowOtherData: Bool, checkpoint path: String) throws(TrainingError) -> String? {
    guard let stored else {
        if spec == storedSpec {
            return "vae-dist: \(path) records no data fingerprint (written by an older vae-dist): "
                + "taking --data \(spec) to be the data it was trained on; the next checkpoint records it"
        }
        if allowOtherData { return "vae-dist: resuming on --data \(spec) (--allow-other-data); the checkpoint was trained on --data \(storedSpec)" }
        throw .option("--data \(spec): \(path) was trained on --data \(storedSpec) and records no fingerprint of its images "
                      + "(an older vae-dist) to show they are the same; pass --allow-other-data to resume on \(spec)")
    }
    if stored.sameImages(as: current) { return nil }
    if allowOtherData { return "vae-dist: resuming on other data (--allow-other-data): trained on \(stored), now \(current)" }
    throw .option("--data \(spec): its training images differ from those \(path) was trained on "
                  + "(trained on \(stored); given \(current)); pass --allow-other-data to resume on them anyway")
}
