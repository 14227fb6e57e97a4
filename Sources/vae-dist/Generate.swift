import ArgumentParser
import Foundation
import VAEAnalysis
import VAECheckpoint
import VAEData
import VAEFiles
import VAEModel
import VAEOutputs
import VAESafetensors
import VAETraining

// The commands that use a trained checkpoint on one process.

/// The test (or training) images of `data` (default: the data the checkpoint was trained on),
/// checked against the checkpoint's image size. Only the split asked for is built when the
/// data allows it: the training split of synthetic:10000000 is 8 GB.
func testImages(_ data: String?, checkpoint: Checkpoint, path: String, train: Bool = false) throws -> ImageSet {
    let spec = data ?? checkpoint.config.training.data
    let dataset: Dataset
    switch Result(catching: { () throws(DataError) in try Dataset.load(spec, splits: train ? .all : .testOnly, options: checkpoint.config.training.dataOptions) }) {
    case .success(let loaded): dataset = loaded
    case .failure(let error): throw data == nil ? Dataset.fromCheckpoint(error, spec: spec, checkpoint: path) : error
    }
    let m = checkpoint.config.model
    guard dataset.test.rows == m.imageHeight, dataset.test.columns == m.imageWidth, dataset.test.channels == m.channels else {
        throw TrainingError.checkpoint(path: path, reason: "expects \(imageSize(height: m.imageHeight, width: m.imageWidth, channels: m.channels)) images but \(spec) has \(dataset.test.sizeDescription)")
    }
    return train ? dataset.train : dataset.test
}

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Decode z ~ N(0, I) into a grid of new images.")
    @OptionGroup var source: CheckpointOption
    @Option(help: "Number of samples.") var count = 64
    @Option(help: "Images per row.") var columns = 8
    @Option(help: "Output PNG.") var out = "samples.png"
    @Option(help: "Seed of the latent draws.") var seed: UInt64 = 1
    @Option(help: "Also write the latents [count, latent] and images [count, H, W] as a safetensors file.")
    var tensors: String?

    func run() throws {
        try reportingErrors {
            guard count >= 1, columns >= 1 else { throw TrainingError.option("--count and --columns must be at least 1") }
            try checkImageOutput(out)
            if let tensors { try checkOutputFolder(tensors, option: "--tensors") }
            let checkpoint = try source.load().checkpoint
            let model = checkpoint.makeModel()
            let latents = priorLatents(count: count, latent: model.config.latent, seed: seed)
            let images = decodeLatents(model: model, latents: latents, count: count)
            try writeImageGrid(images, count: count, height: model.config.imageHeight, width: model.config.imageWidth,
                               channels: model.config.channels, columns: columns, to: out)
            if let tensors {
                let h = model.config.imageHeight, w = model.config.imageWidth, c = model.config.channels
                let bytes = latents.withUnsafeBytes { z in
                    images.withUnsafeBytes { x in
                        Safetensors.encode(metadata: ["seed": String(seed)],
                                           tensors: [("latents", [count, model.config.latent], z), ("images", c == 1 ? [count, h, w] : [count, h, w, c], x)])
                    }
                }
                try AtomicFile.write(bytes, to: tensors)
            }
            print("vae-dist: wrote \(count) samples to \(out)")
        }
    }
}

struct Reconstruct: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Test images (upper rows) above their reconstructions.")
    @OptionGroup var source: CheckpointOption
    @Option(help: "Data folder (default: the checkpoint's).") var data: String?
    @Option(help: "Number of test images.") var count = 8
    @Option(help: "Images per row.") var columns = 8
    @Option(help: "Output PNG.") var out = "reconstructions.png"

    func run() throws {
        try reportingErrors {
            guard count >= 1, columns >= 1 else { throw TrainingError.option("--count and --columns must be at least 1") }
            try checkImageOutput(out)
            let (checkpoint, path) = try source.load()
            let model = checkpoint.makeModel()
            let test = try testImages(data, checkpoint: checkpoint, path: path)
            let indices = Array(0..<min(count, test.count))
            let grid = reconstructionGrid(model: model, images: test, indices: indices, columns: columns)
            let d = model.config.inputDimension
            try writeImageGrid(grid, count: grid.count / d, height: model.config.imageHeight, width: model.config.imageWidth,
                               channels: model.config.channels, columns: columns, to: out)
            print("vae-dist: wrote \(indices.count) reconstructions to \(out)")
        }
    }
}

struct Interpolate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode straight lines in latent space between pairs of test images (one row per pair).")
    @OptionGroup var source: CheckpointOption
    @Option(help: "Data folder (default: the checkpoint's).") var data: String?
    @Option(help: "Images per row, both ends included.") var steps = 10
    @Option(help: "Number of pairs (rows); pair i joins test images 2i and 2i+1.") var pairs = 4
    @Option(help: "Output PNG.") var out = "interpolation.png"

    func run() throws {
        try reportingErrors {
            guard steps >= 2, pairs >= 1 else { throw TrainingError.option("--steps must be at least 2 and --pairs at least 1") }
            try checkImageOutput(out)
            let (checkpoint, path) = try source.load()
            let model = checkpoint.makeModel()
            let test = try testImages(data, checkpoint: checkpoint, path: path)
            guard test.count >= 2 else { throw TrainingError.option("interpolation needs at least 2 test images") }
            let list = (0..<pairs).map { ((2 * $0) % test.count, (2 * $0 + 1) % test.count) }
            let images = interpolationGrid(model: model, images: test, pairs: list, steps: steps)
            try writeImageGrid(images, count: pairs * steps, height: model.config.imageHeight, width: model.config.imageWidth,
                               channels: model.config.channels, columns: steps, to: out)
            print("vae-dist: wrote \(pairs) interpolations of \(steps) steps to \(out)")
        }
    }
}

struct Traverse: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "One row per latent dimension: it sweeps from -range to +range, the others stay at 0.")
    @OptionGroup var source: CheckpointOption
    @Option(help: "Images per row.") var steps = 11
    @Option(help: "Sweep from -range to +range (prior standard deviations).") var range: Float = 3
    @Option(help: "Output PNG.") var out = "traversal.png"

    func run() throws {
        try reportingErrors {
            guard steps >= 2 else { throw TrainingError.option("--steps must be at least 2 (got \(steps))") }
            guard range > 0, range.isFinite else { throw TrainingError.option("--range must be a positive number (got \(range))") }
            try checkImageOutput(out)
            let checkpoint = try source.load().checkpoint
            let model = checkpoint.makeModel()
            let images = traversalGrid(model: model, steps: steps, range: -range...range)
            try writeImageGrid(images, count: model.config.latent * steps, height: model.config.imageHeight,
                               width: model.config.imageWidth, channels: model.config.channels, columns: steps, to: out)
            print("vae-dist: wrote a traversal of \(model.config.latent) latent dimensions to \(out)")
        }
    }
}
