import Foundation
import Testing
import VAEData
import VAEDistributed
import VAEModel
import VAETraining
import VAESafetensors
import VAECheckpoint

/// The merge of given options over the defaults or a checkpoint (GivenOptions), the data
/// fingerprint, and a resume that gives nothing but --out and --epochs.
@Suite struct ResumeOptionsTests {
    static let path = "/r/checkpoints/latest.safetensors"

    /// A checkpoint's configuration where every value differs from the defaults.
    static var stored: CheckpointConfig {
        var t = TrainingOptions()
        t.data = "synthetic:600"
        t.epochs = 3
        t.batchSize = 30
        t.learningRate = 0.002
        t.seed = 7
        t.binarize = true
        t.output = "/r"
        t.checkpointEvery = 2
        t.keepCheckpoints = 5
        t.maxBadSteps = 4
        t.checkEvery = 50
        t.deterministic = true
        t.shardOptimizer = true
        t.bucketMB = 0.5
        t.gradCompression = .bf16
        t.lrSchedule = .cosine
        t.warmupSteps = 100
        t.clipGradNorm = 5
        t.logEvery = 20
        t.threads = 3
        t.klWarmup = 40
        t.capacity = 25
        t.capacitySteps = 1000
        t.gamma = 100
        t.freeBits = 0.5
        t.tcBeta = 6
        t.timeout = 60
        t.microBatches = 2
        t.testData = "/t0.npy"
        t.testFraction = 0.2
        t.layout = .nchw
        t.imageSize = ImageSize(height: 28, width: 28)
        var model = ModelConfig(hidden: [64, 32], latent: 6, likelihood: .gaussian, beta: 4, autoencoder: true)
        model.architecture = .conv
        model.convChannels = [16, 8]
        return CheckpointConfig(model: model, training: t)
    }

    /// Per option: a given value other than `stored`'s, and both as the messages show them.
    static let otherValues: [(option: String, give: @Sendable (inout GivenOptions) -> Void, stored: String, given: String)] = [
        ("--arch", { $0.architecture = .mlp }, "conv", "mlp"),
        ("--conv-channels", { $0.convChannels = [32] }, "16,8", "32"),
        ("--hidden", { $0.hidden = [64] }, "64,32", "64"),
        ("--latent", { $0.latent = 8 }, "6", "8"),
        ("--likelihood", { $0.likelihood = .bernoulli }, "gaussian", "bernoulli"),
        ("--beta", { $0.beta = 1 }, "4.0", "1.0"),
        ("--autoencoder", { $0.autoencoder = false }, "on", "off"),
        ("--data", { $0.data = "/data/fashion-mnist" }, "synthetic:600", "/data/fashion-mnist"),
        ("--epochs", { $0.epochs = 9 }, "3", "9"),
        ("--batch-size", { $0.batchSize = 60 }, "30", "60"),
        ("--lr", { $0.learningRate = 0.0005 }, "0.002", "0.0005"),
        ("--seed", { $0.seed = 8 }, "7", "8"),
        ("--binarize", { $0.binarize = false }, "on", "off"),
        ("--out", { $0.output = "/moved" }, "/r", "/moved"),
        ("--checkpoint-every", { $0.checkpointEvery = 1 }, "2", "1"),
        ("--keep-checkpoints", { $0.keepCheckpoints = 0 }, "5", "0"),
        ("--max-bad-steps", { $0.maxBadSteps = 10 }, "4", "10"),
        ("--check-every", { $0.checkEvery = 0 }, "50", "0"),
        ("--deterministic", { $0.deterministic = false }, "on", "off"),
        ("--shard-optimizer", { $0.shardOptimizer = false }, "on", "off"),
        ("--bucket-mb", { $0.bucketMB = 0 }, "0.5", "0.0"),
        ("--grad-compression", { $0.gradCompression = GradientCompression.none }, "bf16", "none"),
        ("--lr-schedule", { $0.lrSchedule = .constant }, "cosine", "constant"),
        ("--warmup-steps", { $0.warmupSteps = 0 }, "100", "0"),
        ("--clip-grad-norm", { $0.clipGradNorm = 1 }, "5.0", "1.0"),
        ("--log-every", { $0.logEvery = 0 }, "20", "0"),
        ("--threads", { $0.threads = 1 }, "3", "1"),
        ("--kl-warmup", { $0.klWarmup = 80 }, "40", "80"),
        ("--capacity", { $0.capacity = 30 }, "25.0", "30.0"),
        ("--capacity-steps", { $0.capacitySteps = 2000 }, "1000", "2000"),
        ("--gamma", { $0.gamma = 1000 }, "100.0", "1000.0"),
        ("--free-bits", { $0.freeBits = 0 }, "0.5", "0.0"),
        ("--tc-beta", { $0.tcBeta = 2 }, "6.0", "2.0"),
        ("--timeout", { $0.timeout = 0 }, "60.0", "0.0"),
        ("--accumulate", { $0.accumulate = 1 }, "2", "1"),
        ("--test-data", { $0.testData = "/t1.npy" }, "/t0.npy", "/t1.npy"),
        ("--test-fraction", { $0.testFraction = 0.1 }, "0.2", "0.1"),
        ("--layout", { $0.layout = .nhwc }, "nchw", "nhwc"),
        ("--image-size", { $0.imageSize = ImageSize(height: 32, width: 24) }, "28x28", "32x24"),
    ]

    @Test func aNewRunTakesTheDefaultsAndWhatWasGiven() {
        let defaults = GivenOptions().newRun()
        #expect(defaults.model == ModelConfig() && defaults.training == TrainingOptions())
        // Every option given reaches the configuration.
        let all = GivenOptions(model: Self.stored.model, options: Self.stored.training)
        #expect(all.newRun() == Self.stored)
        var some = GivenOptions()
        some.latent = 3
        some.learningRate = 0.01
        var expected = CheckpointConfig(model: ModelConfig(), training: TrainingOptions())
        expected.model.latent = 3
        expected.training.learningRate = 0.01
        #expect(some.newRun() == expected)
    }

    @Test func aResumeGivenNothingIsTheCheckpoint() throws {
        let (config, changes) = try GivenOptions().resuming(Self.stored, checkpoint: Self.path)
        #expect(config == Self.stored && changes.isEmpty)
        // The checkpoint's own values given again change nothing.
        let same = GivenOptions(model: Self.stored.model, options: Self.stored.training)
        let again = try same.resuming(Self.stored, checkpoint: Self.path)
        #expect(again.config == Self.stored && again.changes.isEmpty)
    }

    /// Every option has a rule and a case here, so an option added later without a rule fails.
    @Test func everyOptionFollowsItsRule() throws {
        #expect(Set(Self.otherValues.map(\.option)) == Set(GivenOptions.resumeRules.map(\.key)))
        #expect(Self.otherValues.count == GivenOptions.resumeRules.count)
        var mayChange: [String] = []
        for (option, give, stored, given) in Self.otherValues {
            var options = GivenOptions()
            give(&options)
            let rule = GivenOptions.resumeRules.first { $0.key == option }!.value
            switch rule {
            case .mayChange, .sameImages:
                let (config, changes) = try options.resuming(Self.stored, checkpoint: Self.path)
                #expect(changes == ["\(option) \(stored) -> \(given)"])
                #expect(config != Self.stored, "\(option) was not applied")
                #expect(try options.resuming(config, checkpoint: Self.path).config == config, "\(option) given again equals the merged value")
                mayChange.append(option)
            case .mustAgree:
                let message = "\(option) cannot change on resume: \(Self.path) was trained with \(option) \(stored), "
                    + "this run gives \(option) \(given) (leave \(option) out to continue with \(stored), "
                    + "or start a new run with another --out)"
                #expect { try options.resuming(Self.stored, checkpoint: Self.path) } throws: { "\($0)" == message }
            }
        }
        #expect(mayChange == ["--data", "--epochs", "--lr", "--out", "--checkpoint-every", "--keep-checkpoints",
                              "--max-bad-steps", "--check-every", "--shard-optimizer", "--bucket-mb",
                              "--grad-compression", "--lr-schedule", "--warmup-steps", "--clip-grad-norm", "--log-every", "--threads",
                              "--kl-warmup", "--capacity-steps", "--timeout", "--accumulate", "--test-data"])
    }

    @Test func changedOptionsAreRecorded() throws {
        var options = GivenOptions()
        options.learningRate = 0.0005
        options.epochs = 6
        let (config, changes) = try options.resuming(Self.stored, checkpoint: Self.path)
        #expect(config.training.learningRate == 0.0005 && config.training.epochs == 6)
        #expect(changes == ["--epochs 3 -> 6", "--lr 0.002 -> 0.0005"])
        var expected = Self.stored
        expected.training.learningRate = 0.0005
        expected.training.epochs = 6
        #expect(config == expected, "nothing else changed")
    }

    @Test func resumeDataIsCheckedByFingerprint() throws {
        let a = DataFingerprint(name: "synthetic", count: 600, rows: 28, columns: 28, hash: 0x1234)
        let moved = DataFingerprint(name: "copy", count: 600, rows: 28, columns: 28, hash: 0x1234)
        let other = DataFingerprint(name: "synthetic", count: 700, rows: 28, columns: 28, hash: 0x99)
        let p = Self.path
        // The same images under another name or folder are the same data.
        #expect(try checkResumeData(stored: a, storedSpec: "synthetic:600", current: moved, spec: "/copy", allowOtherData: false, checkpoint: p) == nil)
        #expect { try checkResumeData(stored: a, storedSpec: "synthetic:600", current: other, spec: "synthetic:700", allowOtherData: false, checkpoint: p) }
            throws: { "\($0)" == "--data synthetic:700: its training images differ from those \(p) was trained on "
                + "(trained on synthetic: 600 images of 28x28, FNV-1a 0000000000001234; given synthetic: 700 images of 28x28, FNV-1a 0000000000000099); "
                + "pass --allow-other-data to resume on them anyway" }
        // The same count and shape with other pixels (files changed in place) are other data.
        let edited = DataFingerprint(name: "synthetic", count: 600, rows: 28, columns: 28, hash: 0x1235)
        #expect { try checkResumeData(stored: a, storedSpec: "synthetic:600", current: edited, spec: "synthetic:600", allowOtherData: false, checkpoint: p) }
            throws: { "\($0)".hasPrefix("--data synthetic:600: its training images differ") }
        let note = try checkResumeData(stored: a, storedSpec: "synthetic:600", current: other, spec: "synthetic:700", allowOtherData: true, checkpoint: p)
        #expect(note?.contains("resuming on other data (--allow-other-data)") == true)
        // A checkpoint of an older version records no fingerprint: its --data is trusted, other --data is refused.
        #expect(try checkResumeData(stored: nil, storedSpec: "synthetic:600", current: a, spec: "synthetic:600", allowOtherData: false, checkpoint: p)?
            .contains("records no data fingerprint") == true)
        #expect { try checkResumeData(stored: nil, storedSpec: "synthetic:600", current: a, spec: "/d", allowOtherData: false, checkpoint: p) }
            throws: { "\($0)" == "--data /d: \(p) was trained on --data synthetic:600 and records no fingerprint of its images "
                + "(an older vae-dist) to show they are the same; pass --allow-other-data to resume on /d" }
        #expect(try checkResumeData(stored: nil, storedSpec: "synthetic:600", current: a, spec: "/d", allowOtherData: true, checkpoint: p) != nil)
    }
}

@Suite struct FingerprintTests {
    /// The 4-lane hash against its definition: plain FNV-1a per lane, then over the lanes and the length.
    @Test func lanesMatchTheirDefinition() {
        for n in [0, 1, 2, 3, 4, 5, 7, 8, 9, 33, 1000] {
            let bytes = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            var lanes: [UInt64] = (0..<4).map { k in
                let lane = stride(from: k, to: n, by: 4).map { bytes[$0] }
                return lane.withUnsafeBytes { fnv1a64($0) }
            }
            lanes.append(UInt64(n))
            let expected = lanes.withUnsafeBytes { fnv1a64($0) }
            #expect(bytes.withUnsafeBytes { fnv1a64Lanes($0) } == expected, "n = \(n)")
        }
        // FNV-1a's published test vector: "a" -> af63dc4c8601ec8c.
        #expect(Array("a".utf8).withUnsafeBytes { fnv1a64($0) } == 0xaf63_dc4c_8601_ec8c)
    }

    @Test func everyPixelCountsAndTheJSONRoundTrips() throws {
        let images = Synthetic.images(count: 50, seed: 3)
        let fingerprint = DataFingerprint(name: "synthetic", images: images)
        #expect(fingerprint.count == 50 && fingerprint.rows == 28 && fingerprint.columns == 28)
        for index in [0, 1, 2, 3, images.pixels.count / 2, images.pixels.count - 1] {
            var changed = images
            changed.pixels[index] ^= 1
            #expect(DataFingerprint(name: "synthetic", images: changed).hash != fingerprint.hash, "pixel \(index)")
        }
        // Two images swapped: the same bytes in another order.
        var swapped = images
        for i in 0..<784 { swapped.pixels.swapAt(i, 784 + i) }
        #expect(DataFingerprint(name: "synthetic", images: swapped).hash != fingerprint.hash)
        let json = try JSONEncoder().encode(fingerprint)
        #expect(String(decoding: json, as: UTF8.self).contains("\"fnv1a64\":\"\(fingerprint.hexHash)\""))
        #expect(try JSONDecoder().decode(DataFingerprint.self, from: json) == fingerprint)
        #expect(fingerprint.hexHash.count == 16)
    }

    /// The checkpoint carries the fingerprint; one without it (an older version) still loads,
    /// one with a malformed record is an error naming the key.
    @Test func checkpointsRecordTheData() throws {
        let model = VAE(config: ModelConfig(imageHeight: 2, imageWidth: 2, hidden: [3], latent: 1))
        let data = DataFingerprint(name: "x", count: 9, rows: 2, columns: 2, hash: 0xdead_beef_0000_0001)
        func encoded(_ data: DataFingerprint?) throws -> SafetensorsFile {
            try Safetensors.decode(Checkpoint.encode(model: model, optimizer: nil, config: CheckpointConfig(model: model.config, training: TrainingOptions()),
                                                     resume: ResumeState(), worldSize: 1, dataset: "x", data: data), path: "c")
        }
        #expect(try Checkpoint.decode(try encoded(data), path: "c").data == data)
        let old = try encoded(nil)
        #expect(old.metadata["data"] == nil)
        #expect(try Checkpoint.decode(old, path: "c").data == nil)
        var bad = try encoded(data)
        bad.metadata["data"] = "{\"name\":\"x\"}"
        #expect { try Checkpoint.decode(bad, path: "/c.safetensors") } throws: { "\($0)".contains("metadata data =") && "\($0)".contains("/c.safetensors") }
    }
}

@Suite(.serialized) struct ResumeFromCheckpointTests {
    /// `train --resume --out DIR --epochs N`: nothing else given, the checkpoint's model
    /// (an autoencoder), data and options are used, and the result is bit-identical.
    @Test func resumeNeedsOnlyOutAndEpochs() throws {
        let config = ModelConfig(hidden: [32], latent: 3, beta: 2, autoencoder: true)
        let straight = temporaryDirectory("straightAE"), split = temporaryDirectory("splitAE")
        var o = options(straight, data: "synthetic:300", epochs: 2, batch: 30)
        o.seed = 5
        o.keepCheckpoints = 1
        let a = try Trainer(options: o, model: config, resume: false, communicator: SingleProcessCommunicator()) { _ in }
        try a.run()
        o.output = split
        o.epochs = 1
        try Trainer(options: o, model: config, resume: false, communicator: SingleProcessCommunicator()) { _ in }.run()
        var given = GivenOptions()
        given.output = split
        given.epochs = 2
        var lines: [String] = []
        let resumed = try Trainer(given: given, resume: true, communicator: SingleProcessCommunicator()) { lines.append($0) }
        #expect(resumed.modelConfig == a.modelConfig && resumed.options.seed == 5 && resumed.options.keepCheckpoints == 1)
        try resumed.run()
        #expect(memcmp(a.model.parameters, resumed.model.parameters, a.model.parameterCount * 4) == 0)
        #expect(lines.contains("vae-dist: changed on resume: --epochs 1 -> 2"))
        let checkpoint = try Checkpoint.load(path: split + "/checkpoints/latest.safetensors")
        #expect(checkpoint.data == DataFingerprint(name: "synthetic", images: resumed.dataset.train))
    }

    @Test func contradictoryFlagsAreRefused() {
        let out = temporaryDirectory()
        #expect { try Trainer(given: GivenOptions(), resume: true, overwrite: true, communicator: SingleProcessCommunicator()) { _ in } }
            throws: { "\($0)" == "--resume continues the run in --out and --overwrite deletes its checkpoints: pass one of them" }
        var given = GivenOptions()
        given.output = out
        #expect { try Trainer(given: given, resume: false, allowOtherData: true, communicator: SingleProcessCommunicator()) { _ in } }
            throws: { "\($0)" == "--allow-other-data applies to --resume only" }
    }
}

/// The option table: every option declared once drives parsing, the help and the merge.
@Suite struct OptionTableTests {
    @Test func everyOptionParsesIntoItsField() throws {
        let given = try TrainOptions.parse(["--epochs", "3", "--lr=0.0005", "--hidden", "64,32", "--no-shard-optimizer",
                                            "--deterministic", "--tc-beta", "6", "--likelihood", "gaussian", "--beta=-1"])
        #expect(given.epochs == 3)
        #expect(given.learningRate == 0.0005)
        #expect(given.hidden == [64, 32])
        #expect(given.shardOptimizer == false)
        #expect(given.deterministic == true)
        #expect(given.tcBeta == 6)
        #expect(given.likelihood == .gaussian)
        #expect(given.beta == -1)
        #expect(given.autoencoder == nil)
    }

    @Test func errorsReadAsTheParsersDo() {
        func message(_ arguments: [String]) -> String {
            do { _ = try TrainOptions.parse(arguments); return "" } catch { return "\(error)" }
        }
        #expect(message(["--bogus"]) == "Unknown option '--bogus'")
        #expect(message(["--beta"]) == "Missing value for '--beta <beta>'")
        #expect(message(["--epochs", "abc"]) == "The value 'abc' is invalid for '--epochs <epochs>'")
        #expect(message(["--autoencoder=-1"]) == "The option '--autoencoder' does not take any value, but '-1' was specified.")
        #expect(message(["stray"]) == "Unexpected argument 'stray'")
    }

    @Test func everyOptionRoundTripsThroughTheTable() {
        var config = CheckpointConfig(model: ModelConfig(hidden: [7, 5], latent: 3, likelihood: .gaussian, beta: 2, autoencoder: true),
                                      training: TrainingOptions())
        config.training.epochs = 9
        config.training.tcBeta = 4
        config.training.shardOptimizer = true
        config.model.imageHeight = 28
        let given = GivenOptions(model: config.model, options: config.training)
        #expect(given.newRun() == config)
        let flags = TrainOptions.table.map(\.flag)
        #expect(Set(flags).count == flags.count)
        for flag in flags { #expect(TrainOptions.helpText.contains(flag)) }
    }
}
