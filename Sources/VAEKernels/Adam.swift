import Foundation
import _VAEKernelShims

// Adam (Kingma & Ba), exactly as torch.optim.Adam computes it (no weight decay,
// no amsgrad), over one flat buffer of parameters, gradients and moments:
//
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

public struct AdamHyperparameters: Sendable, Equatable, Codable {
    public var learningRate: Float
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-8
    public init(learningRate: Float) { self.learningRate = learningRate }
}

/// One Adam step `step` (1-based) over `count` parameters.
@inlinable
public func adamUpdate<ISA: ISATag>(_: ISA.Type, parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>,
                       firstMoment: UnsafeMutablePointer<Float>, secondMoment: UnsafeMutablePointer<Float>,
                       count: Int, step: Int, hyper: AdamHyperparameters) {
    let b1 = hyper.beta1, b2 = hyper.beta2
    let stepSize = hyper.learningRate / (1 - Float(pow(Double(b1), Double(step))))
    // sqrt(v) / sqrt(1 - b2^t) as a product: one division per element, not two.
    let inverseCorrection2 = Float(1 / sqrt(1 - pow(Double(b2), Double(step))))
    let full = count & ~15
    var i = 0
    while i < full {
        let g = load16(gradients + i)
        let m = load16(firstMoment + i) * b1 + g * (1 - b1)
        let v = load16(secondMoment + i) * b2 + (g * g) * (1 - b2)
        store16(m, firstMoment + i)
        store16(v, secondMoment + i)
        let denominator = vae_sqrt16(v) * inverseCorrection2 + hyper.epsilon
        store16(load16(parameters + i) - stepSize * m / denominator, parameters + i)
        i += 16
    }
    while i < count {
        adamScalar(&parameters[i], gradients[i], &firstMoment[i], &secondMoment[i], b1, b2, stepSize, inverseCorrection2, hyper.epsilon)
        i += 1
    }
}

@inlinable @inline(__always)
func adamScalar(_ p: inout Float, _ g: Float, _ m: inout Float, _ v: inout Float,
                _ b1: Float, _ b2: Float, _ stepSize: Float, _ inverseCorrection2: Float, _ eps: Float) {
    m = m * b1 + g * (1 - b1)
    v = v * b2 + (g * g) * (1 - b2)
    p -= stepSize * m / (v.squareRoot() * inverseCorrection2 + eps)
}

/// Reference: the same update in Double.
public func adamUpdateNaive(parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>,
                            firstMoment: UnsafeMutablePointer<Float>, secondMoment: UnsafeMutablePointer<Float>,
                            count: Int, step: Int, hyper: AdamHyperparameters) {
    let b1 = Double(hyper.beta1), b2 = Double(hyper.beta2)
    for i in 0..<count {
        let g = Double(gradients[i])
        let m = b1 * Double(firstMoment[i]) + (1 - b1) * g
        let v = b2 * Double(secondMoment[i]) + (1 - b2) * g * g
        let mHat = m / (1 - pow(b1, Double(step))), vHat = v / (1 - pow(b2, Double(step)))
        parameters[i] = Float(Double(parameters[i]) - Double(hyper.learningRate) * mHat / (vHat.squareRoot() + Double(hyper.epsilon)))
        firstMoment[i] = Float(m)
        secondMoment[i] = Float(v)
    }
}
