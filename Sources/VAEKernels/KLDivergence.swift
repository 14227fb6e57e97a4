import Foundation

// The closed-form KL divergence between the encoder's diagonal Gaussian
// q(z|x) = N(mu, sigma^2) and the prior N(0, I), per example:
//
//   KL = 0.5 * sum_j (mu_j^2 + sigma_j^2 - log sigma_j^2 - 1),  logvar = log sigma^2
//   dKL/dmu = mu,   dKL/dlogvar = 0.5 (sigma^2 - 1)   (i.e. dKL/dsigma = sigma - 1/sigma)
//
// mu and logvar are [rows, latent] views with row stride `stride` (they live side
// by side in the encoder's fused head output [rows, 2 * latent]).

/// kl[r] = KL of row r.
public func klForward(kl: UnsafeMutablePointer<Float>, mu: UnsafePointer<Float>, logvar: UnsafePointer<Float>,
                      rows: Int, latent: Int, stride: Int) {
    for r in 0..<rows {
        var acc: Float = 0
        for j in 0..<latent {
            let m = mu[r * stride + j], lv = logvar[r * stride + j]
            acc += m * m + exp(lv) - lv - 1
        }
        kl[r] = 0.5 * acc
    }
}

/// dmu += scale * mu,  dlogvar += scale * 0.5 (exp(logvar) - 1)
public func klBackward(dmu: UnsafeMutablePointer<Float>, dlogvar: UnsafeMutablePointer<Float>,
                       mu: UnsafePointer<Float>, logvar: UnsafePointer<Float>,
                       rows: Int, latent: Int, stride: Int, scale: Float) {
    for r in 0..<rows {
        for j in 0..<latent {
            let i = r * stride + j
            dmu[i] += scale * mu[i]
            dlogvar[i] += scale * 0.5 * (exp(logvar[i]) - 1)
        }
    }
}

/// One latent dimension's KL(N(mu, exp(logvar)) || N(0, 1)) in Double: the regimes' global-batch
/// statistics and the test set's KL per dimension (the Float kernels above compute the same).
@inline(__always)
public func klTerm(mu: Double, logvar: Double) -> Double { 0.5 * (mu * mu + exp(logvar) - logvar - 1) }
