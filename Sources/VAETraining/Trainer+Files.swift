import Foundation
import VAEAnalysis
import VAECheckpoint
import VAEData
import VAEDistributed
import VAEFiles
import VAEKernels
import VAEOutputs

// What rank 0 alone writes: metrics lines, sample and reconstruction images, checkpoints.

extension Trainer {
    // MARK: Rank 0's files

    func appendMetrics(_ metrics: EpochMetrics) throws {
        guard let handle = FileHandle(forWritingAtPath: metricsPath) else {
            throw TrainingError.file(path: metricsPath, reason: "cannot be opened for appending")
        }
        defer { try? handle.close() }
        do {
            try handle.seekToEnd()
            try handle.write(contentsOf: Data((metrics.jsonLine + "\n").utf8))
            try handle.synchronize()
        } catch {
            throw TrainingError.file(path: metricsPath, reason: "write failed (\((error as NSError).localizedDescription))")
        }
    }

    /// The end of an epoch on rank 0: its metrics line, TensorBoard events and (when due) the
    /// checkpoint. Metrics first: a crash before the checkpoint leaves a line that the resumed run
    /// drops and writes again; the other order would lose the line for good. A checkpoint that
    /// cannot be written (a full disk) takes the epoch's line back and says what is left to resume.
    func writeEpochFiles(_ metrics: EpochMetrics, images: [(tag: String, image: EncodedImage)], checkpoint: Bool) throws {
        let metricsSize = (try? FileManager.default.attributesOfItem(atPath: metricsPath)[.size] as? Int) ?? nil
        try appendMetrics(metrics)
        try events?.appendEpoch(metrics, images: images)
        guard checkpoint else { return }
        do {
            try writeCheckpoint(epoch: metrics.epoch)
        } catch {
            // A file that cannot be written arrives as VAEFiles' FileError; either gets the hint.
            guard let error = (error as? TrainingError) ?? (error as? FileError).map(TrainingError.init) else { throw error }
            if let metricsSize { truncate(metricsPath, off_t(metricsSize)) }
            let previous = (try? Checkpoint.load(path: latestCheckpoint)).map { "epoch \($0.epoch), step \($0.step)" }
            throw error.adding(previous.map { "; the last checkpoint (\($0)) is intact: continue from it with --resume" }
                ?? "; this run has no checkpoint yet: start it again")
        }
    }

    /// The epoch's sample and reconstruction grids, as files and for TensorBoard.
    func writeImages(epoch e: Int) throws -> [(tag: String, image: EncodedImage)] {
        let name = String(format: "epoch-%04d.png", e)
        let h = modelConfig.imageHeight, w = modelConfig.imageWidth, c = modelConfig.channels
        let samples = samplePrior(model: model, count: 64, seed: options.seed)
        let sampleGrid = try writeImageGrid(samples, count: 64, height: h, width: w, channels: c, columns: 8,
                                            to: "\(options.output)/samples/\(name)")
        let indices = Array(0..<min(16, dataset.test.count))
        let grid = reconstructionGrid(model: model, images: dataset.test, indices: indices, columns: 8)
        let reconstructionImage = try writeImageGrid(grid, count: grid.count / (h * w * c), height: h, width: w, channels: c, columns: 8,
                                                     to: "\(options.output)/reconstructions/\(name)")
        return [("samples", sampleGrid), ("reconstructions", reconstructionImage)]
    }

    func checkpointBytes(_ state: ResumeState) throws -> [UInt8] {
        // Never persist NaN or Inf: skipped steps keep them out, this makes sure.
        guard allFinite(model.parameters, count: model.parameterCount),
              allFinite(optimizer.firstMoment, count: model.parameterCount),
              allFinite(optimizer.secondMoment, count: model.parameterCount) else {
            throw TrainingError.training("parameters or Adam moments are not finite at epoch \(state.epoch); no checkpoint written, the previous one is intact")
        }
        var state = state
        state.step = optimizer.step
        state.badSteps = consecutiveBadSteps
        // A checkpoint written because a signal asked the job to stop says so (`stopped_by`).
        state.stoppedBy = interrupted != 0 ? Interruption.name(interrupted) : nil
        var recorded = options
        recorded.data = Dataset.recordedSpec(options.data)
        return Checkpoint.encode(model: model, optimizer: optimizer, config: CheckpointConfig(model: modelConfig, training: recorded),
                                 resume: state, worldSize: communicator.size, dataset: dataset.name,
                                 data: trainingData, run: runRecordJSON())
    }

    /// Every rank calls this (the sharded optimizer gathers its moments); rank 0 writes
    /// latest.safetensors only, holding epoch e - 1 plus the first `nextStep` steps of epoch e.
    func writeInterruptedCheckpoint(epoch e: Int, nextStep: Int, sums: PartialEpoch) throws {
        communicator.phase = CollectivePhase(.checkpoint, step: optimizer.step)
        try reduction.shareOptimizerState(optimizer)
        guard communicator.isRoot else { return }
        try AtomicFile.write(try checkpointBytes(ResumeState(epoch: e - 1, epochStep: nextStep, partial: sums)), to: latestCheckpoint)
    }

    func writeCheckpoint(epoch e: Int) throws {
        let bytes = try checkpointBytes(ResumeState(epoch: e))
        let path = (checkpointDirectory as NSString).appendingPathComponent(String(format: "epoch-%04d.safetensors", e))
        try AtomicFile.write(bytes, to: path)
        try AtomicFile.replaceLink(latestCheckpoint, target: path, bytes: bytes)
        // Keep the newest `keepCheckpoints` epoch files.
        for old in epochCheckpoints(checkpointDirectory).dropLast(options.keepCheckpoints) {
            try? FileManager.default.removeItem(atPath: (checkpointDirectory as NSString).appendingPathComponent(old))
        }
    }
}
