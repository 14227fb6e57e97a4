import ArgumentParser
import Foundation
import VAEAnalysis
import VAEData
import VAEDistributed
import VAEFiles
import VAEKernels
import VAEModel
import VAEOutputs
import VAETraining

// The pictures of the latent space (Sources/VAETraining/LatentSpace.swift). Under mpirun each
// rank encodes its shard of the test set, the means are gathered, and rank 0 writes the file.

/// Refuses a 1-dimensional latent space: there is no plane to draw.
func checkPlane(_ model: VAE, command: String, path: String) throws {
    guard model.config.latent >= 2 else {
        throw TrainingError.checkpoint(path: path, reason: "has 1 latent dimension; \(command) draws a plane of the latent space and needs at least 2 (train with --latent 2 or more)")
    }
}

struct LatentMap: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "latent-map",
        abstract: "Plot the test set's encoder means, one color per label, under the prior's 1- and 2-sigma circles.",
        discussion: """
            With 2 latent dimensions the axes are z1 and z2; with more, the means are projected on the \
            top 2 principal components of their covariance. The legend on the right holds one color \
            swatch per label value present, the smallest at the top (none for more than 20 values); the caption (axes, scale, aggregate_kl, \
            posterior_std_mean) is stored in the PNG's tEXt metadata and printed. Data without \
            labels is drawn in one color. Under mpirun the test set is encoded in shards and gathered; \
            rank 0 writes the file.
            """)
    @OptionGroup var source: CheckpointOption
    @Option(help: "Data folder (default: the checkpoint's).") var data: String?
    @Option(help: "Plot only the first N test images.") var limit: Int?
    @Option(help: "Output PNG.") var out = "latent-map.png"

    func run() throws {
        try reportingErrors {
            if let limit, limit < 1 { throw TrainingError.option("--limit must be at least 1 (got \(limit))") }
            try checkImageOutput(out)
            let communicator = try startEvaluationCommunicator()
            let (checkpoint, path) = try source.load(isRoot: communicator.isRoot)
            let model = checkpoint.makeModel()
            try checkPlane(model, command: "latent-map", path: path)
            let test = try testImages(data, checkpoint: checkpoint, path: path)
            let count = min(limit ?? test.count, test.count)
            let posterior = try gatherPosterior(model: model, images: test, count: count, communicator: communicator)
            if communicator.isRoot {
                let map = latentMap(posterior: posterior, labels: test.labels.map { Array($0[0..<count]) },
                                    autoencoder: model.config.autoencoder)
                try AtomicFile.write(map.png, to: out)
                print("vae-dist: wrote the latent map of \(count) test images to \(out) (\(map.image.width)x\(map.image.height))")
                print(map.caption)
            }
            communicator.finalize()
        }
    }
}

struct Manifold: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode a grid of z at Gaussian quantiles: the learned manifold (Kingma and Welling 2014, figure 4).",
        discussion: """
            Cell (row r, column c) decodes z = q_c * a1 + q_(steps-1-r) * a2 with \
            q_i = Phi^-1((i + 0.5) / steps), the standard normal quantiles of evenly spaced \
            probabilities: left to right along a1, bottom to top along a2. With 2 latent dimensions \
            a1 and a2 are the axes z1 and z2; with more they are the top 2 principal directions of \
            the aggregate posterior (the covariance of the test set's encoder means, gathered over \
            ranks under mpirun), which needs the test images (--data). Rank 0 writes the file.
            """)
    @OptionGroup var source: CheckpointOption
    @Option(help: "Data folder for the principal directions when latent > 2 (default: the checkpoint's).") var data: String?
    @Option(help: "Images per row and per column.") var steps = 20
    @Option(help: "Output PNG.") var out = "manifold.png"

    func run() throws {
        try reportingErrors {
            guard steps >= 2, steps <= 100 else { throw TrainingError.option("--steps must be between 2 and 100 (got \(steps))") }
            try checkImageOutput(out)
            let communicator = try startEvaluationCommunicator()
            let (checkpoint, path) = try source.load(isRoot: communicator.isRoot)
            let model = checkpoint.makeModel()
            try checkPlane(model, command: "manifold", path: path)
            var axes: [[Double]] = [[1, 0], [0, 1]]
            var plane = "latent dimensions z1 (left to right) and z2 (bottom to top)"
            if model.config.latent > 2 {
                let test = try testImages(data, checkpoint: checkpoint, path: path)
                let posterior = try gatherPosterior(model: model, images: test, count: test.count, communicator: communicator)
                axes = AggregatePosterior(posterior, autoencoder: model.config.autoencoder).planeAxes
                plane = "the top 2 principal directions of the aggregate posterior of \(test.count) test images (left to right, bottom to top)"
            }
            if communicator.isRoot {
                let images = manifoldGrid(model: model, steps: steps, axes: axes)
                try writeImageGrid(images, count: steps * steps, height: model.config.imageHeight, width: model.config.imageWidth,
                                   channels: model.config.channels,
                                   columns: steps, to: out)
                let q = manifoldQuantiles(steps: steps)
                print("vae-dist: wrote a \(steps)x\(steps) manifold to \(out): z from \(jsonNumber(q[0])) to \(jsonNumber(q[steps - 1])) along \(plane)")
            }
            communicator.finalize()
        }
    }
}
