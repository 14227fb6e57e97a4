import Foundation
import VAEData
import VAEDistributed
import VAEKernelDispatch
import VAEKernels
import VAEModel

// Data-parallel training (DESIGN.md, "Data parallelism"). Every rank:
//   1. builds the same model; rank 0 initializes (or loads) it and broadcasts it;
//   2. per step takes its slice of the global batch from the (seed, epoch) permutation,
//      draws eps per example from (seed, epoch, example index),
//   3. runs forward and backward with the chain rule seeded by dloss = 1 / globalBatch,
//      so the allreduced SUM of gradients is the global-batch mean,
//   4. applies the same Adam update to the same parameters.
// Loss sums are reduced once per epoch; the test set is evaluated sharded and reduced.
// Rank 0 alone writes metrics, images and checkpoints.

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
    /// After a mid-epoch checkpoint: the step of epoch `epoch + 1` to continue at, and the sums so far.
    var resumeStep = 0
    var partialEpoch = PartialEpoch()
    var consecutiveBadSteps = 0
    /// --deterministic only: one gradient buffer per local group, and the 4 ranks' partial sums.
    let groupGradients: [UnsafeMutablePointer<Float>]
    let gathered: UnsafeMutablePointer<Float>
    /// Steps attempted by this process, skipped ones included (what VAE_DIST_FAULT counts).
    var attemptedSteps = 0
    let faults = FaultInjection()
    let log: (String) -> Void
    let generator: Philox4x32
    let workspace: VAEWorkspace
    let evalWorkspace: VAEWorkspace
    let x: UnsafeMutablePointer<Float>    // [localBatch, D] this rank's inputs
    let eps: UnsafeMutablePointer<Float>  // [localBatch, latent] their noise
    var localBatch: Int { options.batchSize / communicator.size }

    public var checkpointDirectory: String { (options.output as NSString).appendingPathComponent("checkpoints") }
    public var latestCheckpoint: String { (checkpointDirectory as NSString).appendingPathComponent("latest.safetensors") }
    var metricsPath: String { (options.output as NSString).appendingPathComponent("metrics.jsonl") }

    /// `log` receives rank 0's human-readable lines.
    public init(options: TrainingOptions, model requested: ModelConfig, resume: Bool, overwrite: Bool = false,
                communicator: any Communicator, log: @escaping (String) -> Void) throws {
        try options.validate(worldSize: communicator.size)
        self.options = options
        self.communicator = communicator
        self.log = communicator.isRoot ? log : { _ in }
        dataset = try Dataset.load(options.data)
        var config = requested
        config.imageHeight = dataset.train.rows
        config.imageWidth = dataset.train.columns
        try config.validate()
        if options.batchSize > dataset.train.count {
            throw TrainingError.option("--batch-size \(options.batchSize) exceeds the \(dataset.train.count) training images of \(options.data)")
        }

        // Before any collective whose size depends on them: every rank must agree on the
        // options, the model, the data's shape and whether to resume.
        try Self.checkAgreement(communicator, stage: "options, model or data",
                                text: "\(fingerprint(CheckpointConfig(model: config, training: options)))|\(resume)|\(dataset.train.count)|\(dataset.test.count)")
        var checkpoint: Checkpoint?
        if resume {
            let loaded = try Self.loadBroadcast(directory: (options.output as NSString).appendingPathComponent("checkpoints"),
                                                communicator: communicator)
            if loaded.config.model != config {
                throw TrainingError.checkpoint(path: "\(options.output)/checkpoints/latest.safetensors",
                    reason: "was trained as \(describe(loaded.config.model)) but this run asks for \(describe(config)): pass the same model options to resume, or another --out")
            }
            checkpoint = loaded
        }
        modelConfig = config
        model = VAE(config: config)
        optimizer = AdamOptimizer(count: model.parameterCount, hyper: options.adam)
        generator = Philox4x32(seed: options.seed)
        workspace = VAEWorkspace(config: config, capacity: options.batchSize / communicator.size)
        evalWorkspace = VAEWorkspace(config: config, capacity: 500)
        x = allocateAligned(options.batchSize / communicator.size * config.inputDimension)
        eps = allocateAligned(options.batchSize / communicator.size * config.latent)
        let groupCount = options.deterministic ? TrainingOptions.deterministicGroups / communicator.size : 0
        let localGroups = groupCount > 1 ? groupCount : 0  // one group per rank computes in place
        let parameterCount = model.parameterCount
        groupGradients = (0..<localGroups).map { _ in allocateAligned(parameterCount) }
        gathered = allocateAligned(options.deterministic && communicator.size == 4 ? 4 * parameterCount : 1)

        if let checkpoint {
            checkpoint.parameters.withUnsafeBufferPointer { model.parameters.update(from: $0.baseAddress!, count: $0.count) }
            if let m = checkpoint.firstMoment, let v = checkpoint.secondMoment {
                m.withUnsafeBufferPointer { optimizer.firstMoment.update(from: $0.baseAddress!, count: $0.count) }
                v.withUnsafeBufferPointer { optimizer.secondMoment.update(from: $0.baseAddress!, count: $0.count) }
            }
            optimizer.step = checkpoint.step
            epoch = checkpoint.epoch
            let m = checkpoint.metadata
            resumeStep = m["epoch_step"].flatMap(Int.init) ?? 0
            partialEpoch = PartialEpoch(recon: m["epoch_recon"].flatMap(Double.init) ?? 0, kl: m["epoch_kl"].flatMap(Double.init) ?? 0,
                                        examples: m["epoch_examples"].flatMap(Int.init) ?? 0,
                                        seconds: m["epoch_seconds"].flatMap(Double.init) ?? 0)
            consecutiveBadSteps = m["bad_steps"].flatMap(Int.init) ?? 0
            let steps = dataset.train.count / options.batchSize
            if resumeStep < 0 || resumeStep >= steps || (resumeStep > 0 && checkpoint.config.training.batchSize != options.batchSize) {
                throw TrainingError.checkpoint(path: latestCheckpoint,
                    reason: "stopped inside epoch \(epoch + 1) at step \(resumeStep) with --batch-size \(checkpoint.config.training.batchSize); resume it with the same --batch-size and data")
            }
            let old = checkpoint.config.training
            if old.seed != options.seed || old.batchSize != options.batchSize || old.learningRate != options.learningRate
                || old.binarize != options.binarize {
                self.log("warning: resuming with other --seed/--batch-size/--lr/--binarize than the checkpoint; the run will not match an uninterrupted one")
            }
        } else {
            if communicator.isRoot { model.initialize(seed: options.seed) }
        }
        // Rank 0's parameters and optimizer state are the truth for every rank.
        try communicator.broadcast(UnsafeMutableRawPointer(model.parameters), byteCount: model.parameterCount * 4, root: 0)
        try Self.checkAgreement(communicator, stage: "checkpoint state",
                                text: "\(model.parameterCount)|\(epoch)|\(optimizer.step)|\(resumeStep)")
        if communicator.isRoot { try prepareOutput(resume: resume, overwrite: overwrite) }
    }

    deinit {
        x.deallocate()
        eps.deallocate()
        for g in groupGradients { g.deallocate() }
        gathered.deallocate()
    }

    /// Forward and backward on local batch rows row ..< row + rows, accumulating their
    /// gradient into `gradients` and their loss sums into recon and kl.
    func forwardBackward(row: Int, rows: Int, lossScale: Float, into gradients: UnsafeMutablePointer<Float>,
                         recon: inout Double, kl: inout Double) {
        let xs = x + row * modelConfig.inputDimension, es = eps + row * modelConfig.latent
        model.forward(workspace, x: xs, eps: es, batch: rows, lossScale: lossScale, gradients: gradients)
        model.backward(workspace, x: xs, eps: es, batch: rows, lossScale: lossScale, gradients: gradients)
        for r in 0..<rows {
            recon += Double(workspace.recon[r])
            kl += Double(workspace.kl[r])
        }
    }

    /// Every rank must hold the same `text` (options, data shape, checkpoint state): compare a hash.
    static func checkAgreement(_ communicator: any Communicator, stage: String, text: String) throws {
        let hash = fnv1a(text)
        let (low, high) = try communicator.allreduceMinMax(hash)
        if low != high {
            throw TrainingError.training("ranks disagree on their \(stage) (this rank's hash \(String(hash, radix: 16))); start every rank with the same options, data and --out")
        }
    }

    /// Rank 0 reads latest.safetensors (or, when a crash came between writing an epoch
    /// file and linking it, the newest epoch file) and broadcasts its bytes, so ranks
    /// need no shared filesystem.
    static func loadBroadcast(directory: String, communicator: any Communicator) throws -> Checkpoint {
        var bytes: [UInt8] = []
        var length = [Int64(0)]
        var path = (directory as NSString).appendingPathComponent("latest.safetensors")
        if communicator.isRoot {
            if !FileManager.default.fileExists(atPath: path), let newest = epochCheckpoints(directory).last {
                path = (directory as NSString).appendingPathComponent(newest)
            }
            guard FileManager.default.fileExists(atPath: path) else {
                throw TrainingError.checkpoint(path: path, reason: "not found, nothing to resume (train without --resume first)")
            }
            bytes = try Safetensors.readBytes(path: path)
            length[0] = Int64(bytes.count)
        }
        try communicator.broadcast(&length, root: 0)
        if !communicator.isRoot { bytes = [UInt8](repeating: 0, count: Int(length[0])) }
        try communicator.broadcast(&bytes, root: 0)
        return try Checkpoint.decode(try Safetensors.decode(bytes, path: path), path: path)
    }

    func prepareOutput(resume: Bool, overwrite: Bool) throws {
        let existing = ((try? FileManager.default.contentsOfDirectory(atPath: checkpointDirectory)) ?? [])
            .filter { $0.hasSuffix(".safetensors") && !$0.hasPrefix(".") }
        if !resume && !existing.isEmpty {
            guard overwrite else {
                throw TrainingError.option("\(checkpointDirectory) already holds checkpoints of an earlier run: pass --resume to continue it, --overwrite to start over (deleting them), or another --out")
            }
            for name in existing { try? FileManager.default.removeItem(atPath: (checkpointDirectory as NSString).appendingPathComponent(name)) }
        }
        for folder in [options.output, checkpointDirectory,
                       (options.output as NSString).appendingPathComponent("samples"),
                       (options.output as NSString).appendingPathComponent("reconstructions")] {
            try AtomicFile.makeDirectory(folder)
        }
        // Temporary files of a run that was killed mid-write.
        for folder in [options.output, checkpointDirectory] {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
            where name.hasPrefix(".") && (name.contains(".tmp-") || name.contains(".link-")) {
                try? FileManager.default.removeItem(atPath: (folder as NSString).appendingPathComponent(name))
            }
        }
        // Keep the metrics of epochs the checkpoint holds; drop later ones (a crash
        // after their line but before their checkpoint).
        var kept = ""
        if resume, let text = try? String(contentsOfFile: metricsPath, encoding: .utf8) {
            for line in text.split(separator: "\n") {
                if let data = line.data(using: .utf8),
                   let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                   let e = object["epoch"] as? Int, e <= epoch {
                    kept += line + "\n"
                }
            }
        }
        try AtomicFile.write(Array(kept.utf8), to: metricsPath)
    }

    // MARK: The loop

    public func run() throws {
        let size = communicator.size
        log("vae-dist: training \(describe(modelConfig)) (\(model.parameterCount) parameters) on \(dataset.name) "
            + "(\(dataset.train.count) train / \(dataset.test.count) test images), \(size) rank\(size == 1 ? "" : "s") "
            + "(\(communicator.backend)), global batch \(options.batchSize), output \(options.output), kernels \(Kernels.active.isa)")
        if epoch >= options.epochs {
            log("vae-dist: the checkpoint has \(epoch) epochs, --epochs is \(options.epochs): nothing to do")
            return
        }
        while epoch < options.epochs && interrupted == 0 {
            try trainEpoch(epoch + 1)
        }
    }

    /// Trains epoch `e` from step `resumeStep` (non-zero after a mid-epoch checkpoint).
    func trainEpoch(_ e: Int) throws {
        let plan = EpochPlan(exampleCount: dataset.train.count, globalBatchSize: options.batchSize, rank: communicator.rank,
                             worldSize: communicator.size, generator: generator, epoch: e)
        let b = localBatch, l = modelConfig.latent
        let lossScale = 1 / Float(options.batchSize)  // d(mean loss)/d(example loss): seeds the chain rule
        var sums = partialEpoch  // global sums of the steps done so far in this epoch
        partialEpoch = PartialEpoch()
        var compute = 0.0, communication = 0.0, optimizing = 0.0
        var progress = ProgressBar()
        let firstStep = resumeStep
        resumeStep = 0
        // [non-finite ranks, ranks asked to stop, recon sum, kl sum], reduced every step.
        var control = [Double](repeating: 0, count: 4)
        let start = now()
        for step in firstStep..<plan.steps {
            let t0 = now()
            let indices = plan.localIndices(step: step)
            indices.withUnsafeBufferPointer {
                fillBatch(x, from: dataset.train, indices: $0, binarize: options.binarize, generator: generator, epoch: e)
            }
            for (r, index) in indices.enumerated() {
                fillNormal(eps + r * l, count: l, generator: generator, stream: .reparameterization, epoch: e, index: Int(index))
            }
            var recon = 0.0, kl = 0.0
            if options.deterministic {
                computeGroupGradients(lossScale: lossScale, recon: &recon, kl: &kl)
            } else {
                model.zeroGradients()
                forwardBackward(row: 0, rows: b, lossScale: lossScale, into: model.gradients, recon: &recon, kl: &kl)
            }
            let globalStep = optimizer.step + 1
            attemptedSteps += 1
            if faults.active("error", rank: communicator.rank, step: attemptedSteps) {
                throw TrainingError.training("injected fault (VAE_DIST_FAULT) at step \(attemptedSteps)")
            }
            if faults.active("nan", rank: communicator.rank, step: attemptedSteps) { model.gradients[0] = .nan }
            let finite = recon.isFinite && kl.isFinite && allFinite(model.gradients, count: model.parameterCount)
            control[0] = finite ? 0 : 1
            control[1] = Interruption.pending != 0 ? 1 : 0
            control[2] = recon
            control[3] = kl
            let t1 = now()
            try control.withUnsafeMutableBufferPointer { p throws(CommunicatorError) in
                try communicator.allreduceSum(p.baseAddress!, count: 4)
            }
            var t2 = now(), t3 = t2
            if control[0] > 0 {
                // Skip the update on every rank: no rank applies a non-finite gradient.
                consecutiveBadSteps += 1
                log("warning: step \(globalStep) (epoch \(e)): non-finite loss or gradients on \(Int(control[0])) rank(s), step skipped (\(consecutiveBadSteps) in a row)")
                if consecutiveBadSteps >= options.maxBadSteps {
                    throw TrainingError.training("stopped after \(consecutiveBadSteps) consecutive steps with non-finite loss or gradients (epoch \(e), step \(globalStep)); lower --lr or check the data. The last checkpoint holds finite parameters: fix and continue with --resume")
                }
            } else {
                consecutiveBadSteps = 0
                if options.deterministic {
                    try reduceDeterministically()
                } else if communicator.size > 1 {
                    try communicator.allreduceSum(model.gradients, count: model.parameterCount)
                }
                t2 = now()
                optimizer.update(model)
                t3 = now()
                sums.recon += control[2]
                sums.kl += control[3]
                sums.examples += options.batchSize
                if faults.active("drift", rank: communicator.rank, step: attemptedSteps) { model.parameters[0] += 1e-3 }
                if communicator.size > 1 && options.checkEvery > 0 && optimizer.step % options.checkEvery == 0 {
                    try checkParametersAgree()
                }
            }
            compute += t1 - t0; communication += t2 - t1; optimizing += t3 - t2
            if communicator.isRoot && progress.interactive {
                progress.update(epoch: e, epochs: options.epochs, step: step + 1, steps: plan.steps,
                                loss: (sums.recon + Double(modelConfig.beta) * sums.kl) / Double(max(sums.examples, 1)),
                                samplesPerSecond: Double((step + 1 - firstStep) * options.batchSize) / (now() - start))
            }
            if control[1] > 0 {
                interrupted = max(Interruption.pending, 1)
                if step + 1 < plan.steps {
                    // Stop inside the epoch: a checkpoint that resumes at the next step.
                    progress.finish()
                    sums.seconds += now() - start
                    if communicator.isRoot { try writeInterruptedCheckpoint(epoch: e, nextStep: step + 1, sums: sums) }
                    log("vae-dist: stopped by \(Interruption.name(Int32(interrupted))) after step \(step + 1)/\(plan.steps) of epoch \(e); "
                        + "checkpoint \(latestCheckpoint) resumes there with --resume")
                    return
                }
            }
        }
        let epochSeconds = now() - start
        progress.finish()

        let evalStart = now()
        let test = try evaluateDistributed(model: model, workspace: evalWorkspace, images: dataset.test, binarize: options.binarize,
                                           seed: options.seed, communicator: communicator)
        let evalSeconds = now() - evalStart
        let beta = Double(modelConfig.beta)
        let seen = Double(max(sums.examples, 1))
        var metrics = EpochMetrics()
        metrics.epoch = e
        metrics.step = optimizer.step
        metrics.trainRecon = sums.recon / seen
        metrics.trainKL = sums.kl / seen
        metrics.trainLoss = metrics.trainRecon + beta * metrics.trainKL
        let testMean = test.mean(beta: beta)
        metrics.testLoss = testMean.loss
        metrics.testRecon = testMean.recon
        metrics.testKL = testMean.kl
        metrics.epochSeconds = epochSeconds + sums.seconds
        metrics.evalSeconds = evalSeconds
        metrics.samplesPerSecond = Double((plan.steps - firstStep) * options.batchSize) / epochSeconds
        metrics.computeSeconds = compute
        metrics.communicationSeconds = communication
        metrics.optimizerSeconds = optimizing
        metrics.worldSize = communicator.size
        metrics.peakMemoryMB = peakMemoryMB()
        epoch = e
        if communicator.isRoot {
            let imageStart = now()
            try writeImages(epoch: e)
            metrics.imageSeconds = now() - imageStart
            // Metrics first: a crash before the checkpoint leaves a line that the resumed run
            // drops and writes again; the other order would lose the line for good.
            try appendMetrics(metrics)
            if e % options.checkpointEvery == 0 || e == options.epochs || interrupted != 0 { try writeCheckpoint(epoch: e) }
        }
        history.append(metrics)
        log(String(format: "epoch %d/%d  train_loss %.2f  test_nelbo %.2f (recon %.2f + kl %.2f)  %.0f samples/s  %.1fs",
                   e, options.epochs, metrics.trainLoss, metrics.testNELBO, metrics.testRecon, metrics.testKL,
                   metrics.samplesPerSecond, epochSeconds))
        if interrupted != 0 {
            log("vae-dist: stopped by \(Interruption.name(Int32(interrupted))) at the end of epoch \(e); continue with --resume")
        }
    }
}

/// Global sums over the finished steps of an epoch (carried across a mid-epoch resume).
struct PartialEpoch {
    var recon = 0.0
    var kl = 0.0
    var examples = 0
    var seconds = 0.0
}

/// "784-400-20 VAE (bernoulli)" and the like.
public func describe(_ config: ModelConfig) -> String {
    let widths = ([config.inputDimension] + config.hidden + [config.latent]).map(String.init).joined(separator: "-")
    var kind = config.autoencoder ? "autoencoder" : (config.beta == 1 ? "VAE" : "beta-VAE (beta \(config.beta))")
    kind += " (\(config.likelihood.rawValue))"
    return "\(widths) \(kind)"
}

/// epoch-NNNN.safetensors files in `directory`, oldest first (by number, not by name).
func epochCheckpoints(_ directory: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
        .compactMap { name -> (Int, String)? in
            guard name.hasPrefix("epoch-"), name.hasSuffix(".safetensors"),
                  let n = Int(name.dropFirst(6).dropLast(12)) else { return nil }
            return (n, name)
        }
        .sorted { $0.0 < $1.0 }.map(\.1)
}

/// Canonical JSON of a configuration, for agreement hashes.
func fingerprint(_ config: CheckpointConfig) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return String(decoding: (try? encoder.encode(config)) ?? Data(), as: UTF8.self)
}

/// 64-bit FNV-1a.
func fnv1a(_ text: String) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
    return hash
}
