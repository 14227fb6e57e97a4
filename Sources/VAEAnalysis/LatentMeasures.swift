import Foundation
import VAEData
import VAEKernels

// What the latent code holds, computed from the gathered posteriors (`gatherPosterior`,
// AggregatePosterior.swift) in example order and in Double, so 1 and N ranks give the same numbers:
//
//   kl_per_dimension[u] = mean over test x of KL(q(z_u|x) || N(0, 1))
//                       = mean of 0.5 (mu_u^2 + exp(logvar_u) - logvar_u - 1)
//   active_units        = #{u : Cov_x(E_q[z_u]) = Var_x(mu_u(x)) > 0.01}   (Burda et al. 2016)
//   mig                 = the Mutual Information Gap (Chen et al. 2018), computed as
//                         disentanglement_lib's mig.py does (below).

/// The latent measures of one set of encodings.
public struct LatentMeasures: Sendable {
    public var klPerDimension: [Double]
    public var activeUnits: Int
    /// Per factor, in `factorNames` order; nil for a factor constant over the examples.
    public var migPerFactor: [Double?]?
    public var mig: Double?
    public var factorNames: [String]

    public static let activeUnitThreshold = 0.01
    /// disentanglement_lib's MIG uses 10,000 points.
    public static let migExamples = 10_000

    /// The measures of `posterior`, the encodings of images 0 ..< posterior.count of `data`
    /// (whose factors, when discrete, give MIG).
    /// An autoencoder has no KL term: its kl_per_dimension is 0, as its test_kl.
    public init(_ posterior: PosteriorParameters, data: ImageSet, autoencoder: Bool = false) {
        let e = posterior
        let n = e.count, l = e.latent
        var kl = [Double](repeating: 0, count: l)
        var mean = [Double](repeating: 0, count: l)
        for i in 0..<n {
            for u in 0..<l {
                let m = Double(e.mu[i * l + u]), v = Double(e.logvar[i * l + u])
                if !autoencoder { kl[u] += klTerm(mu: m, logvar: v) }
                mean[u] += m
            }
        }
        let count = Double(max(n, 1))
        for u in 0..<l { kl[u] /= count; mean[u] /= count }
        var variance = [Double](repeating: 0, count: l)
        for i in 0..<n {
            for u in 0..<l {
                let d = Double(e.mu[i * l + u]) - mean[u]
                variance[u] += d * d
            }
        }
        klPerDimension = kl
        activeUnits = variance.filter { $0 / count > Self.activeUnitThreshold }.count
        factorNames = data.factorNames
        if let factors = data.factors, data.discreteFactors, !data.factorNames.isEmpty, n > 0 {
            precondition(n <= data.count)
            let used = min(n, Self.migExamples), f = data.factorNames.count
            let gap = mutualInformationGap(codes: Array(e.mu[0..<(used * l)]), latent: l,
                                           factors: Array(factors[0..<(used * f)]), factorCount: f)
            migPerFactor = gap.perFactor
            mig = gap.mig
        }
    }

    /// The same values one number each, for TensorBoard: active_units, mig,
    /// kl_per_dimension/0 ..., mig_per_factor/<factor> (nil: not finite or not defined).
    public var scalars: [(String, Double?)] {
        var out: [(String, Double?)] = [("active_units", Double(activeUnits))]
        out += klPerDimension.enumerated().map { ("kl_per_dimension/\($0.offset)", $0.element) }
        if let mig, let migPerFactor {
            out.append(("mig", mig))
            out += zip(factorNames, migPerFactor).map { ("mig_per_factor/\($0.0)", $0.1) }
        }
        return out
    }
}

/// MIG as disentanglement_lib computes it (evaluation/metrics/mig.py and utils.py):
///   1. each code dimension (a column of `codes` [n, latent]) is cut into `bins` equal-width
///      bins over its observed range: np.digitize(c, np.histogram(c, bins)[1][:-1]), i.e. bin
///      = the number of the edges lo + k (hi - lo) / bins, k = 0 ..< bins, that are <= c
///      (1 ... bins; a constant column has lo - 0.5 and hi + 0.5, as np.histogram);
///   2. I(code_u; factor_k) of the discrete values (sklearn's mutual_info_score), nats;
///   3. per factor, (largest I - second largest I) / H(factor_k); the mean over factors.
/// `factors` [n, factorCount] are class values (each distinct value one class). A factor with
/// H = 0 gets nil and is left out of the mean (disentanglement_lib would divide by zero). With
/// one code dimension the second largest I is 0.
public func mutualInformationGap(codes: [Float], latent: Int, factors: [Float], factorCount: Int,
                                 bins: Int = 20) -> (mig: Double?, perFactor: [Double?]) {
    let n = codes.count / max(latent, 1)
    precondition(codes.count == n * latent && factors.count == n * factorCount && n > 0)
    // 1. Code bins 0 ..< bins (np.digitize's 1 ... bins, less one).
    var codeBins = [[Int]](repeating: [Int](repeating: 0, count: n), count: latent)
    for u in 0..<latent {
        var lo = Double.infinity, hi = -Double.infinity
        for i in 0..<n { let c = Double(codes[i * latent + u]); lo = min(lo, c); hi = max(hi, c) }
        if lo == hi { lo -= 0.5; hi += 0.5 }
        // np.linspace(lo, hi, bins + 1): k * step + lo, step = (hi - lo) / bins.
        let step = (hi - lo) / Double(bins)
        let edges = (0..<bins).map { Double($0) * step + lo }
        for i in 0..<n {
            let c = Double(codes[i * latent + u])
            var below = 0
            for edge in edges where edge <= c { below += 1 }
            codeBins[u][i] = below - 1
        }
    }
    // 2. Factor classes, and I(code; factor) from the contingency counts.
    var perFactor: [Double?] = []
    for k in 0..<factorCount {
        var classOf: [Float: Int] = [:]
        var factorClass = [Int](repeating: 0, count: n)
        for i in 0..<n {
            let v = factors[i * factorCount + k]
            if classOf[v] == nil { classOf[v] = classOf.count }
            factorClass[i] = classOf[v]!
        }
        let classes = classOf.count
        let total = Double(n)
        var classCounts = [Double](repeating: 0, count: classes)
        for c in factorClass { classCounts[c] += 1 }
        let entropy = classCounts.reduce(0.0) { $0 - ($1 / total) * log($1 / total) }
        var information: [Double] = []
        for u in 0..<latent {
            var joint = [Double](repeating: 0, count: bins * classes)
            var binCounts = [Double](repeating: 0, count: bins)
            for i in 0..<n {
                joint[codeBins[u][i] * classes + factorClass[i]] += 1
                binCounts[codeBins[u][i]] += 1
            }
            var mi = 0.0
            for b in 0..<bins {
                for c in 0..<classes where joint[b * classes + c] > 0 {
                    let nbc = joint[b * classes + c]
                    mi += nbc / total * log(nbc * total / (binCounts[b] * classCounts[c]))
                }
            }
            information.append(max(mi, 0))
        }
        information.sort(by: >)
        let second = information.count > 1 ? information[1] : 0
        perFactor.append(entropy > 0 ? (information[0] - second) / entropy : nil)
    }
    let defined = perFactor.compactMap { $0 }
    return (defined.isEmpty ? nil : defined.reduce(0, +) / Double(defined.count), perFactor)
}
