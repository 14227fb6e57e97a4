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
    public let options: TrainingOptions
    public let modelConfig: ModelConfig
    public let communicator: any Communicator
    public let dataset: Dataset
    public let model: VAE
    public let optimizer: AdamOptimizer
    /// Completed epochs (from the resumed checkpoint, then counting up).
    public private(set) var epoch = 0
    public private(set) var history: [EpochMetrics] = []
    /// The signal that stopped training early, or 0.
    public private(set) var interrupted: Int32 = 0
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
    /// Rank 0's lock on the run folder, held until the run ends (RunLock.swift).
    var runLock: RunLock?

    public var checkpointDirectory: String { (options.output as NSString).appendingPathComponent("checkpoints") }
    public var latestCheckpoint: String { (checkpointDirectory as NSString).appendingPathComponent("latest.safetensors") }
    var metricsPath: String { (options.output as NSString).appendingPathComponent("metrics.jsonl") }

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
    public init(given: GivenOptions, resume: Bool, overwrite: Bool = false, allowOtherData: Bool = false,
                sharedMemory: Bool = true, communicator: any Communicator, log: @escaping (String) -> Void) throws {
        if resume && overwrite {
            throw TrainingError.option("--resume continues the run in --out and --overwrite deletes its checkpoints: pass one of them")
        }
        if allowOtherData && !resume { throw TrainingError.option("--allow-other-data applies to --resume only") }
        self.communicator = communicator
        self.log = communicator.isRoot ? log : { _ in }
        // Every collective has a deadline from the first one on: the agreement below, and on
        // --resume the checkpoint's broadcast, which waits for rank 0 to read it (a hung
        // filesystem). Until the options are agreed each rank uses its own --timeout (or the
        // default); arming is a collective every rank makes here, whatever that value.
        try communicator.armWatchdog(timeout: given.timeout ?? TrainingOptions().timeout)
        // Before any other collective: every rank must have been given the same options.
        try Self.checkAgreement(communicator, stage: "options",
                                text: "\(canonicalJSON(given))|\(resume)|\(overwrite)|\(allowOtherData)")
        var checkpoint: Checkpoint?
        var checkpointPath = ""
        var merged = given.newRun()
        var notes: [String] = []
        // One training per run folder: rank 0 locks it before anything reads or changes it.
        if communicator.isRoot, let lock = try RunLock.acquire(folder: merged.training.output, create: !resume) {
            runLock = lock
            if let note = lock.note { notes.append(note) }
        }
        if resume {
            let (loaded, path) = try Self.loadBroadcast(directory: (merged.training.output as NSString).appendingPathComponent("checkpoints"),
                                                        communicator: communicator)
            resumedFrom = path
            checkpointPath = path
            let (config, changes) = try given.resuming(loaded.config, checkpoint: path)
            merged = config
            if !changes.isEmpty { notes.append("vae-dist: changed on resume: " + changes.joined(separator: ", ")) }
            checkpoint = loaded
        }
        let options = merged.training
        try options.validate(worldSize: communicator.size)
        try options.validateRegime(model: merged.model, worldSize: communicator.size)
        self.options = options
        // The agreed (or resumed) --timeout from here on.
        try communicator.armWatchdog(timeout: options.timeout)
        switch Result(catching: { () throws(DataError) in try Dataset.load(options.data) }) {
        case .success(let loaded): dataset = loaded
        case .failure(let error): throw resume && given.data == nil ? Dataset.fromCheckpoint(error, spec: options.data, checkpoint: checkpointPath) : error
        }
        var config = merged.model
        config.imageHeight = dataset.train.rows
        config.imageWidth = dataset.train.columns
        try config.validate()
        if let stored = checkpoint?.config.model, stored != config {
            // Only the image size can differ here (the merge refused the rest): the data's.
            throw TrainingError.checkpoint(path: checkpointPath,
                reason: "was trained as \(describe(stored)) but this run asks for \(describe(config)) (--data \(options.data) holds \(config.imageHeight)x\(config.imageWidth) images): resume on the data it was trained on, or start a new run with another --out")
        }
        if options.batchSize > dataset.train.count {
            throw TrainingError.option("--batch-size \(options.batchSize) exceeds the \(dataset.train.count) training images of \(options.data)")
        }
        trainingData = DataFingerprint(name: dataset.name, images: dataset.train)

        // Before any collective whose size depends on them: every rank must agree on the
        // options, the model and the data (its fingerprint); then on the test images and the
        // labels (a separate check, so that its message names them).
        let sharedMemory = try sharedMemory && Self.sharedMemoryAllowed()
        try Self.checkAgreement(communicator, stage: "options, model or data",
                                text: "\(canonicalJSON(CheckpointConfig(model: config, training: options)))|\(resume)|\(trainingData)|\(dataset.test.count)|shared memory \(sharedMemory)")
        try Self.checkAgreement(communicator, stage: "test images or labels", text: agreementFingerprint(dataset))
        if let loaded = checkpoint, let note = try checkResumeData(stored: loaded.data, storedSpec: loaded.config.training.data,
                                                                   current: trainingData, spec: options.data,
                                                                   allowOtherData: allowOtherData, checkpoint: checkpointPath) {
            notes.append(note)
        }
        modelConfig = config
        model = VAE(config: config)
        model.threads = KernelThreads(threads: options.resolvedThreads)
        optimizer = AdamOptimizer(count: model.parameterCount, hyper: options.adam)
        generator = Philox4x32(seed: options.seed)
        // This rank's slice of every global batch (slices differ by at most one example).
        // --accumulate N: buffers for its largest micro-batch (micro-batch 0).
        let localRows = shardRange(count: options.batchSize, rank: communicator.rank, worldSize: communicator.size).count
        regime = LossRegime(options: options, model: config, datasetSize: dataset.train.count)
        // --deterministic: a micro-batch is this rank's groups / --accumulate whole groups.
        batch = LocalBatch(model: model, capacity: microBatchRange(count: localRows, index: 0, of: options.accumulate).count,
                           globalBatchSize: options.batchSize,
                           groups: options.deterministic ? TrainingOptions.deterministicGroups / communicator.size / options.accumulate : 1,
                           rank: communicator.rank,
                           objective: regime.isPlain ? nil : LatentObjective(regime: regime, latent: config.latent, globalBatch: options.batchSize))
        reduction = try makeGradientReduction(options: options, model: model, communicator: communicator, sharedMemory: sharedMemory)
        evalWorkspace = VAEWorkspace(config: config, capacity: evaluationBatch)

        if let checkpoint {
            checkpoint.parameters.withUnsafeBufferPointer { model.parameters.update(from: $0.baseAddress!, count: $0.count) }
            if let m = checkpoint.firstMoment, let v = checkpoint.secondMoment {
                m.withUnsafeBufferPointer { optimizer.firstMoment.update(from: $0.baseAddress!, count: $0.count) }
                v.withUnsafeBufferPointer { optimizer.secondMoment.update(from: $0.baseAddress!, count: $0.count) }
            }
            optimizer.step = checkpoint.step
            epoch = checkpoint.epoch
            resumeState = checkpoint.resume
            consecutiveBadSteps = resumeState.badSteps
            let steps = dataset.train.count / options.batchSize
            if resumeState.epochStep >= steps {
                throw TrainingError.checkpoint(path: latestCheckpoint,
                    reason: "stopped inside epoch \(epoch + 1) at step \(resumeState.epochStep), but an epoch of --data \(options.data) has \(steps) steps of --batch-size \(options.batchSize); resume it on the data it was trained on")
            }
        } else {
            if communicator.isRoot { model.initialize(seed: options.seed) }
        }
        startNotes = notes
        // Rank 0's parameters and optimizer state are the truth for every rank.
        try communicator.broadcast(UnsafeMutableRawPointer(model.parameters), byteCount: model.parameterCount * 4, root: 0)
        try Self.checkAgreement(communicator, stage: "checkpoint state",
                                text: "\(model.parameterCount)|\(epoch)|\(optimizer.step)|\(resumeState.epochStep)")
        if communicator.isRoot { try prepareOutput(resume: resume, overwrite: overwrite) }
    }

    // MARK: The loop

    public func run() throws {
        let size = communicator.size
        log("vae-dist: training \(describe(modelConfig)) (\(model.parameterCount) parameters) on \(dataset.name) "
            + "(\(dataset.train.count) train / \(dataset.test.count) test images), \(size) rank\(size == 1 ? "" : "s") "
            + "(\(communicator.backend)) x \(model.threads.count) thread\(model.threads.count == 1 ? "" : "s"), global batch \(options.batchSize), output \(options.output), kernels \(Kernels.active.isa)")
        if size > 1 || options.deterministic { log("vae-dist: gradient reduction: \(reduction.name)") }
        if !regime.isPlain { log("vae-dist: training regime: \(regime.name)") }
        // Where this process starts and how much it ran: the tests read these two lines to
        // prove that a resume continued the checkpoint instead of training from scratch.
        let startStep = optimizer.step
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
        runLock?.release()
    }

    /// Trains epoch `e`, from the resumed checkpoint's step inside it when there is one.
    func trainEpoch(_ e: Int) throws {
        let plan = EpochPlan(exampleCount: dataset.train.count, globalBatchSize: options.batchSize, rank: communicator.rank,
                             worldSize: communicator.size, generator: generator, epoch: e)
        var sums = resumeState.partial  // global sums of the steps done so far in this epoch
        let firstStep = resumeState.epochStep
        resumeState = ResumeState()
        var times = StepTimes()
        var progress = ProgressBar()
        let start = now()
        for s in firstStep..<plan.steps {
            let control = try step(s, of: plan, epoch: e, times: &times)
            if control.nonFiniteRanks > 0 {
                // Skipped on every rank: no rank applied a non-finite gradient.
                consecutiveBadSteps += 1
                log("warning: step \(optimizer.step + 1) (epoch \(e)): non-finite loss or gradients on \(Int(control.nonFiniteRanks)) rank(s), step skipped (\(consecutiveBadSteps) in a row)")
                if consecutiveBadSteps >= options.maxBadSteps {
                    throw TrainingError.training("stopped after \(consecutiveBadSteps) consecutive steps with non-finite loss or gradients (epoch \(e), step \(optimizer.step + 1)); lower --lr or check the data. The last checkpoint holds finite parameters: fix and continue with --resume")
                }
            } else {
                consecutiveBadSteps = 0
                sums.recon += control.recon
                sums.kl += control.kl
                sums.penalty += control.regime.penalty
                sums.mi += control.regime.mi
                sums.tc += control.regime.tc
                sums.dwkl += control.regime.dwkl
                sums.examples += options.batchSize
                if faults.active("drift", rank: communicator.rank, step: attemptedSteps) { model.parameters[0] += 1e-3 }
                if communicator.size > 1 && options.checkEvery > 0 && optimizer.step % options.checkEvery == 0 {
                    try checkParametersAgree()
                }
            }
            if options.logEvery > 0 && optimizer.step % options.logEvery == 0 && control.nonFiniteRanks == 0 && !progress.interactive {
                // Where there is no progress bar (mpirun, a log file): a line every --log-every steps.
                let seen = Double(max(sums.examples, 1))
                log(String(format: "step %d (epoch %d, %d/%d)  loss %.2f  lr %.3g  %.0f samples/s", optimizer.step, e, s + 1, plan.steps,
                           trainLoss(sums) / seen, optimizer.hyper.learningRate,
                           Double((s + 1 - firstStep) * options.batchSize) / (now() - start)))
            }
            if communicator.isRoot && progress.interactive {
                progress.update(epoch: e, epochs: options.epochs, step: s + 1, steps: plan.steps,
                                loss: trainLoss(sums) / Double(max(sums.examples, 1)),
                                samplesPerSecond: Double((s + 1 - firstStep) * options.batchSize) / (now() - start))
            }
            if control.stopRequests > 0 {
                interrupted = max(Interruption.pending, 1)
                if let warning = killWarning { log(warning) }
                if s + 1 < plan.steps {
                    // Stop inside the epoch: a checkpoint that resumes at the next step.
                    progress.finish()
                    sums.seconds += now() - start
                    try writeInterruptedCheckpoint(epoch: e, nextStep: s + 1, sums: sums)
                    log("vae-dist: stopped by \(Interruption.name(interrupted)) after step \(s + 1)/\(plan.steps) of epoch \(e); "
                        + "checkpoint \(latestCheckpoint) resumes there with --resume" + stopNote)
                    return
                }
            }
        }
        let epochSeconds = now() - start
        progress.finish()

        let evalStart = now()
        communicator.phase = CollectivePhase(.evaluation, step: optimizer.step)
        let (test, aggregate, latent) = try evaluateTestSet(dataset.test)
        let evalSeconds = now() - evalStart
        let beta = Double(modelConfig.beta)
        let seen = Double(max(sums.examples, 1))
        var metrics = EpochMetrics()
        metrics.epoch = e
        metrics.step = optimizer.step
        metrics.trainRecon = sums.recon / seen
        metrics.trainKL = sums.kl / seen
        metrics.trainLoss = trainLoss(sums) / seen
        if regime.tcBeta != nil {
            metrics.regimeTerms = [("train_mi", sums.mi / seen), ("train_tc", sums.tc / seen), ("train_dwkl", sums.dwkl / seen)]
        }
        let testMean = test.mean(beta: beta)
        metrics.testLoss = testMean.loss
        metrics.testRecon = testMean.recon
        metrics.testKL = testMean.kl
        metrics.aggregateKL = aggregate.klToPrior
        metrics.posteriorStdMean = aggregate.posteriorStdMean
        metrics.epochSeconds = epochSeconds + sums.seconds
        metrics.evalSeconds = evalSeconds
        metrics.samplesPerSecond = Double((plan.steps - firstStep) * options.batchSize) / epochSeconds
        metrics.computeSeconds = times.compute
        metrics.communicationSeconds = times.communication
        metrics.optimizerSeconds = times.optimizer
        metrics.steps = times.steps
        metrics.learningRate = Double(optimizer.hyper.learningRate)
        metrics.worldSize = communicator.size
        metrics.peakMemoryMB = peakMemoryMB()
        metrics.latent = latent
        epoch = e
        let checkpointNow = e % options.checkpointEvery == 0 || e == options.epochs || interrupted != 0
        communicator.phase = CollectivePhase(.checkpoint, step: optimizer.step)
        if checkpointNow { try reduction.shareOptimizerState(optimizer) }  // a collective: every rank
        if communicator.isRoot {
            let imageStart = now()
            let images = try writeImages(epoch: e)
            metrics.imageSeconds = now() - imageStart
            try writeEpochFiles(metrics, images: images, checkpoint: checkpointNow)
        }
        history.append(metrics)
        log(epochLine(metrics, epochs: options.epochs, config: modelConfig, seconds: epochSeconds))
        if interrupted != 0 {
            log("vae-dist: stopped by \(Interruption.name(Int32(interrupted))) at the end of epoch \(e); continue with --resume" + stopNote)
        }
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
    let widths = ([config.inputDimension] + config.hidden + [config.latent]).map(String.init).joined(separator: "-")
    var kind = config.autoencoder ? "autoencoder" : (config.beta == 1 ? "VAE" : "beta-VAE (beta \(config.beta))")
    kind += " (\(config.likelihood.rawValue))"
    return "\(widths) \(kind)"
}

