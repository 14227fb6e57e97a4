import VAEData
import VAEKernels
import VAEModel

// What a trained VAE is for: decoding latents into images. Every function
// returns images in [0, 1], [count, D] row-major, and runs on one process.

/// The encoder's posterior means mu [count, latent] of images `indices`.
public func encodeMeans(model: VAE, images: ImageSet, indices: [Int]) -> [Float] {
    let d = model.config.inputDimension, l = model.config.latent
    let chunk = min(max(indices.count, 1), decodeBatch(model.config))
    let workspace = VAEWorkspace(config: model.config, capacity: chunk)
    let x = allocateAligned(chunk * d)
    defer { x.deallocate() }
    var means = [Float](repeating: 0, count: indices.count * l)
    for first in stride(from: 0, to: indices.count, by: chunk) {
        let rows = min(chunk, indices.count - first)
        indices[first..<(first + rows)].map { Int32($0) }.withUnsafeBufferPointer {
            fillBatch(x, from: images, indices: $0, binarize: false, generator: Philox4x32(seed: 0), epoch: 0)
        }
        model.encode(workspace, x: x, batch: rows)
        for r in 0..<rows {
            for j in 0..<l { means[(first + r) * l + j] = workspace.heads[r * 2 * l + j] }
        }
    }
    return means
}

/// z ~ N(0, I) for sample i is a function of (seed, i): a grid for a fixed seed shows
/// the same latents decoded by each epoch's model.
public func priorLatents(count: Int, latent: Int, seed: UInt64) -> [Float] {
    var z = [Float](repeating: 0, count: count * latent)
    let generator = Philox4x32(seed: seed)
    z.withUnsafeMutableBufferPointer { p in
        for i in 0..<count { fillNormal(p.baseAddress! + i * latent, count: latent, generator: generator, stream: .prior, epoch: 0, index: i) }
    }
    return z
}

/// Sampling from the prior: decode z ~ N(0, I).
public func samplePrior(model: VAE, count: Int, seed: UInt64) -> [Float] {
    decodeLatents(model: model, latents: priorLatents(count: count, latent: model.config.latent, seed: seed), count: count)
}

/// Test images and their reconstructions (decoded posterior means), as two rows
/// per group of `columns`: inputs above outputs.
public func reconstructionGrid(model: VAE, images: ImageSet, indices: [Int], columns: Int) -> [Float] {
    let d = model.config.inputDimension
    let recon = decodeLatents(model: model, latents: encodeMeans(model: model, images: images, indices: indices), count: indices.count)
    var out = [Float]()
    var start = 0
    while start < indices.count {
        let end = min(start + columns, indices.count)
        var inputs = [Float](repeating: 0, count: (end - start) * d)
        indices[start..<end].map { Int32($0) }.withUnsafeBufferPointer { rows in
            fillBatch(&inputs, from: images, indices: rows, binarize: false, generator: Philox4x32(seed: 0), epoch: 0)
        }
        out += inputs
        out += [Float](repeating: 0, count: (columns - (end - start)) * d)
        out += recon[(start * d)..<(end * d)]
        out += [Float](repeating: 0, count: (columns - (end - start)) * d)
        start = end
    }
    return out
}

/// Rows of `steps` images decoded along the straight line between the posterior
/// means of consecutive pairs of `indices`.
public func interpolationGrid(model: VAE, images: ImageSet, pairs: [(Int, Int)], steps: Int) -> [Float] {
    let l = model.config.latent
    var latents = [Float]()
    for (a, b) in pairs {
        let mu = encodeMeans(model: model, images: images, indices: [a, b])
        for s in 0..<steps {
            let t = steps == 1 ? 0 : Float(s) / Float(steps - 1)
            for j in 0..<l { latents.append((1 - t) * mu[j] + t * mu[l + j]) }
        }
    }
    return decodeLatents(model: model, latents: latents, count: pairs.count * steps)
}

/// One row per latent dimension: that dimension swept over `range` in `steps`, the
/// others fixed at `base` (default the prior mean 0). Disentangled dimensions show
/// one factor of variation each.
public func traversalGrid(model: VAE, base: [Float]? = nil, steps: Int, range: ClosedRange<Float> = -3...3) -> [Float] {
    let l = model.config.latent
    let origin = base ?? [Float](repeating: 0, count: l)
    var latents = [Float]()
    for j in 0..<l {
        for s in 0..<steps {
            var z = origin
            z[j] = range.lowerBound + (range.upperBound - range.lowerBound) * Float(s) / Float(max(steps - 1, 1))
            latents += z
        }
    }
    return decodeLatents(model: model, latents: latents, count: l * steps)
}
