import VAECheckpoint
import VAEData
import VAEModel

// The options of `vae-dist train` that configure a run, each declared once, here: its flag, its
// help (with the default from TrainingOptions() or ModelConfig()), what --resume does with it
// (GivenOptions.ResumeRule; GivenOptions.swift says why for each), where a given value goes
// (GivenOptions) and where it is stored (CheckpointConfig, the checkpoint's config). The table
// drives the parsing of the command line, the help text, the merge over the defaults or a
// checkpoint, and the resume rules; adding an option is one entry here plus its two fields.

/// One option of `vae-dist train`.
public struct TrainOption: @unchecked Sendable {
    public enum Kind: Sendable {
        /// `--flag VALUE` or `--flag=VALUE`; the name shown in the help and in errors.
        case value(String)
        /// `--flag`: on.
        case flag
        /// `--flag` or `--no-flag`.
        case invertibleFlag
    }

    public let flag: String
    public let kind: Kind
    public let help: String
    public let rule: GivenOptions.ResumeRule
    /// Stores the option's value (`text`; nil for a flag: `on`) in `given`.
    let store: (_ text: String?, _ on: Bool, _ given: inout GivenOptions) throws -> Void
    /// Applies the given value, if any, to `config` under the merge's rules.
    let apply: (GivenOptions, inout CheckpointConfig, inout OptionMerge) throws(TrainingError) -> Void
    /// Gives the option the value `config` holds.
    let give: (CheckpointConfig, inout GivenOptions) -> Void

    /// An option whose given value is `given` and whose stored value is `stored`.
    static func option<T: Equatable>(_ flag: String, _ kind: Kind, _ given: WritableKeyPath<GivenOptions, T?>,
                                     _ stored: WritableKeyPath<CheckpointConfig, T>, rule: GivenOptions.ResumeRule,
                                     help: String, parse: @escaping (String?, Bool) throws -> T,
                                     show: @escaping (T) -> String = { "\($0)" }) -> TrainOption {
        TrainOption(flag: flag, kind: kind, help: help, rule: rule,
                    store: { text, on, options in options[keyPath: given] = try parse(text, on) },
                    apply: { options, config, merge throws(TrainingError) in
                        try merge.set(flag, rule: rule, options[keyPath: given], &config[keyPath: stored], show: show)
                    },
                    give: { config, options in options[keyPath: given] = config[keyPath: stored] })
    }

    /// "--epochs <epochs>", as the help and the errors name it.
    public var synopsis: String {
        switch kind {
        case .value(let name): "\(flag) <\(name)>"
        case .flag: flag
        case .invertibleFlag: "\(flag), --no-\(flag.dropFirst(2))"
        }
    }
}

private let defaults = TrainingOptions()
private let modelDefaults = ModelConfig()

/// A value option parsed with `T(text)` (Int, Float, Double, UInt64, String).
private func value<T: Equatable & LosslessStringConvertible>(
    _ flag: String, _ name: String, _ given: WritableKeyPath<GivenOptions, T?>, _ stored: WritableKeyPath<CheckpointConfig, T>,
    _ rule: GivenOptions.ResumeRule, _ help: String
) -> TrainOption {
    .option(flag, .value(name), given, stored, rule: rule, help: help) { text, _ in
        guard let text, let parsed = T(text) else { throw TrainOptionError.invalidValue(text ?? "", flag: flag, name: name) }
        return parsed
    }
}

/// A flag that switches something on.
private func flag(_ flag: String, _ given: WritableKeyPath<GivenOptions, Bool?>, _ stored: WritableKeyPath<CheckpointConfig, Bool>,
                  _ rule: GivenOptions.ResumeRule, _ help: String) -> TrainOption {
    .option(flag, .flag, given, stored, rule: rule, help: help, parse: { _, on in on }, show: onOff)
}

func onOff(_ flag: Bool) -> String { flag ? "on" : "off" }

public enum TrainOptions {
    /// Every option, in the order the help lists them.
    public static let table: [TrainOption] = [
        value("--data", "data", \.data, \.training.data, .sameImages,
              "Folder of IDX files, folder of PNG/JPEG images (class subfolders give labels), FILE.npy, FILE.npz (x_train, y_train, x_test, y_test), FILE.safetensors (images, labels, test_images, test_labels), 'synthetic' / 'synthetic:N' for the built-in shapes dataset, or 'dsprites' / 'dsprites:N' for dSprites generated in code (default: \(defaults.data)); see docs/data.md."),
        // Optional in the stored options (nil: none / from the shape), a value when given.
        TrainOption(flag: "--test-data", kind: .value("test-data"),
                    help: "The test set of an array --data: a .npy, .npz or .safetensors file (its test split, else all its images) or a folder of IDX files (default: the data's test split, or the held-out --test-fraction).",
                    rule: .mayChange,
                    store: { text, _, given in given.testData = text },
                    apply: { given, config, merge throws(TrainingError) in
                        try merge.set("--test-data", rule: .mayChange, given.testData.map { Optional($0) }, &config.training.testData,
                                      show: { $0 ?? "none" })
                    },
                    give: { config, given in given.testData = config.training.testData }),
        value("--test-fraction", "test-fraction", \.testFraction, \.training.testFraction, .mustAgree,
              "Fraction of data without a test split held out as the test set, the same subset for a --seed on any rank count (default: \(defaults.testFraction))."),
        TrainOption(flag: "--layout", kind: .value("layout"),
                    help: "How a 4-d array holds its channels when its shape does not tell: nhwc ([N, H, W, C]) or nchw ([N, C, H, W]).",
                    rule: .mustAgree,
                    store: { text, _, given in given.layout = try parseLayout(text ?? "") },
                    apply: { given, config, merge throws(TrainingError) in
                        try merge.set("--layout", rule: .mustAgree, given.layout.map { Optional($0) }, &config.training.layout,
                                      show: { $0?.rawValue ?? "automatic" })
                    },
                    give: { config, given in given.layout = config.training.layout }),
        TrainOption(flag: "--image-size", kind: .value("image-size"),
                    help: "Resize the images of a folder of PNG and JPEG files to HxW on load (centre crop to the aspect ratio, then area averaging); without it they must all have one size.",
                    rule: .mustAgree,
                    store: { text, _, given in given.imageSize = try parseImageSize(text ?? "") },
                    apply: { given, config, merge throws(TrainingError) in
                        try merge.set("--image-size", rule: .mustAgree, given.imageSize.map { Optional($0) }, &config.training.imageSize,
                                      show: { $0?.description ?? "as stored" })
                    },
                    give: { config, given in given.imageSize = config.training.imageSize }),
        value("--epochs", "epochs", \.epochs, \.training.epochs, .mayChange,
              "Epochs to train in total; a resumed run continues up to this number (default: \(defaults.epochs), or the checkpoint's)."),
        value("--batch-size", "batch-size", \.batchSize, \.training.batchSize, .mustAgree,
              "Global batch size, split evenly over ranks (default: \(defaults.batchSize))."),
        TrainOption(flag: "--arch", kind: .value("arch"),
                    help: "The networks: mlp (fully connected) or conv (disentanglement_lib's convolutions; --hidden then defaults to \(ModelConfig.defaultConvHidden.map(String.init).joined(separator: ","))) (default: \(modelDefaults.architecture.rawValue)).",
                    rule: .mustAgree,
                    store: { text, _, given in given.architecture = try parseArchitecture(text ?? "") },
                    apply: { given, config, merge throws(TrainingError) in
                        try merge.set("--arch", rule: .mustAgree, given.architecture, &config.model.architecture, show: \.rawValue)
                        // A new conv model without --hidden: disentanglement_lib's dense width.
                        if merge.checkpoint == nil, given.architecture == .conv, given.hidden == nil, config.model.hidden == modelDefaults.hidden {
                            config.model.hidden = ModelConfig.defaultConvHidden
                        }
                    },
                    give: { config, given in given.architecture = config.model.architecture }),
        .option("--conv-channels", .value("conv-channels"), \.convChannels, \.model.convChannels, rule: .mustAgree,
                help: "--arch conv: output channels of the encoder's stride-2 convolutions, comma-separated; image sides must be divisible by 2^(their count) (default: \(ModelConfig.defaultConvChannels.map(String.init).joined(separator: ","))).",
                parse: { text, _ in try parseWidths(text ?? "", option: "--conv-channels", example: "32,32,64,64") },
                show: { $0.map(String.init).joined(separator: ",") }),
        .option("--hidden", .value("hidden"), \.hidden, \.model.hidden, rule: .mustAgree,
                help: "Hidden layer widths of the encoder, comma-separated; the decoder mirrors them (default: \(modelDefaults.hidden.map(String.init).joined(separator: ","))).",
                parse: { text, _ in try parseHidden(text ?? "") }, show: { $0.map(String.init).joined(separator: ",") }),
        value("--latent", "latent", \.latent, \.model.latent, .mustAgree, "Latent dimensions (default: \(modelDefaults.latent))."),
        value("--lr", "lr", \.learningRate, \.training.learningRate, .mayChange, "Adam learning rate (default: \(defaults.learningRate))."),
        .option("--likelihood", .value("likelihood"), \.likelihood, \.model.likelihood, rule: .mustAgree,
                help: "Decoder likelihood: bernoulli or gaussian (default: \(modelDefaults.likelihood.rawValue)).",
                parse: { text, _ in try parseLikelihood(text ?? "") }, show: \.rawValue),
        value("--beta", "beta", \.beta, \.model.beta, .mustAgree, "Weight of the KL term; beta-VAE, 1 is the ELBO (default: \(modelDefaults.beta))."),
        flag("--autoencoder", \.autoencoder, \.model.autoencoder, .mustAgree, "Train a plain autoencoder (z = mu, no KL) for comparison."),
        flag("--binarize", \.binarize, \.training.binarize, .mustAgree, "Use binary pixels drawn from Bernoulli(pixel / 255) instead of intensities."),
        value("--seed", "seed", \.seed, \.training.seed, .mustAgree, "Random seed: initialization, shuffling, noise (default: \(defaults.seed))."),
        value("--out", "out", \.output, \.training.output, .mayChange, "Output folder (default: a new numbered runs/NNNN, with runs/latest a symlink to it; with --resume: runs/latest's target)."),
        value("--checkpoint-every", "checkpoint-every", \.checkpointEvery, \.training.checkpointEvery, .mayChange,
              "Write a checkpoint every N epochs and after the last (default: \(defaults.checkpointEvery))."),
        value("--keep-checkpoints", "keep-checkpoints", \.keepCheckpoints, \.training.keepCheckpoints, .mayChange,
              "Epoch checkpoints to keep besides latest.safetensors (default: \(defaults.keepCheckpoints))."),
        value("--max-bad-steps", "max-bad-steps", \.maxBadSteps, \.training.maxBadSteps, .mayChange,
              "Stop after this many consecutive steps with non-finite loss or gradients, each skipped (default: \(defaults.maxBadSteps))."),
        value("--check-every", "check-every", \.checkEvery, \.training.checkEvery, .mayChange,
              "Steps between checks that all ranks hold identical parameters; 0: never (default: \(defaults.checkEvery))."),
        flag("--deterministic", \.deterministic, \.training.deterministic, .mustAgree,
             "Reduce gradients in a fixed order so 1, 2 and 4 ranks give bit-identical results (batch split into \(TrainingOptions.deterministicGroups) fixed groups)."),
        .option("--shard-optimizer", .invertibleFlag, \.shardOptimizer, \.training.shardOptimizer, rule: .mayChange,
                help: "ZeRO stage 1: each rank runs Adam on 1/N of the parameters (reduce-scatter then allgather; over shared memory with every rank on one node) (default: on with every rank on one node, else off; or the checkpoint's).",
                parse: { _, on in on }, show: onOff),
        value("--bucket-mb", "bucket-mb", \.bucketMB, \.training.bucketMB, .mayChange,
              "Gradient buckets allreduced during backward, in MB; 0: one allreduce after backward (default: \(defaults.bucketMB))."),
        .option("--grad-compression", .value("grad-compression"), \.gradCompression, \.training.gradCompression, rule: .mayChange,
                help: "Gradients cross the network in 16 bits: none, bf16 or fp16; each rank's gradient is rounded once to 16 bits, the sums are kept in fp32 and rounded once more before they are shared. Ranks that sum through shared memory send nothing and are unaffected (default: \(defaults.gradCompression.rawValue)).",
                parse: { text, _ in
                    guard let compression = GradientCompression(rawValue: text ?? "") else {
                        throw TrainingError.option("--grad-compression '\(text ?? "")': expected none, bf16 or fp16")
                    }
                    return compression
                }, show: \.rawValue),
        .option("--lr-schedule", .value("lr-schedule"), \.lrSchedule, \.training.lrSchedule, rule: .mayChange,
                help: "Learning rate over the run: constant, or cosine decay to 0 over the steps after the warm-up (default: \(defaults.lrSchedule.rawValue)).",
                parse: { text, _ in
                    guard let schedule = LearningRateSchedule(rawValue: text ?? "") else {
                        throw TrainingError.option("--lr-schedule '\(text ?? "")': expected \(LearningRateSchedule.allCases.map(\.rawValue).joined(separator: " or "))")
                    }
                    return schedule
                }, show: \.rawValue),
        value("--warmup-steps", "warmup-steps", \.warmupSteps, \.training.warmupSteps, .mayChange,
              "Steps of linear learning-rate warm-up from lr/N to lr (default: \(defaults.warmupSteps))."),
        value("--clip-grad-norm", "clip-grad-norm", \.clipGradNorm, \.training.clipGradNorm, .mayChange,
              "Clip the global gradient norm over all ranks to this value, as torch.nn.utils.clip_grad_norm_; 0: off (default: \(defaults.clipGradNorm))."),
        value("--log-every", "log-every", \.logEvery, \.training.logEvery, .mayChange,
              "A step row (OUT/steps.jsonl, TensorBoard) every N optimizer steps, and a progress line where there is no progress bar (mpirun, a log file); 0: about every 10 s, at least 25 an epoch (default: \(defaults.logEvery))."),
        value("--threads", "threads", \.threads, \.training.threads, .mayChange,
              "Kernel threads per rank; 0: VAE_DIST_THREADS or OMP_NUM_THREADS when set, else the cores this process may use divided among the ranks on this node. Never changes a bit of the result (default: \(defaults.threads))."),
        value("--kl-warmup", "kl-warmup", \.klWarmup, \.training.klWarmup, .mayChange,
              "KL warm-up: beta rises linearly from 0 at step 0 to --beta at this optimizer step; 0: off (default: \(defaults.klWarmup))."),
        value("--capacity", "capacity", \.capacity, \.training.capacity, .mustAgree,
              "Controlled capacity (Burgess et al. 2018): loss = recon + gamma |KL - C|, the target C rising linearly from 0 to this many nats over --capacity-steps; 0: off (default: \(defaults.capacity))."),
        value("--capacity-steps", "capacity-steps", \.capacitySteps, \.training.capacitySteps, .mayChange,
              "Optimizer steps over which --capacity's target rises from 0 to C."),
        value("--gamma", "gamma", \.gamma, \.training.gamma, .mustAgree, "Weight of |KL - C| with --capacity (default: \(defaults.gamma))."),
        value("--free-bits", "free-bits", \.freeBits, \.training.freeBits, .mustAgree,
              "Free bits (Kingma et al. 2016): nats per latent dimension; a dimension whose global-batch mean KL is under this costs this much and gets no KL gradient; 0: off (default: \(defaults.freeBits))."),
        // Stored as an optional (nil: off), given as a number: the merge sees Optional(weight).
        TrainOption(flag: "--tc-beta", kind: .value("tc-beta"), help: "beta-TCVAE (Chen et al. 2018): the KL split into mutual information, total correlation (weighted by this) and dimension-wise KL, estimated over the global batch (default: off).",
                    rule: .mustAgree,
                    store: { text, _, given in
                        guard let text, let weight = Double(text) else { throw TrainOptionError.invalidValue(text ?? "", flag: "--tc-beta", name: "tc-beta") }
                        given.tcBeta = weight
                    },
                    apply: { given, config, merge throws(TrainingError) in
                        try merge.set("--tc-beta", rule: .mustAgree, given.tcBeta.map { Optional($0) }, &config.training.tcBeta,
                                      show: { $0.map { "\($0)" } ?? "off" })
                    },
                    give: { config, given in given.tcBeta = config.training.tcBeta }),
        value("--timeout", "timeout", \.timeout, \.training.timeout, .mayChange,
              "Stall watchdog: seconds a collective may wait for the other ranks; then the ranks that can still talk name the missing ones and the job ends (exit 1; the last checkpoint stays resumable). A warning comes at half of it; 0: off (default: \(Int(defaults.timeout)))."),
        value("--accumulate", "accumulate", \.microBatches, \.training.microBatches, .mayChange,
              "Micro-batches per optimizer step: each rank's slice of --batch-size runs in this many parts whose gradients add up before one reduction, for batches larger than fit in memory (default: \(defaults.accumulate))."),
    ]

    /// Reads the options of `arguments` (as the shell split them, negative values already joined
    /// as `--beta=-1`) into what was given. Errors read as swift-argument-parser's do.
    public static func parse(_ arguments: [String]) throws -> GivenOptions {
        var given = GivenOptions()
        var index = 0
        while index < arguments.count {
            let word = arguments[index]
            index += 1
            guard word.hasPrefix("--") else { throw TrainOptionError.unexpected(word) }
            let name = String(word.prefix { $0 != "=" })
            let inline = word.contains("=") ? String(word.drop { $0 != "=" }.dropFirst()) : nil
            if let option = table.first(where: { $0.flag == name }) {
                switch option.kind {
                case .value(let valueName):
                    var text = inline
                    if text == nil, index < arguments.count, !arguments[index].hasPrefix("--") {
                        text = arguments[index]
                        index += 1
                    }
                    guard let text else { throw TrainOptionError.missingValue(flag: name, name: valueName) }
                    try option.store(text, true, &given)
                case .flag, .invertibleFlag:
                    if let inline { throw TrainOptionError.flagWithValue(flag: name, value: inline) }
                    try option.store(nil, true, &given)
                }
            } else if name.hasPrefix("--no-"), let option = table.first(where: { "--no-" + $0.flag.dropFirst(2) == name }),
                      case .invertibleFlag = option.kind {
                if let inline { throw TrainOptionError.flagWithValue(flag: name, value: inline) }
                try option.store(nil, false, &given)
            } else {
                throw TrainOptionError.unknown(name)
            }
        }
        return given
    }

    /// The OPTIONS section of `vae-dist train --help`.
    /// Each option's synopsis, then its help wrapped in a column from 30 to 79 characters.
    public static var helpText: String {
        let column = 30, width = 79 - column
        let indent = String(repeating: " ", count: column)
        return table.map { option in
            var lines: [String] = []
            var line = ""
            for word in option.help.split(separator: " ") {
                if !line.isEmpty && line.count + 1 + word.count > width { lines.append(line); line = "" }
                line += (line.isEmpty ? "" : " ") + word
            }
            lines.append(line)
            let head = "  " + option.synopsis
            let first = head.count < column ? head + String(repeating: " ", count: column - head.count) + lines[0]
                                            : head + "\n" + indent + lines[0]
            return ([first] + lines.dropFirst().map { indent + $0 }).joined(separator: "\n")
        }.joined(separator: "\n")
    }
}

/// A command line the table cannot read, worded as swift-argument-parser words its errors.
public enum TrainOptionError: Error, CustomStringConvertible {
    case unknown(String)
    case unexpected(String)
    case missingValue(flag: String, name: String)
    case invalidValue(String, flag: String, name: String)
    case flagWithValue(flag: String, value: String)

    public var description: String {
        switch self {
        case .unknown(let flag): "Unknown option '\(flag)'"
        case .unexpected(let word): "Unexpected argument '\(word)'"
        case .missingValue(let flag, let name): "Missing value for '\(flag) <\(name)>'"
        case .invalidValue(let text, let flag, let name): "The value '\(text)' is invalid for '\(flag) <\(name)>'"
        case .flagWithValue(let flag, let value): "The option '\(flag)' does not take any value, but '\(value)' was specified."
        }
    }
}

/// "400" or "512,256": positive layer widths.
public func parseHidden(_ hidden: String) throws -> [Int] {
    let widths = hidden.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard !widths.isEmpty, widths.allSatisfy({ ($0 ?? 0) > 0 }) else {
        throw ModelConfigError.invalid("--hidden '\(hidden)': expected positive layer widths separated by commas, such as 400 or 512,256")
    }
    return widths.map { $0! }
}

public func parseImageSize(_ text: String) throws -> ImageSize {
    guard let size = ImageSize(text) else { throw TrainingError.option("--image-size '\(text)': expected HxW (such as 64x64), each from 1 to 4096") }
    return size
}

public func parseLayout(_ layout: String) throws -> ArrayLayout {
    guard let value = ArrayLayout(rawValue: layout) else { throw TrainingError.option("--layout '\(layout)': expected nhwc or nchw") }
    return value
}

public func parseArchitecture(_ text: String) throws -> Architecture {
    guard let architecture = Architecture(rawValue: text) else {
        throw ModelConfigError.invalid("--arch '\(text)': expected mlp or conv")
    }
    return architecture
}

/// Positive integers separated by commas (--conv-channels).
public func parseWidths(_ text: String, option: String, example: String) throws -> [Int] {
    let values = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) > 0 }) else {
        throw ModelConfigError.invalid("\(option) '\(text)': expected positive numbers separated by commas, such as \(example)")
    }
    return values.map { $0! }
}

public func parseLikelihood(_ likelihood: String) throws -> Likelihood {
    guard let kind = Likelihood(rawValue: likelihood) else {
        throw ModelConfigError.invalid("--likelihood '\(likelihood)': expected bernoulli or gaussian")
    }
    return kind
}
