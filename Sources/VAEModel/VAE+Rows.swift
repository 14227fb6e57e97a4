import VAEKernelDispatch
import VAEKernels

// The per-example kernels of VAE.forward and VAE.backward (and the gradient reset) as work on a
// range of rows or elements, so the kernel threads can take blocks of them
// (KernelThreads.forEachRange). Each row is computed
// exactly as on one thread; the sums over rows (the batch loss) are taken later, in one order.

/// z = mu + exp(0.5 logvar) * eps for rows `rows` (z = mu without eps).
struct ReparameterizeRows: RangeWork {
    let z: UnsafeMutablePointer<Float>      // [batch, latent]
    let heads: UnsafePointer<Float>         // [batch, 2 * latent] (mu | logvar)
    let eps: UnsafePointer<Float>?          // [batch, latent]
    let latent: Int

    @inline(__always)
    func run(_ rows: Range<Int>, thread: Int) {
        let l = latent, r0 = rows.lowerBound
        guard let eps else {
            for r in rows { (z + r * l).update(from: heads + r * 2 * l, count: l) }
            return
        }
        reparameterizeForward(z: z + r0 * l, mu: heads + r0 * 2 * l, logvar: heads + r0 * 2 * l + l,
                              eps: eps + r0 * l, rows: rows.count, latent: l, stride: 2 * l)
    }
}

/// recon[r] and kl[r] for rows `rows`, and d(scale * recon)/d(logits) when `dlogits` is given.
struct LossRows: RangeWork {
    let likelihood: Likelihood
    let recon: UnsafeMutablePointer<Float>, kl: UnsafeMutablePointer<Float>  // [batch]
    let dlogits: UnsafeMutablePointer<Float>?                                // [batch, D]
    let logits: UnsafePointer<Float>, targets: UnsafePointer<Float>          // [batch, D]
    let heads: UnsafePointer<Float>                                          // [batch, 2 * latent]
    /// The gaussian likelihood's per-pixel log-variance and its gradient (summed over rows:
    /// only ever given with a single range).
    let outputLogvar: UnsafePointer<Float>?, dOutputLogvar: UnsafeMutablePointer<Float>?
    let inputDimension: Int, latent: Int, scale: Float, withKL: Bool

    @inline(__always)
    func run(_ rows: Range<Int>, thread: Int) {
        let d = inputDimension, l = latent, r0 = rows.lowerBound, n = rows.count
        let dl = dlogits.map { $0 + r0 * d }
        switch likelihood {
        case .bernoulli:
            Kernels.active.bernoulliNLLForwardBackward(recon: recon + r0, dlogits: dl, logits: logits + r0 * d,
                                                       targets: targets + r0 * d, rows: n, columns: d, scale: scale)
        case .gaussian:
            gaussianNLLForwardBackward(recon: recon + r0, dmean: dl, dlogvar: dOutputLogvar, mean: logits + r0 * d,
                                       logvar: outputLogvar!, targets: targets + r0 * d, rows: n, columns: d, scale: scale)
        }
        if withKL {
            klForward(kl: kl + r0, mu: heads + r0 * 2 * l, logvar: heads + r0 * 2 * l + l, rows: n, latent: l, stride: 2 * l)
        } else {
            (kl + r0).update(repeating: 0, count: n)
        }
    }
}

/// dz -> (dmu | dlogvar) for rows `rows`: through the reparameterization (or z = mu), plus the
/// KL's gradient scaled by `klScale` (or per dimension by `klScales`) when there is a KL term,
/// plus the coupled terms' gradient (d/d(mu | logvar | z), [batch, 3 latent]) when given.
struct LatentBackwardRows: RangeWork {
    let dheads: UnsafeMutablePointer<Float>  // [batch, 2 * latent]
    let dz: UnsafeMutablePointer<Float>      // [batch, latent]
    let heads: UnsafePointer<Float>
    let eps: UnsafePointer<Float>?
    let latent: Int
    let klScale: Float?
    var klScales: UnsafePointer<Float>? = nil
    var coupled: UnsafePointer<Float>? = nil

    @inline(__always)
    func run(_ rows: Range<Int>, thread: Int) {
        let l = latent, r0 = rows.lowerBound, n = rows.count
        let dh = dheads + r0 * 2 * l, dzr = dz + r0 * l
        let mu = heads + r0 * 2 * l, logvar = heads + r0 * 2 * l + l
        dh.update(repeating: 0, count: n * 2 * l)
        if let coupled {
            // The coupled terms' dz joins the decoder's before the reparameterization.
            for r in 0..<n {
                let c = coupled + (r0 + r) * 3 * l
                for j in 0..<l { dzr[r * l + j] += c[2 * l + j] }
            }
        }
        if let eps {
            reparameterizeBackward(dmu: dh, dlogvar: dh + l, dz: dzr, logvar: logvar, eps: eps + r0 * l,
                                   rows: n, latent: l, stride: 2 * l)
        } else {
            for r in 0..<n { (dh + r * 2 * l).update(from: dzr + r * l, count: l) }
        }
        if let klScale {
            klBackward(dmu: dh, dlogvar: dh + l, mu: mu, logvar: logvar, rows: n, latent: l, stride: 2 * l, scale: klScale)
        }
        if let klScales {
            // One KL weight per dimension (free bits, warm-up, capacity): dimension j alone, scaled by its own.
            for j in 0..<l {
                klBackward(dmu: dh + j, dlogvar: dh + l + j, mu: mu + j, logvar: logvar + j, rows: n, latent: 1,
                           stride: 2 * l, scale: klScales[j])
            }
        }
        if let coupled {
            for r in 0..<n {
                let c = coupled + (r0 + r) * 3 * l
                for j in 0..<(2 * l) { dh[r * 2 * l + j] += c[j] }
            }
        }
    }
}

/// ReLU backward on elements `range` (cut at multiples of 16: the same elements take the SIMD body).
struct ReluBackwardRange: RangeWork {
    let dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, out: UnsafePointer<Float>

    @inline(__always)
    func run(_ range: Range<Int>, thread: Int) {
        let i = range.lowerBound
        Kernels.active.reluBackward(dinp + i, dout + i, out + i, count: range.count)
    }
}
