import Foundation

// The reparameterization trick: z = mu + sigma * eps with eps ~ N(0, I) drawn
// outside the graph, so z is a deterministic, differentiable function of
// (mu, logvar) and gradients flow to both:
//
//   sigma = exp(0.5 logvar)
//   dz/dmu = 1,   dz/dlogvar = 0.5 * sigma * eps
//
// mu/logvar have row stride `stride` (0: one row shared by all); z, dz and eps are [rows, latent].

public func reparameterizeForward(z: UnsafeMutablePointer<Float>, mu: UnsafePointer<Float>, logvar: UnsafePointer<Float>,
                                  eps: UnsafePointer<Float>, rows: Int, latent: Int, stride: Int) {
    for r in 0..<rows {
        for j in 0..<latent {
            let i = r * stride + j
            z[r * latent + j] = mu[i] + exp(0.5 * logvar[i]) * eps[r * latent + j]
        }
    }
}

/// dmu += dz,  dlogvar += dz * eps * 0.5 * sigma
public func reparameterizeBackward(dmu: UnsafeMutablePointer<Float>, dlogvar: UnsafeMutablePointer<Float>,
                                   dz: UnsafePointer<Float>, logvar: UnsafePointer<Float>, eps: UnsafePointer<Float>,
                                   rows: Int, latent: Int, stride: Int) {
    for r in 0..<rows {
        for j in 0..<latent {
            let i = r * stride + j, k = r * latent + j
            dmu[i] += dz[k]
            dlogvar[i] += dz[k] * eps[k] * 0.5 * exp(0.5 * logvar[i])
        }
    }
}
