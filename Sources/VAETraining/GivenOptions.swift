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
//   --grad-compression   how the gradient crosses the network: a rounding of each step's
//                gradient (like the summation order of --bucket-mb), not the model or its loss.
//   --timeout    how long a collective may wait for a stalled rank: not the mathematics.
//   --test-data  which images the evaluation measures, not what is trained.
//   --kl-warmup, --capacity-steps   how fast a ramp over the global step goes (like --warmup-steps);
//                the ramp continues from the resumed step, so a longer one lowers the weight or
//                target from the next step on.
//   --data       may name another folder that holds the same images (the fingerprint decides,
//                `checkResumeData`); other images need --allow-other-data.
// and which must agree:
//   --test-fraction, --layout, --image-size   which images are trained on, and how they are read;
//   --arch, --conv-channels, --hidden, --latent, --likelihood, --beta, --autoencoder   the model
//                and its loss;
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
    public var architecture: Architecture?
    public var convChannels: [Int]?
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
    public var gradCompression: GradientCompression?
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
    public var testData: String?
    public var testFraction: Double?
    public var layout: ArrayLayout?
    public var imageSize: ImageSize?

    public init() {}

    /// Every option given, with these values (callers that hold complete options).
    public init(model: ModelConfig, options: TrainingOptions) {
        let config = CheckpointConfig(model: model, training: options)
        for option in TrainOptions.table { option.give(config, &self) }
    }

    public enum ResumeRule: Sendable {
        /// Given: replaces the checkpoint's value.
        case mayChange
        /// Given: must equal the checkpoint's value.
        case mustAgree
        /// Given: replaces the checkpoint's --data; the images are then compared (`checkResumeData`).
        case sameImages
    }

    /// What --resume does with each option given again (the header says why), from the table.
    public static var resumeRules: [(key: String, value: ResumeRule)] { TrainOptions.table.map { ($0.flag, $0.rule) } }

    /// A new run: the given options over the defaults.
    public func newRun() -> CheckpointConfig {
        var merge = OptionMerge(checkpoint: nil)
        var config = CheckpointConfig(model: ModelConfig(), training: TrainingOptions())
        try! merge.apply(self, to: &config)  // without a checkpoint nothing is refused
        return config
    }

    /// --from: the given options over `stored`, another run's configuration; every option may
    /// change (it is a new run).
    public func over(_ stored: CheckpointConfig) -> CheckpointConfig {
        var merge = OptionMerge(checkpoint: nil)
        var config = stored
        try! merge.apply(self, to: &config)  // without a checkpoint to continue nothing is refused
        return config
    }

    /// --resume: the given options over `stored`, the configuration of the checkpoint at
    /// `path`. Returns the configuration and one "--lr 0.001 -> 0.0005" per changed option.
    public func resuming(_ stored: CheckpointConfig, checkpoint path: String) throws(TrainingError)
        -> (config: CheckpointConfig, changes: [String]) {
        var merge = OptionMerge(checkpoint: path)
        var config = stored
        try merge.apply(self, to: &config)
        return (config, merge.changes)
    }
}

/// Applies given options to a configuration, option by option (TrainOptions.table), under their
/// resume rules.
struct OptionMerge {
    /// The checkpoint resumed from; nil for a new run (every option may then be set).
    let checkpoint: String?
    var changes: [String] = []

    mutating func apply(_ given: GivenOptions, to config: inout CheckpointConfig) throws(TrainingError) {
        for option in TrainOptions.table { try option.apply(given, &config, &self) }
    }

    mutating func set<T: Equatable>(_ option: String, rule: GivenOptions.ResumeRule, _ given: T?, _ value: inout T,
                                    show: (T) -> String) throws(TrainingError) {
        guard let given, given != value else { return }
        guard let checkpoint else {
            value = given
            return
        }
        switch rule {
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
