// What a trained VAE is for: decoding latents into images ([0, 1], [count, D] row-major), on
// one process. `vae-dist sample` and every image grid decode through this function, and so can
// another package that loads a checkpoint (VAECheckpoint: Checkpoint.load, makeModel).

/// Decodes z [count, latent] into mean images, in batches of at most `decodeBatch(model.config)`.
public func decodeLatents(model: VAE, latents: [Float], count: Int) -> [Float] {
    let d = model.config.inputDimension, l = model.config.latent
    precondition(latents.count == count * l)
    let chunk = min(max(count, 1), decodeBatch(model.config))
    let workspace = VAEWorkspace(config: model.config, capacity: chunk)
    var images = [Float](repeating: 0, count: count * d)
    for first in stride(from: 0, to: count, by: chunk) {
        let rows = min(chunk, count - first)
        latents.withUnsafeBufferPointer { z in
            model.decode(workspace, z: z.baseAddress! + first * l, batch: rows)
        }
        images.withUnsafeMutableBufferPointer { model.meanImages(workspace, into: $0.baseAddress! + first * d, batch: rows) }
    }
    return images
}

/// The most examples one workspace holds for decoding or encoding outside training: all of them
/// for the MLP (a row's result does not depend on the batch), 64 for conv, whose patch
/// matrices take about 1.4 MB an example at 64 x 64.
public func decodeBatch(_ config: ModelConfig) -> Int {
    config.architecture == .conv ? 64 : Int.max
}
