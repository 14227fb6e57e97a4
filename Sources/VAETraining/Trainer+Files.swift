import Foundation
import VAEKernels

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

    /// The epoch's sample and reconstruction grids, as files and for TensorBoard.
    func writeImages(epoch e: Int) throws -> [(tag: String, image: EncodedImage)] {
        let name = String(format: "epoch-%04d.png", e)
        let h = modelConfig.imageHeight, w = modelConfig.imageWidth
        let samples = samplePrior(model: model, count: 64, seed: options.seed)
        let sampleGrid = try writeImageGrid(samples, count: 64, height: h, width: w, columns: 8,
                                            to: "\(options.output)/samples/\(name)")
        let indices = Array(0..<min(16, dataset.test.count))
        let grid = reconstructionGrid(model: model, images: dataset.test, indices: indices, columns: 8)
        let reconstructionImage = try writeImageGrid(grid, count: grid.count / (h * w), height: h, width: w, columns: 8,
                                                     to: "\(options.output)/reconstructions/\(name)")
        return [("samples", sampleGrid), ("reconstructions", reconstructionImage)]
    }

    func checkpointBytes(epoch e: Int, extra: [String: String] = [:]) throws -> [UInt8] {
        // Never persist NaN or Inf: skipped steps keep them out, this makes sure.
        guard allFinite(model.parameters, count: model.parameterCount),
              allFinite(optimizer.firstMoment, count: model.parameterCount),
              allFinite(optimizer.secondMoment, count: model.parameterCount) else {
            throw TrainingError.training("parameters or Adam moments are not finite at epoch \(e); no checkpoint written, the previous one is intact")
        }
        var metadata = extra
        metadata["bad_steps"] = String(consecutiveBadSteps)
        return Checkpoint.encode(model: model, optimizer: optimizer, config: CheckpointConfig(model: modelConfig, training: options),
                                 epoch: e, worldSize: communicator.size, dataset: dataset.name, extra: metadata)
    }

    /// latest.safetensors only, holding epoch e - 1 plus the first `nextStep` steps of epoch e.
    func writeInterruptedCheckpoint(epoch e: Int, nextStep: Int, sums: PartialEpoch) throws {
        let extra = ["epoch_step": String(nextStep), "epoch_recon": "\(sums.recon)", "epoch_kl": "\(sums.kl)",
                     "epoch_examples": String(sums.examples), "epoch_seconds": "\(sums.seconds)"]
        try AtomicFile.write(try checkpointBytes(epoch: e - 1, extra: extra), to: latestCheckpoint)
    }

    func writeCheckpoint(epoch e: Int) throws {
        let bytes = try checkpointBytes(epoch: e)
        let path = (checkpointDirectory as NSString).appendingPathComponent(String(format: "epoch-%04d.safetensors", e))
        try AtomicFile.write(bytes, to: path)
        try AtomicFile.replaceLink(latestCheckpoint, target: path, bytes: bytes)
        // Keep the newest `keepCheckpoints` epoch files.
        for old in epochCheckpoints(checkpointDirectory).dropLast(options.keepCheckpoints) {
            try? FileManager.default.removeItem(atPath: (checkpointDirectory as NSString).appendingPathComponent(old))
        }
    }
}
