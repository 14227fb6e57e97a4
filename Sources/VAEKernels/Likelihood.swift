import Foundation

// Reconstruction terms -log p(x | z) of the decoder, fused with their gradient so
// the logits are read once. Each returns the per-example sum over pixels in
// `recon[rows]` and, when `dlogits` is given, writes d(scale * recon)/d(logits).

/// Bernoulli likelihood from logits l (sigmoid output), numerically stable form:
///   BCE(l, x) = max(l, 0) - l x + log(1 + exp(-|l|)),   dBCE/dl = sigmoid(l) - x.
/// The log terms of a row are summed as the log of their product: each lane multiplies up to 64
/// factors 1 + exp(-|l|) in (1, 2] (at most 2^64, far from overflow) before one log, instead of
/// one log per element. Rounding the product costs at most ~6e-8 nats per pixel (a factor 1 + e
/// with e < 6e-8, |l| > 16.6, rounds to 1): far below the float sum of a row of ~230 nats
/// (`bernoulliMatchesNaive`), though relatively more on rows whose loss is near 0.
@inlinable
public func bernoulliNLLForwardBackward<ISA: ISATag>(_: ISA.Type, recon: UnsafeMutablePointer<Float>, dlogits: UnsafeMutablePointer<Float>?,
                                        logits: UnsafePointer<Float>, targets: UnsafePointer<Float>,
                                        rows: Int, columns: Int, scale: Float) {
    let full = columns & ~15
    let zero = SIMD16<Float>(), one = SIMD16<Float>(repeating: 1)
    for r in 0..<rows {
        let l = logits + r * columns, x = targets + r * columns
        let d = dlogits.map { $0 + r * columns }
        var acc = SIMD16<Float>()
        var product = one, factors = 0
        var c = 0
        while c < full {
            let lv = load16(l + c), xv = load16(x + c)
            let e = vexp(ISA.self, vmin(lv, -lv))                 // exp(-|l|) in (0, 1]
            let onePlus = one + e
            acc += vmax(lv, zero) - lv * xv
            product *= onePlus
            factors += 1
            if factors == 64 {
                acc += vlog(ISA.self, product)
                product = one
                factors = 0
            }
            if let d {
                let inverse = one / onePlus
                let sigmoid = (e * inverse).replacing(with: inverse, where: lv .>= zero)
                store16((sigmoid - xv) * scale, d + c)
            }
            c += 16
        }
        acc += vlog(ISA.self, product)
        var tail: Float = 0
        while c < columns {  // the same formulas, one element at a time
            let lv = l[c], xv = x[c]
            let e = exp(-abs(lv))
            tail += max(lv, 0) - lv * xv + log1p(e)
            if let d { d[c] = ((lv >= 0 ? 1 : e) / (1 + e) - xv) * scale }
            c += 1
        }
        recon[r] = acc.sum() + tail
    }
}

/// Per-pixel Gaussian likelihood with mean = the decoder output and a learned
/// per-pixel log-variance (clamped to `GaussianLikelihood.logvarRange`):
///   NLL(mu, x) = 0.5 (log 2 pi + lv + (x - mu)^2 exp(-lv))
///   dNLL/dmu = (mu - x) exp(-lv),   dNLL/dlv = 0.5 (1 - (x - mu)^2 exp(-lv))   (0 where clamped)
/// The dlogvar gradient is accumulated (+=) over rows.
public func gaussianNLLForwardBackward(recon: UnsafeMutablePointer<Float>, dmean: UnsafeMutablePointer<Float>?,
                                       dlogvar: UnsafeMutablePointer<Float>?,
                                       mean: UnsafePointer<Float>, logvar: UnsafePointer<Float>,
                                       targets: UnsafePointer<Float>, rows: Int, columns: Int, scale: Float) {
    let lo = GaussianLikelihood.logvarRange.lowerBound, hi = GaussianLikelihood.logvarRange.upperBound
    let logTwoPi = Float(log(2 * Double.pi))
    for r in 0..<rows {
        var acc = 0.0
        for c in 0..<columns {
            let raw = logvar[c]
            let lv = min(max(raw, lo), hi)
            let inverseVariance = exp(-lv)
            let diff = mean[r * columns + c] - targets[r * columns + c]
            let sq = diff * diff * inverseVariance
            acc += Double(0.5 * (logTwoPi + lv + sq))
            if let dmean { dmean[r * columns + c] = scale * diff * inverseVariance }
            if let dlogvar, raw > lo, raw < hi { dlogvar[c] += scale * 0.5 * (1 - sq) }
        }
        recon[r] = Float(acc)
    }
}

public enum GaussianLikelihood {
    /// Variance between e^-6 (std 0.05) and e^2: keeps the density bounded on pixels
    /// that never change (Fashion-MNIST borders), where the NLL would run to -infinity.
    public static let logvarRange: ClosedRange<Float> = -6...2
}

// MARK: - Reference

public func bernoulliNLLNaive(recon: UnsafeMutablePointer<Float>, dlogits: UnsafeMutablePointer<Float>?,
                              logits: UnsafePointer<Float>, targets: UnsafePointer<Float>,
                              rows: Int, columns: Int, scale: Float) {
    for r in 0..<rows {
        var acc = 0.0
        for c in 0..<columns {
            let l = Double(logits[r * columns + c]), x = Double(targets[r * columns + c])
            let p = 1 / (1 + exp(-l))
            acc += -(x * log(p) + (1 - x) * log1p(-p))
            if !acc.isFinite { acc = Double.infinity }
            dlogits?[r * columns + c] = Float(Double(scale) * (p - x))
        }
        recon[r] = Float(acc)
    }
}
