// What a trained VAE is for: decoding latents into images ([0, 1], [count, D] row-major), on
// one process. `vae-dist sample` and every image grid decode through this function, and so can
// another package that loads a checkpoint (VAECheckpoint: Checkpoint.load, makeModel).

/// Decodes z [count, latent] into mean images.
public func decodeLatents(model: VAE, latents: [Float], count: Int) -> [Float] {
    let d = model.config.inputDimension, l = model.config.latent
    precondition(latents.count == count * l)
    let workspace = VAEWorkspace(config: model.config, capacity: max(count, 1))
    var images = [Float](repeating: 0, count: count * d)
    latents.withUnsafeBufferPointer { z in
        model.decode(workspace, z: z.baseAddress!, batch: count)
    }
    images.withUnsafeMutableBufferPointer { model.meanImages(workspace, into: $0.baseAddress!, batch: count) }
    return images
}
