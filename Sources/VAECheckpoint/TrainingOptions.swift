import VAEData

/// How to train (everything but the model's shape, which is `ModelConfig`).
public struct TrainingOptions: Codable, Equatable, Sendable {
    public var data: String = Dataset.defaultDirectory
    public var epochs = 10
    /// Global batch size, split evenly over ranks.
    public var batchSize = 128
    public var learningRate: Float = 1e-3
    public var seed: UInt64 = 1
    /// Sample binary pixels ~ Bernoulli(pixel / 255) instead of using intensities.
    public var binarize = false
    public var output = "runs/latest"
    public var checkpointEvery = 1
    /// Epoch checkpoints kept besides latest.safetensors.
    public var keepCheckpoints = 3
    /// Consecutive steps with non-finite loss or gradients (each skipped) before the job stops.
    public var maxBadSteps = 10
    /// Steps between checks that all ranks hold identical parameters (0: never).
    public var checkEvery = 100
    /// Reduce gradients in an order that does not depend on the rank count, so 1, 2 and 4
    /// ranks give bit-identical parameters (see Trainer.reduceDeterministically).
    public var deterministic = false
    /// The fixed groups of every global batch in deterministic mode.
    public static let deterministicGroups = 4
    /// ZeRO stage 1: each rank runs Adam on 1/N of the parameters (reduce-scatter, allgather).
    public var shardOptimizer = false
    /// Gradient buckets allreduced during backward, in MB (0: one allreduce after backward).
    public var bucketMB = 1.0
    /// --grad-compression: gradients cross the network in 16 bits, summed in fp32
    /// (VAETraining/CompressedReduction.swift); none: fp32 on the wire.
    public var gradCompression = GradientCompression.none
    /// The learning rate over the run (Schedule.swift), after `warmupSteps` of linear warm-up.
    public var lrSchedule = LearningRateSchedule.constant
    public var warmupSteps = 0
    /// Clip the global gradient norm (over all ranks) to this value; 0: no clipping.
    public var clipGradNorm = 0.0
    /// A progress line every N optimizer steps (where there is no progress bar); 0: none.
    public var logEvery = 0
    /// Kernel threads per rank (0: the cores this process may use divided among the ranks on
    /// its node; see Threads.swift). Any count gives bit-identical parameters.
    public var threads = 0
    // Training regimes with beta (LossRegime.swift): each 0 / nil is off.
    /// KL warm-up: beta rises linearly from 0 over this many optimizer steps.
    public var klWarmup = 0
    /// Controlled capacity (Burgess et al. 2018): loss = recon + gamma |KL - C|, C rising
    /// linearly from 0 to `capacity` nats over `capacitySteps` optimizer steps.
    public var capacity = 0.0
    public var capacitySteps = 0
    public var gamma = 1000.0
    /// Free bits (Kingma et al. 2016): nats per latent dimension under which its batch-mean KL
    /// costs nothing more (and gets no gradient).
    public var freeBits = 0.0
    /// beta-TCVAE (Chen et al. 2018): the weight of the total correlation; nil: off.
    public var tcBeta: Double?
    /// Stall watchdog: seconds a collective may wait for the other ranks before the ranks that
    /// can still talk name the missing ones and the job ends (0: wait forever). See
    /// VAEDistributed/StallWatchdog.swift.
    public var timeout = 300.0
    /// Micro-batches per optimizer step (--accumulate): each rank's slice of the --batch-size batch
    /// runs through forward and backward in this many micro-batches, their gradients summed
    /// locally, then reduced once.
    public var microBatches = 1
    /// The command line's name for `microBatches` (`--accumulate`).
    public var accumulate: Int {
        get { microBatches }
        set { microBatches = newValue }
    }
    // Own data (VAEData/OwnData.swift): the test set of data without one, how to read arrays.
    /// --test-data: the test set's images (nil: the data's test split, or the held-out fraction).
    public var testData: String?
    /// --test-fraction: the part of data without a test split held out (chosen from --seed).
    public var testFraction = DataOptions().testFraction
    /// --layout: how to read an ambiguous 4-d array (nil: from its shape).
    public var layout: ArrayLayout?
    /// --image-size: the size an image folder's images are resized to (nil: as stored).
    public var imageSize: ImageSize?

    public init() {}

    /// The keys of the config JSON in checkpoints; `microBatches` is stored as "accumulate".
    enum CodingKeys: String, CodingKey {
        case data, epochs, batchSize, learningRate, seed, binarize, output, checkpointEvery, keepCheckpoints, maxBadSteps, checkEvery, deterministic, shardOptimizer, bucketMB, lrSchedule, warmupSteps, clipGradNorm, logEvery, threads, klWarmup, capacity, capacitySteps, gamma, freeBits, tcBeta, timeout, testData, testFraction, layout, gradCompression, imageSize, microBatches = "accumulate"
    }

    /// Every field is optional in JSON, so checkpoints of older versions still load.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = TrainingOptions()
        data = try c.decodeIfPresent(String.self, forKey: .data) ?? d.data
        epochs = try c.decodeIfPresent(Int.self, forKey: .epochs) ?? d.epochs
        batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? d.batchSize
        learningRate = try c.decodeIfPresent(Float.self, forKey: .learningRate) ?? d.learningRate
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? d.seed
        binarize = try c.decodeIfPresent(Bool.self, forKey: .binarize) ?? d.binarize
        output = try c.decodeIfPresent(String.self, forKey: .output) ?? d.output
        checkpointEvery = try c.decodeIfPresent(Int.self, forKey: .checkpointEvery) ?? d.checkpointEvery
        keepCheckpoints = try c.decodeIfPresent(Int.self, forKey: .keepCheckpoints) ?? d.keepCheckpoints
        maxBadSteps = try c.decodeIfPresent(Int.self, forKey: .maxBadSteps) ?? d.maxBadSteps
        checkEvery = try c.decodeIfPresent(Int.self, forKey: .checkEvery) ?? d.checkEvery
        deterministic = try c.decodeIfPresent(Bool.self, forKey: .deterministic) ?? d.deterministic
        shardOptimizer = try c.decodeIfPresent(Bool.self, forKey: .shardOptimizer) ?? d.shardOptimizer
        bucketMB = try c.decodeIfPresent(Double.self, forKey: .bucketMB) ?? d.bucketMB
        lrSchedule = try c.decodeIfPresent(LearningRateSchedule.self, forKey: .lrSchedule) ?? d.lrSchedule
        warmupSteps = try c.decodeIfPresent(Int.self, forKey: .warmupSteps) ?? d.warmupSteps
        clipGradNorm = try c.decodeIfPresent(Double.self, forKey: .clipGradNorm) ?? d.clipGradNorm
        logEvery = try c.decodeIfPresent(Int.self, forKey: .logEvery) ?? d.logEvery
        threads = try c.decodeIfPresent(Int.self, forKey: .threads) ?? d.threads
        klWarmup = try c.decodeIfPresent(Int.self, forKey: .klWarmup) ?? d.klWarmup
        capacity = try c.decodeIfPresent(Double.self, forKey: .capacity) ?? d.capacity
        capacitySteps = try c.decodeIfPresent(Int.self, forKey: .capacitySteps) ?? d.capacitySteps
        gamma = try c.decodeIfPresent(Double.self, forKey: .gamma) ?? d.gamma
        freeBits = try c.decodeIfPresent(Double.self, forKey: .freeBits) ?? d.freeBits
        tcBeta = try c.decodeIfPresent(Double.self, forKey: .tcBeta) ?? d.tcBeta
        timeout = try c.decodeIfPresent(Double.self, forKey: .timeout) ?? d.timeout
        microBatches = try c.decodeIfPresent(Int.self, forKey: .microBatches) ?? d.microBatches
        testData = try c.decodeIfPresent(String.self, forKey: .testData) ?? d.testData
        testFraction = try c.decodeIfPresent(Double.self, forKey: .testFraction) ?? d.testFraction
        layout = try c.decodeIfPresent(ArrayLayout.self, forKey: .layout) ?? d.layout
        gradCompression = try c.decodeIfPresent(GradientCompression.self, forKey: .gradCompression) ?? d.gradCompression
        imageSize = try c.decodeIfPresent(ImageSize.self, forKey: .imageSize) ?? d.imageSize
    }
}

extension TrainingOptions {
    /// How Dataset.load splits and reads own data for this run.
    public var dataOptions: DataOptions {
        DataOptions(testData: testData, testFraction: testFraction, layout: layout, seed: seed, imageSize: imageSize)
    }
}

/// How the learning rate moves over the run (`learningRate(step:...)` in VAETraining/Schedule.swift).
public enum LearningRateSchedule: String, Codable, Sendable, CaseIterable {
    /// --lr at every step (after the warm-up).
    case constant
    /// Cosine decay from --lr to 0 over the run's steps after the warm-up
    /// (torch.optim.lr_scheduler.CosineAnnealingLR with eta_min = 0, T_max = those steps).
    case cosine
}

/// The 16-bit format gradients cross the network in (--grad-compression), or none (fp32).
public enum GradientCompression: String, Codable, Sendable, CaseIterable {
    case none
    /// bfloat16: fp32's 8-bit exponent (its range), 8 bits of significand.
    case bf16
    /// IEEE half: 5-bit exponent (largest finite 65504), 11 bits of significand.
    case fp16
}
