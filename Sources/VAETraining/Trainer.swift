import Foundation
import VAEAnalysis
import VAECheckpoint
import VAEData
import VAEDistributed
import VAEKernelDispatch
import VAEKernels
import VAEModel
import VAEOutputs

// Data-parallel training (docs/ARCHITECTURE.md). Every rank:
//   1. builds the same model; rank 0 initializes (or loads) it and broadcasts it;
//   2. per step takes its slice of the global batch from the (seed, epoch) permutation,
//      draws eps per example from (seed, epoch, example index),
//   3. runs forward and backward with the chain rule seeded by dloss = 1 / globalBatch,
//      so the SUM of gradients over ranks is the global-batch mean,
//   4. reduces them with the GradientReduction chosen at start and applies the same Adam update.
// A small control block (non-finite ranks, stop requests, loss sums) is reduced every step, so
// every rank skips, stops and logs alike. Rank 0 alone writes metrics, images and checkpoints.

public final class Trainer {
    public private(set) var options: TrainingOptions
    public let modelConfig: ModelConfig
    public let communicator: any Communicator
    public let dataset: Dataset
    public let model: VAE
    public let optimizer: AdamOptimizer
    /// Completed epochs (from the resumed checkpoint, then counting up).
    public internal(set) var epoch = 0
    public internal(set) var history: [EpochMetrics] = []
    /// The signal that stopped training early, or 0.
    public internal(set) var interrupted: Int32 = 0
    /// What the checkpoint resumed from had done of epoch `epoch + 1` (cleared once used).
    var resumeState = ResumeState()
    var consecutiveBadSteps = 0
    /// Steps attempted by this process, skipped ones included (what VAE_DIST_FAULT counts).
    public internal(set) var attemptedSteps = 0
    /// The checkpoint this process resumed from (rank 0's path), or nil for a fresh start.
    public private(set) var resumedFrom: String?
    /// What the start-up has to say after the "resumed from" line (options changed, data).
    var startNotes: [String] = []
    /// What this run trains on; recorded in every checkpoint, compared by --resume.
    public let trainingData: DataFingerprint
    /// How gradients become one update on every rank (chosen once, from the options).
    let reduction: any GradientReduction
    /// The strategy's name, as `vae-dist bench` reports it.
    public var reductionName: String { reduction.name }
    /// This rank's inputs, noise and workspace for one step.
    let batch: LocalBatch
    /// What replaces beta * KL in the loss (KL warm-up, capacity, free bits, beta-TCVAE).
    public let regime: LossRegime
    let faults = FaultInjection()
    /// Rank 0's TensorBoard event file (nil on other ranks).
    var events: TensorBoardWriter?
    let log: (String) -> Void
    public let generator: Philox4x32
    let evalWorkspace: VAEWorkspace
    /// Rank 0's steps.jsonl, open for appending (nil on other ranks).
    var stepsFile: FileHandle?
    /// The global gradient norm of the last clipped step (--clip-grad-norm), for its step row.
    var lastGradNorm: Double?
    /// When and at which global step this process began training: the ETA's rate.
    var runClock = (start: 0.0, step: 0)
    /// Steps between step rows and log lines when --log-every is 0 (StepRows.swift).
    var automaticLogEvery: Int?
    /// The executable's release and commit, and its command line: the run record's (RunRecord.swift).
    public var build = BuildIdentity(version: "unknown", commit: "unknown")
    public var commandLine: [String] = []
    /// Every rank's host name (gathered when the run starts), when it started and ended.
    var hosts: [String] = []
    var startTime = Date()
    var endTime: Date?
    /// Rank 0's lock on the run folder, held until the run ends (RunLock.swift).
    var runLock: RunLock?

    public var checkpointDirectory: String { (options.output as NSString).appendingPathComponent("checkpoints") }
    public var latestCheckpoint: String { (checkpointDirectory as NSString).appendingPathComponent("latest.safetensors") }
    var metricsPath: String { (options.output as NSString).appendingPathComponent("metrics.jsonl") }
    var stepsPath: String { (options.output as NSString).appendingPathComponent("steps.jsonl") }

    /// A new run, or a resume that gives every option again (`GivenOptions(model:options:)`).
    public convenience init(options: TrainingOptions, model: ModelConfig, resume: Bool, overwrite: Bool = false,
                            sharedMemory: Bool = true, communicator: any Communicator, log: @escaping (String) -> Void) throws {
        try self.init(given: GivenOptions(model: model, options: options), resume: resume, overwrite: overwrite,
                      sharedMemory: sharedMemory, communicator: communicator, log: log)
    }

    /// `given` holds the options of the command line (nil: not given): a new run takes the
    /// rest from the defaults, --resume from the checkpoint (`GivenOptions.resuming`).
    /// `log` receives rank 0's human-readable lines.
    /// `sharedMemory`: ranks on one node sum their gradients through shared memory (unless the
    /// environment sets VAE_DIST_SHARED_MEMORY=0); false: MPI's collectives, as across nodes.
    /// `from`: a run folder or checkpoint whose options (its config, not its parameters) this new
    /// run starts from, the given options on top (--from).
    public init(given: GivenOptions, resume: Bool, overwrite: Bool = false, allowOtherData: Bool = false, from: String? = nil,
                sharedMemory: Bool = true, communicator: any Communicator, log: @escaping (String) -> Void) throws {
        self.communicator = communicator
        self.log = communicator.isRoot ? log : { _ in }
        try Self.checkStartOptions(given, resume: resume, overwrite: overwrite, allowOtherData: allowOtherData, from: from,
                                   communicator: communicator)
        var notes: [String] = []
        var given = given
        if given.output == nil {
            given.output = try RunFolders.choose(resume: resume, communicator: communicator, notes: &notes)
        }
        let fresh = given.newRun()
        // Rank 0 alone locks: a failure there is rank 0's alone (MPI_Abort).
        runLock = try Self.lockRunFolder(fresh.training.output, resume: resume, communicator: communicator, notes: &notes)
        let start = try resume ? Self.resumeCheckpoint(given, folder: fresh.training.output, communicator: communicator, notes: &notes)
                               : try from.map { try Self.startFrom($0, given: given, communicator: communicator, notes: &notes) }
                                 ?? StartPoint(config: fresh)
        resumedFrom = start.checkpoint == nil ? nil : start.path
        let options = start.config.training
        try Self.startStage(communicator) {
            try options.validate(worldSize: communicator.size)
            try options.validateRegime(model: start.config.model, worldSize: communicator.size)
        }
        self.options = options
        // The agreed (or resumed) --timeout from here on.
        try communicator.armWatchdog(timeout: options.timeout)
        let (dataset, config, sharedMemory) = try Self.startStage(communicator) {
            let dataset = try Self.loadDataset(options.data, options: options, trainedOnCheckpoint: resume && given.data == nil ? start.path : nil)
            return (dataset, try Self.modelForData(start, dataset: dataset, options: options), try sharedMemory && Self.sharedMemoryAllowed())
        }
        self.dataset = dataset
        notes += dataset.notes
        trainingData = DataFingerprint(name: dataset.name, images: dataset.train)
        try Self.agreeOnData(communicator, start: start, config: config, options: options, resume: resume, dataset: dataset,
                             trainingData: trainingData, sharedMemory: sharedMemory, allowOtherData: allowOtherData, notes: &notes)
        modelConfig = config
        Self.prepareKernels(config: config, options: options, communicator: communicator)
        model = VAE(config: config)
        model.threads = KernelThreads(threads: options.resolvedThreads)
        optimizer = AdamOptimizer(count: model.parameterCount, hyper: options.adam)
        generator = Philox4x32(seed: options.seed)
        regime = LossRegime(options: options, model: config, datasetSize: dataset.train.count)
        batch = Self.makeLocalBatch(model: model, options: options, regime: regime, communicator: communicator)
        // --shard-optimizer not given on a new run: sharded where every rank shares one node's
        // memory. The checkpoint records what ran, so --resume keeps it (an older checkpoint's
        // recorded off, too) unless the option is given again.
        let reduction = try makeGradientReduction(options: options, model: model, communicator: communicator, sharedMemory: sharedMemory,
                                                  shardOnOneNode: given.shardOptimizer == nil && start.checkpoint == nil)
        self.reduction = reduction
        if let shared = reduction as? SharedMemoryReduction { self.options.shardOptimizer = shared.sharded }
        evalWorkspace = VAEWorkspace(config: config, capacity: evaluationBatch(for: config))
        try Self.startStage(communicator) { try restoreState(from: start.checkpoint) }
        startNotes = notes
        try shareStartState(resume: resume, overwrite: overwrite)
    }

    /// The start's first checks: flags that exclude each other, and the same options on every
    /// rank. Each stage that every rank can fail alike ends in a vote (`startStage`): all failed is
    /// one line from rank 0 and a clean exit; some failed is MPI_Abort.
    private static func checkStartOptions(_ given: GivenOptions, resume: Bool, overwrite: Bool, allowOtherData: Bool,
                                          from: String?, communicator: any Communicator) throws {
        try Self.startStage(communicator) {
            if resume && overwrite {
                throw TrainingError.option("--resume continues the run in --out and --overwrite deletes its checkpoints: pass one of them")
            }
            if allowOtherData && !resume { throw TrainingError.option("--allow-other-data applies to --resume only") }
            if resume && from != nil {
                throw TrainingError.option("--resume continues a run and --from starts a new one from another run's options: pass one of them")
            }
        }
        try Self.startStage(communicator) {
            try Self.agreeOnGivenOptions(given, resume: resume, overwrite: overwrite, allowOtherData: allowOtherData,
                                         communicator: communicator)
        }
    }

    /// Every rank runs the same model on the same data; a resumed run's data is the checkpoint's
    /// (or --allow-other-data, with a note).
    private static func agreeOnData(_ communicator: any Communicator, start: StartPoint, config: ModelConfig, options: TrainingOptions,
                                    resume: Bool, dataset: Dataset, trainingData: DataFingerprint, sharedMemory: Bool,
                                    allowOtherData: Bool, notes: inout [String]) throws {
        try Self.startStage(communicator) {
            try Self.agreeOnRun(communicator, config: config, options: options, resume: resume, dataset: dataset,
                                trainingData: trainingData, sharedMemory: sharedMemory)
            if let loaded = start.checkpoint, let note = try checkResumeData(stored: loaded.data, storedSpec: loaded.config.training.data,
                                                                             current: trainingData, spec: options.data,
                                                                             allowOtherData: allowOtherData, checkpoint: start.path) {
                notes.append(note)
            }
        }
    }

    /// The kernels are chosen (timed, unless cached or forced) on this rank's step: one
    /// micro-batch of its slice of the global batch. Before the model's first GEMM.
    private static func prepareKernels(config: ModelConfig, options: TrainingOptions, communicator: any Communicator) {
        let microRows = shardRange(count: shardRange(count: options.batchSize, rank: communicator.rank, worldSize: communicator.size).count,
                                   rank: 0, worldSize: options.accumulate).count
        Kernels.prepare(KernelWorkload(name: "\(describe(config)) x \(microRows) rows",
                                       shapes: trainingGEMMShapes(config: config, batch: microRows)))
    }

    // MARK: The loop

    public func run() throws {
        let size = communicator.size
        log("vae-dist: training \(describe(modelConfig)) (\(model.parameterCount) parameters) on \(dataset.name) "
            + "(\(dataset.train.count) train / \(dataset.test.count) test images), \(size) rank\(size == 1 ? "" : "s") "
            + "(\(communicator.backend)) x \(model.threads.count) thread\(model.threads.count == 1 ? "" : "s"), global batch \(options.batchSize), output \(options.output), kernels \(Kernels.choice)")
        if size > 1 || options.deterministic { log("vae-dist: gradient reduction: \(reduction.name)") }
        if let note = compressionNote(options: options, reduction: reduction) { log(note) }
        if !regime.isPlain { log("vae-dist: training regime: \(regime.name)") }
        // Where this process starts and how much it ran: the "resumed from" line and the last one
        // show that a resume continued the checkpoint instead of training from scratch.
        let startStep = optimizer.step
        runClock = (now(), startStep)
        hosts = try gatherHostNames()
        startTime = Date()
        try writeRunRecord()
        if let resumedFrom {
            log("vae-dist: resumed from \(resumedFrom) at global step \(startStep) (\(epoch) epochs + \(resumeState.epochStep) steps)")
        }
        startNotes.forEach(log)
        if epoch >= options.epochs {
            log("vae-dist: the checkpoint has \(epoch) epochs, --epochs is \(options.epochs): nothing to do")
        }
        while epoch < options.epochs && interrupted == 0 {
            try trainEpoch(epoch + 1)
        }
        communicator.phase = CollectivePhase(.finish, step: optimizer.step)
        log("vae-dist: this process ran \(attemptedSteps) steps (global step \(startStep) to \(optimizer.step))")
        endTime = Date()
        try writeRunRecord()
        runLock?.release()
    }

    /// The end-of-epoch evaluation of `images` (the test set): the test NELBO and the test set's
    /// posteriors (gathered in example order, from the same encoder pass), from which the
    /// aggregate posterior and the latent measures (KL per dimension, active units, MIG) are
    /// computed. `vae-dist bench` times this function.
    public func evaluateTestSet(_ images: ImageSet) throws(CommunicatorError) -> (LossSums, AggregatePosterior, LatentMeasures) {
        let (test, posterior) = try evaluateDistributed(model: model, workspace: evalWorkspace, images: images,
                                                        binarize: options.binarize, seed: options.seed, communicator: communicator)
        return (test, AggregatePosterior(posterior, autoencoder: modelConfig.autoencoder),
                LatentMeasures(posterior, data: images, autoencoder: modelConfig.autoencoder))
    }
}

extension Trainer {
    /// The loss trained, summed over the examples of `sums`: recon + beta * KL, or recon + the
    /// regime's term.
    func trainLoss(_ sums: PartialEpoch) -> Double {
        sums.recon + (regime.isPlain ? Double(modelConfig.beta) * sums.kl : sums.penalty)
    }

    /// Under mpirun the ranks only ever see SIGTERM: Open MPI's mpirun turns Ctrl-C (SIGINT)
    /// and its own SIGTERM into SIGTERM to every rank (then SIGKILL a few seconds later).
    var stopNote: String {
        communicator.size > 1 && interrupted == SIGTERM ? " (mpirun passes Ctrl-C and SIGTERM on to every rank as SIGTERM)" : ""
    }

    /// mpirun (Open MPI 4.1) sends the ranks SIGTERM odls_base_sigkill_timeout seconds (default 1)
    /// after its own Ctrl-C or SIGTERM, and SIGKILL as long again after that: a stop checkpoint
    /// that takes longer to write is lost. Said before the write, so a lost one is explained.
    var killWarning: String? {
        guard communicator.size > 1, interrupted == SIGTERM else { return nil }
        let setting = ProcessInfo.processInfo.environment["OMPI_MCA_odls_base_sigkill_timeout"]
        let seconds = setting.flatMap(Double.init) ?? 1
        guard seconds < 30 else { return nil }
        return "vae-dist: writing the stop checkpoint; mpirun kills the ranks \(setting ?? "1") s after it passes SIGTERM on "
            + "(odls_base_sigkill_timeout): if the write takes longer it is lost. Stop with SIGUSR1 to mpirun instead "
            + "(Launch/train.sh does), or give mpirun --mca odls_base_sigkill_timeout 60"
    }
}

/// "784-400-20 VAE (bernoulli)" and the like.
public func describe(_ config: ModelConfig) -> String {
    var widths = ([config.inputDimension] + config.hidden + [config.latent]).map(String.init).joined(separator: "-")
    if config.architecture == .conv {
        widths = "\(config.imageHeight)x\(config.imageWidth)x\(config.channels) conv \(config.convChannels.map(String.init).joined(separator: ","))-"
            + (config.hidden + [config.latent]).map(String.init).joined(separator: "-")
    }
    var kind = config.autoencoder ? "autoencoder" : (config.beta == 1 ? "VAE" : "beta-VAE (beta \(config.beta))")
    kind += " (\(config.likelihood.rawValue))"
    return "\(widths) \(kind)"
}

