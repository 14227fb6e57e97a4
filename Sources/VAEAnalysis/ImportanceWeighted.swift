import Foundation
import VAEData
import VAEKernelDispatch
import VAEKernels
import VAEModel

// The importance-weighted estimate of log p(x) (Burda, Grosse & Salakhutdinov 2016),
// the standard VAE test metric with K = 5000:
//
//   log p(x) ~= log (1/K) sum_k w_k,   w_k = p(x|z_k) p(z_k) / q(z_k|x),   z_k ~ q(z|x)
//
// It is a lower bound on log p(x) that tightens as K grows (K = 1 is the ELBO in
// expectation). With z = mu + sigma * eps the 2 pi terms of log p(z) and log q(z|x) cancel:
//   log p(z) - log q(z|x) = sum_j [ -z_j^2 / 2 + logvar_j / 2 + eps_j^2 / 2 ].
// The K decodes of one example run as batches of up to `workspace.capacity` rows.

/// Sum over `range` of the estimate of log p(x), in nats (negate and divide for the NLL).
public func importanceWeightedLogLikelihood(model: VAE, workspace: VAEWorkspace, images: ImageSet, range: Range<Int>,
                                            samples: Int, binarize: Bool, seed: UInt64) -> Double {
    precondition(samples >= 1)
    let d = model.config.inputDimension, l = model.config.latent
    let capacity = workspace.capacity
    let generator = Philox4x32(seed: seed)
    let x = allocateAligned(d), targets = allocateAligned(capacity * d)
    let eps = allocateAligned(capacity * l), z = allocateAligned(capacity * l)
    let mu = allocateAligned(l), logvar = allocateAligned(l)
    defer { for p in [x, targets, eps, z, mu, logvar] { p.deallocate() } }
    var total = 0.0
    for example in range {
        fillBatch(x, from: images, range: example..<(example + 1), binarize: binarize, generator: generator, epoch: testEpochKey)
        model.encode(workspace, x: x, batch: 1)
        mu.update(from: workspace.heads, count: l)
        logvar.update(from: workspace.heads + l, count: l)
        for r in 0..<capacity { (targets + r * d).update(from: x, count: d) }
        // Streaming log-sum-exp over the K log weights.
        var maximum = -Double.infinity, sum = 0.0
        var done = 0
        while done < samples {
            let batch = min(capacity, samples - done)
            for r in 0..<batch {
                fillNormal(eps + r * l, count: l, generator: generator, stream: .importance, epoch: done + r, index: example)
            }
            reparameterizeForward(z: z, mu: mu, logvar: logvar, eps: eps, rows: batch, latent: l, stride: 0)
            model.decode(workspace, z: z, batch: batch)
            reconstructionNLL(model: model, workspace: workspace, targets: targets, batch: batch)
            for r in 0..<batch {
                var logRatio = 0.0  // log p(z) - log q(z|x)
                for j in 0..<l {
                    let e = Double(eps[r * l + j]), zj = Double(z[r * l + j])
                    logRatio += -0.5 * zj * zj + 0.5 * Double(logvar[j]) + 0.5 * e * e
                }
                let logWeight = -Double(workspace.recon[r]) + logRatio
                if logWeight > maximum {
                    sum = sum * exp(maximum - logWeight) + 1
                    maximum = logWeight
                } else {
                    sum += exp(logWeight - maximum)
                }
            }
            done += batch
        }
        total += maximum + log(sum) - log(Double(samples))
    }
    return total
}

/// -log p(x|z) per row of workspace.logits into workspace.recon.
func reconstructionNLL(model: VAE, workspace: VAEWorkspace, targets: UnsafePointer<Float>, batch: Int) {
    let d = model.config.inputDimension
    switch model.config.likelihood {
    case .bernoulli:
        Kernels.active.bernoulliNLLForwardBackward(recon: workspace.recon, dlogits: nil, logits: workspace.logits,
                                                   targets: targets, rows: batch, columns: d, scale: 0)
    case .gaussian:
        gaussianNLLForwardBackward(recon: workspace.recon, dmean: nil, dlogvar: nil, mean: workspace.logits,
                                   logvar: model.parameters + model.layout.outputLogvar!, targets: targets,
                                   rows: batch, columns: d, scale: 0)
    }
}
