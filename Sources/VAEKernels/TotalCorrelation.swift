import Foundation

// beta-TCVAE (Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs"): the KL term
// split into three parts, estimated with minibatch-weighted sampling (MWS) over a batch of M
// examples drawn from a dataset of N, as in the authors' code (rtqichen/beta-tcvae,
// vae_quant.py, the mss=False path). With log q(z_i|x_j) = sum_d log N(z_id; mu_jd, sigma_jd^2):
//
//   logqz_condx_i      = log q(z_i | x_i)
//   logqz_i            = logsumexp_j log q(z_i | x_j) - log(N M)
//   logqz_prodmargin_i = sum_d (logsumexp_j log q(z_id | x_j) - log(N M))
//   logpz_i            = log N(z_i; 0, I)
//
//   mi_i   = logqz_condx_i - logqz_i              index-code mutual information
//   tc_i   = logqz_i - logqz_prodmargin_i         total correlation
//   dwkl_i = logqz_prodmargin_i - logpz_i         dimension-wise KL
//
// and the loss per example is recon_i + alpha mi_i + beta tc_i + gamma dwkl_i (alpha = gamma = 1:
// beta weights the total correlation alone). Every example's z is scored under every example's
// q: the terms couple the whole batch, O(M^2 D). Computed in Double, in one fixed order, from
// the batch's (mu | logvar | z) rows, so every rank that holds the same rows gets the same bits.
//
// Gradients are partial derivatives with mu, logvar and z as independent inputs (the caller
// chains dz through z = mu + exp(0.5 logvar) eps). With delta = z_id - mu_jd, v = exp(logvar_jd):
//   d log N / dz = -delta / v,   d log N / dmu = delta / v,   d log N / dlogvar = 0.5 (delta^2 / v - 1),
// and the logsumexps' derivatives are the softmax weights over j.

/// The weights of the three parts in the loss.
public struct TotalCorrelationWeights: Sendable, Equatable {
    public var alpha: Double, beta: Double, gamma: Double
    public init(alpha: Double = 1, beta: Double, gamma: Double = 1) {
        self.alpha = alpha
        self.beta = beta
        self.gamma = gamma
    }
}

/// Scratch for `totalCorrelationForwardBackward` on batches of up to `capacity` rows.
public final class TotalCorrelationWorkspace: @unchecked Sendable {
    public let capacity: Int, latent: Int
    let density: UnsafeMutablePointer<Double>    // [capacity, latent] log N(z_id; mu_jd, v_jd) for one i, then its exp - max
    let inverseVariance: UnsafeMutablePointer<Double>  // [capacity, latent]
    let gradient: UnsafeMutablePointer<Double>   // [capacity, 3 latent] (dmu | dlogvar | dz) accumulated
    let joint: UnsafeMutablePointer<Double>      // [capacity] log q(z_i | x_j) for one i, then its exp - max
    let marginal: UnsafeMutablePointer<Double>   // [latent] 1 / sum_j exp(... - max) for one i

    public init(capacity: Int, latent: Int) {
        self.capacity = capacity
        self.latent = latent
        density = .allocate(capacity: capacity * latent)
        inverseVariance = .allocate(capacity: capacity * latent)
        gradient = .allocate(capacity: capacity * 3 * latent)
        joint = .allocate(capacity: capacity)
        marginal = .allocate(capacity: latent)
    }

    deinit {
        density.deallocate()
        inverseVariance.deallocate()
        gradient.deallocate()
        joint.deallocate()
        marginal.deallocate()
    }
}

/// For the batch `latents` [rows, 3 latent] = (mu | logvar | z) per row: writes
/// terms [rows, 3] = (mi, tc, dwkl) per example and, when `gradient` [rows, 3 latent] is given,
/// gradient = scale * d(sum_i alpha mi_i + beta tc_i + gamma dwkl_i) / d(mu | logvar | z).
public func totalCorrelationForwardBackward(terms: UnsafeMutablePointer<Double>, gradient: UnsafeMutablePointer<Float>?,
                                            latents: UnsafePointer<Float>, rows: Int, latent: Int, datasetSize: Int,
                                            weights: TotalCorrelationWeights, scale: Double,
                                            workspace ws: TotalCorrelationWorkspace) {
    precondition(rows <= ws.capacity && latent == ws.latent, "total correlation workspace too small")
    let l = latent, width = 3 * latent
    let logNM = log(Double(datasetSize) * Double(rows))
    for j in 0..<rows {
        for d in 0..<l { ws.inverseVariance[j * l + d] = exp(-Double(latents[j * width + l + d])) }
    }
    ws.gradient.update(repeating: 0, count: rows * width)
    for i in 0..<rows {
        let zi = latents + i * width + 2 * l
        let jointMax = scoreUnderEveryPosterior(zi, latents: latents, rows: rows, latent: l, workspace: ws)
        let condx = ws.joint[i]
        let jointSum = softmaxNumerators(ws.joint, count: rows, max: jointMax)
        let logqz = jointMax + log(jointSum) - logNM
        let prodMarginals = logProductOfMarginals(rows: rows, latent: l, logNM: logNM, workspace: ws)
        let logpz = logPrior(zi, latent: l)
        terms[i * 3] = condx - logqz
        terms[i * 3 + 1] = logqz - prodMarginals
        terms[i * 3 + 2] = prodMarginals - logpz
        guard gradient != nil else { continue }
        addGradient(ofExample: i, latents: latents, rows: rows, latent: l, weights: weights, jointSum: jointSum, workspace: ws)
    }
    if let gradient {
        for k in 0..<(rows * width) { gradient[k] = Float(scale * ws.gradient[k]) }
    }
}

/// log N(z_id; mu_jd, v_jd) for every j, d into `ws.density` and log q(z_i | x_j) (their sum over
/// d) into `ws.joint`; returns the largest log q(z_i | x_j).
private func scoreUnderEveryPosterior(_ zi: UnsafePointer<Float>, latents: UnsafePointer<Float>, rows: Int, latent l: Int,
                                      workspace ws: TotalCorrelationWorkspace) -> Double {
    let logTwoPi = log(2 * Double.pi), width = 3 * l
    var jointMax = -Double.infinity
    for j in 0..<rows {
        let mu = latents + j * width, logvar = mu + l
        var sum = 0.0
        for d in 0..<l {
            let delta = Double(zi[d]) - Double(mu[d])
            let value = -0.5 * (logTwoPi + Double(logvar[d]) + delta * delta * ws.inverseVariance[j * l + d])
            ws.density[j * l + d] = value
            sum += value
        }
        ws.joint[j] = sum
        jointMax = max(jointMax, sum)
    }
    return jointMax
}

/// values[j] = exp(values[j] - max), kept (the softmax weights' numerators) for the gradient;
/// returns their sum: the logsumexp is max + log(sum).
private func softmaxNumerators(_ values: UnsafeMutablePointer<Double>, count: Int, max: Double) -> Double {
    var sum = 0.0
    for j in 0..<count {
        let e = exp(values[j] - max)
        values[j] = e
        sum += e
    }
    return sum
}

/// log of the product of the marginals, sum_d (logsumexp_j log q(z_id | x_j) - log(N M)), from
/// `ws.density`, whose columns become their softmax numerators (and `ws.marginal` their
/// 1 / sums) for the gradient.
private func logProductOfMarginals(rows: Int, latent l: Int, logNM: Double, workspace ws: TotalCorrelationWorkspace) -> Double {
    var prodMarginals = 0.0
    for d in 0..<l {
        var m = -Double.infinity
        for j in 0..<rows { m = max(m, ws.density[j * l + d]) }
        var s = 0.0
        for j in 0..<rows {
            let e = exp(ws.density[j * l + d] - m)
            ws.density[j * l + d] = e
            s += e
        }
        prodMarginals += m + log(s) - logNM
        ws.marginal[d] = 1 / s
    }
    return prodMarginals
}

/// log N(z_i; 0, I).
private func logPrior(_ zi: UnsafePointer<Float>, latent l: Int) -> Double {
    let logTwoPi = log(2 * Double.pi)
    var logpz = 0.0
    for d in 0..<l { logpz += -0.5 * (logTwoPi + Double(zi[d]) * Double(zi[d])) }
    return logpz
}

/// Adds example i's loss gradient to `ws.gradient`, from the softmax numerators that
/// `softmaxNumerators` and `logProductOfMarginals` left in the workspace. The loss of example i
/// in the four log densities: alpha condx + (beta - alpha) logqz + (gamma - beta) prodmarginals
/// - gamma logpz.
private func addGradient(ofExample i: Int, latents: UnsafePointer<Float>, rows: Int, latent l: Int,
                         weights: TotalCorrelationWeights, jointSum: Double, workspace ws: TotalCorrelationWorkspace) {
    let cCondx = weights.alpha, cJoint = weights.beta - weights.alpha, cMarginal = weights.gamma - weights.beta
    let cPrior = -weights.gamma
    let width = 3 * l
    let zi = latents + i * width + 2 * l
    // g_ijd = cJoint softmax_j(joint) + cMarginal softmax_j(density_.d) (+ cCondx when j = i):
    // the weight of log N(z_id; mu_jd, v_jd) in example i's loss.
    let gzi = ws.gradient + i * width + 2 * l
    let inverseJointSum = 1 / jointSum
    for j in 0..<rows {
        let mu = latents + j * width
        let gmu = ws.gradient + j * width, glogvar = gmu + l
        let jointWeight = cJoint * ws.joint[j] * inverseJointSum + (j == i ? cCondx : 0)
        for d in 0..<l {
            let g = jointWeight + cMarginal * ws.density[j * l + d] * ws.marginal[d]
            let iv = ws.inverseVariance[j * l + d]
            let delta = Double(zi[d]) - Double(mu[d])
            gzi[d] -= g * delta * iv
            gmu[d] += g * delta * iv
            glogvar[d] += g * 0.5 * (delta * delta * iv - 1)
        }
    }
    for d in 0..<l { gzi[d] -= cPrior * Double(zi[d]) }  // d(-0.5 z^2)/dz = -z
}
