import Foundation
import VAECheckpoint
import VAEDistributed
import VAEData
import VAEFiles
import VAEKernels
import VAEModel
import VAEOutputs

// The start of a run, before the first step: every rank checks that the others were given the
// same options, model and data; on --resume rank 0 reads the checkpoint and broadcasts it (the
// ranks need no shared filesystem); rank 0 prepares the output folder.

extension Trainer {
    /// Where a run starts: its merged options and, on --resume, the checkpoint and its path.
    struct StartPoint {
        var config: CheckpointConfig
        var checkpoint: Checkpoint?
        var path = ""
    }

    /// A start-up stage that every rank runs with no collective it could skip alone, ended by a
    /// vote (an allreduce of a failure flag) before the next collective: when every rank failed,
    /// `FailedOnEveryRank` (rank 0 prints one line, every rank exits 1 without MPI_Abort); when
    /// some did, they throw their own error (MPI_Abort) and the others go on to be ended by it.
    static func startStage<T>(_ communicator: any Communicator, _ body: () throws -> T) throws -> T {
        let result = Result(catching: body)
        var failed: UInt64 = 0
        if case .failure = result { failed = 1 }
        let (fewest, most) = try communicator.allreduceMinMax(failed)
        switch result {
        case .success(let value): return value
        case .failure(let error) where fewest == 1 && most == 1 && communicator.size > 1:
            throw (error as? FailedOnEveryRank) ?? FailedOnEveryRank(error: error)
        case .failure(let error): throw error
        }
    }

    /// Before any other collective: every rank must have been given the same options. Every
    /// collective has a deadline from the first one on: this agreement, and on --resume the
    /// checkpoint's broadcast, which waits for rank 0 to read it (a hung filesystem). Until the
    /// options are agreed each rank uses its own --timeout (or the default); arming is a
    /// collective every rank makes here, whatever that value.
    static func agreeOnGivenOptions(_ given: GivenOptions, resume: Bool, overwrite: Bool, allowOtherData: Bool,
                                    communicator: any Communicator) throws {
        try communicator.armWatchdog(timeout: given.timeout ?? TrainingOptions().timeout)
        try checkAgreement(communicator, stage: "options",
                           text: "\(canonicalJSON(given))|\(resume)|\(overwrite)|\(allowOtherData)")
    }

    /// One training per run folder: rank 0 locks it before anything reads or changes it.
    static func lockRunFolder(_ folder: String, resume: Bool, communicator: any Communicator,
                              notes: inout [String]) throws -> RunLock? {
        if communicator.isRoot, let lock = try RunLock.acquire(folder: folder, create: !resume) {
            if let note = lock.note { notes.append(note) }
            return lock
        }
        return nil
    }

    /// --resume: the checkpoint in `folder` (rank 0 reads it, every rank receives it) and the
    /// given options merged over its config.
    static func resumeCheckpoint(_ given: GivenOptions, folder: String, communicator: any Communicator,
                                 notes: inout [String]) throws -> StartPoint {
        let (loaded, path) = try loadBroadcast(directory: (folder as NSString).appendingPathComponent("checkpoints"),
                                               communicator: communicator)
        let (config, changes) = try startStage(communicator) { try given.resuming(loaded.config, checkpoint: path) }
        if !changes.isEmpty { notes.append("vae-dist: changed on resume: " + changes.joined(separator: ", ")) }
        return StartPoint(config: config, checkpoint: loaded, path: path)
    }

    /// --from RUN_OR_CHECKPOINT: that run's configuration (rank 0 reads its checkpoint, every
    /// rank receives it) with the given options on top; no parameters.
    static func startFrom(_ source: String, given: GivenOptions, communicator: any Communicator,
                          notes: inout [String]) throws -> StartPoint {
        let isFile = source.hasSuffix(".safetensors")
        let (loaded, path) = try loadBroadcast(directory: isFile ? (source as NSString).deletingLastPathComponent
                                                               : (source as NSString).appendingPathComponent("checkpoints"),
                                               file: isFile ? source : nil, communicator: communicator)
        notes.append("vae-dist: options from \(path) (--from), with the options given on top")
        return StartPoint(config: given.over(loaded.config))
    }

    /// The training data of --data `spec`; `trainedOnCheckpoint`: --data came from that
    /// checkpoint, and a failure says so.
    static func loadDataset(_ spec: String, options: TrainingOptions, trainedOnCheckpoint: String?) throws -> Dataset {
        switch Result(catching: { () throws(DataError) in try Dataset.load(spec, options: options.dataOptions) }) {
        case .success(let loaded): return loaded
        case .failure(let error):
            guard let checkpoint = trainedOnCheckpoint else { throw error }
            throw Dataset.fromCheckpoint(error, spec: spec, checkpoint: checkpoint)
        }
    }

    /// The model of `start` for the images of `dataset`, checked against the checkpoint's model
    /// and against the batch size.
    static func modelForData(_ start: StartPoint, dataset: Dataset, options: TrainingOptions) throws -> ModelConfig {
        var config = start.config.model
        config.imageHeight = dataset.train.rows
        config.imageWidth = dataset.train.columns
        config.channels = dataset.train.channels
        try config.validate()
        try dataset.checkPixelValues(unitInterval: config.likelihood == .bernoulli)
        if let stored = start.checkpoint?.config.model, stored != config {
            // Only the image size can differ here (the merge refused the rest): the data's.
            throw TrainingError.checkpoint(path: start.path,
                reason: "was trained as \(describe(stored)) but this run asks for \(describe(config)) (--data \(options.data) holds \(imageSize(height: config.imageHeight, width: config.imageWidth, channels: config.channels)) images): resume on the data it was trained on, or start a new run with another --out")
        }
        if options.batchSize > dataset.train.count {
            throw TrainingError.option("--batch-size \(options.batchSize) exceeds the \(dataset.train.count) training images of \(options.data)")
        }
        return config
    }

    /// Before any collective whose size depends on them: every rank must agree on the options,
    /// the model and the data (its fingerprint); then on the test images and the labels (a
    /// separate check, so that its message names them).
    static func agreeOnRun(_ communicator: any Communicator, config: ModelConfig, options: TrainingOptions, resume: Bool,
                           dataset: Dataset, trainingData: DataFingerprint, sharedMemory: Bool) throws {
        try checkAgreement(communicator, stage: "options, model or data",
                           text: "\(canonicalJSON(CheckpointConfig(model: config, training: options)))|\(resume)|\(trainingData)|\(dataset.test.count)|shared memory \(sharedMemory)")
        try checkAgreement(communicator, stage: "test images or labels", text: agreementFingerprint(dataset))
    }

    /// This rank's inputs, noise and workspaces for its slice of every global batch (slices
    /// differ by at most one example), sized for its largest micro-batch (micro-batch 0); under
    /// --deterministic a micro-batch is this rank's groups / --accumulate whole groups.
    static func makeLocalBatch(model: VAE, options: TrainingOptions, regime: LossRegime, communicator: any Communicator) -> LocalBatch {
        let localRows = shardRange(count: options.batchSize, rank: communicator.rank, worldSize: communicator.size).count
        return LocalBatch(model: model, capacity: microBatchRange(count: localRows, index: 0, of: options.microBatches).count,
                          globalBatchSize: options.batchSize,
                          groups: options.deterministic ? TrainingOptions.deterministicGroups / communicator.size / options.microBatches : 1,
                          rank: communicator.rank,
                          objective: regime.isPlain ? nil : LatentObjective(regime: regime, latent: model.config.latent, globalBatch: options.batchSize))
    }

    /// The parameters, Adam's state and where training stands, from the checkpoint; a new run's
    /// parameters are initialized on rank 0 (the broadcast gives them to every rank).
    func restoreState(from checkpoint: Checkpoint?) throws {
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
    }

    /// Rank 0's parameters and optimizer state are the truth for every rank; then rank 0
    /// prepares the output folder.
    func shareStartState(resume: Bool, overwrite: Bool) throws {
        try communicator.broadcast(UnsafeMutableRawPointer(model.parameters), byteCount: model.parameterCount * 4, root: 0)
        try Self.checkAgreement(communicator, stage: "checkpoint state",
                                text: "\(model.parameterCount)|\(epoch)|\(optimizer.step)|\(resumeState.epochStep)")
        if communicator.isRoot { try prepareOutput(resume: resume, overwrite: overwrite) }
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
    /// Test hook: seconds rank 0 stalls before reading the checkpoint to resume from, as on a
    /// hung filesystem (VAE_DIST_FAULT=stall-read:SECONDS).
    static let readStallSeconds = faultStallSeconds("stall-read")

    static func loadBroadcast(directory: String, file: String? = nil, communicator: any Communicator) throws -> (Checkpoint, path: String) {
        var bytes: [UInt8] = []
        var length = [Int64(0)]
        var path = file ?? (directory as NSString).appendingPathComponent("latest.safetensors")
        // Rank 0 alone reads; what it fails on is every rank's error (length -1 tells them).
        var readError: (any Error)?
        if communicator.isRoot {
            if file == nil, !FileManager.default.fileExists(atPath: path), let newest = epochCheckpoints(directory).last {
                path = (directory as NSString).appendingPathComponent(newest)
            }
            do {
                guard FileManager.default.fileExists(atPath: path) else {
                    throw TrainingError.checkpoint(path: path, reason: "not found, nothing to resume (train without --resume first)")
                }
                if Self.readStallSeconds > 0 { usleep(useconds_t(min(Self.readStallSeconds, 3600) * 1e6)) }
                bytes = try Checkpoint.readBytes(path: path)
                length[0] = Int64(bytes.count)
            } catch {
                readError = error
                length[0] = -1
            }
        }
        try communicator.broadcast(&length, root: 0)
        if length[0] < 0 {
            let error = readError ?? TrainingError.training("rank 0 could not read the checkpoint to resume from")
            throw communicator.size > 1 ? FailedOnEveryRank(error: error) : error
        }
        if !communicator.isRoot { bytes = [UInt8](repeating: 0, count: Int(length[0])) }
        try communicator.broadcast(&bytes, root: 0)
        let checkpoint = try startStage(communicator) { try Checkpoint.decode(bytes: bytes, path: path) }
        if communicator.isRoot, let note = checkpoint.unverifiedNote(path: path) {
            FileHandle.standardError.write(Data((note + "\n").utf8))
        }
        return (checkpoint, path)
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
        // steps.jsonl likewise: the rows up to the checkpoint's global step.
        var keptSteps = ""
        if resume, let text = try? String(contentsOfFile: stepsPath, encoding: .utf8) {
            for line in text.split(separator: "\n") {
                if let data = line.data(using: .utf8),
                   let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                   let s = object["step"] as? Int, s <= optimizer.step {
                    keptSteps += line + "\n"
                }
            }
        }
        try AtomicFile.write(Array(keptSteps.utf8), to: stepsPath)
        stepsFile = FileHandle(forWritingAtPath: stepsPath)
        _ = try? stepsFile?.seekToEnd()
        events = try TensorBoardWriter.start(in: options.output, resume: resume, startStep: optimizer.step + 1)
    }

    /// VAE_DIST_SHARED_MEMORY: unset, empty or 1 allows the sum over shared memory, 0 turns it off.
    public static func sharedMemoryAllowed(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws(TrainingError) -> Bool {
        switch environment["VAE_DIST_SHARED_MEMORY"] {
        case nil, "", "1": return true
        case "0": return false
        case let value?:
            throw .option("VAE_DIST_SHARED_MEMORY=\(value): expected 1 (ranks on one node sum gradients through shared memory, the default) or 0 (MPI collectives)")
        }
    }
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

/// Canonical JSON of options or a configuration, for agreement hashes.
func canonicalJSON<T: Encodable>(_ config: T) -> String {
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
